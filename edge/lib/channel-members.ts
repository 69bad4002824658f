// Channel membership as the group, moderation and presence methods share it: who is in a
// channel with which role, and the fan-out to the members' RecipientQueues (non-stored push
// events, and the channel rules each queue applies on Enqueue: default TTL and banned senders).
import { and, asc, eq, gt, inArray, or, sql } from "drizzle-orm";
import { PushEvent, badRequest, forbidden, notFound, pb } from "../../proto/index.ts";
import type { EdgeDeps } from "../deps.ts";
import { queueOf } from "../durable/recipient-queue-client.ts";
import { accepted } from "../durable/refusable.ts";
import { equalBytes } from "./crypto.ts";
import { senderTag } from "./sender-tag.ts";
import * as v from "./validate.ts";
import { toHex } from "../../proto/util/hex.ts";
import { bans, channelMembers, channels } from "../../schema/tables.ts";

export type Role = "creator" | "admin" | "member";

export interface Member {
  identityKey: Uint8Array;
  role: Role;
  joinedAt: number;
}

export interface Channel {
  id: Uint8Array;
  kind: "direct" | "group";
  name: string;
  description: string;
  defaultTtlSecs: number;
  keyEpoch: number;
  keysRotatedAt: number;
  members: Member[];
}

/** A non-empty channel id: the default channel (empty) has no membership. */
export function requiredChannelId(value: Uint8Array): Uint8Array {
  if (value.length === 0) throw badRequest("channel_id is required");
  return v.channelId(value);
}

/** The channel with its members (two D1 reads), NotFound when it does not exist. */
export async function loadChannel(deps: EdgeDeps, id: Uint8Array): Promise<Channel> {
  const { db } = deps;
  const [row, members] = await Promise.all([
    db.select().from(channels).where(eq(channels.id, id)).get(),
    db
      .select({ identityKey: channelMembers.identityKey, role: channelMembers.role, joinedAt: channelMembers.joinedAt })
      .from(channelMembers)
      .where(eq(channelMembers.channelId, id))
      // Listings show the creator, then admins, then members, each in joining order.
      .orderBy(
        sql`CASE ${channelMembers.role} WHEN 'creator' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END`,
        asc(channelMembers.joinedAt),
        asc(channelMembers.identityKey),
      )
      .all(),
  ]);
  if (!row) throw notFound("no such channel");
  return {
    id,
    kind: row.kind,
    name: row.name,
    description: row.description,
    defaultTtlSecs: row.defaultTtlSecs,
    keyEpoch: row.keyEpoch,
    keysRotatedAt: row.keysRotatedAt,
    members,
  };
}

/** A group channel (not 1:1), for the methods that manage membership and metadata. */
export async function loadGroup(deps: EdgeDeps, id: Uint8Array): Promise<Channel> {
  const channel = await loadChannel(deps, id);
  if (channel.kind === "direct") throw badRequest("1:1 channels have no group membership or metadata");
  return channel;
}

export function memberOf(channel: Channel, key: Uint8Array): Member | undefined {
  return channel.members.find((m) => equalBytes(m.identityKey, key));
}

/** The caller's membership, Forbidden when it is not a member. */
export function requireMember(channel: Channel, caller: Uint8Array): Member {
  const m = memberOf(channel, caller);
  if (!m) throw forbidden("the caller is not a member of this channel");
  return m;
}

/** The first of `identities` a live ban keeps out of `channel` (server-wide or this channel's). */
export async function firstBanned(
  deps: EdgeDeps,
  identities: Uint8Array[],
  channel: Uint8Array,
): Promise<Uint8Array | undefined> {
  const now = Date.now();
  // D1 binds at most 100 parameters per statement.
  for (let i = 0; i < identities.length; i += 90) {
    const row = await deps.db
      .select({ key: bans.identityKey })
      .from(bans)
      .where(
        and(
          inArray(bans.identityKey, identities.slice(i, i + 90)),
          or(eq(bans.channelId, new Uint8Array(0)), eq(bans.channelId, channel)),
          or(eq(bans.expiresAt, 0), gt(bans.expiresAt, now)),
        ),
      )
      .get();
    if (row) return row.key;
  }
  return undefined;
}

/** The live per-channel bans of a channel, as the sender tags the members' queues refuse. */
export async function channelBanRules(
  deps: EdgeDeps,
  channel: Uint8Array,
): Promise<{ sender: Uint8Array; expiresAt: number }[]> {
  const now = Date.now();
  const rows = await deps.db
    .select({ identityKey: bans.identityKey, expiresAt: bans.expiresAt })
    .from(bans)
    .where(and(eq(bans.channelId, channel), or(eq(bans.expiresAt, 0), gt(bans.expiresAt, now))))
    .all();
  const key = await deps.senderTagKey;
  return Promise.all(rows.map(async (r) => ({ sender: await senderTag(key, r.identityKey), expiresAt: r.expiresAt })));
}

export interface MembershipChange {
  member: Uint8Array;
  change: "joined" | "left" | "removed" | "banned" | "role_changed" | "metadata_changed" | "keys_rotated";
  actor: Uint8Array;
  epoch?: number;
  role?: Role;
}

