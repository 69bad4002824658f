import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  FrameError,
  INITIAL_PAYLOAD_CAPACITY,
  MAX_PAYLOAD,
  RequestAssembler,
  ResponseAssembler,
  PushAssembler,
  decodeRequest,
  decodeResponse,
  decodePush,
  encodeRequest,
  encodeResponse,
  encodePush,
} from "../../proto/index.ts";
import { requestHeader } from "../support/frames.ts";

describe("request frames", () => {
  it("encodes the 10-byte big-endian header", () => {
    const f = encodeRequest(0x0102, 0x03040506, Uint8Array.of(9, 8));
    expect([...f]).toEqual([1, 2, 3, 4, 5, 6, 0, 0, 0, 2, 9, 8]);
  });

  it("round-trips any frame split at any points", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (methodId, requestId, payload, cuts) => {
          const bytes = encodeRequest(methodId, requestId, payload);
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const a = new RequestAssembler();
          let at = 0;
          for (const p of [...points, bytes.length]) {
            expect(a.push(bytes.subarray(at, p))).toBeUndefined();
            at = p;
          }
          const frame = a.finish();
          expect(frame).not.toBeInstanceOf(FrameError);
          expect(frame).toEqual({ methodId, requestId, payload });
        },
      ),
    );
  });

  it("accepts exactly 4 MiB", () => {
    const a = new RequestAssembler();
    expect(a.push(requestHeader(200, 1, MAX_PAYLOAD))).toBeUndefined();
    expect(a.push(new Uint8Array(MAX_PAYLOAD))).toBeUndefined();
    const f = a.finish();
    expect(f).not.toBeInstanceOf(FrameError);
    expect((f as { payload: Uint8Array }).payload.length).toBe(MAX_PAYLOAD);
  });

  it("refuses 4 MiB + 1 from the header alone, keeping the request id", () => {
    const a = new RequestAssembler();
    const err = a.push(requestHeader(200, 77, MAX_PAYLOAD + 1));
    expect(err).toBeInstanceOf(FrameError);
    expect(err?.code).toBe("oversized");
    expect(err?.requestId).toBe(77);
    // Later bytes do not change the verdict and are not buffered.
    expect(a.push(new Uint8Array(1024))).toBe(err);
  });

  it("refuses a truncated header, a truncated payload and trailing bytes", () => {
    const full = encodeRequest(1, 2, Uint8Array.of(1, 2, 3));
    expect((decodeRequest(full.subarray(0, 5)) as FrameError).code).toBe("truncated-header");
    expect((decodeRequest(full.subarray(0, 12)) as FrameError).code).toBe("truncated-payload");
    expect((decodeRequest(new Uint8Array(0)) as FrameError).code).toBe("truncated-header");
    const trailing = new Uint8Array(full.length + 1);
    trailing.set(full);
    const err = decodeRequest(trailing) as FrameError;
    expect(err.code).toBe("trailing-bytes");
    expect(err.requestId).toBe(2);
  });

  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 6 }), (chunks) => {
        const a = new RequestAssembler();
        for (const c of chunks) if (a.push(c)) break;
        const r = a.finish();
        expect(r instanceof FrameError || typeof r.methodId === "number").toBe(true);
      }),
    );
  });

  it("refuses to encode an oversized payload", () => {
    expect(() => encodeRequest(1, 1, new Uint8Array(MAX_PAYLOAD + 1))).toThrow(RangeError);
  });
});

describe("response and push frames", () => {
  it("round-trip", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.uint8Array({ maxLength: 200 }),
        (status, requestId, payload) => {
          expect(decodeResponse(encodeResponse(status, requestId, payload))).toEqual({ status, requestId, payload });
          expect(decodePush(encodePush(status + 1000, payload))).toEqual({ eventType: status + 1000, payload });
        },
      ),
    );
  });

  it("use 9- and 6-byte headers", () => {
    expect(encodeResponse(3, 1, new Uint8Array(0)).length).toBe(9);
    expect(encodePush(1000, new Uint8Array(0)).length).toBe(6);
    const r = new ResponseAssembler();
    expect(r.push(Uint8Array.of(0, 0, 0, 0, 1, 0, 0x40, 0, 1))?.code).toBe("oversized");
    const p = new PushAssembler();
    expect(p.push(Uint8Array.of(3, 232, 0, 0x40, 0, 1))?.code).toBe("oversized");
  });
});

/** Feeds `bytes` cut at the given points (sorted, within bounds). */
function pushCut<A extends { push(c: Uint8Array): FrameError | undefined }>(
  a: A,
  bytes: Uint8Array,
  points: number[],
): void {
  let at = 0;
  for (const p of [...points, bytes.length]) {
    expect(a.push(bytes.subarray(at, p))).toBeUndefined();
    at = p;
  }
}

