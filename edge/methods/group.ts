// 410 RemoveMember. The rest of the group family (411-413) answers UnknownMethod until it lands.
import { and, eq } from "drizzle-orm";
import { Method, pb, badRequest, forbidden, notFound } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { equalBytes } from "../lib/crypto.ts";
import { channels, channelMembers } from "../../schema/tables.ts";

export const groupMethods: MethodTable = {
  // The channel's creator or an admin removes a member; any member may remove itself (leave).
  // The creator cannot be removed: a group always has someone who may manage it.
  [Method.RemoveMember]: unary("user", pb.RemoveMemberRequest, pb.RemoveMemberResponse, async (ctx, req) => {
    const caller = requireCaller(ctx);
    if (req.channelId.length === 0) throw badRequest("channel_id is required");
    const channelId = v.channelId(req.channelId);
    const member = v.identityKey(req.memberKey, "member_key");
    const { db } = ctx.deps;
    const channel = await db.select({ kind: channels.kind }).from(channels).where(eq(channels.id, channelId)).get();
    if (!channel) throw notFound("no such channel");
    if (channel.kind === "direct") throw badRequest("1:1 channels have no membership to change");
    const roles = await db
      .select({ identityKey: channelMembers.identityKey, role: channelMembers.role })
      .from(channelMembers)
      .where(eq(channelMembers.channelId, channelId))
      .all();
    const callerRole = roles.find((r) => equalBytes(r.identityKey, caller.identityKey))?.role;
    const target = roles.find((r) => equalBytes(r.identityKey, member));
    const leaving = equalBytes(member, caller.identityKey);
    if (!callerRole) throw forbidden("the caller is not a member of this channel");
    if (!leaving && callerRole === "member")
      throw forbidden("only the channel's creator or an admin may remove members");
    if (!target) throw notFound("member_key is not a member of this channel");
    if (target.role === "creator") throw forbidden("the channel's creator cannot be removed");
    await db
      .delete(channelMembers)
      .where(and(eq(channelMembers.channelId, channelId), eq(channelMembers.identityKey, member)));
    return {};
  }),
};
