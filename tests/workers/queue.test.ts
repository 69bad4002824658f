// RecipientQueue Durable Object: ordering, acknowledgement, idempotency, expiry, long-poll,
// limits. Called directly through env.RECIPIENT_QUEUE stubs (the same object the edge uses for a
// recipient), end to end through the RPC layer, and through the /push subscription.
import { describe, it, expect } from "vitest";
import { evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { Method, Status, pb } from "../../proto/index.ts";
import type { Refusable } from "../../edge/durable/refusable.ts";
import {
  assertionFor,
  bytesOf,
  env,
  errorOf,
  hex,
  ok,
  queueStub,
  randomBytes,
  randomKey,
  registeredKey,
  rpc,
  textOf,
} from "./helpers.ts";

const DEFAULT = new Uint8Array(0);
const enqueueReqFor = (recipientKey: Uint8Array, payload: Uint8Array, channelId: Uint8Array = DEFAULT) =>
  pb.EnqueueRequest.encode({ recipientKey, payload, channelId }).finish();
type EnqueueFields = Parameters<typeof pb.EnqueueRequest.encode>[0];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A recipient's queue: its identity key (push events name it) and the object's stub. */
interface Queue {
  key: Uint8Array;
  stub: ReturnType<typeof queueStub>;
}

/** A registered identity's queue (others refuse every enqueue). */
async function queueFor(key = randomKey()): Promise<Queue> {
  const stub = queueStub(key);
  await stub.markRegistered();
  return { key, stub };
}

function value<T>(r: Refusable<T>): T {
  if (!r.ok) throw new Error(`refused: ${r.error.status} ${r.error.message}`);
  return r.value;
}

/** A sender tag as the edge derives them; each call is from another sender unless told. */
const newSender = () => randomBytes(16);

function enqueue(
  q: Queue,
  payload: string | Uint8Array,
  o: { channel?: Uint8Array; ttlSecs?: number; messageId?: Uint8Array; sender?: Uint8Array } = {},
) {
  return q.stub.enqueue({
    recipient: q.key,
    sender: o.sender ?? newSender(),
    channel: o.channel ?? DEFAULT,
    payload: typeof payload === "string" ? bytesOf(payload) : payload,
    ttlSecs: o.ttlSecs ?? 0,
    messageId: o.messageId ?? DEFAULT,
  });
}

async function fetchAll(q: Queue, o: { channel?: Uint8Array; device?: Uint8Array; limit?: number } = {}) {
  const envs = value(
    await q.stub.fetchPending({ channel: o.channel ?? DEFAULT, device: o.device ?? DEFAULT, limit: o.limit ?? 256 }),
  );
  return envs.map((e) => ({ seq: e.seq, text: textOf(e.data) }));
}

function ack(q: Queue, seqUpTo: number, o: { channel?: Uint8Array; device?: Uint8Array } = {}) {
  return q.stub.ack({ channel: o.channel ?? DEFAULT, device: o.device ?? DEFAULT, seqUpTo });
}

describe("RecipientQueue (Durable Object)", () => {
  it("delivers FIFO with strictly increasing seq", async () => {
    const q = await queueFor();
    const seqs: number[] = [];
    for (let i = 0; i < 10; i++) seqs.push(value(await enqueue(q, `m${i}`)).seq);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]);
    expect(await fetchAll(q)).toEqual(seqs.map((seq, i) => ({ seq, text: `m${i}` })));
  });

  it("gives concurrent enqueues distinct seqs and returns them in seq order", async () => {
    const q = await queueFor();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => enqueue(q, `c${i}`)));
    const assigned = results.map((r, i) => ({ seq: value(r).seq, text: `c${i}` }));
    expect(new Set(assigned.map((a) => a.seq)).size).toBe(20);
    expect(await fetchAll(q)).toEqual([...assigned].sort((a, b) => a.seq - b.seq));
  });

  it("honours the fetch limit, oldest first", async () => {
    const q = await queueFor();
    for (let i = 0; i < 5; i++) value(await enqueue(q, `l${i}`));
    expect((await fetchAll(q, { limit: 2 })).map((e) => e.text)).toEqual(["l0", "l1"]);
  });

  it("never reuses a seq, even after every message was acknowledged and deleted", async () => {
    const q = await queueFor();
    const first = value(await enqueue(q, "first")).seq;
    value(await ack(q, first));
    expect((await q.stub.stats()).messages).toBe(0);
    const second = value(await enqueue(q, "second")).seq;
    expect(second).toBeGreaterThan(first);
    // The device's cursor sits at `first`; the new message must still be visible to it.
    expect(await fetchAll(q)).toEqual([{ seq: second, text: "second" }]);
  });

  it("keeps messages on fetch until they are acknowledged", async () => {
    const q = await queueFor();
    const seqs = [];
    for (const t of ["a", "b", "c"]) seqs.push(value(await enqueue(q, t)).seq);
    const once = await fetchAll(q);
    expect(once.map((e) => e.text)).toEqual(["a", "b", "c"]);
    expect(await fetchAll(q)).toEqual(once);

    value(await ack(q, seqs[1]));
    expect(await fetchAll(q)).toEqual([{ seq: seqs[2], text: "c" }]);
    expect((await q.stub.stats()).messages).toBe(1);
  });

  it("acknowledges per device: one device's ack does not hide messages from another", async () => {
    const q = await queueFor();
    const phone = bytesOf("phone");
    const laptop = bytesOf("laptop");
    // Two registered devices; the default device is revoked so only these two hold messages.
    for (const d of [phone, laptop]) value(await q.stub.addDevice(d));
    await q.stub.revokeDevice(DEFAULT);
    const seqs = [];
    for (const t of ["x", "y"]) seqs.push(value(await enqueue(q, t)).seq);
    expect(await fetchAll(q, { device: phone })).toHaveLength(2);
    expect(await fetchAll(q, { device: laptop })).toHaveLength(2);

    value(await ack(q, seqs[1], { device: phone }));
    expect(await fetchAll(q, { device: phone })).toEqual([]);
    expect((await fetchAll(q, { device: laptop })).map((e) => e.text)).toEqual(["x", "y"]);
    expect((await q.stub.stats()).messages).toBe(2); // still stored: the laptop has not acked

    value(await ack(q, seqs[0], { device: laptop }));
    expect((await q.stub.stats()).messages).toBe(1); // x acked by both devices: deleted
    expect((await fetchAll(q, { device: laptop })).map((e) => e.text)).toEqual(["y"]);

    value(await ack(q, seqs[1], { device: laptop }));
    expect((await q.stub.stats()).messages).toBe(0);
    expect((await q.stub.stats()).bytes).toBe(0);
  });

  it("treats Ack as idempotent and never moves a cursor backwards", async () => {
    const q = await queueFor();
    const s1 = value(await enqueue(q, "one")).seq;
    const s2 = value(await enqueue(q, "two")).seq;
    const s3 = value(await enqueue(q, "three")).seq;
    expect(await ack(q, s2)).toEqual({ ok: true, value: null });
    expect(await ack(q, s2)).toEqual({ ok: true, value: null });
    expect(await ack(q, s1)).toEqual({ ok: true, value: null }); // older ack: no effect
    expect(await fetchAll(q)).toEqual([{ seq: s3, text: "three" }]);
    expect((await q.stub.stats()).messages).toBe(1);
  });

  it("does not let an ack beyond the newest seq swallow messages enqueued later", async () => {
    const q = await queueFor();
    const s1 = value(await enqueue(q, "seen")).seq;
    value(await ack(q, s1 + 1000));
    const later = value(await enqueue(q, "later")).seq;
    expect(await fetchAll(q)).toEqual([{ seq: later, text: "later" }]);
  });

  it("makes enqueue idempotent by (sender, message_id): same seq, duplicate=true, stored once", async () => {
    const q = await queueFor();
    const id = randomBytes(16);
    const sender = newSender();
    const first = value(await enqueue(q, "hello", { messageId: id, sender }));
    const again = value(await enqueue(q, "hello", { messageId: id, sender }));
    expect(first.duplicate).toBe(false);
    expect(again).toMatchObject({ seq: first.seq, duplicate: true });
    expect(again.depth).toBe(1);
    const other = value(await enqueue(q, "hello", { messageId: randomBytes(16), sender }));
    expect(other.duplicate).toBe(false);
    expect(other.seq).toBeGreaterThan(first.seq);
    expect((await fetchAll(q)).map((e) => e.seq)).toEqual([first.seq, other.seq]);
    expect((await q.stub.stats()).messages).toBe(2);

    // A retry after the recipient acknowledged is still a duplicate: nothing is redelivered.
    value(await ack(q, other.seq));
    expect(value(await enqueue(q, "hello", { messageId: id, sender }))).toMatchObject({
      seq: first.seq,
      duplicate: true,
    });
    expect(await fetchAll(q)).toEqual([]);
  });

  it("expires messages after their TTL: hidden from reads, then garbage-collected by the alarm", async () => {
    const q = await queueFor();
    const shortId = randomBytes(16);
    const sender = newSender();
    value(await enqueue(q, "short", { ttlSecs: 1, messageId: shortId, sender }));
    const kept = value(await enqueue(q, "kept")).seq;
    expect((await fetchAll(q)).map((e) => e.text)).toEqual(["short", "kept"]);

    await sleep(1_100);
    expect(await fetchAll(q)).toEqual([{ seq: kept, text: "kept" }]);

    await runDurableObjectAlarm(q.stub);
    expect(await q.stub.stats()).toMatchObject({ messages: 1, bytes: "kept".length });
    // The idempotency window ended with the TTL: the same id is a new message now.
    expect(value(await enqueue(q, "short", { ttlSecs: 1, messageId: shortId, sender })).duplicate).toBe(false);
  });

  it("wakes a FetchWait on enqueue, long before its timeout", async () => {
    const q = await queueFor();
    let settled = false;
    const waiting = q.stub
      .fetchWait({ channel: DEFAULT, device: DEFAULT, limit: 10, timeoutMs: 60_000 })
      .finally(() => {
        settled = true;
      });
    await sleep(50);
    expect(settled).toBe(false); // nothing pending: it is holding
    const seq = value(await enqueue(q, "wake up")).seq;
    // The test timeout (30 s) is half the 60 s wait: only a real wake-up gets here in time,
    // with room for a busy machine.
    expect(value(await waiting).map((e) => ({ seq: e.seq, text: textOf(e.data) }))).toEqual([{ seq, text: "wake up" }]);
  }, 30_000);

  it("answers FetchWait immediately when messages are pending", async () => {
    const q = await queueFor();
    value(await enqueue(q, "already here"));
    const got = value(await q.stub.fetchWait({ channel: DEFAULT, device: DEFAULT, limit: 10, timeoutMs: 60_000 }));
    expect(got.map((e) => textOf(e.data))).toEqual(["already here"]);
  }, 30_000);

  it("returns an empty FetchWait after a short timeout; another channel's message does not satisfy it", async () => {
    const q = await queueFor();
    const waiting = q.stub.fetchWait({ channel: bytesOf("chan-a"), device: DEFAULT, limit: 10, timeoutMs: 100 });
    value(await enqueue(q, "for b", { channel: bytesOf("chan-b") }));
    expect(value(await waiting)).toEqual([]);
  });

  it("refuses the message beyond the count cap with RateLimited and stores nothing", async () => {
    const q = await queueFor();
    const dupId = randomBytes(16);
    const dupSender = newSender();
    value(await enqueue(q, "msg-0", { messageId: dupId, sender: dupSender }));
    for (let i = 1; i < 50; i++) value(await enqueue(q, `msg-${i}`));
    const refused = await enqueue(q, "msg-50");
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.error.status).toBe(Status.RateLimited);
    expect(refused.error.retryAfterMs).toBeGreaterThan(0);
    expect((await q.stub.stats()).messages).toBe(50);
    const all = await fetchAll(q);
    expect(all).toHaveLength(50);
    expect(all.some((e) => e.text === "msg-50")).toBe(false);

    // A retry of an already stored message is still answered as a duplicate when full.
    expect(value(await enqueue(q, "msg-0", { messageId: dupId, sender: dupSender })).duplicate).toBe(true);
    // Acknowledging makes room again.
    value(await ack(q, all[9].seq));
    expect(value(await enqueue(q, "msg-50")).duplicate).toBe(false);
  });

  it("refuses a message that would exceed the byte cap", async () => {
    const q = await queueFor();
    const cap = Number(env.MAX_QUEUE_BYTES);
    const part = Math.floor(cap / 5); // within one sender's share (a quarter)
    for (let i = 0; i < 4; i++) value(await enqueue(q, new Uint8Array(part)));
    const rest = cap - 4 * part;
    const refused = await enqueue(q, new Uint8Array(rest + 1));
    expect(refused).toMatchObject({ ok: false, error: { status: Status.RateLimited } });
    if (!refused.ok) expect(refused.error.message).toContain("queue is full");
    expect(await q.stub.stats()).toMatchObject({ messages: 4, bytes: 4 * part });
    value(await enqueue(q, new Uint8Array(rest))); // exactly fills it
  });

  it("holds at most 5 devices (the default included) and refuses reads and acks of devices it does not hold", async () => {
    const q = await queueFor();
    value(await enqueue(q, "m"));
    const added = [1, 2, 3, 4].map((i) => bytesOf(`dev-${i}`));
    for (const device of added) expect(value(await q.stub.addDevice(device))).toEqual({ added: true });
    expect(value(await q.stub.addDevice(added[0]))).toEqual({ added: false });
    expect((await q.stub.stats()).devices).toBe(5);
    expect(await q.stub.addDevice(bytesOf("dev-5"))).toMatchObject({ ok: false, error: { status: Status.Forbidden } });

    // A device that never joined is not served (nor does reading make it join).
    const stranger = await q.stub.fetchPending({ channel: DEFAULT, device: bytesOf("dev-6"), limit: 10 });
    expect(stranger).toMatchObject({ ok: false, error: { status: Status.Unauthorized } });
    expect(await ack(q, 1, { device: bytesOf("dev-6") })).toMatchObject({
      ok: false,
      error: { status: Status.Unauthorized },
    });
    expect((await q.stub.stats()).devices).toBe(5);
    // The default device saw "m"; devices that joined later see only what came after them.
    expect(await fetchAll(q)).toHaveLength(1);
    expect(await fetchAll(q, { device: added[3] })).toEqual([]);
    value(await enqueue(q, "n"));
    expect((await fetchAll(q, { device: added[3] })).map((e) => e.text)).toEqual(["n"]);
  });

  it("keeps channels as separate queues", async () => {
    const q = await queueFor();
    const a = bytesOf("channel-a");
    const b = randomBytes(16);
    const a1 = value(await enqueue(q, "a1", { channel: a })).seq;
    const b1 = value(await enqueue(q, "b1", { channel: b })).seq;
    const d1 = value(await enqueue(q, "d1")).seq;
    const a2 = value(await enqueue(q, "a2", { channel: a })).seq;
    expect(b1).toBeGreaterThan(a1);
    expect(d1).toBeGreaterThan(b1);
    expect(a2).toBeGreaterThan(d1); // seq is per recipient, across channels

    expect(await fetchAll(q, { channel: a })).toEqual([
      { seq: a1, text: "a1" },
      { seq: a2, text: "a2" },
    ]);
    expect(await fetchAll(q, { channel: b })).toEqual([{ seq: b1, text: "b1" }]);
    expect(await fetchAll(q)).toEqual([{ seq: d1, text: "d1" }]);

    value(await ack(q, a2, { channel: a }));
    expect(await fetchAll(q, { channel: a })).toEqual([]);
    expect(await fetchAll(q, { channel: b })).toEqual([{ seq: b1, text: "b1" }]);
    expect(await fetchAll(q)).toEqual([{ seq: d1, text: "d1" }]);
  });

  it("keeps messages, cursors and counters across an eviction (restart)", async () => {
    const q = await queueFor();
    const seqs = [];
    for (const t of ["r1", "r2", "r3"]) seqs.push(value(await enqueue(q, t)).seq);
    value(await ack(q, seqs[0]));
    await evictDurableObject(q.stub);
    expect(await q.stub.stats()).toMatchObject({ messages: 2, bytes: 4 });
    expect((await fetchAll(q)).map((e) => e.text)).toEqual(["r2", "r3"]);
    expect(value(await enqueue(q, "r4")).seq).toBeGreaterThan(seqs[2]);
  });
});

