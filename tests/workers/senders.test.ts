// What one sender may do to one recipient's queue: idempotency keyed on (sender, message_id) with
// the original proof, a bounded share of the queue, a bounded enqueue rate. Queues see a keyed
// sender tag, never the sender's identity.
import { describe, it, expect } from "vitest";
import { Method, Status, pb } from "../../proto/index.ts";
import { limitsFrom } from "../../edge/lib/limits.ts";
import { provenMessage } from "../../edge/lib/delivery-proof.ts";
import { bytesOf, env, errorOf, ok, queueStub, randomBytes, randomKey, registeredKey, rpc } from "./helpers.ts";
import { MiB, ackAs, bulk, enqueueAs, inbox, queueSql, sent } from "./delivery-client.ts";

/** Many RPCs per test: a backstop for a busy machine, not a performance bound. */
const BUSY = 30_000;

const limits = limitsFrom(env);

async function proofKey(): Promise<CryptoKey> {
  const health = ok(await rpc(Method.Health, pb.HealthRequest.encode({}).finish()), pb.HealthResponse);
  return crypto.subtle.importKey("raw", health.deliveryProofKey, { name: "Ed25519" }, false, ["verify"]);
}

async function verifies(
  proof: Uint8Array,
  recipient: Uint8Array,
  channel: Uint8Array,
  seq: number,
  payload: Uint8Array,
): Promise<boolean> {
  const timeMs = Number(new DataView(proof.buffer, proof.byteOffset + 1, 8).getBigUint64(0));
  return crypto.subtle.verify(
    "Ed25519",
    await proofKey(),
    proof.slice(9),
    await provenMessage(recipient, channel, seq, payload, timeMs),
  );
}

describe("idempotency by (sender, message_id)", () => {
  it(
    "answers a retry by the same sender with the first seq and the original proof, storing nothing",
    async () => {
      const bob = await registeredKey();
      const alice = randomKey();
      const messageId = randomBytes(16);
      const channelId = randomBytes(16);
      const first = await sent(enqueueAs(alice, bob, bytesOf("hello"), { messageId, channelId }));
      await new Promise((r) => setTimeout(r, 5)); // a new proof would carry another time
      const again = await sent(enqueueAs(alice, bob, bytesOf("hello"), { messageId, channelId }));
      expect(first.duplicate).toBe(false);
      expect(again).toEqual({ seq: first.seq, duplicate: true, deliveryProof: first.deliveryProof });
      expect((await queueStub(bob).stats()).messages).toBe(1);
    },
    BUSY,
  );

  it(
    "treats the same message_id from another sender as another message, with its own valid proof",
    async () => {
      const bob = await registeredKey();
      const [alice, mallory] = [randomKey(), randomKey()];
      const messageId = randomBytes(16);
      const [chanA, chanM] = [randomBytes(16), randomBytes(16)];
      const a = await sent(enqueueAs(alice, bob, bytesOf("from alice"), { messageId, channelId: chanA }));
      const m = await sent(enqueueAs(mallory, bob, bytesOf("from mallory"), { messageId, channelId: chanM }));
      expect(m.duplicate).toBe(false);
      expect(m.seq).toBeGreaterThan(a.seq);
      expect(await verifies(m.deliveryProof, bob, chanM, m.seq, bytesOf("from mallory"))).toBe(true);
      // Both are stored: the proof is for a message the server really holds.
      expect((await inbox(bob, { channelId: chanA })).map((e) => e.seq)).toEqual([a.seq]);
      expect((await inbox(bob, { channelId: chanM })).map((e) => e.seq)).toEqual([m.seq]);
    },
    BUSY,
  );

  it(
    "refuses the same sender's message_id for another payload or channel with BadRequest, storing nothing",
    async () => {
      const bob = await registeredKey();
      const alice = randomKey();
      const messageId = randomBytes(16);
      const channelId = randomBytes(16);
      await sent(enqueueAs(alice, bob, bytesOf("original"), { messageId, channelId }));
      for (const [payload, channel] of [
        [bytesOf("changed"), channelId],
        [bytesOf("original"), randomBytes(16)],
        [bytesOf("original"), new Uint8Array(0)],
      ]) {
        const res = await enqueueAs(alice, bob, payload, { messageId, channelId: channel });
        expect(res.status).toBe(Status.BadRequest);
        expect(errorOf(res).message).toContain("message_id");
      }
      expect((await queueStub(bob).stats()).messages).toBe(1);
    },
    BUSY,
  );

  it(
    "stores a keyed sender tag, never the sender's identity",
    async () => {
      const bob = await registeredKey();
      const [alice, carol] = [randomKey(), randomKey()];
      await sent(enqueueAs(alice, bob, bytesOf("a1"), { messageId: randomBytes(16) }));
      await sent(enqueueAs(alice, bob, bytesOf("a2")));
      await sent(enqueueAs(carol, bob, bytesOf("c1")));
      const rows = await queueSql<{ sender: ArrayBuffer }>(bob, "SELECT sender FROM messages ORDER BY seq");
      const tags = rows.map((r) => new Uint8Array(r.sender));
      expect(tags.map((t) => t.length)).toEqual([16, 16, 16]);
      const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
      expect(hex(tags[0])).toBe(hex(tags[1]));
      expect(hex(tags[2])).not.toBe(hex(tags[0]));
      for (const t of tags) {
        expect(hex(alice)).not.toContain(hex(t));
        expect(hex(carol)).not.toContain(hex(t));
      }
      const sends = await queueSql<{ sender: ArrayBuffer }>(bob, "SELECT sender FROM sends");
      expect(sends.map((r) => hex(new Uint8Array(r.sender)))).toEqual([hex(tags[0])]);
    },
    BUSY,
  );
});

