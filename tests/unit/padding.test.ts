// Padmé padding (sdk/padding.ts): known buckets from the PURB paper, the bound on overhead and on
// distinct sizes, and pad/unpad round trips for any message (property tests).
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { PaddingError, pad, padme, paddedLength, unpad } from "../../sdk/padding.ts";

describe("padme", () => {
  it("matches the PURB paper's buckets", () => {
    expect([0, 1, 2, 3, 4, 5, 8, 9, 10, 100, 1000, 1024, 1025].map(padme)).toEqual([
      0, 1, 2, 3, 4, 5, 8, 10, 10, 104, 1024, 1024, 1088,
    ]);
    expect(padme(2 ** 22)).toBe(2 ** 22);
    expect(padme(2 ** 22 + 1)).toBe(2 ** 22 + 2 ** 17);
  });

  it("never shrinks, adds at most 12 %, and leaves only the top bits of the length free", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 2 ** 30 }), (l) => {
        const p = padme(l);
        const e = Math.floor(Math.log2(l));
        const s = Math.floor(Math.log2(e)) + 1;
        expect(p).toBeGreaterThanOrEqual(l);
        expect((p - l) / l).toBeLessThanOrEqual(0.12);
        expect(p % 2 ** Math.max(0, e - s)).toBe(0);
        expect(padme(p)).toBe(p); // a bucket is its own bucket
      }),
    );
  });

  it("maps the lengths up to 64 KiB onto few buckets", () => {
    const buckets = new Set(Array.from({ length: 65536 }, (_, i) => padme(i + 1)));
    expect(buckets.size).toBeLessThan(700);
  });
});

describe("pad / unpad", () => {
  it("round-trips any message, trailing zeros and 0x80 bytes included", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 3000 }),
          fc.uint8Array({ maxLength: 40 }).map((b) => Uint8Array.from([...b, 0x80, 0, 0])),
        ),
        (m) => {
          const p = pad(m);
          expect(p.length).toBe(paddedLength(m.length));
          expect(Buffer.from(unpad(p)).equals(Buffer.from(m))).toBe(true);
        },
      ),
    );
  });

  it("gives every message of one bucket the same padded size", () => {
    expect(pad(new Uint8Array(96)).length).toBe(pad(new Uint8Array(100)).length);
  });

  it("refuses input without the marker or outside the message's bucket", () => {
    expect(() => unpad(new Uint8Array(0))).toThrow(PaddingError);
    expect(() => unpad(new Uint8Array(8))).toThrow(PaddingError);
    expect(() => unpad(Uint8Array.from([1, 2, 3, 0]))).toThrow(PaddingError);
    // 0x80 then more zeros than the bucket of a 1-byte message holds.
    expect(() => unpad(Uint8Array.from([7, 0x80, 0, 0, 0, 0, 0, 0]))).toThrow(/bucket/);
  });
});
