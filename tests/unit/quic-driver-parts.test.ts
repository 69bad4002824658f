// The lean QUIC driver's pure parts: the one timer heap and the stateless retry tokens.
import { describe, expect, it } from "vitest";
import { RetryTokens } from "../../quic-front/quic/retry-token.ts";
import { TimerHeap } from "../../quic/timer-heap.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("timer heap", () => {
  it("fires entries in deadline order, skips cancelled ones, and reports each batch", async () => {
    let now = 0;
    const fired: string[] = [];
    let batches = 0;
    const heap = new TimerHeap(
      () => batches++,
      () => now,
    );
    heap.after(30, () => fired.push("c"));
    const b = heap.after(20, () => fired.push("b"));
    heap.after(10, () => fired.push("a"));
    heap.after(10, () => fired.push("a2"));
    heap.cancel(b);
    now = 100; // every deadline is past: the single Node timer fires them all at once
    await sleep(50);
    expect(fired.sort()).toEqual(["a", "a2", "c"]);
    expect(batches).toBe(1);
    expect(heap.size).toBe(0);
    heap.close();
  });

  it("keeps the heap small when entries are replaced many times", () => {
    const heap = new TimerHeap(
      () => {},
      () => 0,
    );
    let e = heap.after(1_000, () => {});
    for (let i = 0; i < 10_000; i++) {
      heap.cancel(e);
      e = heap.after(1_000 + i, () => {});
    }
    expect(heap.size).toBeLessThan(200);
    heap.close();
  });
});

describe("retry tokens", () => {
  const odcid = Buffer.from("0123456789abcdef0123", "hex");

  it("returns the original connection id for the address and port it was minted for", () => {
    const tokens = new RetryTokens();
    const t = tokens.mint(odcid, "127.0.0.1", 4000);
    expect(tokens.validate(t, "127.0.0.1", 4000)?.equals(odcid)).toBe(true);
  });

  it("refuses another address or port, a tampered token, another key, and an expired token", () => {
    let now = 1_000_000;
    const tokens = new RetryTokens({ lifetimeMs: 10_000, now: () => now });
    const t = tokens.mint(odcid, "127.0.0.1", 4000);
    expect(tokens.validate(t, "127.0.0.2", 4000)).toBeUndefined();
    expect(tokens.validate(t, "127.0.0.1", 4001)).toBeUndefined();
    const tampered = Buffer.from(t);
    tampered[12] ^= 1;
    expect(tokens.validate(tampered, "127.0.0.1", 4000)).toBeUndefined();
    expect(tokens.validate(t.subarray(0, t.length - 1), "127.0.0.1", 4000)).toBeUndefined();
    expect(new RetryTokens({ now: () => now }).validate(t, "127.0.0.1", 4000)).toBeUndefined();
    now += 10_001;
    expect(tokens.validate(t, "127.0.0.1", 4000)).toBeUndefined();
  });
});
