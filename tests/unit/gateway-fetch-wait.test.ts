// FetchWait served at the front: the gateway parks the wait on the push subscription it holds
// for the identity and reads from the edge without waiting there, so long-polls hold no relay
// connection. Waits are capped per connection and per identity, and end at once on drain.
import { afterEach, describe, expect, it } from "vitest";
import { Method, Status, decodeError, pb, type ResponseFrame } from "../../proto/index.ts";
import { gate, type EdgeHandler } from "./support/test-edge.ts";
import { ManualClock } from "./support/manual-clock.ts";
import {
  IDENTITY,
  MINUTE,
  enqueuePayload,
  fakeLink,
  login,
  onCleanup,
  open,
  rpc,
  runCleanups,
  scriptedEdge,
  start,
} from "./support/gateway-harness.ts";

afterEach(runCleanups);

const CHANNEL = new Uint8Array(16).fill(0x42);
const RECIPIENT = Buffer.from(IDENTITY, "hex");
const MESSAGE = new TextEncoder().encode("hello after the wait");

const waitRequest = (timeoutMs: number, channelId = CHANNEL) =>
  pb.FetchWaitRequest.encode({ recipientKey: RECIPIENT, channelId, timeoutMs, limit: 10 }).finish();

const envelopes = (res: ResponseFrame) => pb.FetchWaitResponse.decode(res.payload).payloads;

/** Polls a condition the gateway reaches asynchronously (bounded by the test timeout, not a margin). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}

/** An edge whose FetchWait answers nothing until `arrive()`, then one envelope. */
function inbox() {
  let arrived = false;
  const edge: EdgeHandler = scriptedEdge({
    other: (call) => {
      if (call.methodId !== Method.FetchWait) return {};
      return arrived
        ? { payload: pb.FetchWaitResponse.encode({ payloads: [{ seq: 7, data: MESSAGE }] }).finish() }
        : {};
    },
  });
  return { edge, arrive: () => void (arrived = true) };
}

describe("FetchWait at the front", () => {
  it("answers with the message once a push event for its channel arrives, and never asks the edge to wait", async () => {
    const box = inbox();
    const clock = new ManualClock(); // never advanced: only a wake-up can end this wait
    const { gw, edge, push } = await start({ edge: box.edge, push: true, clock });
    const conn = await open(gw);
    await login(gw, conn);
    await push.opened();

    const waiting = rpc(gw, conn, Method.FetchWait, waitRequest(30_000));
    await edge.received(Method.FetchWait);
    box.arrive();
    push.send({ recipientKey: RECIPIENT, channelId: CHANNEL, seq: 7, size: MESSAGE.length });

    const res = await waiting;
    expect(res.status).toBe(Status.Ok);
    expect(envelopes(res)).toEqual([expect.objectContaining({ seq: 7, data: MESSAGE })]);
    for (const call of edge.callsTo(Method.FetchWait)) {
      expect(pb.FetchWaitRequest.decode(call.body)).toMatchObject({ timeoutMs: 0, channelId: CHANNEL, limit: 10 });
    }
    expect(gw.waitingFetches).toBe(0);
  });

  it("does not miss a message enqueued while the push socket reconnects", async () => {
    const box = inbox();
    const clock = new ManualClock();
    const { gw, edge, push } = await start({ edge: box.edge, push: true, clock });
    const conn = await open(gw);
    await login(gw, conn);
    await push.opened();

    const waiting = rpc(gw, conn, Method.FetchWait, waitRequest(60_000));
    await edge.received(Method.FetchWait);
    // The edge restarts: the push socket drops, and the message is enqueued while the front is
    // reconnecting, so no event for it is ever sent.
    const held = push.hold();
    push.dropAll();
    await held.requested;
    box.arrive();
    held.release();

    const res = await waiting;
    expect(envelopes(res).map((e) => e.seq)).toEqual([7]);
    expect(push.accepted).toHaveLength(2);
  });

  it("answers an immediate FetchWait (timeout 0) with one read and no wait", async () => {
    const { gw, edge } = await start();
    const conn = await open(gw);
    await login(gw, conn);
    const res = await rpc(gw, conn, Method.FetchWait, waitRequest(0));
    expect(res.status).toBe(Status.Ok);
    expect(envelopes(res)).toEqual([]);
    expect(edge.callsTo(Method.FetchWait)).toHaveLength(1);
  });

  it("answers what is there at the timeout, capped at 60 s, with one last read", async () => {
    const clock = new ManualClock();
    const { gw, edge } = await start({ clock });
    const conn = await open(gw);
    await login(gw, conn);
    let answered = false;
    const waiting = rpc(gw, conn, Method.FetchWait, waitRequest(10 * MINUTE)).finally(() => (answered = true));
    await edge.received(Method.FetchWait);
    await until(() => clock.armed > 0);

    clock.advance(60_000 - 1);
    await new Promise((r) => setTimeout(r, 20));
    expect(answered).toBe(false);
    clock.advance(1);

    const res = await waiting;
    expect(res.status).toBe(Status.Ok);
    expect(envelopes(res)).toEqual([]);
    expect(edge.callsTo(Method.FetchWait)).toHaveLength(2);
  });

  it("passes the edge's refusal through without waiting", async () => {
    const { gw, edge } = await start({
      edge: scriptedEdge({ other: (call) => (call.methodId === Method.FetchWait ? { status: Status.Forbidden } : {}) }),
    });
    const conn = await open(gw);
    await login(gw, conn);
    expect((await rpc(gw, conn, Method.FetchWait, waitRequest(60_000))).status).toBe(Status.Forbidden);
    expect(edge.callsTo(Method.FetchWait)).toHaveLength(1);
    expect(gw.waitingFetches).toBe(0);
  });

  it("ends a wait with an empty answer when its connection closes", async () => {
    const { gw, edge } = await start();
    const conn = await open(gw);
    await login(gw, conn);
    const waiting = rpc(gw, conn, Method.FetchWait, waitRequest(60_000));
    await edge.received(Method.FetchWait);
    gw.close(conn, "client closed");
    const res = await waiting;
    expect(res.status).toBe(Status.Ok);
    expect(envelopes(res)).toEqual([]);
    expect(gw.waitingFetches).toBe(0);
  });
});

