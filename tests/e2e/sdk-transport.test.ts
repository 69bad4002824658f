// The SDK's QUIC transport over real QUIC: it queues requests beyond what the server grants and
// turns every transport failure into a rejected promise, never an uncaught exception.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Method, Status, encodeRequest, encodeResponse } from "../../proto/index.ts";
import { QuicTransport, TransportError } from "../../sdk/transport.ts";
import { generateDevCa } from "../../quic-front/cert.ts";
import { serverNameFor } from "../../quic/client.ts";
import { startTestFront, type TestFront } from "../support/quic-front.ts";
import { answer, startQuicPeer, type QuicPeer, type StreamScript } from "../support/quic-peer.ts";
import { gate } from "../unit/support/test-edge.ts";

const EMPTY = new Uint8Array(0);

/** Records every uncaught exception and unhandled rejection while a test runs. */
function processFailures(): { failures: unknown[]; stop(): void } {
  const failures: unknown[] = [];
  const record = (err: unknown) => void failures.push(err);
  process.on("uncaughtException", record);
  process.on("unhandledRejection", record);
  return {
    failures,
    stop() {
      process.off("uncaughtException", record);
      process.off("unhandledRejection", record);
    },
  };
}

let watch: ReturnType<typeof processFailures>;
beforeEach(() => {
  watch = processFailures();
});
afterEach(async () => {
  // Late library callbacks (stream cleanup after a reset) run on later ticks.
  await new Promise((r) => setTimeout(r, 50));
  watch.stop();
  expect(watch.failures.map(String)).toEqual([]);
});

describe("many concurrent requests on one connection", () => {
  let front: TestFront;
  beforeAll(async () => {
    // The per-connection rate limit would refuse some of 3,000 requests; this test is about streams.
    front = await startTestFront({ env: { QPQ_RPC_BURST: "100000", QPQ_RPC_PER_SECOND: "100000" } });
  });
  afterAll(async () => {
    await front?.stop();
  });

  it("serves 3,000 concurrent Health requests; the rest wait for a stream instead of breaking the connection", async () => {
    const t = await front.connect({ requestTimeoutMs: 600_000 });
    const all = Array.from({ length: 3000 }, () => t.request(Method.Health, EMPTY));
    expect(t.requests.inFlight).toBeLessThanOrEqual(100);
    expect(t.requests.queued).toBeGreaterThan(2000);
    const results = await Promise.all(all);
    expect(results.filter((r) => r.status === Status.Ok).length).toBe(3000);
    expect(new Set(results.map((r) => r.requestId)).size).toBe(3000);
    expect(t.requests).toEqual({ inFlight: 0, queued: 0 });
    // Still one healthy connection.
    expect((await t.request(Method.Health, EMPTY)).status).toBe(Status.Ok);
  }, 600_000);
});

describe("connecting", () => {
  it("refuses a server whose certificate the pinned CA did not sign, with a TransportError", async () => {
    const front = await startTestFront();
    try {
      const other = await generateDevCa();
      await expect(
        QuicTransport.connect({ host: "127.0.0.1", port: front.port, ca: other.caPem, connectTimeoutMs: 20_000 }),
      ).rejects.toBeInstanceOf(TransportError);
      expect(front.gateway.openConnections).toBe(0);
      // The right CA connects.
      const t = await front.connect();
      expect((await t.request(Method.Health, EMPTY)).status).toBe(Status.Ok);
    } finally {
      await front.stop();
    }
  }, 60_000);
});

describe("connecting by name", () => {
  it("resolves localhost to the front's IPv4 listener and checks the certificate for that name", async () => {
    const front = await startTestFront();
    try {
      const t = await QuicTransport.connect({ host: "localhost", port: front.port, ca: front.certPem });
      expect((await t.request(Method.Health, EMPTY)).status).toBe(Status.Ok);
      await t.close();
    } finally {
      await front.stop();
    }
  }, 60_000);

  it("sends the host as the certificate name, or localhost for an address", () => {
    expect(serverNameFor({ host: "chat.example.com" })).toBe("chat.example.com");
    expect(serverNameFor({ host: "127.0.0.1" })).toBe("localhost");
    expect(serverNameFor({ host: "::1" })).toBe("localhost");
    expect(serverNameFor({ host: "127.0.0.1", serverName: "chat.example.com" })).toBe("chat.example.com");
  });
});

describe("a server that grants few streams", () => {
  let front: TestFront;
  beforeAll(async () => {
    front = await startTestFront({ env: { QPQ_MAX_STREAMS: "10" } });
  });
  afterAll(async () => {
    await front?.stop();
  });

  it("never opens more streams than the server grants, even below its own cap", async () => {
    const t = await front.connect({ maxConcurrentRequests: 100, requestTimeoutMs: 600_000 });
    const results = await Promise.all(Array.from({ length: 300 }, () => t.request(Method.Health, EMPTY)));
    expect(results.every((r) => r.status === Status.Ok)).toBe(true);
  }, 600_000);
});

