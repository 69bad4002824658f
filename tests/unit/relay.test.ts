// EdgeRelay against a real HTTP server playing the edge: the relay contract (docs/protocol.md,
// "Front ⇄ edge relay contract"), its retry rule and how failures map to wire statuses.
import { afterEach, describe, expect, it } from "vitest";
import { EdgeRelay, RELAY_KEEPALIVE_MS, type RelayRequest } from "../../quic-front/relay.ts";
import { silentLogger } from "../../proto/util/log.ts";
import { Method, RelayHeader as H, Status, decodeError, formatSessionGrant, pb } from "../../proto/index.ts";
import {
  closedPortUrl,
  gate,
  startTestEdge,
  type EdgeHandler,
  type TestEdge,
  type TestEdgeOptions,
} from "./support/test-edge.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  // Edge first: dropping its sockets ends any request a test left hanging, so the pool can close.
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function edge(handler?: EdgeHandler, opts?: TestEdgeOptions): Promise<TestEdge> {
  const e = await startTestEdge(handler, opts);
  cleanups.push(() => e.close());
  return e;
}

function relayTo(url: string, rpcTimeoutMs = 10_000, keepAliveMs?: number): { relay: EdgeRelay; errors: string[] } {
  const errors: string[] = [];
  const relay = new EdgeRelay({
    edgeUrl: url,
    frontSecret: "front-secret",
    rpcTimeoutMs,
    keepAliveMs,
    logger: silentLogger,
    onError: (k) => errors.push(k),
  });
  cleanups.unshift(() => relay.close());
  return { relay, errors };
}

function request(methodId: number, payload: Uint8Array, extra: Partial<RelayRequest> = {}): RelayRequest {
  return { methodId, requestId: 41, payload, connectionId: "front-1:7", clientAddr: "198.51.100.9:4433", ...extra };
}

const fetchPayload = () => pb.FetchRequest.encode({ recipientKey: new Uint8Array(32).fill(1), limit: 10 }).finish();
const enqueuePayload = (messageId?: Uint8Array) =>
  pb.EnqueueRequest.encode({
    recipientKey: new Uint8Array(32).fill(2),
    payload: new Uint8Array([1, 2, 3]),
    messageId,
  }).finish();

