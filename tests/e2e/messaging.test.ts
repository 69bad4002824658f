// Two users, real OPAQUE and real MLS (ts-mls), over real QUIC through the front, the edge,
// Durable Objects and D1, all started exactly as `npm start` starts them.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { Method, Status, pb, encodeRequest, decodeError } from "../../proto/index.ts";
import { QpqCallError, type QpqClient } from "../../sdk/client.ts";
import type { QuicTransport } from "../../sdk/transport.ts";
import { ed25519Identity, startTestSystem, uniqueName, type TestSystem } from "../support/system.ts";
import { createMlsMember } from "../support/mls.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return Status.Ok;
  } catch (err) {
    if (err instanceof QpqCallError) return err.status;
    throw err;
  }
}

describe("two users exchange MLS messages over QUIC", () => {
  let sys: TestSystem;
  let alice: QpqClient<QuicTransport>;
  let bob: QpqClient<QuicTransport>;
  const aliceName = uniqueName("alice");
  const bobName = uniqueName("bob");
  const aliceKey = ed25519Identity();
  const bobKey = ed25519Identity();

  beforeAll(async () => {
    sys = await startTestSystem();
    // Each connection logs in right after it opens: the front closes one still without a session
    // after 30 s, and registration and login are slow on a busy machine.
    alice = await sys.connect();
    expect(await alice.register(aliceName, "correct horse alice", aliceKey)).toBe(true);
    expect((await alice.login(aliceName, "correct horse alice", aliceKey)).length).toBe(32);
    bob = await sys.connect();
    expect(await bob.register(bobName, "battery staple bob", bobKey)).toBe(true);
    expect((await bob.login(bobName, "battery staple bob", bobKey)).length).toBe(32);
  });

  afterAll(async () => {
    await sys?.stop();
  });

  it("delivers a Welcome to a waiting FetchWait, then application messages both ways", async () => {
    const mlsAlice = await createMlsMember(aliceName);
    const mlsBob = await createMlsMember(bobName);
    // Bob publishes two KeyPackages; they are single-use.
    await bob.uploadKeyPackage(await mlsBob.keyPackage());
    await bob.uploadKeyPackage(await mlsBob.keyPackage());

    const channel = (await alice.createDirectChannel(bobKey)).channelId;
    expect((await bob.createDirectChannel(aliceKey)).channelId).toEqual(channel);

    // Bob is already waiting when alice sends the Welcome.
    const bobWaits = bob.fetchWait({ timeoutMs: 20_000, channelId: channel });

    expect(await alice.resolveUser(bobName)).toEqual(bobKey);
    const kp = await alice.fetchKeyPackage(bobKey);
    expect(kp.length).toBeGreaterThan(0);
    await mlsAlice.createGroup(channel);
    const { welcome } = await mlsAlice.addMember(kp);
    const sent = await alice.enqueue({
      recipientKey: bobKey,
      channelId: channel,
      payload: welcome,
      messageId: crypto.getRandomValues(new Uint8Array(16)),
    });
    expect(sent.duplicate).toBe(false);
    expect(sent.deliveryProof.length).toBe(73);

    const got = await bobWaits;
    expect(got).toHaveLength(1);
    expect(got[0].data).toEqual(welcome);
    await mlsBob.joinFromWelcome(got[0].data);
    await bob.ack(got[0].seq, { channelId: channel });
    expect(mlsBob.epoch()).toBe(mlsAlice.epoch());

    // alice → bob
    await alice.enqueue({
      recipientKey: bobKey,
      channelId: channel,
      payload: await mlsAlice.encrypt(text("hello bob")),
    });
    const toBob = await bob.fetch({ channelId: channel });
    expect(toBob).toHaveLength(1);
    expect(str(await mlsBob.decrypt(toBob[0].data))).toBe("hello bob");
    await bob.ack(toBob[0].seq, { channelId: channel });
    expect(await bob.fetch({ channelId: channel })).toHaveLength(0);

    // bob → alice, two messages in order
    for (const m of ["hi alice", "second"]) {
      await bob.enqueue({ recipientKey: aliceKey, channelId: channel, payload: await mlsBob.encrypt(text(m)) });
    }
    const toAlice = await alice.fetch({ channelId: channel });
    expect(toAlice.map((e) => e.seq)).toEqual([...toAlice.map((e) => e.seq)].sort((a, b) => a - b));
    expect([str(await mlsAlice.decrypt(toAlice[0].data)), str(await mlsAlice.decrypt(toAlice[1].data))]).toEqual([
      "hi alice",
      "second",
    ]);
    await alice.ack(toAlice[1].seq, { channelId: channel });
    expect(await alice.fetch({ channelId: channel })).toHaveLength(0);

    // The second KeyPackage is still there once; the first was consumed.
    expect((await alice.fetchKeyPackage(bobKey)).length).toBeGreaterThan(0);
    expect((await alice.fetchKeyPackage(bobKey)).length).toBe(0);
  });

  it("pushes PushNewMessage to every connection of the recipient", async () => {
    const bob2 = await sys.connect();
    await bob2.resume(bob.sessionToken as Uint8Array);
    const events: { seq: number; payload: Uint8Array }[][] = [[], []];
    const arrived = Promise.all(
      [bob, bob2].map(
        (c, i) =>
          new Promise<void>((resolve) => {
            c.onNewMessage((e) => {
              events[i].push(e);
              resolve();
            });
          }),
      ),
    );
    // The subscription is set up asynchronously after login; give it a moment, then send.
    const channelId = crypto.getRandomValues(new Uint8Array(16));
    let sent = { seq: 0 };
    for (let i = 0; i < 50 && events[0].length + events[1].length < 2; i++) {
      sent = await alice.enqueue({ recipientKey: bobKey, channelId, payload: text(`ping ${i}`) });
      await Promise.race([arrived, new Promise((r) => setTimeout(r, 100))]);
    }
    await arrived;
    for (const list of events) {
      expect(list.length).toBeGreaterThan(0);
      expect(str(list[list.length - 1].payload)).toMatch(/^ping \d+$/);
    }
    expect(events[0].some((e) => e.seq === sent.seq) || events[1].some((e) => e.seq === sent.seq)).toBe(true);
  });

  it("counts deliveries in the front's metrics, and nothing claims a queue depth after the ack", async () => {
    const m = sys.system.front.metrics;
    const before = m.enqueue.get();
    const acksBefore = m.ack.get();
    const depthsBefore = Number(/^delivery_queue_depth_count (\d+)$/m.exec(m.render())?.[1] ?? 0);
    const sent = await alice.enqueue({ recipientKey: bobKey, payload: text("metered") });
    expect(m.enqueue.get()).toBe(before + 1);
    const pending = await bob.fetch({ limit: 256 });
    expect(pending.map((e) => e.seq)).toContain(sent.seq);
    await bob.ack(Math.max(...pending.map((e) => e.seq)));
    expect(m.ack.get()).toBe(acksBefore + 1);
    const text_ = m.render();
    // A histogram of depths sampled at each Enqueue (one more observation), not a gauge that
    // would still say "1" now that bob's queue is empty.
    expect(text_).toContain("# TYPE delivery_queue_depth histogram");
    expect(text_).not.toMatch(/^delivery_queue_depth \d/m);
    expect(text_).toMatch(new RegExp(`^delivery_queue_depth_count ${depthsBefore + 1}$`, "m"));
    expect(text_).toMatch(/^delivery_queue_depth_bucket\{le="\+Inf"\} [1-9]/m);
    expect(text_).toMatch(/^auth_login_success_total [1-9]/m);
    expect(text_).toMatch(/rpc_latency_seconds_count\{method="Enqueue"\} [1-9]/);
  });

  it("refuses a wrong password without a session", async () => {
    const eve = await sys.connect();
    expect(await statusOf(eve.login(aliceName, "wrong password", aliceKey))).toBe(Status.Unauthorized);
    const res = await eve.raw(Method.Fetch, pb.FetchRequest.encode({ recipientKey: aliceKey }).finish());
    expect(res.status).toBe(Status.Unauthorized);
  });

  it("forbids bob from reading alice's queue or uploading keys as alice", async () => {
    const asAlice = await bob.raw(Method.Fetch, pb.FetchRequest.encode({ recipientKey: aliceKey }).finish());
    expect(asAlice.status).toBe(Status.Forbidden);
    const upload = await bob.raw(
      Method.UploadKeyPackage,
      pb.UploadKeyPackageRequest.encode({ identityKey: aliceKey, package: text("kp") }).finish(),
    );
    expect(upload.status).toBe(Status.Forbidden);
  });

  it("answers BadRequest for a 31-byte key, naming the field", async () => {
    const res = await alice.raw(
      Method.Enqueue,
      pb.EnqueueRequest.encode({ recipientKey: new Uint8Array(31), payload: text("x") }).finish(),
    );
    expect(res.status).toBe(Status.BadRequest);
    expect(decodeError(res.payload).message).toContain("recipient_key");
    expect(decodeError(res.payload).message).toContain("31");
  });

  it("answers UnknownMethod (11) for an unregistered method id, echoing the request id", async () => {
    const res = await alice.transport.rawExchange([encodeRequest(4242, 77, new Uint8Array(0))]);
    expect(res.status).toBe(Status.UnknownMethod);
    expect(res.requestId).toBe(77);
  });

  it("resumes a session on a new connection with the token", async () => {
    const again = await sys.connect();
    const token = alice.sessionToken as Uint8Array;
    const before = await again.raw(Method.Fetch, pb.FetchRequest.encode({ recipientKey: aliceKey }).finish());
    expect(before.status).toBe(Status.Unauthorized);
    const resumed = await again.resume(token);
    expect(resumed.identityKey).toEqual(aliceKey);
    expect(resumed.expiresAtMs).toBeGreaterThan(Date.now());
    expect(await again.fetch()).toEqual([]);
    const bogus = await sys.connect();
    expect(await statusOf(bogus.resume(crypto.getRandomValues(new Uint8Array(32))))).toBe(Status.Unauthorized);
  });
});
