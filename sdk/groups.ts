// SDK for groups (410-413), relayed typing/presence (1001/1002) and their push events
// (docs/protocol.md, "Groups" and "Typing and presence"). Functions over a connected QpqClient.
import { Method, PushEvent, pb } from "../proto/index.ts";
import type { QpqClient } from "./client.ts";

export type GroupRole = "creator" | "admin" | "member";

export interface GroupMember {
  identityKey: Uint8Array;
  role: GroupRole;
  joinedAtMs: number;
}

export interface GroupInfo {
  members: GroupMember[];
  name: string;
  description: string;
  defaultTtlSecs: number;
  keyEpoch: number;
  keysRotatedAtMs: number;
}

export interface GroupUpdate {
  name?: string;
  description?: string;
  /** Disappearing messages: the TTL of messages sent to the group without one (0 = server default). */
  defaultTtlSecs?: number;
  addMembers?: Uint8Array[];
  /** Creator only. */
  makeAdmins?: Uint8Array[];
  /** Creator only: admins who become plain members. */
  makeMembers?: Uint8Array[];
}

/** Applies the given changes (creator or admin; roles by the creator); returns the keys newly added. */
export async function updateGroup(client: QpqClient, channelId: Uint8Array, u: GroupUpdate): Promise<Uint8Array[]> {
  const res = await client.call(
    Method.UpdateGroupMetadata,
    pb.UpdateGroupMetadataRequest,
    {
      channelId,
      setName: u.name !== undefined,
      name: u.name ?? "",
      setDescription: u.description !== undefined,
      description: u.description ?? "",
      settings: u.defaultTtlSecs !== undefined ? { defaultTtlSecs: u.defaultTtlSecs } : null,
      addMemberKeys: u.addMembers ?? [],
      makeAdminKeys: u.makeAdmins ?? [],
      makeMemberKeys: u.makeMembers ?? [],
    },
    pb.UpdateGroupMetadataResponse,
  );
  return res.addedMemberKeys;
}

/** Members only. */
export async function listGroupMembers(client: QpqClient, channelId: Uint8Array): Promise<GroupInfo> {
  const r = await client.call(
    Method.ListGroupMembers,
    pb.ListGroupMembersRequest,
    { channelId },
    pb.ListGroupMembersResponse,
  );
  return {
    members: r.members.map((m) => ({
      identityKey: m.identityKey ?? new Uint8Array(0),
      role: (m.role ?? "member") as GroupRole,
      joinedAtMs: Number(m.joinedAtMs),
    })),
    name: r.name,
    description: r.description,
    defaultTtlSecs: r.settings?.defaultTtlSecs ?? 0,
    keyEpoch: Number(r.keyEpoch),
    keysRotatedAtMs: Number(r.keysRotatedAtMs),
  };
}

/** Records that the group's MLS state moved to `epoch` (which must grow); members are told. */
export async function rotateKeys(client: QpqClient, channelId: Uint8Array, epoch: number): Promise<number> {
  const r = await client.call(Method.RotateKeys, pb.RotateKeysRequest, { channelId, epoch }, pb.RotateKeysResponse);
  return Number(r.rotatedAtMs);
}

/** Relays typing to the channel's other members; answers how many had a connection. */
export async function sendTyping(client: QpqClient, channelId: Uint8Array, typing = true): Promise<number> {
  const r = await client.call(Method.PushTyping, pb.PushTypingRequest, { channelId, typing }, pb.PushTypingResponse);
  return r.delivered;
}

/** Relays online/offline to the channel's other members; answers how many had a connection. */
export async function sendPresence(client: QpqClient, channelId: Uint8Array, online: boolean): Promise<number> {
  const r = await client.call(
    Method.PushPresence,
    pb.PushPresenceRequest,
    { channelId, online },
    pb.PushPresenceResponse,
  );
  return r.delivered;
}

export interface MembershipEvent {
  channelId: Uint8Array;
  memberKey: Uint8Array;
  change: string;
  actorKey: Uint8Array;
  epoch: number;
  role: string;
}

function on<T>(client: QpqClient, eventType: number, decode: (b: Uint8Array) => T, handler: (e: T) => void) {
  return client.transport.onPush((frame) => {
    if (frame.eventType !== eventType) return;
    let event: T;
    try {
      event = decode(frame.payload);
    } catch {
      return; /* malformed push: ignore */
    }
    handler(event);
  });
}

/** PushMembership events (joined, left, removed, banned, role_changed, metadata_changed, keys_rotated). */
export function onMembership(client: QpqClient, handler: (e: MembershipEvent) => void): () => void {
  return on(
    client,
    PushEvent.Membership,
    (b) => {
      const m = pb.PushMembership.decode(b);
      return {
        channelId: m.channelId,
        memberKey: m.memberKey,
        change: m.change,
        actorKey: m.actorKey,
        epoch: Number(m.epoch),
        role: m.role,
      };
    },
    handler,
  );
}

export function onTyping(
  client: QpqClient,
  handler: (e: { senderKey: Uint8Array; channelId: Uint8Array; typing: boolean }) => void,
): () => void {
  return on(client, PushEvent.Typing, (b) => pb.PushTyping.decode(b), handler);
}

export function onPresence(
  client: QpqClient,
  handler: (e: { identityKey: Uint8Array; channelId: Uint8Array; online: boolean; lastSeenMs: number }) => void,
): () => void {
  return on(
    client,
    PushEvent.Presence,
    (b) => {
      const p = pb.PushPresence.decode(b);
      return { identityKey: p.identityKey, channelId: p.channelId, online: p.online, lastSeenMs: Number(p.lastSeenMs) };
    },
    handler,
  );
}