describe("assembler memory", () => {
  it("allocates nothing for a header alone, however much it announces", () => {
    const assemblers = Array.from({ length: 200 }, (_, i) => {
      const a = new RequestAssembler();
      expect(a.push(requestHeader(1, i, MAX_PAYLOAD))).toBeUndefined();
      return a;
    });
    expect(assemblers.reduce((n, a) => n + a.allocated, 0)).toBe(0);
    // One payload byte each costs the initial buffer, not the announced 4 MiB.
    for (const a of assemblers) a.push(Uint8Array.of(7));
    expect(assemblers.reduce((n, a) => n + a.allocated, 0)).toBe(200 * INITIAL_PAYLOAD_CAPACITY);
  });

  it("grows with the bytes received: never more than max(initial, 2 × received), never more than announced", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 200_000 }),
        fc.array(fc.integer({ min: 1, max: 40_000 }), { minLength: 1, maxLength: 30 }),
        (announced, sizes) => {
          const a = new RequestAssembler();
          a.push(requestHeader(1, 1, announced));
          let received = 0;
          for (const size of sizes) {
            const n = Math.min(size, announced - received);
            if (n === 0) break;
            expect(a.push(new Uint8Array(n).fill(received & 0xff))).toBeUndefined();
            received += n;
            expect(a.allocated).toBeLessThanOrEqual(Math.max(INITIAL_PAYLOAD_CAPACITY, 2 * received));
            expect(a.allocated).toBeLessThanOrEqual(announced);
            expect(a.allocated).toBeGreaterThanOrEqual(received);
          }
          if (received === announced) {
            const f = a.finish() as { payload: Uint8Array };
            expect(f.payload.length).toBe(announced);
            expect(a.allocated).toBe(announced);
          }
        },
      ),
    );
  });

  it("copies a payload that arrives in one chunk once, into a buffer of exactly its size", () => {
    const frame = encodeRequest(3, 4, new Uint8Array(100_000).fill(5));
    const a = new RequestAssembler();
    a.push(frame.subarray(0, 10));
    a.push(frame.subarray(10));
    expect(a.allocated).toBe(100_000);
    // The frame does not alias the reader's chunk, which the transport may reuse.
    frame.fill(0);
    const f = a.finish() as { payload: Uint8Array };
    expect(f.payload.every((b) => b === 5)).toBe(true);
    expect(f.payload.byteLength).toBe(f.payload.buffer.byteLength);
  });

  it("assembles a large payload split at random points, across every doubling", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 150_000 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (payload, cuts) => {
          const bytes = encodeRequest(9, 10, payload);
          const a = new RequestAssembler();
          pushCut(
            a,
            bytes,
            [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y),
          );
          expect(a.finish()).toEqual({ methodId: 9, requestId: 10, payload });
        },
      ),
      { numRuns: 40 },
    );
  });

  it("assembles a frame split into two pieces at every position", () => {
    const payload = Uint8Array.from({ length: 40 }, (_, i) => i * 7);
    const bytes = encodeRequest(0xbeef, 0xdeadbeef, payload);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const a = new RequestAssembler();
      pushCut(a, bytes, [cut]);
      expect(a.finish()).toEqual({ methodId: 0xbeef, requestId: 0xdeadbeef, payload });
    }
    const response = encodeResponse(4, 77, payload);
    for (let cut = 0; cut <= response.length; cut++) {
      const r = new ResponseAssembler();
      pushCut(r, response, [cut]);
      expect(r.finish()).toEqual({ status: 4, requestId: 77, payload });
    }
    const push = encodePush(1001, payload);
    for (let cut = 0; cut <= push.length; cut++) {
      const p = new PushAssembler();
      pushCut(p, push, [cut]);
      expect(p.finish()).toEqual({ eventType: 1001, payload });
    }
  });

  it("reports the header's progress and announced length", () => {
    const a = new RequestAssembler();
    expect(a.headerRemaining).toBe(10);
    expect(a.payloadLength).toBeUndefined();
    a.push(requestHeader(1, 2, 300).subarray(0, 4));
    expect(a.headerRemaining).toBe(6);
    a.push(requestHeader(1, 2, 300).subarray(4));
    expect(a.headerRemaining).toBe(0);
    expect(a.payloadLength).toBe(300);
    expect(a.complete).toBe(false);
  });
});

describe("failing an assembler", () => {
  it("echoes the request id once the header is in and frees the buffer", () => {
    const a = new RequestAssembler();
    a.push(requestHeader(1, 4242, 1000));
    a.push(new Uint8Array(500));
    expect(a.allocated).toBeGreaterThan(0);
    const err = a.fail("timeout", "too slow");
    expect(err).toBeInstanceOf(FrameError);
    expect(err.code).toBe("timeout");
    expect(err.requestId).toBe(4242);
    expect(a.allocated).toBe(0);
    expect(a.complete).toBe(false);
    // The first verdict stands; later bytes are neither buffered nor change it.
    expect(a.fail("over-budget", "x")).toBe(err);
    expect(a.push(new Uint8Array(500))).toBe(err);
    expect(a.allocated).toBe(0);
    expect(a.finish()).toBe(err);
  });

  it("has no request id to echo while the header is incomplete", () => {
    const a = new RequestAssembler();
    a.push(Uint8Array.of(0, 1, 0));
    expect(a.fail("timeout", "too slow").requestId).toBeUndefined();
  });

  it("frees the buffer on trailing bytes", () => {
    const a = new RequestAssembler();
    a.push(requestHeader(1, 5, 20_000));
    a.push(new Uint8Array(19_000));
    expect(a.push(new Uint8Array(2_000))?.code).toBe("trailing-bytes");
    expect(a.allocated).toBe(0);
  });
});