describe("delivery through the RPC layer", () => {
  const enqueueReq = (recipient: Uint8Array, text: string, extra: EnqueueFields = {}) =>
    pb.EnqueueRequest.encode({ recipientKey: recipient, payload: bytesOf(text), ...extra }).finish();

  it("enqueues from another identity, fetches FIFO without removing, acks", async () => {
    const alice = randomKey();
    const bob = await registeredKey();
    const seqs = [];
    for (const t of ["hi", "there"]) {
      seqs.push(Number(ok(await rpc(Method.Enqueue, enqueueReq(bob, t), { caller: alice }), pb.EnqueueResponse).seq));
    }
    expect(seqs[1]).toBeGreaterThan(seqs[0]);

    const fetchReq = pb.FetchRequest.encode({ recipientKey: bob }).finish();
    const fetched = ok(await rpc(Method.Fetch, fetchReq, { caller: bob }), pb.FetchResponse);
    expect(fetched.payloads.map((e) => [Number(e.seq), textOf(e.data)])).toEqual([
      [seqs[0], "hi"],
      [seqs[1], "there"],
    ]);
    const peeked = ok(
      await rpc(Method.Peek, pb.PeekRequest.encode({ recipientKey: bob }).finish(), { caller: bob }),
      pb.PeekResponse,
    );
    expect(peeked.payloads).toHaveLength(2);
    expect(ok(await rpc(Method.Fetch, fetchReq, { caller: bob }), pb.FetchResponse).payloads).toHaveLength(2);

    ok(
      await rpc(Method.Ack, pb.AckRequest.encode({ recipientKey: bob, seqUpTo: seqs[0] }).finish(), { caller: bob }),
      pb.AckResponse,
    );
    const after = ok(await rpc(Method.Fetch, fetchReq, { caller: bob }), pb.FetchResponse);
    expect(after.payloads.map((e) => textOf(e.data))).toEqual(["there"]);
  });

  it("reports duplicate=true with the first seq for a repeated message_id", async () => {
    const bob = await registeredKey();
    const alice = randomKey();
    const messageId = randomBytes(16);
    const first = ok(
      await rpc(Method.Enqueue, enqueueReq(bob, "once", { messageId }), { caller: alice }),
      pb.EnqueueResponse,
    );
    const again = ok(
      await rpc(Method.Enqueue, enqueueReq(bob, "once", { messageId }), { caller: alice }),
      pb.EnqueueResponse,
    );
    expect(first.duplicate).toBe(false);
    expect(again.duplicate).toBe(true);
    expect(Number(again.seq)).toBe(Number(first.seq));
    expect((await queueStub(bob).stats()).messages).toBe(1);
  });

  it("wakes a FetchWait RPC when a message is enqueued", async () => {
    const bob = await registeredKey();
    const channelId = randomBytes(16);
    let settled = false;
    const waiting = rpc(
      Method.FetchWait,
      pb.FetchWaitRequest.encode({ recipientKey: bob, channelId, timeoutMs: 60_000 }).finish(),
      { caller: bob },
    ).finally(() => {
      settled = true;
    });
    await sleep(50);
    expect(settled).toBe(false);
    const seq = Number(
      ok(await rpc(Method.Enqueue, enqueueReq(bob, "ping", { channelId }), { caller: randomKey() }), pb.EnqueueResponse)
        .seq,
    );
    const got = ok(await waiting, pb.FetchWaitResponse);
    expect(got.payloads.map((e) => [Number(e.seq), textOf(e.data)])).toEqual([[seq, "ping"]]);
  }, 30_000);

  it("answers an empty FetchWait RPC after a short timeout", async () => {
    const bob = randomKey();
    const res = ok(
      await rpc(Method.FetchWait, pb.FetchWaitRequest.encode({ recipientKey: bob, timeoutMs: 100 }).finish(), {
        caller: bob,
      }),
      pb.FetchWaitResponse,
    );
    expect(res.payloads).toEqual([]);
  });

  it("accepts uint64 fields left at their default (Ack seq_up_to 0, FetchWait without timeout)", async () => {
    const bob = randomKey();
    value(await enqueue(await queueFor(bob), "still here"));
    ok(await rpc(Method.Ack, pb.AckRequest.encode({ recipientKey: bob }).finish(), { caller: bob }), pb.AckResponse);
    const res = ok(
      await rpc(Method.FetchWait, pb.FetchWaitRequest.encode({ recipientKey: bob }).finish(), { caller: bob }),
      pb.FetchWaitResponse,
    );
    expect(res.payloads.map((e) => textOf(e.data))).toEqual(["still here"]);
  });

  it("acks per device through the RPC: each session uses its own device's cursor", async () => {
    const bob = await registeredKey();
    const phone = bytesOf("phone");
    const tablet = bytesOf("tablet");
    for (const d of [phone, tablet]) value(await queueStub(bob).addDevice(d));
    const seq = Number(
      ok(await rpc(Method.Enqueue, enqueueReq(bob, "both"), { caller: randomKey() }), pb.EnqueueResponse).seq,
    );
    const as = async (deviceId: Uint8Array) => assertionFor(bob, { deviceId });
    const fetchOn = async (deviceId: Uint8Array) =>
      ok(
        await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: bob }).finish(), { caller: await as(deviceId) }),
        pb.FetchResponse,
      ).payloads.map((e) => textOf(e.data));
    expect(await fetchOn(phone)).toEqual(["both"]);
    expect(await fetchOn(tablet)).toEqual(["both"]);
    // Naming its own device is the same as naming none; naming another device is Forbidden.
    ok(
      await rpc(Method.Ack, pb.AckRequest.encode({ recipientKey: bob, seqUpTo: seq, deviceId: phone }).finish(), {
        caller: await as(phone),
      }),
      pb.AckResponse,
    );
    const forTablet = await rpc(
      Method.Ack,
      pb.AckRequest.encode({ recipientKey: bob, seqUpTo: seq, deviceId: tablet }).finish(),
      { caller: await as(phone) },
    );
    expect(forTablet.status).toBe(Status.Forbidden);
    const peekTablet = await rpc(
      Method.Fetch,
      pb.FetchRequest.encode({ recipientKey: bob, deviceId: tablet }).finish(),
      { caller: await as(phone) },
    );
    expect(peekTablet.status).toBe(Status.Forbidden);
    expect(await fetchOn(phone)).toEqual([]);
    expect(await fetchOn(tablet)).toEqual(["both"]);
  });

  it("answers RateLimited with retry_after_ms when the recipient queue is full", async () => {
    const bob = randomKey();
    const sender = randomKey();
    const q = await queueFor(bob);
    for (let i = 0; i < 50; i++) value(await enqueue(q, `f${i}`));
    const res = await rpc(Method.Enqueue, enqueueReq(bob, "one too many"), { caller: sender });
    expect(res.http).toBe(200);
    expect(res.status).toBe(Status.RateLimited);
    const err = errorOf(res);
    expect(err.retryAfterMs).toBeGreaterThan(0);
    expect(Number(res.headers.get("x-qpq-retry-after-ms"))).toBe(err.retryAfterMs);
    expect((await q.stub.stats()).messages).toBe(50);
  });
});

