// BatchEnqueue is all or nothing: every recipient's queue reserves room first; a refusal stores
// nothing anywhere; a retry with the same message_id never duplicates.
import { describe, it, expect } from "vitest";
import { Status, pb } from "../../proto/index.ts";
import type { ReserveInput } from "../../edge/durable/recipient-queue.ts";
import type { Refusable } from "../../edge/durable/refusable.ts";
import { limitsFrom } from "../../edge/lib/limits.ts";
import { sha256 } from "../../edge/lib/crypto.ts";
import { bytesOf, env, errorOf, ok, queueStub, randomBytes, randomKey, registeredKey } from "./helpers.ts";
import { NONE, ackAs, batchAs, enqueueAs, inbox, sent } from "./delivery-client.ts";

/** Many RPCs per test: a backstop for a busy machine, not a performance bound. */
const BUSY = 30_000;

const limits = limitsFrom(env);

function value<T>(r: Refusable<T>): T {
  if (!r.ok) throw new Error(`refused: ${r.error.status} ${r.error.message}`);
  return r.value;
}

/** Fills a recipient's queue to the message cap, each message from another sender. */
async function fill(key: Uint8Array): Promise<number[]> {
  const q = queueStub(key);
  const seqs = [];
  for (let i = 0; i < limits.maxQueueMessages; i++) {
    seqs.push(
      value(
        await q.enqueue({
          recipient: key,
          sender: randomBytes(16),
          channel: NONE,
          payload: bytesOf(`fill ${i}`),
          ttlSecs: 0,
          messageId: NONE,
        }),
      ).seq,
    );
  }
  return seqs;
}

const seqsOf = async (res: ReturnType<typeof batchAs>) => ok(await res, pb.BatchEnqueueResponse).seqs.map(Number);

describe("BatchEnqueue, all or nothing", () => {
  it(
    "stores nothing for anyone when one recipient's queue is full, and delivers to all once there is room",
    async () => {
      const [a, full, b] = await Promise.all([registeredKey(), registeredKey(), registeredKey()]);
      const filled = await fill(full);
      const alice = randomKey();
      const messageId = randomBytes(16);
      const refused = await batchAs(alice, [a, full, b], bytesOf("to all"), { messageId });
      expect(refused.status).toBe(Status.RateLimited);
      expect(errorOf(refused).message).toMatch(/recipient_keys\[1\].*full/);
      expect(errorOf(refused).retryAfterMs).toBeGreaterThan(0);
      for (const k of [a, b]) expect(await queueStub(k).stats()).toMatchObject({ messages: 0, reserved: 0 });
      expect(await queueStub(full).stats()).toMatchObject({ messages: limits.maxQueueMessages, reserved: 0 });

      await ackAs(full, filled[0]);
      const seqs = await seqsOf(batchAs(alice, [a, full, b], bytesOf("to all"), { messageId }));
      for (const [i, k] of [a, full, b].entries()) {
        const last = (await inbox(k)).at(-1);
        expect(last?.seq).toBe(seqs[i]);
      }
      expect((await queueStub(a).stats()).messages).toBe(1);
    },
    BUSY,
  );

  it(
    "answers a retry with the same message_id with the stored seqs, storing nothing again",
    async () => {
      const [a, b] = await Promise.all([registeredKey(), registeredKey()]);
      const alice = randomKey();
      const messageId = randomBytes(16);
      const first = await seqsOf(batchAs(alice, [a, b], bytesOf("once"), { messageId }));
      const again = await seqsOf(batchAs(alice, [a, b], bytesOf("once"), { messageId }));
      expect(again).toEqual(first);
      for (const k of [a, b]) expect((await queueStub(k).stats()).messages).toBe(1);
    },
    BUSY,
  );

  it(
    "completes a partly stored batch on retry without duplicating the part already stored",
    async () => {
      const [a, b] = await Promise.all([registeredKey(), registeredKey()]);
      const alice = randomKey();
      const messageId = randomBytes(16);
      // As if an earlier attempt had reached only a.
      const earlier = await sent(enqueueAs(alice, a, bytesOf("hello both"), { messageId }));
      const seqs = await seqsOf(batchAs(alice, [a, b], bytesOf("hello both"), { messageId }));
      expect(seqs[0]).toBe(earlier.seq);
      expect((await inbox(a)).map((e) => e.seq)).toEqual([earlier.seq]);
      expect((await inbox(b)).map((e) => e.seq)).toEqual([seqs[1]]);
      // A later single retry of b's part gets a proof for the seq the batch stored.
      const retried = await sent(enqueueAs(alice, b, bytesOf("hello both"), { messageId }));
      expect(retried).toMatchObject({ seq: seqs[1], duplicate: true });
      expect(retried.deliveryProof).toHaveLength(73);
    },
    BUSY,
  );

  it(
    "refuses a batch that reuses a message_id for other content, storing nothing",
    async () => {
      const [a, b] = await Promise.all([registeredKey(), registeredKey()]);
      const alice = randomKey();
      const messageId = randomBytes(16);
      await sent(enqueueAs(alice, b, bytesOf("original"), { messageId }));
      const res = await batchAs(alice, [a, b], bytesOf("changed"), { messageId });
      expect(res.status).toBe(Status.BadRequest);
      expect(errorOf(res).message).toContain("recipient_keys[1]");
      expect(await queueStub(a).stats()).toMatchObject({ messages: 0, reserved: 0 });
    },
    BUSY,
  );
});