describe("a misbehaving server", () => {
  /** Method ids select what the peer does, so one connection can mix behaviours. */
  const Reset = 1;
  const HalfAnswer = 3;
  const Silent = 4;
  const CloseConnection = 5;
  const AnswerThenReset = 6;
  const script: StreamScript = async (stream, frame, conn) => {
    switch (frame.methodId) {
      case Reset:
        stream.cancel(new Error("reset by the test peer"));
        return;
      case HalfAnswer: {
        const writer = stream.writable.getWriter();
        await writer.write(Uint8Array.of(0, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2)); // announces 9 bytes, sends 2
        writer.releaseLock();
        stream.cancel(new Error("gone"));
        return;
      }
      case Silent:
        return; // never answers
      case CloseConnection:
        await conn.stop({ isApp: true, errorCode: 7, force: true });
        return;
      case AnswerThenReset: {
        // A whole answer without FIN, then a reset once the client has (probably) read it.
        const writer = stream.writable.getWriter();
        await writer.write(encodeResponse(Status.Ok, frame.requestId, EMPTY));
        writer.releaseLock();
        await new Promise((r) => setTimeout(r, 50));
        stream.cancel(new Error("reset after answering"));
        return;
      }
      default:
        await answer(stream, frame);
    }
  };
  let peer: QuicPeer;
  const transports: QuicTransport[] = [];
  const connect = async (
    opts: { requestTimeoutMs?: number; maxConcurrentRequests?: number; maxQueuedRequests?: number } = {},
  ) => {
    const t = await QuicTransport.connect({ host: "127.0.0.1", port: peer.port, ca: peer.certPem, ...opts });
    transports.push(t);
    return t;
  };
  beforeAll(async () => {
    peer = await startQuicPeer(script);
  });
  afterAll(async () => {
    await Promise.allSettled(transports.map((t) => t.close()));
    await peer?.stop();
  });

  it("rejects a request whose stream the server resets, and keeps the connection", async () => {
    const t = await connect();
    const settled = await Promise.allSettled([
      ...Array.from({ length: 20 }, () => t.request(Reset, EMPTY)),
      ...Array.from({ length: 20 }, () => t.request(HalfAnswer, EMPTY)),
      ...Array.from({ length: 20 }, () => t.request(Method.Health, EMPTY)),
    ]);
    for (const s of settled.slice(0, 40)) {
      expect(s.status).toBe("rejected");
      expect((s as PromiseRejectedResult).reason).toBeInstanceOf(TransportError);
    }
    for (const s of settled.slice(40)) expect(s.status).toBe("fulfilled");
    expect((await t.request(Method.Health, EMPTY)).status).toBe(Status.Ok);
  });

  it("leaks no rejection when the server resets a stream the client is not reading yet, or has read", async () => {
    // The watch in afterEach fails the test on any unhandled rejection.
    const t = await connect();
    const reading = gate();
    const notRead = [
      t.rawExchange([encodeRequest(Reset, 1, EMPTY)], { readAfter: reading.promise }),
      t.rawExchange([encodeRequest(Reset, 2, EMPTY)], { readAfter: reading.promise, fin: false }),
    ];
    const settled = Promise.allSettled(notRead);
    const read = await Promise.allSettled([
      t.request(AnswerThenReset, EMPTY),
      t.rawExchange([encodeRequest(AnswerThenReset, 3, EMPTY)], { fin: false }),
    ]);
    // Read before the reset: answered; a reset that overtook the answer: a TransportError.
    for (const r of read) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(TransportError);
    // Let the resets of the unread streams arrive before anyone reads them.
    await new Promise((r) => setTimeout(r, 200));
    reading.open();
    for (const r of await settled) expect(r.status === "rejected" && r.reason).toBeInstanceOf(TransportError);
    expect((await t.request(Method.Health, EMPTY)).status).toBe(Status.Ok);
  });

  it("rejects at the deadline, in flight or still queued, and frees the slot", async () => {
    const t = await connect({ requestTimeoutMs: 300, maxConcurrentRequests: 1 });
    const silent = t.request(Silent, EMPTY);
    const queued = t.request(Silent, EMPTY);
    expect(t.requests).toEqual({ inFlight: 1, queued: 1 });
    await expect(silent).rejects.toThrow(/no answer to method 4 within 300 ms/);
    await expect(queued).rejects.toBeInstanceOf(TransportError);
    expect(t.requests).toEqual({ inFlight: 0, queued: 0 });
  });

  it("refuses at once beyond the queue limit", async () => {
    const t = await connect({ requestTimeoutMs: 300, maxConcurrentRequests: 1, maxQueuedRequests: 1 });
    const first = t.request(Silent, EMPTY);
    const second = t.request(Silent, EMPTY);
    await expect(t.request(Method.Health, EMPTY)).rejects.toThrow(/too many requests waiting/);
    await Promise.allSettled([first, second]);
  });

  it("rejects every in-flight and queued request when the server closes the connection", async () => {
    const t = await connect({ maxConcurrentRequests: 5 });
    const silent = Array.from({ length: 4 }, () => t.request(Silent, EMPTY));
    const closer = t.request(CloseConnection, EMPTY);
    const queued = Array.from({ length: 20 }, () => t.request(Method.Health, EMPTY));
    expect(t.requests).toEqual({ inFlight: 5, queued: 20 });
    const settled = await Promise.allSettled([...silent, closer, ...queued]);
    for (const s of settled) {
      expect(s.status).toBe("rejected");
      expect((s as PromiseRejectedResult).reason).toBeInstanceOf(TransportError);
    }
    await expect(t.request(Method.Health, EMPTY)).rejects.toBeInstanceOf(TransportError);
  });

  it("rejects requests made after close()", async () => {
    const t = await connect();
    await t.close();
    await expect(t.request(Method.Health, EMPTY)).rejects.toBeInstanceOf(TransportError);
  });
});