describe("FetchWait does not starve other calls", () => {
  it("keeps answering other clients' Health, login and Enqueue while one connection holds 80 FetchWaits", async () => {
    // An edge that would hold a FetchWait for as long as it is asked to, as the real one does.
    const never = gate<void>();
    onCleanup(async () => never.open());
    const { gw, edge } = await start({
      config: { fetchWaitPerConnection: 100, fetchWaitPerIdentity: 100 },
      edge: scriptedEdge({
        other: async (call) => {
          if (call.methodId === Method.FetchWait && pb.FetchWaitRequest.decode(call.body).timeoutMs > 0)
            await never.promise;
          return {};
        },
      }),
    });
    const hog = await open(gw, fakeLink("198.51.100.1:1000"));
    await login(gw, hog);
    const waits = Array.from({ length: 80 }, () => rpc(gw, hog, Method.FetchWait, waitRequest(60_000)));
    await edge.received(Method.FetchWait, 80);
    await until(() => gw.waitingFetches === 80);

    const other = await open(gw, fakeLink("198.51.100.2:2000"));
    expect((await rpc(gw, other, Method.Health)).status).toBe(Status.Ok);
    await login(gw, other);
    expect((await rpc(gw, other, Method.Enqueue, enqueuePayload())).status).toBe(Status.Ok);
    expect(gw.waitingFetches).toBe(80);

    // Draining answers all of them at once.
    await gw.drain();
    for (const res of await Promise.all(waits)) {
      expect(res.status).toBe(Status.Ok);
      expect(envelopes(res)).toEqual([]);
    }
  });
});

describe("FetchWait caps", () => {
  it("refuses FetchWaits beyond the per-connection and per-identity caps with RateLimited, before the edge sees them", async () => {
    const { gw, edge } = await start({ config: { fetchWaitPerConnection: 2, fetchWaitPerIdentity: 3 } });
    const a = await open(gw, fakeLink("198.51.100.1:1"));
    const b = await open(gw, fakeLink("198.51.100.2:2"));
    await login(gw, a);
    await login(gw, b); // the same identity on a second connection
    const parked = [
      rpc(gw, a, Method.FetchWait, waitRequest(60_000)),
      rpc(gw, a, Method.FetchWait, waitRequest(60_000)),
    ];
    await until(() => gw.waitingFetches === 2);

    const third = await rpc(gw, a, Method.FetchWait, waitRequest(60_000));
    expect(third.status).toBe(Status.RateLimited);
    expect(decodeError(third.payload).message).toMatch(/concurrent FetchWaits on this connection \(limit 2\)/);
    expect(decodeError(third.payload).retryAfterMs).toBeGreaterThan(0);
    // An immediate FetchWait does not wait, so it is not capped.
    expect((await rpc(gw, a, Method.FetchWait, waitRequest(0))).status).toBe(Status.Ok);

    parked.push(rpc(gw, b, Method.FetchWait, waitRequest(60_000)));
    await until(() => gw.waitingFetches === 3);
    const overIdentity = await rpc(gw, b, Method.FetchWait, waitRequest(60_000));
    expect(overIdentity.status).toBe(Status.RateLimited);
    expect(decodeError(overIdentity.payload).message).toMatch(/concurrent FetchWaits on this identity \(limit 3\)/);

    await edge.received(Method.FetchWait, 4);
    expect(edge.callsTo(Method.FetchWait)).toHaveLength(4);
    expect(gw.metrics.fetchWaitRefused.get({ limit: "connection" })).toBe(1);
    expect(gw.metrics.fetchWaitRefused.get({ limit: "identity" })).toBe(1);
    expect(gw.metrics.render()).toMatch(/^fetch_wait_waiting 3$/m);

    // Once connection a is gone, its waits end and free the identity's share.
    gw.close(a, "client closed");
    await Promise.all(parked.slice(0, 2));
    const again = rpc(gw, b, Method.FetchWait, waitRequest(60_000));
    await until(() => gw.waitingFetches === 2);
    gw.close(b, "client closed");
    expect((await again).status).toBe(Status.Ok);
  });
});

describe("FetchWait and drain", () => {
  it("answers a 60 s FetchWait at once with Ok and no envelopes when the front drains", async () => {
    const { gw, edge } = await start({ config: { drainTimeoutMs: 10 * MINUTE } });
    const conn = await open(gw);
    await login(gw, conn);
    const waiting = rpc(gw, conn, Method.FetchWait, waitRequest(60_000));
    await edge.received(Method.FetchWait);
    await until(() => gw.waitingFetches === 1);

    // The drain timeout is far beyond the test timeout: drain() resolves only by going idle.
    await gw.drain();
    const res = await waiting;
    expect(res.status).toBe(Status.Ok);
    expect(envelopes(res)).toEqual([]);
    await gw.stop();
  });
});
