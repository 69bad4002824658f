// 200-205: delivery. Hot path: no D1 here; each call goes to the recipient's own Durable Object.
// (A recipient that queue does not know may be homed on a federation peer: one look-up of its home,
// cached per isolate, and the peer's outbox object; edge/federation/relay.ts.)
import { Method, QpqError, Status, pb, forbidden, badRequest } from "../../proto/index.ts";
import { unary, requireCaller, type MethodSpec, type MethodTable, type RpcContext } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { LIMITS } from "../lib/limits.ts";
import { queueOf } from "../durable/recipient-queue-client.ts";
import { accepted } from "../durable/refusable.ts";
import { enqueueSender, senderForFederation } from "../lib/sealed-sender.ts";
import { relayIfRemote, relayUnknownRecipients } from "../federation/relay.ts";
import { equalBytes, sha256 } from "../lib/crypto.ts";

/** Fetch, FetchWait, Peek and Ack touch only the caller's own queue. */
function ownQueue(ctx: RpcContext, recipientKey: Uint8Array): Uint8Array {
  const caller = requireCaller(ctx);
  v.identityKey(recipientKey, "recipient_key");
  if (!equalBytes(recipientKey, caller.identityKey)) throw forbidden("recipient_key is not the caller's identity");
  return recipientKey;
}

/**
 * The device whose cursor a read or ack uses: always the session's own. device_id may only
 * repeat it (empty = the session's device), so no session reads or acks for another device.
 */
function ownDevice(ctx: RpcContext, deviceId: Uint8Array): Uint8Array {
  const caller = requireCaller(ctx);
  v.deviceId(deviceId);
  if (deviceId.length > 0 && !equalBytes(deviceId, caller.deviceId)) {
    throw forbidden(
      "device_id names another device: a session reads and acknowledges only with its own device's cursor",
    );
  }
  return caller.deviceId;
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
  const payloads = accepted(
    await queueOf(ctx.deps, recipient).fetchPending({
      channel: v.channelId(req.channelId),
      device: ownDevice(ctx, req.deviceId),
      recipient,
      limit: v.fetchLimit(req.limit),
    }),
  );
  return { payloads };
}

/**
 * What the recipient's queue sees of the caller: a keyed tag of its identity, or in sealed-sender
 * mode the front's tag of its address (lib/sealed-sender.ts); the identity tag only for checks.
 */
function callerTags(ctx: RpcContext) {
  return enqueueSender(ctx.deps, requireCaller(ctx), ctx.sealedSenderTag);
}

/**
 * Who a relay to a federation peer names as sender: the identity, or none when sealed; the
 * outbox counts the sender's share, and keys a relay's id, on the tag the local queue would use.
 */
function relaySender(ctx: RpcContext, tag: Uint8Array) {
  return { senderIdentity: senderForFederation(ctx.deps, requireCaller(ctx)) ?? null, dedupSeed: tag, quotaTag: tag };
}

/**
 * Reads and acks are checked by the caller's own queue, which refuses devices it does not hold.
 * Enqueues are not checked: doing so would cost every send a D1 read or a second object call; a
 * revoked device can still send, never read, until its assertion is re-validated (docs/protocol.md).
 */
function checked(deviceCheck: "queue" | "none", spec: MethodSpec): MethodSpec {
  return { ...spec, deviceCheck };
}

