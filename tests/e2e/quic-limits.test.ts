// The QUIC listener's request limits over real QUIC: a request must arrive by its deadline, an
// answer must be taken by its deadline, and one connection's in-progress requests share a
// bounded buffer that grows with the bytes received. Other streams are never affected.
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  INITIAL_PAYLOAD_CAPACITY,
  MAX_PAYLOAD,
  Method,
  Status,
  decodeError,
  encodeRequest,
} from "../../proto/index.ts";
import { TransportError } from "../../sdk/transport.ts";
import { startTestFront, type TestFront, type TestFrontOptions } from "../support/quic-front.ts";
import { requestHeader } from "../support/frames.ts";
import { gate } from "../unit/support/test-edge.ts";

const EMPTY = new Uint8Array(0);
const KiB = 1024;

let front: TestFront | undefined;
afterEach(async () => {
  await front?.stop();
  front = undefined;
});

async function start(opts: TestFrontOptions): Promise<TestFront> {
  front = await startTestFront(opts);
  return front;
}

/** Samples the listener's request buffers until `done` settles; returns the largest values seen. */
async function peakBuffers(f: TestFront, done: Promise<unknown>): Promise<{ allocated: number; reserved: number }> {
  const peak = { allocated: 0, reserved: 0 };
  let finished = false;
  const stop = () => void (finished = true);
  // Both branches handled: `done` rejecting is the test's to report, not an unhandled rejection.
  done.then(stop, stop);
  while (!finished) {
    const now = f.listener.requestBuffers;
    peak.allocated = Math.max(peak.allocated, now.allocated);
    peak.reserved = Math.max(peak.reserved, now.reserved);
    await new Promise((r) => setTimeout(r, 5));
  }
  return peak;
}

/** RPCs of `method` the front has answered (its latency is recorded as the answer is made). */
function answered(f: TestFront, method: string): number {
  const m = new RegExp(`^rpc_latency_seconds_count\\{method="${method}"\\} (\\d+)$`, "m").exec(
    f.gateway.metrics.render(),
  );
  return m ? Number(m[1]) : 0;
}

describe("request deadline", () => {
  it("answers BadRequest with the request id when a payload never completes, while Health on the same connection succeeds", async () => {
    const f = await start({ limits: { transferTimeoutMs: 300 } });
    const t = await f.connect();
    const frame = encodeRequest(Method.Health, 4711, new Uint8Array(8));
    const stalled = t.rawExchange([frame.subarray(0, 13)], { fin: false });
    const health = await t.request(Method.Health, EMPTY);
    expect(health.status).toBe(Status.Ok);
    const res = await stalled;
    expect(res.status).toBe(Status.BadRequest);
    expect(res.requestId).toBe(4711);
    expect(decodeError(res.payload).message).toMatch(/did not arrive completely within \d+ ms/);
    // The connection is still fine, and nothing is left buffered.
    expect((await t.request(Method.Health, EMPTY)).status).toBe(Status.Ok);
    expect(f.listener.requestBuffers).toEqual({ allocated: 0, reserved: 0, waiting: 0 });
  });

  it("answers BadRequest when the header itself never completes", async () => {
    const f = await start({ limits: { transferTimeoutMs: 300 } });
    const t = await f.connect();
    const res = await t.rawExchange([Uint8Array.of(0, 100, 0, 0)], { fin: false });
    expect(res.status).toBe(Status.BadRequest);
    expect(res.requestId).toBe(0);
  });

  it("gives a large request time in proportion to its size", async () => {
    // 2 MiB at 64 KiB/s gets 300 ms + 32 s. The writer pauses past the flat 300 ms.
    const f = await start({ limits: { transferTimeoutMs: 300, minTransferBytesPerSecond: 64 * KiB } });
    const t = await f.connect();
    const paused = gate();
    const frame = encodeRequest(Method.Health, 8, new Uint8Array(2048 * KiB));
    const res = t.rawExchange([frame.subarray(0, 1000), paused.promise, frame.subarray(1000)]);
    // Resume well after the flat 300 ms would have expired.
    await new Promise((r) => setTimeout(r, 600));
    paused.open();
    const answer = await res;
    expect(answer.requestId).toBe(8);
    expect(answer.status).toBe(Status.Ok);
    expect(f.listener.timeouts.requests).toBe(0);
  });
});