describe("EdgeRelay", () => {
  it("relays method, request id, connection, client address, front secret and caller assertion; returns status and payload", async () => {
    const answer = pb.FetchResponse.encode({ payloads: [{ seq: 5, data: new Uint8Array([9, 9]) }] }).finish();
    const grant = {
      assertion: "v1.aa.bb.1.mac",
      identityKeyHex: "ab".repeat(32),
      sessionExpiresAt: 2_000_000_000_000,
      assertionExpiresAt: 1_900_000_000_000,
    };
    const e = await edge(() => ({
      status: Status.NotFound,
      payload: answer,
      headers: { [H.session]: formatSessionGrant(grant), [H.queueDepth]: "12" },
    }));
    const { relay } = relayTo(e.url);
    const payload = fetchPayload();

    const res = await relay.call(request(Method.Fetch, payload, { assertion: "v1.caller-assertion" }));

    expect(e.calls).toHaveLength(1);
    const call = e.calls[0]!;
    expect(call.httpMethod).toBe("POST");
    expect(call.path).toBe(`/rpc/${Method.Fetch}`);
    expect(call.headers[H.frontAuth]).toBe("front-secret");
    expect(call.headers[H.requestId]).toBe("41");
    expect(call.headers[H.connection]).toBe("front-1:7");
    expect(call.headers[H.clientAddr]).toBe("198.51.100.9:4433");
    expect(call.headers[H.caller]).toBe("v1.caller-assertion");
    expect(call.body).toEqual(payload);

    expect(res.status).toBe(Status.NotFound);
    expect(res.payload).toEqual(answer);
    expect(res.session).toEqual(grant);
    expect(res.queueDepth).toBe(12);
  });

  it("sends no caller header when the connection has no assertion", async () => {
    const e = await edge();
    const { relay } = relayTo(e.url);
    const res = await relay.call(request(Method.Health, new Uint8Array(0)));
    expect(res.status).toBe(Status.Ok);
    expect(e.calls[0]!.headers[H.caller]).toBeUndefined();
  });

  describe("a failure before any response byte", () => {
    // First attempt: the edge drops the connection after reading the request; then it answers.
    const dropFirst =
      (payload: Uint8Array): EdgeHandler =>
      (_call, attempt) =>
        attempt === 1 ? "destroy" : { payload };

    it("is retried for an idempotent method (Fetch)", async () => {
      const answer = pb.FetchResponse.encode({ payloads: [{ seq: 1, data: new Uint8Array([7]) }] }).finish();
      const e = await edge(dropFirst(answer));
      const { relay } = relayTo(e.url);

      const res = await relay.call(request(Method.Fetch, fetchPayload()));

      expect(e.callsTo(Method.Fetch)).toHaveLength(2);
      expect(res.status).toBe(Status.Ok);
      expect(res.payload).toEqual(answer);
    });

    it("is retried for an Enqueue carrying a 16-byte message_id, with the same body", async () => {
      const answer = pb.EnqueueResponse.encode({ seq: 3 }).finish();
      const e = await edge(dropFirst(answer));
      const { relay } = relayTo(e.url);
      const payload = enqueuePayload(new Uint8Array(16).fill(0x5a));

      const res = await relay.call(request(Method.Enqueue, payload));

      const seen = e.callsTo(Method.Enqueue);
      expect(seen).toHaveLength(2);
      expect(seen[1]!.body).toEqual(payload);
      expect(res.status).toBe(Status.Ok);
      expect(res.payload).toEqual(answer);
    });

    it("is not retried for an Enqueue without message_id: Unavailable with a retry hint", async () => {
      const e = await edge(dropFirst(pb.EnqueueResponse.encode({ seq: 3 }).finish()));
      const { relay } = relayTo(e.url);

      const res = await relay.call(request(Method.Enqueue, enqueuePayload()));

      expect(e.callsTo(Method.Enqueue)).toHaveLength(1);
      expect(res.status).toBe(Status.Unavailable);
      expect(decodeError(res.payload).retryAfterMs).toBeGreaterThan(0);
    });

    it("is retried for SessionResume, OpaqueLoginStart and OpaqueRegisterStart (a repeat has no second effect)", async () => {
      for (const methodId of [Method.SessionResume, Method.OpaqueLoginStart, Method.OpaqueRegisterStart]) {
        const answer = new Uint8Array([methodId & 0xff]);
        const e = await edge(dropFirst(answer));
        const { relay } = relayTo(e.url);
        const payload = new Uint8Array([1, 2, 3]);

        const res = await relay.call(request(methodId, payload));

        const seen = e.callsTo(methodId);
        expect({ methodId, attempts: seen.length }).toEqual({ methodId, attempts: 2 });
        expect(seen[1]!.body).toEqual(payload);
        expect(res.status).toBe(Status.Ok);
        expect(res.payload).toEqual(answer);
      }
    });

    it("is not retried for OpaqueLoginFinish and OpaqueRegisterFinish (they consume state)", async () => {
      for (const methodId of [Method.OpaqueLoginFinish, Method.OpaqueRegisterFinish]) {
        const e = await edge(dropFirst(new Uint8Array(0)));
        const { relay } = relayTo(e.url);

        const res = await relay.call(request(methodId, new Uint8Array([1])));

        expect({ methodId, attempts: e.callsTo(methodId).length }).toEqual({ methodId, attempts: 1 });
        expect(res.status).toBe(Status.Unavailable);
      }
    });
  });

  describe("idle connections", () => {
    it("closes its idle keep-alive connections before the edge would (default below 5 s, the edge's idle close)", () => {
      expect(RELAY_KEEPALIVE_MS).toBeLessThanOrEqual(2_500);
    });

    it("reuses a connection for back-to-back calls and drops it itself after keepAliveMs of silence", async () => {
      // This edge would keep idle connections for a minute: only the relay can close them.
      const e = await edge(undefined, { keepAliveTimeoutMs: 60_000 });
      const keepAliveMs = 1_000;
      const { relay } = relayTo(e.url, 10_000, keepAliveMs);

      const health = async () =>
        expect((await relay.call(request(Method.Health, new Uint8Array(0)))).status).toBe(Status.Ok);
      for (let i = 0; i < 5; i++) await health();
      // Timers fire in expiry order: the relay's idle timers, armed when the last answers arrived,
      // have fired by the time this sleep ends, however busy the machine is.
      await new Promise((resolve) => setTimeout(resolve, keepAliveMs));
      await health();

      const ports = e.calls.map((c) => c.remotePort);
      const before = new Set(ports.slice(0, 5));
      expect(before.size).toBeLessThan(5); // kept alive between back-to-back calls
      expect(before.has(ports[5]!)).toBe(false); // none kept past keepAliveMs
    });
  });

  it("answers Unavailable when the edge is unreachable", async () => {
    const { relay, errors } = relayTo(await closedPortUrl());
    const res = await relay.call(request(Method.Fetch, fetchPayload()));
    expect(res.status).toBe(Status.Unavailable);
    expect(decodeError(res.payload).retryAfterMs).toBeGreaterThan(0);
    expect(errors).toEqual(["ECONNREFUSED"]);
  });

  it("answers Unavailable (never Ok) when the edge refuses the relay with HTTP 401", async () => {
    // A 401 that (wrongly) also carries x-qpq-status: 0 must still not pass as success.
    const e = await edge(() => ({
      httpStatus: 401,
      status: Status.Ok,
      payload: new TextEncoder().encode("bad front secret"),
    }));
    const { relay, errors } = relayTo(e.url);

    const res = await relay.call(request(Method.Fetch, fetchPayload()));

    expect(res.status).toBe(Status.Unavailable);
    expect(decodeError(res.payload).message).not.toBe("");
    expect(e.calls).toHaveLength(1);
    expect(errors).toEqual(["http_401"]);
  });

  describe("deadlines", () => {
    it("answers DeadlineExceeded when the edge does not answer within rpcTimeoutMs", async () => {
      const hold = gate<void>();
      cleanups.push(async () => hold.open());
      const e = await edge(async () => {
        await hold.promise; // never opened during the test
        return {};
      });
      const { relay, errors } = relayTo(e.url, 100);

      const res = await relay.call(request(Method.Fetch, fetchPayload()));

      expect(res.status).toBe(Status.DeadlineExceeded);
      expect(e.callsTo(Method.Fetch)).toHaveLength(1); // a timeout is not retried
      expect(errors).toEqual(["timeout"]);
    });

    it("lets FetchWait's extraTimeoutMs extend the deadline", async () => {
      const answer = pb.FetchWaitResponse.encode({ payloads: [{ seq: 1, data: new Uint8Array([4]) }] }).finish();
      // The edge answers well after rpcTimeoutMs (100 ms) but well within 100 ms + 10 s.
      const e = await edge(async () => {
        await new Promise((r) => setTimeout(r, 400));
        return { payload: answer };
      });
      const { relay } = relayTo(e.url, 100);
      const payload = pb.FetchWaitRequest.encode({ recipientKey: new Uint8Array(32), timeoutMs: 5000 }).finish();

      const withoutExtra = await relay.call(request(Method.FetchWait, payload));
      const withExtra = await relay.call(request(Method.FetchWait, payload, { extraTimeoutMs: 10_000 }));

      expect(withoutExtra.status).toBe(Status.DeadlineExceeded);
      expect(withExtra.status).toBe(Status.Ok);
      expect(withExtra.payload).toEqual(answer);
    });
  });

  describe("an x-qpq-status the front cannot read is Internal", () => {
    it.each([
      ["non-numeric", "ok"],
      ["empty", ""],
      ["not a decimal integer", "0x0"],
      ["fractional", "0.5"],
      ["an unknown code", "7"],
      ["out of byte range", "256"],
      ["missing", null],
    ])("%s (%j)", async (_what, status) => {
      const e = await edge(() => ({ status, payload: new Uint8Array([1, 2]) }));
      const { relay } = relayTo(e.url);
      const res = await relay.call(request(Method.Health, new Uint8Array(0)));
      expect(res.status).toBe(Status.Internal);
    });

    it("while every known code passes through unchanged", async () => {
      const codes = Object.values(Status);
      let i = 0;
      const e = await edge(() => ({ status: String(codes[i++]) }));
      const { relay } = relayTo(e.url);
      const seen: number[] = [];
      for (let n = 0; n < codes.length; n++)
        seen.push((await relay.call(request(Method.Health, new Uint8Array(0)))).status);
      expect(seen).toEqual(codes);
    });
  });
});
