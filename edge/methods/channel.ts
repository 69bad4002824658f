// 400 CreateChannel: 1:1 channels (deterministic id, deduplicated) and group channels.
// Membership is routing metadata only; the conversation keys are client-side MLS.
import { Method, pb, badRequest, directChannelId } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { LIMITS } from "../lib/limits.ts";
import { equalBytes, randomBytes } from "../lib/crypto.ts";
import { toHex } from "../../proto/util/hex.ts";
import { channels, channelMembers } from "../../schema/tables.ts";
import { announceMembership } from "../lib/channel-members.ts";

export const channelMethods: MethodTable = {
  [Method.CreateChannel]: unary("user", pb.CreateChannelRequest, pb.CreateChannelResponse, async (ctx, req) => {
    const caller = requireCaller(ctx);
    const { db } = ctx.deps;
    const now = Date.now();
    const name = req.name.normalize("NFC");
    if ([...name].length > LIMITS.channelNameMax)
      throw badRequest(`name must be at most ${LIMITS.channelNameMax} characters`);

    if (req.peerKey.length > 0) {
      const peer = v.identityKey(req.peerKey, "peer_key");
      if (req.memberKeys.length > 0) throw badRequest("give either peer_key (1:1) or member_keys (group), not both");
      if (equalBytes(peer, caller.identityKey)) throw badRequest("peer_key must not be the caller's own key");
      const id = await directChannelId(caller.identityKey, peer);
      const [created] = await db.batch([
        db
          .insert(channels)
          .values({ id, kind: "direct", creatorKey: caller.identityKey, name, createdAt: now })
          .onConflictDoNothing(),
        db
          .insert(channelMembers)
          .values([
            { channelId: id, identityKey: caller.identityKey, role: "member", joinedAt: now },
            { channelId: id, identityKey: peer, role: "member", joinedAt: now },
          ])
          .onConflictDoNothing(),
      ]);
      return { channelId: id, wasNew: created.meta.changes === 1 };
    }

    if (req.memberKeys.length > LIMITS.groupMembersMax) {
      throw badRequest(`member_keys must hold at most ${LIMITS.groupMembersMax} keys, got ${req.memberKeys.length}`);
    }
    const members = new Map<string, Uint8Array>();
    req.memberKeys.forEach((k, i) => members.set(toHex(v.identityKey(k, `member_keys[${i}]`)), k));
    members.delete(toHex(caller.identityKey));
    const id = randomBytes(16);
    const rows = [
      { channelId: id, identityKey: caller.identityKey, role: "creator" as const, joinedAt: now },
      ...[...members.values()].map((k) => ({ channelId: id, identityKey: k, role: "member" as const, joinedAt: now })),
    ];
    // D1 binds at most 100 parameters per statement: 4 per member row.
    const inserts = [];
    for (let i = 0; i < rows.length; i += 24) inserts.push(db.insert(channelMembers).values(rows.slice(i, i + 24)));
    await db.batch([
      db.insert(channels).values({ id, kind: "group", creatorKey: caller.identityKey, name, createdAt: now }),
      ...inserts,
    ]);
    // Each initial member's connections learn that it was added (one event each, not one per pair).
    const actor = caller.identityKey;
    await Promise.all(
      [...members.values()].map((member) =>
        announceMembership(ctx.deps, id, [member], [{ member, change: "joined", actor, role: "member" }]),
      ),
    );
    return { channelId: id, wasNew: true };
  }),
};
