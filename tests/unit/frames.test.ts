import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  FrameError, MAX_PAYLOAD, RequestAssembler, ResponseAssembler, PushAssembler, decodeRequest, decodeResponse,
  decodePush, encodeRequest, encodeResponse, encodePush,
} from "../../proto/index.ts";
import { requestHeader } from "../support/frames.ts";


describe("request frames", () => {
  it("encodes the 10-byte big-endian header", () => {
    const f = encodeRequest(0x0102, 0x03040506, Uint8Array.of(9, 8));
    expect([...f]).toEqual([1, 2, 3, 4, 5, 6, 0, 0, 0, 2, 9, 8]);
  });

  it("round-trips any frame split at any points", () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffffffff }),
      fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 8 }),
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
      }));
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
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 6 }), (chunks) => {
      const a = new RequestAssembler();
      for (const c of chunks) if (a.push(c)) break;
      const r = a.finish();
      expect(r instanceof FrameError || typeof r.methodId === "number").toBe(true);
    }));
  });

  it("refuses to encode an oversized payload", () => {
    expect(() => encodeRequest(1, 1, new Uint8Array(MAX_PAYLOAD + 1))).toThrow(RangeError);
  });
});

describe("response and push frames", () => {
  it("round-trip", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ maxLength: 200 }),
      (status, requestId, payload) => {
        expect(decodeResponse(encodeResponse(status, requestId, payload))).toEqual({ status, requestId, payload });
        expect(decodePush(encodePush(status + 1000, payload))).toEqual({ eventType: status + 1000, payload });
      }));
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
