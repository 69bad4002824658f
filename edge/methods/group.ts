// 410-413: group membership and metadata (docs/protocol.md, "Groups"). Membership is D1
// metadata; every change is announced to the members' connections (PushMembership) through
// their RecipientQueues, and the group's default TTL is copied into each member's queue, so
// Enqueue applies it without a D1 query.
//
// Roles: exactly one creator, who may do everything; admins add and remove plain members, rename
// the group and change its settings; members list the group, record key rotations and leave.
import { and, eq, inArray, lt, sql } from "drizzle-orm";
import { Method, pb, badRequest, forbidden, notFound } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { LIMITS } from "../lib/limits.ts";
import { equalBytes } from "../lib/crypto.ts";
import { toHex } from "../../proto/util/hex.ts";
import { channels, channelMembers } from "../../schema/tables.ts";
import {
  announceMembership,
  channelBanRules,
  firstBanned,
  loadGroup,
  memberOf,
  requireMember,
  requiredChannelId,
  setRules,
  type MembershipChange,
  type Role,
} from "../lib/channel-members.ts";

/** Distinct valid keys of a repeated field (BadRequest names the bad entry). */
function keyList(keys: Uint8Array[], field: string): Uint8Array[] {
  const out = new Map<string, Uint8Array>();
  keys.forEach((k, i) => out.set(toHex(v.identityKey(k, `${field}[${i}]`)), k));
  return [...out.values()];
}

function text(value: string, max: number, field: string): string {
  const s = value.normalize("NFC");
  if ([...s].length > max) throw badRequest(`${field} must be at most ${max} characters`);
  return s;
}

