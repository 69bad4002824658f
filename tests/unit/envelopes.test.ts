// Wire sizes of delivery replies: the server's byte budget for Fetch, FetchWait and Peek must
// match what protobuf actually encodes, or a reply could overflow its frame.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { MAX_DELIVERY_PAYLOAD, MAX_PAYLOAD, envelopeWireSize, pb, varintSize } from "../../proto/index.ts";

const encodedSize = (envelopes: { seq: number; size: number }[]) =>
  pb.FetchResponse.encode({ payloads: envelopes.map((e) => ({ seq: e.seq, data: new Uint8Array(e.size) })) }).finish()
    .length;

describe("envelope wire sizes", () => {
  it("counts varints as protobuf writes them", () => {
    for (const [n, size] of [
      [0, 1],
      [127, 1],
      [128, 2],
      [16_383, 2],
      [16_384, 3],
      [2 ** 28 - 1, 4],
      [2 ** 28, 5],
      [Number.MAX_SAFE_INTEGER, 8],
    ]) {
      expect({ n, size: varintSize(n) }).toEqual({ n, size });
    }
  });

  it("equals the encoded size of any FetchResponse, envelope by envelope", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
            size: fc.integer({ min: 1, max: 70_000 }),
          }),
          { maxLength: 6 },
        ),
        (envelopes) => {
          const sum = envelopes.reduce((n, e) => n + envelopeWireSize(e.seq, e.size), 0);
          expect(sum).toBe(encodedSize(envelopes));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("is exact around the length-prefix boundaries", () => {
    for (const size of [
      1,
      125,
      126,
      127,
      128,
      16_370,
      16_371,
      16_380,
      16_384,
      2_097_140,
      2_097_152,
      MAX_DELIVERY_PAYLOAD,
    ]) {
      for (const seq of [1, 200, 2 ** 40]) expect(envelopeWireSize(seq, size)).toBe(encodedSize([{ seq, size }]));
    }
  });

  it("lets the largest delivery payload fit one frame alone, with any seq, and nothing larger", () => {
    expect(MAX_DELIVERY_PAYLOAD).toBe(4_194_283);
    expect(encodedSize([{ seq: Number.MAX_SAFE_INTEGER, size: MAX_DELIVERY_PAYLOAD }])).toBeLessThanOrEqual(
      MAX_PAYLOAD,
    );
    // A uint64 seq takes up to 10 bytes: one byte more and the worst case no longer fits.
    const worst = (size: number) => {
      const body = 1 + 10 + 1 + varintSize(size) + size;
      return 1 + varintSize(body) + body;
    };
    expect(worst(MAX_DELIVERY_PAYLOAD)).toBe(MAX_PAYLOAD);
    expect(worst(MAX_DELIVERY_PAYLOAD + 1)).toBeGreaterThan(MAX_PAYLOAD);
  });
});
