// Per-sender enqueue rate (proto/util/token-bucket.ts), with time as a parameter.
import { describe, it, expect } from "vitest";
import { TokenBuckets } from "../../proto/util/token-bucket.ts";

const spend = (b: TokenBuckets, key: string, now: number, n: number) => {
  for (let i = 0; i < n; i++) {
    expect(b.waitMs(key, now)).toBe(0);
    b.take(key, now);
  }
};

describe("TokenBuckets", () => {
  it("allows a burst, then refuses with the time until the next token", () => {
    const b = new TokenBuckets({ burst: 3, perMinute: 60, maxKeys: 10 });
    spend(b, "a", 0, 3);
    expect(b.waitMs("a", 0)).toBe(1_000);
    expect(b.waitMs("a", 400)).toBe(600);
    expect(b.waitMs("a", 1_000)).toBe(0);
  });

  it("refills at the configured rate, never above the burst", () => {
    const b = new TokenBuckets({ burst: 2, perMinute: 30, maxKeys: 10 });
    spend(b, "a", 0, 2);
    spend(b, "a", 2_000, 1);
    expect(b.waitMs("a", 2_000)).toBe(2_000);
    spend(b, "a", 3_600_000, 2); // an hour later: full again, but only 2
    expect(b.waitMs("a", 3_600_000)).toBeGreaterThan(0);
  });

  it("keeps keys apart", () => {
    const b = new TokenBuckets({ burst: 1, perMinute: 1, maxKeys: 10 });
    spend(b, "a", 0, 1);
    expect(b.waitMs("a", 0)).toBe(60_000);
    expect(b.waitMs("b", 0)).toBe(0);
  });

  it("gives back a refunded token", () => {
    const b = new TokenBuckets({ burst: 1, perMinute: 1, maxKeys: 10 });
    spend(b, "a", 0, 1);
    b.refund("a", 0);
    expect(b.waitMs("a", 0)).toBe(0);
    b.refund("a", 0);
    spend(b, "a", 0, 1); // refunds never exceed the burst
    expect(b.waitMs("a", 0)).toBeGreaterThan(0);
  });

  it("tracks at most maxKeys keys, dropping the least recently active", () => {
    const b = new TokenBuckets({ burst: 1, perMinute: 1, maxKeys: 2 });
    spend(b, "a", 0, 1);
    spend(b, "b", 1, 1);
    b.take("a", 2); // a is now the most recent
    spend(b, "c", 3, 1);
    expect(b.size).toBe(2);
    expect(b.waitMs("b", 3)).toBe(0); // dropped: a full bucket again
    expect(b.waitMs("a", 3)).toBeGreaterThan(0);
    expect(b.waitMs("c", 3)).toBeGreaterThan(0);
  });
});