describe("one sender's share of a recipient's queue", () => {
  it(
    `refuses a sender's message beyond its share (${limits.maxSenderMessages} messages) with RateLimited; others still get in`,
    async () => {
      const bob = await registeredKey();
      const [mallory, alice] = [randomKey(), randomKey()];
      const seqs = [];
      for (let i = 0; i < limits.maxSenderMessages; i++)
        seqs.push((await sent(enqueueAs(mallory, bob, bytesOf(`spam ${i}`)))).seq);
      const refused = await enqueueAs(mallory, bob, bytesOf("one more"));
      expect(refused.status).toBe(Status.RateLimited);
      expect(errorOf(refused).message).toContain("share");
      expect(errorOf(refused).retryAfterMs).toBeGreaterThan(0);
      expect((await queueStub(bob).stats()).messages).toBe(limits.maxSenderMessages);

      await sent(enqueueAs(alice, bob, bytesOf("hi bob")));
      // Once the recipient has fetched and acknowledged, the sender may send again.
      await ackAs(bob, seqs[0]);
      await sent(enqueueAs(mallory, bob, bytesOf("after ack")));
    },
    BUSY,
  );

  it(
    `refuses a sender's bytes beyond its share (${limits.maxSenderBytes} bytes); others still get in`,
    async () => {
      const bob = await registeredKey();
      const [mallory, alice] = [randomKey(), randomKey()];
      const half = Math.floor(limits.maxSenderBytes / 2);
      await sent(enqueueAs(mallory, bob, bulk(half, 1)));
      await sent(enqueueAs(mallory, bob, bulk(limits.maxSenderBytes - half, 2))); // exactly the share
      const refused = await enqueueAs(mallory, bob, bytesOf("x"));
      expect(refused.status).toBe(Status.RateLimited);
      expect(errorOf(refused).message).toContain(`${limits.maxSenderBytes} bytes`);
      await sent(enqueueAs(alice, bob, bulk(2 * MiB, 3)));
    },
    BUSY,
  );
});

describe("per-sender enqueue rate", () => {
  it(
    `refuses a sender beyond ${limits.senderBurst} quick enqueues to one recipient with RateLimited and a retry time`,
    async () => {
      const bob = await registeredKey();
      const [mallory, alice] = [randomKey(), randomKey()];
      // Acknowledge as it goes, so the sender's share of the queue is never what stops it.
      for (let i = 0; i < limits.senderBurst; i++) {
        const { seq } = await sent(enqueueAs(mallory, bob, bytesOf(`burst ${i}`)));
        await ackAs(bob, seq);
      }
      const refused = await enqueueAs(mallory, bob, bytesOf("too fast"));
      expect(refused.status).toBe(Status.RateLimited);
      const err = errorOf(refused);
      expect(err.message).toContain("too fast");
      expect(err.retryAfterMs).toBeGreaterThan(0);
      expect(err.retryAfterMs).toBeLessThanOrEqual(Math.ceil(60_000 / limits.senderPerMinute));
      expect((await queueStub(bob).stats()).messages).toBe(0);
      // Other senders to this recipient, and this sender to other recipients, are unaffected.
      await sent(enqueueAs(alice, bob, bytesOf("hi")));
      await sent(enqueueAs(mallory, await registeredKey(), bytesOf("elsewhere")));
    },
    BUSY,
  );

  it(
    "does not charge a retried duplicate",
    async () => {
      const bob = await registeredKey();
      const alice = randomKey();
      const messageId = randomBytes(16);
      const { seq } = await sent(enqueueAs(alice, bob, bytesOf("once"), { messageId }));
      for (let i = 0; i < limits.senderBurst + 2; i++) {
        expect(await sent(enqueueAs(alice, bob, bytesOf("once"), { messageId }))).toMatchObject({
          seq,
          duplicate: true,
        });
      }
    },
    BUSY,
  );
});
