// Method ids (wire-protocol.md §5): stable, never reused.
export const Method = {
  OpaqueRegisterStart: 100,
  OpaqueRegisterFinish: 101,
  OpaqueLoginStart: 102,
  OpaqueLoginFinish: 103,
  SessionResume: 104,

  Enqueue: 200,
  Fetch: 201,
  FetchWait: 202,
  Peek: 203,
  Ack: 204,
  BatchEnqueue: 205,

  UploadKeyPackage: 300,
  FetchKeyPackage: 301,
  UploadHybridKey: 302,
  FetchHybridKey: 303,
  FetchHybridKeys: 304,

  CreateChannel: 400,
  RemoveMember: 410,
  UpdateGroupMetadata: 411,
  ListGroupMembers: 412,
  RotateKeys: 413,

  ReportMessage: 420,
  BanUser: 421,
  UnbanUser: 422,
  ListReports: 423,
  ListBanned: 424,

  ResolveUser: 500,
  ResolveIdentity: 501,

  RevokeKey: 510,
  CheckRevocation: 511,
  AuditKeyTransparency: 520,

  UploadBlob: 600,
  DownloadBlob: 601,

  RegisterDevice: 700,
  ListDevices: 701,
  RevokeDevice: 702,
  RegisterPushToken: 710,

  StoreRecoveryBundle: 750,
  FetchRecoveryBundle: 751,
  DeleteRecoveryBundle: 752,

  PublishEndpoint: 800,
  ResolveEndpoint: 801,
  Health: 802,

  RelayEnqueue: 900,
  RelayBatchEnqueue: 901,
  ProxyFetchKeyPackage: 902,
  ProxyFetchHybridKey: 903,
  ProxyResolveUser: 904,
  FederationHealth: 905,

  DeleteAccount: 950,

  // Relayed signals: the client sends PushTypingRequest/PushPresenceRequest under the push
  // event's own id and the server relays the event to the channel's members (never stored).
  PushTyping: 1001,
  PushPresence: 1002,
} as const;

export type MethodName = keyof typeof Method;
export type MethodId = (typeof Method)[MethodName];

export const PushEvent = {
  NewMessage: 1000,
  Typing: 1001,
  Presence: 1002,
  Membership: 1003,
} as const;
export type PushEventId = (typeof PushEvent)[keyof typeof PushEvent];

const byId = new Map<number, MethodName>(
  (Object.entries(Method) as [MethodName, MethodId][]).map(([name, id]) => [id, name]),
);

export function methodName(id: number): MethodName | undefined {
  return byId.get(id);
}

/**
 * Methods a client may call before it has a session (wire-protocol.md §6). FetchRecoveryBundle
 * too: whoever recovers an account has lost the identity key a login needs (the edge limits it
 * per token and per address instead).
 */
export function isUnauthenticated(id: number): boolean {
  return (
    (id >= Method.OpaqueRegisterStart && id <= Method.SessionResume) ||
    id === Method.Health ||
    id === Method.FetchRecoveryBundle
  );
}

/**
 * RPCs that may be re-sent to the edge when the first attempt failed before any response byte:
 * reads and writes that are idempotent by themselves. Enqueue/BatchEnqueue are idempotent only
 * when they carry a message id; the relay checks that separately.
 */
const idempotent = new Set<number>([
  Method.Fetch,
  Method.FetchWait,
  Method.Peek,
  Method.Ack,
  Method.FetchHybridKey,
  Method.FetchHybridKeys,
  Method.UploadHybridKey,
  Method.ResolveUser,
  Method.ResolveIdentity,
  Method.Health,
  Method.RevokeKey,
  Method.CheckRevocation,
  Method.AuditKeyTransparency,
  Method.CreateChannel,
  Method.ListGroupMembers,
  Method.ListReports,
  Method.ListBanned,
  Method.ListDevices,
  Method.DownloadBlob,
  Method.ResolveEndpoint,
  // A chunk the edge already stored is acknowledged again, the last one answers the blob complete.
  Method.UploadBlob,
]);
export function isIdempotent(id: number): boolean {
  return idempotent.has(id);
}