/**
 * PushMembership for every change, to every identity in `to` (one queue call each, carrying all
 * events). Push is a hint: a member without a connection misses it and reads ListGroupMembers.
 */
export async function announceMembership(
  deps: EdgeDeps,
  channel: Uint8Array,
  to: Uint8Array[],
  changes: MembershipChange[],
): Promise<void> {
  if (changes.length === 0) return;
  const events = changes.map((c) =>
    pb.PushMembership.encode({
      channelId: channel,
      memberKey: c.member,
      change: c.change,
      actorKey: c.actor,
      epoch: c.epoch ?? 0,
      role: c.role ?? "",
    }).finish(),
  );
  await announce(
    deps,
    to,
    events.map((event) => ({ eventId: PushEvent.Membership, event })),
  );
}

/** Hands non-stored events to each identity's queue; answers how many identities had a front. */
export async function announce(
  deps: EdgeDeps,
  to: Uint8Array[],
  events: { eventId: number; event: Uint8Array }[],
): Promise<number> {
  const results = await Promise.allSettled(to.map((k) => queueOf(deps, k).announce(events)));
  let reached = 0;
  for (const r of results) {
    if (r.status === "fulfilled") reached += r.value > 0 ? 1 : 0;
    else deps.logger.warn("push event not handed to a queue", { error: String(r.reason) });
  }
  return reached;
}

/**
 * Sets the channel's rules in each listed member's queue. A failure is logged, not fatal: the
 * membership already changed in D1, and a retry of the same change sets the rules again.
 */
export async function setRules(
  deps: EdgeDeps,
  keys: Uint8Array[],
  channel: Uint8Array,
  rules: {
    ttlSecs?: number;
    ban?: { sender: Uint8Array; expiresAt: number }[];
    unban?: Uint8Array[];
    forget?: boolean;
  },
): Promise<void> {
  const results = await Promise.allSettled(
    keys.map(async (recipient) =>
      accepted(await queueOf(deps, recipient).setChannelRules({ recipient, channel, ...rules })),
    ),
  );
  for (const r of results) {
    if (r.status === "rejected") deps.logger.warn("channel rules not set in a queue", { error: String(r.reason) });
  }
}

/** The group channels `identity` is a member of (at most `max`), and whether it is their creator. */
export async function groupsOf(
  deps: EdgeDeps,
  identity: Uint8Array,
  max: number,
): Promise<{ id: Uint8Array; creator: boolean }[]> {
  const rows = await deps.db
    .select({ id: channelMembers.channelId, role: channelMembers.role })
    .from(channelMembers)
    .innerJoin(channels, and(eq(channels.id, channelMembers.channelId), eq(channels.kind, "group")))
    .where(eq(channelMembers.identityKey, identity))
    .limit(max)
    .all();
  return rows.map((r) => ({ id: r.id, creator: r.role === "creator" }));
}

/**
 * After a deleted account left `groups`: each remaining member hears PushMembership "left" for
 * every group it shared, and the member who became creator "role_changed" (one queue call per
 * member). Push is a hint: failures are logged.
 */
export async function announceDeparture(
  deps: EdgeDeps,
  identity: Uint8Array,
  groups: { id: Uint8Array; creator: boolean }[],
): Promise<void> {
  const byMember = new Map<string, { key: Uint8Array; events: { eventId: number; event: Uint8Array }[] }>();
  const wasCreator = new Set(groups.filter((g) => g.creator).map((g) => toHex(g.id)));
  // D1 binds at most 100 parameters per statement.
  for (let i = 0; i < groups.length; i += 90) {
    const ids = groups.slice(i, i + 90).map((g) => g.id);
    const rows = await deps.db
      .select({ channelId: channelMembers.channelId, key: channelMembers.identityKey, role: channelMembers.role })
      .from(channelMembers)
      .where(inArray(channelMembers.channelId, ids))
      .all();
    const newCreator = new Map(
      rows
        .filter((r) => r.role === "creator" && wasCreator.has(toHex(r.channelId)))
        .map((r) => [toHex(r.channelId), r.key]),
    );
    for (const r of rows) {
      const encode = (member: Uint8Array, change: MembershipChange["change"], role = "") => ({
        eventId: PushEvent.Membership,
        event: pb.PushMembership.encode({
          channelId: r.channelId,
          memberKey: member,
          change,
          actorKey: identity,
          epoch: 0,
          role,
        }).finish(),
      });
      const hex = toHex(r.key);
      const entry = byMember.get(hex) ?? { key: r.key, events: [] };
      entry.events.push(encode(identity, "left"));
      const successor = newCreator.get(toHex(r.channelId));
      if (successor) entry.events.push(encode(successor, "role_changed", "creator"));
      byMember.set(hex, entry);
    }
  }
  const results = await Promise.allSettled([...byMember.values()].map((m) => queueOf(deps, m.key).announce(m.events)));
  for (const r of results) {
    if (r.status === "rejected") deps.logger.warn("push event not handed to a queue", { error: String(r.reason) });
  }
}