export const deliveryMethods: MethodTable = {
  [Method.Enqueue]: checked(
    "none",
    unary("user", pb.EnqueueRequest, pb.EnqueueResponse, async (ctx, req) => {
      const { tag: sender, identityTag } = await callerTags(ctx);
      const recipient = v.identityKey(req.recipientKey, "recipient_key");
      const channel = v.channelId(req.channelId);
      const payload = v.payload(req.payload);
      const messageId = v.messageId(req.messageId);
      const stored = await queueOf(ctx.deps, recipient).enqueue({
        recipient,
        sender,
        identityTag,
        channel,
        payload,
        ttlSecs: req.ttlSecs,
        messageId,
      });
      // Not registered here: a recipient homed on a federation peer goes to that peer's outbox.
      // The answer then carries no seq nor proof (the home region assigns them).
      if (!stored.ok && stored.error.status === Status.NotFound) {
        const relayed = await relayIfRemote(ctx.deps, {
          recipients: [recipient],
          ...relaySender(ctx, sender),
          channel,
          payload,
          ttlSecs: req.ttlSecs,
          messageId,
        });
        if (relayed) return { seq: 0, deliveryProof: new Uint8Array(0), duplicate: relayed.duplicate };
      }
      const r = accepted(stored);
      ctx.queueDepth = r.depth;
      return { seq: r.seq, deliveryProof: r.deliveryProof, duplicate: r.duplicate };
    }),
  ),

  // All or nothing: every recipient's queue first reserves room (registration, rate, share and
  // capacity checked, nothing stored); only when all did are the messages committed. With a
  // message_id a retry answers the seqs already stored instead of storing again.
  [Method.BatchEnqueue]: checked(
    "none",
    unary("user", pb.BatchEnqueueRequest, pb.BatchEnqueueResponse, async (ctx, req) => {
      const { tag: sender, identityTag } = await callerTags(ctx);
      if (req.recipientKeys.length === 0) throw badRequest("recipient_keys must not be empty");
      if (req.recipientKeys.length > LIMITS.batchRecipientsMax) {
        throw badRequest(
          `recipient_keys must hold at most ${LIMITS.batchRecipientsMax} keys, got ${req.recipientKeys.length}`,
        );
      }
      const keys = req.recipientKeys.map((k, i) => v.identityKey(k, `recipient_keys[${i}]`));
      const channel = v.channelId(req.channelId);
      const payload = v.payload(req.payload);
      const messageId = v.messageId(req.messageId);
      const payloadHash = await sha256(payload);
      const queues = keys.map((k) => queueOf(ctx.deps, k));
      const reserved = await Promise.allSettled(
        queues.map((q, i) =>
          q.reserve({ recipient: keys[i], sender, identityTag, channel, size: payload.length, payloadHash, messageId }),
        ),
      );
      // Recipients not registered here may be homed on federation peers: relayed through their
      // outboxes once every local one holds room (their seq is 0: the home region assigns it).
      const unknown = reserved.flatMap((r, i) =>
        r.status === "fulfilled" && !r.value.ok && r.value.error.status === Status.NotFound ? [i] : [],
      );
      const remote = new Set<number>();
      const relay = { ...relaySender(ctx, sender), channel, payload, ttlSecs: req.ttlSecs, messageId };
      if (
        unknown.length > 0 &&
        reserved.every((r, i) => unknown.includes(i) || (r.status === "fulfilled" && r.value.ok))
      ) {
        try {
          if (await relayUnknownRecipients(ctx.deps, keys, unknown, relay)) unknown.forEach((i) => remote.add(i));
        } catch (err) {
          await Promise.allSettled(
            reserved.map((r, i) =>
              r.status === "fulfilled" && r.value.ok && r.value.value.kind === "reserved"
                ? queues[i].release(r.value.value.id)
                : null,
            ),
          );
          throw err;
        }
      }
      const refused = reserved.findIndex((r, i) => !remote.has(i) && (r.status === "rejected" || !r.value.ok));
      if (refused >= 0) {
        await Promise.allSettled(
          reserved.map((r, i) =>
            r.status === "fulfilled" && r.value.ok && r.value.value.kind === "reserved"
              ? queues[i].release(r.value.value.id)
              : null,
          ),
        );
        const r = reserved[refused];
        if (r.status === "rejected") throw r.reason;
        if (!r.value.ok) {
          const e = r.value.error;
          throw new QpqError(e.status, `recipient_keys[${refused}]: ${e.message}`, e.retryAfterMs);
        }
      }
      const seqs = await Promise.all(
        reserved.map(async (r, i) => {
          if (remote.has(i)) return 0;
          if (r.status !== "fulfilled" || !r.value.ok) throw new Error("unreachable: refusals were handled above");
          const held = r.value.value;
          if (held.kind === "duplicate") return held.seq;
          return accepted(
            await queues[i].commit({
              recipient: keys[i],
              sender,
              identityTag,
              channel,
              payload,
              ttlSecs: req.ttlSecs,
              messageId,
              reservation: held.id,
            }),
          ).seq;
        }),
      );
      return { seqs };
    }),
  ),

  [Method.Fetch]: checked("queue", unary("user", pb.FetchRequest, pb.FetchResponse, pending)),

  [Method.FetchWait]: checked(
    "queue",
    unary("user", pb.FetchWaitRequest, pb.FetchWaitResponse, async (ctx, req) => {
      const recipient = ownQueue(ctx, req.recipientKey);
      const payloads = accepted(
        await queueOf(ctx.deps, recipient).fetchWait({
          channel: v.channelId(req.channelId),
          device: ownDevice(ctx, req.deviceId),
          recipient,
          limit: v.fetchLimit(req.limit),
          timeoutMs: Math.min(req.timeoutMs, LIMITS.fetchWaitMaxMs),
        }),
      );
      return { payloads };
    }),
  ),

  // Same read as Fetch at the edge; the front does not count it as a delivery (metrics, hooks).
  [Method.Peek]: checked("queue", unary("user", pb.PeekRequest, pb.PeekResponse, pending)),

  [Method.Ack]: checked(
    "queue",
    unary("user", pb.AckRequest, pb.AckResponse, async (ctx, req) => {
      const recipient = ownQueue(ctx, req.recipientKey);
      accepted(
        await queueOf(ctx.deps, recipient).ack({
          channel: v.channelId(req.channelId),
          device: ownDevice(ctx, req.deviceId),
          recipient,
          seqUpTo: req.seqUpTo,
        }),
      );
      return {};
    }),
  ),
};