describe("push subscribers (/push WebSocket into the recipient's queue)", () => {
  async function subscribe(caller: Uint8Array | string, frontSecret = env.FRONT_SECRET) {
    const res = await exports.default.fetch("https://edge/push", {
      headers: {
        Upgrade: "websocket",
        "x-qpq-front-auth": frontSecret,
        "x-qpq-caller": typeof caller === "string" ? caller : await assertionFor(caller),
      },
    });
    return res;
  }

  function nextMessage(ws: WebSocket): Promise<Uint8Array> {
    return new Promise((resolve) => {
      ws.addEventListener(
        "message",
        (e) => {
          const data = e.data as string | ArrayBuffer | Blob;
          if (typeof data === "string") resolve(bytesOf(data));
          else if (data instanceof Blob) void data.arrayBuffer().then((b) => resolve(new Uint8Array(b)));
          else resolve(new Uint8Array(data));
        },
        { once: true },
      );
    });
  }

  it("sends PushNewMessage to the identity's subscriber on enqueue, with small payloads inline", async () => {
    const bob = await registeredKey();
    const res = await subscribe(bob);
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    ws.accept();
    try {
      const channelId = randomBytes(16);
      const small = nextMessage(ws);
      const seq = Number(
        ok(
          await rpc(Method.Enqueue, enqueueReqFor(bob, bytesOf("tiny"), channelId), { caller: randomKey() }),
          pb.EnqueueResponse,
        ).seq,
      );
      const event = pb.PushNewMessage.decode(await small);
      expect(hex(event.recipientKey)).toBe(hex(bob));
      expect(hex(event.channelId)).toBe(hex(channelId));
      expect(Number(event.seq)).toBe(seq);
      expect(event.size).toBe(4);
      expect(textOf(event.payload)).toBe("tiny");

      const large = nextMessage(ws);
      ok(
        await rpc(Method.Enqueue, enqueueReqFor(bob, randomBytes(5000), channelId), { caller: randomKey() }),
        pb.EnqueueResponse,
      );
      const big = pb.PushNewMessage.decode(await large);
      expect(big.size).toBe(5000);
      expect(big.payload).toHaveLength(0);
    } finally {
      ws.close(1000, "done");
    }
  }, 30_000);

  it("refuses a subscription without front authentication or a valid caller", async () => {
    expect((await subscribe(randomKey(), "wrong-secret")).status).toBe(401);
    expect((await subscribe(await assertionFor(randomKey(), { expiresAtMs: Date.now() - 1 }))).status).toBe(403);
  });
});