describe("connection buffer", () => {
  it("keeps 200 headers announcing 4 MiB each from allocating their announced size", async () => {
    const budget = 16 * 1024 * KiB;
    const f = await start({
      limits: { transferTimeoutMs: 2000, minTransferBytesPerSecond: 1024 * 1024 * KiB, connectionBufferBytes: budget },
    });
    const t = await f.connect({ maxConcurrentRequests: 300 });
    // Each sends its header and one payload byte, then stalls.
    const stalled = Array.from({ length: 200 }, (_, i) =>
      t.rawExchange([requestHeader(Method.Health, i + 1, MAX_PAYLOAD), Uint8Array.of(1)], { fin: false }),
    );
    const all = Promise.all(stalled);
    const peak = peakBuffers(f, all);
    expect((await t.request(Method.Health, EMPTY)).status).toBe(Status.Ok);
    const answers = await all;
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => Status.BadRequest));
    expect(answers.map((a) => a.requestId).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    const { allocated, reserved } = await peak;
    // The old assembler allocated 200 × 4 MiB = 800 MiB here.
    expect(allocated).toBeLessThanOrEqual((budget / MAX_PAYLOAD) * INITIAL_PAYLOAD_CAPACITY);
    expect(reserved).toBeLessThanOrEqual(budget);
    expect(f.listener.requestBuffers).toEqual({ allocated: 0, reserved: 0, waiting: 0 });
  });

  it("holds a request back until the connection's buffer has room, without refusing it", async () => {
    const f = await start({ limits: { transferTimeoutMs: 60_000, connectionBufferBytes: 64 * KiB } });
    const t = await f.connect();
    const resume = gate();
    const big = encodeRequest(Method.Health, 1, new Uint8Array(60 * KiB));
    const first = t.rawExchange([big.subarray(0, 30 * KiB), resume.promise, big.subarray(30 * KiB)]);
    await vi.waitFor(() => expect(f.listener.requestBuffers.reserved).toBe(60 * KiB), { timeout: 30_000 });
    const second = t.request(Method.Health, new Uint8Array(20 * KiB));
    await vi.waitFor(() => expect(f.listener.requestBuffers.waiting).toBe(1), { timeout: 30_000 });
    // A request without payload never waits for room.
    expect((await t.request(Method.Health, EMPTY)).status).toBe(Status.Ok);
    resume.open();
    expect((await first).status).toBe(Status.Ok);
    expect((await second).status).toBe(Status.Ok);
    expect(f.listener.requestBuffers).toEqual({ allocated: 0, reserved: 0, waiting: 0 });
  });

  it("refuses at once a request larger than the whole connection buffer", async () => {
    const f = await start({ limits: { connectionBufferBytes: 64 * KiB } });
    const t = await f.connect();
    const res = await t.rawExchange([requestHeader(Method.Health, 99, 65 * KiB)], { fin: false });
    expect(res.status).toBe(Status.BadRequest);
    expect(res.requestId).toBe(99);
    expect(decodeError(res.payload).message).toContain("buffer of 65536 bytes");
  });
});

describe("answer deadline", () => {
  it("resets a stream whose answer the client does not take, and later answers still go out", async () => {
    const big = new Uint8Array(3 * 1024 * KiB);
    const f = await start({
      limits: { transferTimeoutMs: 300, minTransferBytesPerSecond: 1024 * 1024 * KiB },
      // A Health carrying one byte asks this edge for a large answer.
      edge: (call) => (call.body.length === 1 ? { payload: big } : {}),
    });
    const t = await f.connect();
    const reading = gate();
    // The client reads nothing: 3 MiB does not fit its 1 MiB stream window, so the write stalls.
    const unread = t.rawExchange([encodeRequest(Method.Health, 5, Uint8Array.of(1))], { readAfter: reading.promise });
    await vi.waitFor(() => expect(f.listener.timeouts.answers).toBe(1), { timeout: 60_000 });
    expect((await t.request(Method.Health, EMPTY)).status).toBe(Status.Ok);
    reading.open();
    await expect(unread).rejects.toBeInstanceOf(TransportError);
  });

  it("counts an answer's deadline from its turn to be written, not from while it waited behind another", async () => {
    // More than the client's 1 MiB stream window, so its write cannot finish until read.
    const big = new Uint8Array(1536 * KiB);
    const f = await start({
      // An empty answer has 300 ms once its turn comes; the big one 96 s.
      limits: { transferTimeoutMs: 300, minTransferBytesPerSecond: 16 * KiB },
      edge: (call) => (call.body.length === 1 ? { payload: big } : {}),
    });
    const t = await f.connect();
    const reading = gate();
    // Not read yet: this answer holds the connection's turn to write.
    const slow = t.rawExchange([encodeRequest(Method.Health, 5, Uint8Array.of(1))], { readAfter: reading.promise });
    // Counted as answered right before the answer takes its turn.
    await vi.waitFor(() => expect(answered(f, "Health")).toBe(1), { timeout: 60_000 });
    const quick = t.request(Method.Health, EMPTY);
    const both = Promise.allSettled([slow, quick]);
    await vi.waitFor(() => expect(answered(f, "Health")).toBe(2), { timeout: 60_000 });
    // The quick answer now waits behind the slow one for longer than its own 300 ms.
    await new Promise((r) => setTimeout(r, 1000));
    reading.open();
    expect((await both).map((r) => (r.status === "fulfilled" ? r.value.status : String(r.reason)))).toEqual([
      Status.Ok,
      Status.Ok,
    ]);
    expect(f.listener.timeouts.answers).toBe(0);
  });
});
