// 200-205: delivery. Hot path: no D1 here; each call goes to the recipient's own Durable Object.
import { Method, pb, forbidden, badRequest } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable, type RpcContext } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { LIMITS } from "../lib/limits.ts";
import { queueOf, accepted } from "../lib/queue.ts";
import { signDelivery } from "../lib/delivery-proof.ts";
import { equalBytes } from "../lib/crypto.ts";

/** Fetch, FetchWait, Peek and Ack touch only the caller's own queue. */
function ownQueue(ctx: RpcContext, recipientKey: Uint8Array): Uint8Array {
  const caller = requireCaller(ctx);
  v.identityKey(recipientKey, "recipient_key");
  if (!equalBytes(recipientKey, caller.identityKey)) throw forbidden("recipient_key is not the caller's identity");
  return recipientKey;
}

interface ReadRequest {
  recipientKey: Uint8Array;
  channelId: Uint8Array;
  limit: number;
  deviceId: Uint8Array;
}

/** Fetch and Peek: pending envelopes above the device's cursor, non-destructive. */
async function pending(ctx: RpcContext, req: ReadRequest) {
  const recipient = ownQueue(ctx, req.recipientKey);
  const payloads = accepted(await queueOf(ctx.deps, recipient).fetchPending({
    channel: v.channelId(req.channelId), device: v.deviceId(req.deviceId), limit: v.fetchLimit(req.limit),
  }));
  return { payloads };
}

export const deliveryMethods: MethodTable = {
  [Method.Enqueue]: unary("user", pb.EnqueueRequest, pb.EnqueueResponse, async (ctx, req) => {
    requireCaller(ctx);
    const recipient = v.identityKey(req.recipientKey, "recipient_key");
    const channel = v.channelId(req.channelId);
    const payload = v.payload(req.payload);
    const messageId = v.messageId(req.messageId);
    const r = accepted(await queueOf(ctx.deps, recipient).enqueue({ recipient, channel, payload, ttlSecs: req.ttlSecs, messageId }));
    const key = (await ctx.deps.signing).privateKey;
    const deliveryProof = await signDelivery(key, recipient, channel, r.seq, payload, Date.now());
    ctx.queueDepth = r.depth;
    return { seq: r.seq, deliveryProof, duplicate: r.duplicate };
  }),

  [Method.BatchEnqueue]: unary("user", pb.BatchEnqueueRequest, pb.BatchEnqueueResponse, async (ctx, req) => {
    requireCaller(ctx);
    // All-or-nothing validation: nothing is stored unless every input is valid.
    if (req.recipientKeys.length === 0) throw badRequest("recipient_keys must not be empty");
    if (req.recipientKeys.length > LIMITS.batchRecipientsMax) {
      throw badRequest(`recipient_keys must hold at most ${LIMITS.batchRecipientsMax} keys, got ${req.recipientKeys.length}`);
    }
    req.recipientKeys.forEach((k, i) => v.identityKey(k, `recipient_keys[${i}]`));
    const channel = v.channelId(req.channelId);
    const payload = v.payload(req.payload);
    const messageId = v.messageId(req.messageId);
    const results = await Promise.all(req.recipientKeys.map((k) =>
      queueOf(ctx.deps, k).enqueue({ recipient: k, channel, payload, ttlSecs: req.ttlSecs, messageId })));
    return { seqs: results.map((r) => accepted(r).seq) };
  }),

  [Method.Fetch]: unary("user", pb.FetchRequest, pb.FetchResponse, pending),

  [Method.FetchWait]: unary("user", pb.FetchWaitRequest, pb.FetchWaitResponse, async (ctx, req) => {
    const recipient = ownQueue(ctx, req.recipientKey);
    const payloads = accepted(await queueOf(ctx.deps, recipient).fetchWait({
      channel: v.channelId(req.channelId), device: v.deviceId(req.deviceId), limit: v.fetchLimit(req.limit),
      timeoutMs: Math.min(req.timeoutMs, LIMITS.fetchWaitMaxMs),
    }));
    return { payloads };
  }),

  // Same read as Fetch at the edge; the front does not count it as a delivery (metrics, hooks).
  [Method.Peek]: unary("user", pb.PeekRequest, pb.PeekResponse, pending),

  [Method.Ack]: unary("user", pb.AckRequest, pb.AckResponse, async (ctx, req) => {
    const recipient = ownQueue(ctx, req.recipientKey);
    accepted(await queueOf(ctx.deps, recipient).ack({
      channel: v.channelId(req.channelId), device: v.deviceId(req.deviceId), seqUpTo: req.seqUpTo,
    }));
    return {};
  }),
};
