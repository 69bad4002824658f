// 1001 PushTyping and 1002 PushPresence as requests: a member's signal relayed to the other
// members of the channel through their RecipientQueues' push subscriptions. Never stored: a
// member with no open connection misses it. Never sent to anyone outside the channel.
// Cost: the caller's device check and one membership read in D1 per signal (not the message hot
// path); the front's per-connection rate limit bounds how often.
import { Method, PushEvent, pb } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable, type RpcContext } from "../rpc.ts";
import { equalBytes } from "../lib/crypto.ts";
import { announce, loadChannel, requireMember, requiredChannelId } from "../lib/channel-members.ts";

/** Relays one event to every member but the caller; answers how many had a connection. */
async function relay(
  ctx: RpcContext,
  channelIdField: Uint8Array,
  eventId: number,
  event: (me: Uint8Array, channel: Uint8Array) => Uint8Array,
) {
  const caller = requireCaller(ctx);
  const channelId = requiredChannelId(channelIdField);
  const channel = await loadChannel(ctx.deps, channelId);
  requireMember(channel, caller.identityKey);
  const others = channel.members.map((m) => m.identityKey).filter((k) => !equalBytes(k, caller.identityKey));
  const delivered = await announce(ctx.deps, others, [{ eventId, event: event(caller.identityKey, channelId) }]);
  return { delivered };
}

export const presenceMethods: MethodTable = {
  [Method.PushTyping]: unary("user", pb.PushTypingRequest, pb.PushTypingResponse, (ctx, req) =>
    relay(ctx, req.channelId, PushEvent.Typing, (senderKey, channelId) =>
      pb.PushTyping.encode({ senderKey, channelId, typing: req.typing }).finish(),
    ),
  ),

  [Method.PushPresence]: unary("user", pb.PushPresenceRequest, pb.PushPresenceResponse, (ctx, req) =>
    relay(ctx, req.channelId, PushEvent.Presence, (identityKey, channelId) =>
      pb.PushPresence.encode({ identityKey, channelId, online: req.online, lastSeenMs: Date.now() }).finish(),
    ),
  ),
};
