// The front ⇄ edge relay contract (docs/protocol.md): one HTTP POST /rpc/<method id> per RPC,
// the raw protobuf payload as body, the wire status in a header. Shared by quic-front and edge.
export const RelayHeader = {
  /** The front secret; the edge compares digests in constant time. */
  frontAuth: "x-qpq-front-auth",
  requestId: "x-qpq-request-id",
  /** Client address as seen by the front (trusted because the front authenticated itself). */
  clientAddr: "x-qpq-client-addr",
  /** Stable id of the client connection; scopes pending OPAQUE logins. */
  connection: "x-qpq-connection",
  /** Caller assertion minted by the edge at login/resume. */
  caller: "x-qpq-caller",
  status: "x-qpq-status",
  retryAfter: "x-qpq-retry-after-ms",
  /** Set on a successful login/resume: see SessionGrant. */
  session: "x-qpq-session",
  /** Set on Enqueue: the recipient's pending messages afterwards (metrics only). */
  queueDepth: "x-qpq-queue-depth",
} as const;

/** What the edge tells the front when a login or resume bound a session to the connection. */
export interface SessionGrant {
  assertion: string;
  identityKeyHex: string;
  sessionExpiresAt: number;
  assertionExpiresAt: number;
}

export function formatSessionGrant(g: SessionGrant): string {
  return `${g.assertion};${g.identityKeyHex};${g.sessionExpiresAt};${g.assertionExpiresAt}`;
}

export function parseSessionGrant(header: string | undefined): SessionGrant | undefined {
  if (typeof header !== "string") return undefined;
  const [assertion, identityKeyHex, sessionExp, assertionExp] = header.split(";");
  const sessionExpiresAt = Number(sessionExp);
  const assertionExpiresAt = Number(assertionExp);
  if (
    !assertion ||
    !identityKeyHex ||
    !Number.isSafeInteger(sessionExpiresAt) ||
    !Number.isSafeInteger(assertionExpiresAt)
  ) {
    return undefined;
  }
  return { assertion, identityKeyHex, sessionExpiresAt, assertionExpiresAt };
}