export const groupMethods: MethodTable = {
  // The creator removes anyone but itself; an admin removes plain members; anyone may remove
  // itself (leave). The creator cannot leave or be removed: a group always has someone who may
  // manage it (if its account is deleted, the role passes on: edge/methods/account.ts).
  [Method.RemoveMember]: unary("user", pb.RemoveMemberRequest, pb.RemoveMemberResponse, async (ctx, req) => {
    const caller = requireCaller(ctx);
    const channelId = requiredChannelId(req.channelId);
    const member = v.identityKey(req.memberKey, "member_key");
    const group = await loadGroup(ctx.deps, channelId);
    const callerRole = requireMember(group, caller.identityKey).role;
    const leaving = equalBytes(member, caller.identityKey);
    if (!leaving && callerRole === "member")
      throw forbidden("only the channel's creator or an admin may remove members");
    const target = memberOf(group, member);
    if (!target) throw notFound("member_key is not a member of this channel");
    if (target.role === "creator") throw forbidden("the channel's creator cannot be removed");
    if (!leaving && target.role === "admin" && callerRole !== "creator")
      throw forbidden("only the channel's creator may remove an admin");
    const gone = await ctx.deps.db
      .delete(channelMembers)
      .where(and(eq(channelMembers.channelId, channelId), eq(channelMembers.identityKey, member)))
      .returning({ key: channelMembers.identityKey })
      .get();
    // A concurrent removal got there first: nothing changed, nothing to announce.
    if (!gone) throw notFound("member_key is not a member of this channel");
    await Promise.all([
      setRules(ctx.deps, [member], channelId, { forget: true }),
      announceMembership(
        ctx.deps,
        channelId,
        group.members.map((m) => m.identityKey),
        [{ member, change: leaving ? "left" : "removed", actor: caller.identityKey }],
      ),
    ]);
    return {};
  }),

  [Method.UpdateGroupMetadata]: unary(
    "user",
    pb.UpdateGroupMetadataRequest,
    pb.UpdateGroupMetadataResponse,
    async (ctx, req) => {
      const caller = requireCaller(ctx);
      const channelId = requiredChannelId(req.channelId);
      const add = keyList(req.addMemberKeys, "add_member_keys");
      const promote = keyList(req.makeAdminKeys, "make_admin_keys");
      const demote = keyList(req.makeMemberKeys, "make_member_keys");
      const name = req.setName ? text(req.name, LIMITS.channelNameMax, "name") : undefined;
      const description = req.setDescription
        ? text(req.description, LIMITS.groupDescriptionMax, "description")
        : undefined;
      const ttl = req.settings ? (req.settings.defaultTtlSecs ?? 0) : undefined;
      if (
        add.length + promote.length + demote.length === 0 &&
        name === undefined &&
        description === undefined &&
        ttl === undefined
      ) {
        throw badRequest("nothing to update: set a field, settings, or a member list");
      }

      const group = await loadGroup(ctx.deps, channelId);
      const role = requireMember(group, caller.identityKey).role;
      if (role === "member") throw forbidden("only the channel's creator or an admin may change the group");
      if ((promote.length > 0 || demote.length > 0) && role !== "creator")
        throw forbidden("only the channel's creator may change roles");
      const promoted = new Set(promote.map(toHex));
      if (demote.some((k) => promoted.has(toHex(k))))
        throw badRequest("a key cannot be in both make_admin_keys and make_member_keys");
      for (const k of [...promote, ...demote]) {
        const m = memberOf(group, k);
        if (!m) throw notFound(`${toHex(k).slice(0, 16)}… is not a member of this channel`);
        if (m.role === "creator") throw badRequest("the creator's role cannot change");
      }
      const adding = add.filter((k) => !memberOf(group, k));
      if (group.members.length + adding.length > LIMITS.groupMembersMax + 1) {
        throw forbidden(`a group holds at most ${LIMITS.groupMembersMax + 1} members, the creator included`);
      }
      const banned = await firstBanned(ctx.deps, adding, channelId);
      if (banned) throw forbidden(`${toHex(banned).slice(0, 16)}… is banned from this channel`);

      const { db } = ctx.deps;
      const now = Date.now();
      const writes = [];
      if (name !== undefined || description !== undefined || ttl !== undefined) {
        writes.push(
          db
            .update(channels)
            .set({
              ...(name !== undefined ? { name } : {}),
              ...(description !== undefined ? { description } : {}),
              ...(ttl !== undefined ? { defaultTtlSecs: ttl } : {}),
            })
            .where(eq(channels.id, channelId)),
        );
      }
      // D1 binds at most 100 parameters per statement: 4 per member row.
      for (let i = 0; i < adding.length; i += 24) {
        const rows = adding
          .slice(i, i + 24)
          .map((k) => ({ channelId, identityKey: k, role: "member" as const, joinedAt: now }));
        writes.push(db.insert(channelMembers).values(rows).onConflictDoNothing());
      }
      const setRole = (keys: Uint8Array[], to: Role) =>
        keys.length > 0
          ? [
              db
                .update(channelMembers)
                .set({ role: to })
                .where(
                  and(
                    eq(channelMembers.channelId, channelId),
                    inArray(channelMembers.identityKey, keys),
                    sql`${channelMembers.role} <> 'creator'`,
                  ),
                ),
            ]
          : [];
      writes.push(...setRole(promote, "admin"), ...setRole(demote, "member"));
      // Nothing to write when every key to add already was a member.
      const [first, ...rest] = writes;
      if (first) await db.batch([first, ...rest]);

      // Every queue learns the TTL (when it changed); new members also learn the channel's bans.
      const everyone = [...group.members.map((m) => m.identityKey), ...adding];
      const effectiveTtl = ttl ?? group.defaultTtlSecs;
      const banRules = adding.length > 0 ? await channelBanRules(ctx.deps, channelId) : [];
      await Promise.all([
        ttl !== undefined
          ? setRules(
              ctx.deps,
              group.members.map((m) => m.identityKey),
              channelId,
              { ttlSecs: ttl },
            )
          : null,
        adding.length > 0 ? setRules(ctx.deps, adding, channelId, { ttlSecs: effectiveTtl, ban: banRules }) : null,
      ]);
      const actor = caller.identityKey;
      const changes: MembershipChange[] = [
        ...adding.map((member) => ({ member, change: "joined" as const, actor, role: "member" as const })),
        ...promote.map((member) => ({ member, change: "role_changed" as const, actor, role: "admin" as const })),
        ...demote.map((member) => ({ member, change: "role_changed" as const, actor, role: "member" as const })),
      ];
      if (name !== undefined || description !== undefined || ttl !== undefined)
        changes.push({ member: actor, change: "metadata_changed", actor });
      await announceMembership(ctx.deps, channelId, everyone, changes);
      return { addedMemberKeys: adding };
    },
  ),

  // Members only: a non-member learns nothing, not even whether the group exists beyond that.
  [Method.ListGroupMembers]: unary(
    "user",
    pb.ListGroupMembersRequest,
    pb.ListGroupMembersResponse,
    async (ctx, req) => {
      const caller = requireCaller(ctx);
      const group = await loadGroup(ctx.deps, requiredChannelId(req.channelId));
      requireMember(group, caller.identityKey);
      return {
        members: group.members.map((m) => ({ identityKey: m.identityKey, role: m.role, joinedAtMs: m.joinedAt })),
        name: group.name,
        description: group.description,
        settings: { defaultTtlSecs: group.defaultTtlSecs },
        keyEpoch: group.keyEpoch,
        keysRotatedAtMs: group.keysRotatedAt,
      };
    },
  ),

  // Any member records that the group moved to a new MLS epoch; the epoch only grows (a repeat of
  // the recorded one answers its time again and announces nothing), and every member is told.
  [Method.RotateKeys]: unary("user", pb.RotateKeysRequest, pb.RotateKeysResponse, async (ctx, req) => {
    const caller = requireCaller(ctx);
    const channelId = requiredChannelId(req.channelId);
    const epoch = Number(req.epoch);
    if (!Number.isSafeInteger(epoch) || epoch <= 0) throw badRequest("epoch must be a positive integer");
    const group = await loadGroup(ctx.deps, channelId);
    requireMember(group, caller.identityKey);
    const now = Date.now();
    const moved = await ctx.deps.db
      .update(channels)
      .set({ keyEpoch: epoch, keysRotatedAt: now })
      .where(and(eq(channels.id, channelId), lt(channels.keyEpoch, epoch)))
      .returning({ at: channels.keysRotatedAt })
      .get();
    if (!moved) {
      const row = await ctx.deps.db
        .select({ epoch: channels.keyEpoch, at: channels.keysRotatedAt })
        .from(channels)
        .where(eq(channels.id, channelId))
        .get();
      if (row && row.epoch === epoch) return { rotatedAtMs: row.at };
      throw badRequest(`epoch ${epoch} is not above the recorded epoch ${row?.epoch ?? 0}`);
    }
    await announceMembership(
      ctx.deps,
      channelId,
      group.members.map((m) => m.identityKey),
      [{ member: caller.identityKey, change: "keys_rotated", actor: caller.identityKey, epoch }],
    );
    return { rotatedAtMs: now };
  }),
};
