// Large payloads: replies bounded by bytes (one frame, at least one envelope, the client pages),
// payloads up to what one reply can carry stored in parts, and a BadRequest above that.
import { describe, it, expect } from "vitest";
import { evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { MAX_DELIVERY_PAYLOAD, MAX_PAYLOAD, Method, Status, envelopeWireSize, pb } from "../../proto/index.ts";
import { ok, queueStub, randomBytes, randomKey, registeredKey, rpc } from "./helpers.ts";
import { MiB, NONE, ackAs, bulk, digest, enqueueAs, inbox, queueSql, sent } from "./delivery-client.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Megabytes per test: a backstop for a busy machine, not a performance bound.
const SLOW = 60_000;

describe("replies bounded by bytes", () => {
  it(
    "answers Fetch, FetchWait and Peek with one of two 2 MiB messages per reply; the client pages through",
    async () => {
      const bob = await registeredKey();
      const mallory = randomKey();
      const payloads = [bulk(2 * MiB, 1), bulk(2 * MiB, 2)];
      const seqs: number[] = [];
      for (const p of payloads) seqs.push((await sent(enqueueAs(mallory, bob, p))).seq);

      const reads = [
        [Method.Fetch, pb.FetchRequest.encode({ recipientKey: bob }).finish(), pb.FetchResponse],
        [
          Method.FetchWait,
          pb.FetchWaitRequest.encode({ recipientKey: bob, timeoutMs: 1_000 }).finish(),
          pb.FetchWaitResponse,
        ],
        [Method.Peek, pb.PeekRequest.encode({ recipientKey: bob }).finish(), pb.PeekResponse],
      ] as const;
      for (const [method, body, codec] of reads) {
        const res = await rpc(method, body, { caller: bob });
        expect(res.body.length).toBeLessThanOrEqual(MAX_PAYLOAD);
        const got = ok(res, codec).payloads;
        expect({ method, seqs: got.map((e) => Number(e.seq)) }).toEqual({ method, seqs: [seqs[0]] });
        expect(await digest(got[0].data ?? new Uint8Array(0))).toBe(await digest(payloads[0]));
      }

      await ackAs(bob, seqs[0]);
      const next = await inbox(bob);
      expect(next.map((e) => e.seq)).toEqual([seqs[1]]);
      expect(await digest(next[0].data)).toBe(await digest(payloads[1]));
      await ackAs(bob, seqs[1]);
      expect(await inbox(bob)).toEqual([]);
    },
    SLOW,
  );

  it(
    "fills a reply up to exactly one frame, and not one byte more",
    async () => {
      for (const over of [0, 1]) {
        const bob = await registeredKey();
        const first = bulk(MiB + MiB / 2, 3);
        const s1 = (await sent(enqueueAs(randomKey(), bob, first))).seq;
        // Seqs of one queue are consecutive: the next message gets s1 + 1.
        const room = MAX_PAYLOAD - envelopeWireSize(s1, first.length);
        let size = room;
        while (envelopeWireSize(s1 + 1, size) > room) size--;
        expect(envelopeWireSize(s1 + 1, size)).toBe(room);
        const s2 = (await sent(enqueueAs(randomKey(), bob, bulk(size + over, 4)))).seq;
        expect(s2).toBe(s1 + 1);

        const res = await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: bob }).finish(), { caller: bob });
        const got = ok(res, pb.FetchResponse).payloads.map((e) => Number(e.seq));
        if (over === 0) {
          expect(got).toEqual([s1, s2]);
          expect(res.body.length).toBe(MAX_PAYLOAD);
        } else {
          expect(got).toEqual([s1]);
        }
      }
    },
    SLOW,
  );

  it(
    "still honours the count limit when the bytes would fit",
    async () => {
      const bob = await registeredKey();
      for (let i = 0; i < 3; i++) await sent(enqueueAs(randomKey(), bob, randomBytes(100)));
      expect(await inbox(bob, { limit: 2 })).toHaveLength(2);
      expect(await inbox(bob)).toHaveLength(3);
    },
    SLOW,
  );
});

describe("payload sizes", () => {
  // The largest payload an Enqueue frame can carry next to a 32-byte recipient key.
  const largestSendable = MAX_PAYLOAD - (2 + 32) - (1 + 4);

  it(
    "stores and returns every payload size an Enqueue frame can carry (large ones in parts)",
    async () => {
      expect(
        pb.EnqueueRequest.encode({ recipientKey: randomKey(), payload: new Uint8Array(largestSendable) }).finish()
          .length,
      ).toBe(MAX_PAYLOAD);
      for (const size of [MiB - 1, MiB, MiB + 1, 2 * MiB + 1, 2_000_001, 3 * MiB, largestSendable]) {
        const bob = await registeredKey();
        const payload = bulk(size, size);
        const res = await enqueueAs(randomKey(), bob, payload);
        expect({ size, status: res.status }).toEqual({ size, status: Status.Ok });
        const got = await inbox(bob);
        expect(got).toHaveLength(1);
        expect({ size, digest: await digest(got[0].data) }).toEqual({ size, digest: await digest(payload) });
      }
    },
    SLOW,
  );

  it(
    "refuses a payload above MAX_DELIVERY_PAYLOAD with BadRequest naming the limit, and accepts exactly it",
    async () => {
      // No Enqueue frame can carry that much next to its other fields, so ask the queue directly.
      const bob = await registeredKey();
      const q = queueStub(bob);
      const input = (size: number) => ({
        recipient: bob,
        sender: randomBytes(16),
        channel: NONE,
        payload: bulk(size),
        ttlSecs: 0,
        messageId: NONE,
      });
      const over = await q.enqueue(input(MAX_DELIVERY_PAYLOAD + 1));
      expect(over).toMatchObject({ ok: false, error: { status: Status.BadRequest } });
      if (!over.ok) expect(over.error.message).toContain(String(MAX_DELIVERY_PAYLOAD));
      expect((await q.stats()).messages).toBe(0);

      expect((await q.enqueue(input(MAX_DELIVERY_PAYLOAD))).ok).toBe(true);
      const res = await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: bob }).finish(), { caller: bob });
      expect(res.body.length).toBeLessThanOrEqual(MAX_PAYLOAD);
      expect(ok(res, pb.FetchResponse).payloads[0].data).toHaveLength(MAX_DELIVERY_PAYLOAD);
    },
    SLOW,
  );

  it(
    "keeps a large message across an eviction and deletes its parts with it (ack and expiry)",
    async () => {
      const bob = await registeredKey();
      const payload = bulk(3 * MiB + 5, 9);
      const acked = (await sent(enqueueAs(randomKey(), bob, payload))).seq;
      await sent(enqueueAs(randomKey(), bob, bulk(2 * MiB, 10), { ttlSecs: 1 }));
      const parts = async () => (await queueSql<{ n: number }>(bob, "SELECT COUNT(*) AS n FROM message_parts"))[0].n;
      expect(await parts()).toBe(4 + 2);

      await evictDurableObject(queueStub(bob));
      const got = await inbox(bob);
      expect(got[0].seq).toBe(acked);
      expect(await digest(got[0].data)).toBe(await digest(payload));

      await ackAs(bob, acked);
      expect(await parts()).toBe(2);
      await sleep(1_100);
      await runDurableObjectAlarm(queueStub(bob));
      expect(await parts()).toBe(0);
      expect(await queueStub(bob).stats()).toMatchObject({ messages: 0, bytes: 0 });
    },
    SLOW,
  );
});