describe("reservations in one queue", () => {
  async function reserve(key: Uint8Array, payload: Uint8Array, sender = randomBytes(16)) {
    const input: ReserveInput = {
      recipient: key,
      sender,
      channel: NONE,
      size: payload.length,
      payloadHash: await sha256(payload),
      messageId: NONE,
    };
    return { sender, result: await queueStub(key).reserve(input) };
  }

  it(
    "holds room an Enqueue cannot take, until released",
    async () => {
      const key = await registeredKey();
      const q = queueStub(key);
      const seqs = await fill(key);
      await ackAs(key, seqs[0]); // one slot free
      const { result } = await reserve(key, bytesOf("batch part"));
      const held = value(result);
      expect(held.kind).toBe("reserved");
      expect((await q.stats()).reserved).toBe(1);
      expect((await enqueueAs(randomKey(), key, bytesOf("slot taken?"))).status).toBe(Status.RateLimited);
      if (held.kind === "reserved") await q.release(held.id);
      expect((await q.stats()).reserved).toBe(0);
      await sent(enqueueAs(randomKey(), key, bytesOf("slot free")));
    },
    BUSY,
  );

  it(
    "assigns the seq at commit, so an Ack of a message enqueued meanwhile cannot hide it",
    async () => {
      const key = await registeredKey();
      const q = queueStub(key);
      const payload = bytesOf("committed late");
      const { sender, result } = await reserve(key, payload);
      const held = value(result);
      if (held.kind !== "reserved") throw new Error("expected a reservation");
      const meanwhile = await sent(enqueueAs(randomKey(), key, bytesOf("meanwhile")));
      await ackAs(key, meanwhile.seq);
      const committed = value(
        await q.commit({
          recipient: key,
          sender,
          channel: NONE,
          payload,
          ttlSecs: 0,
          messageId: NONE,
          reservation: held.id,
        }),
      );
      expect(committed.seq).toBeGreaterThan(meanwhile.seq);
      expect((await inbox(key)).map((e) => e.seq)).toEqual([committed.seq]);
      expect((await q.stats()).reserved).toBe(0);
    },
    BUSY,
  );

  it(
    "counts a sender's reservations in its share",
    async () => {
      const key = await registeredKey();
      const sender = randomBytes(16);
      for (let i = 0; i < limits.maxSenderMessages; i++)
        expect(value((await reserve(key, bytesOf(`r${i}`), sender)).result).kind).toBe("reserved");
      const over = (await reserve(key, bytesOf("one more"), sender)).result;
      expect(over).toMatchObject({ ok: false, error: { status: Status.RateLimited } });
    },
    BUSY,
  );
});
