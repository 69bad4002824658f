import { describe, expect, it } from "vitest";
import { ByteBudget } from "../../quic-front/byte-budget.ts";

/** Whether a promise has settled (after pending microtasks ran). */
async function settled<T>(p: Promise<T>): Promise<{ value: T } | undefined> {
  let out: { value: T } | undefined;
  void p.then((value) => (out = { value }));
  await new Promise((r) => setImmediate(r));
  return out;
}

describe("ByteBudget", () => {
  it("grants at once what fits", async () => {
    const b = new ByteBudget(100);
    expect(await b.acquire(60)).toBe(true);
    expect(await b.acquire(40)).toBe(true);
    expect(b.used).toBe(100);
    expect(b.waiting).toBe(0);
  });

  it("makes a reservation that does not fit wait until bytes are released, first come first served", async () => {
    const b = new ByteBudget(100);
    await b.acquire(90);
    const first = b.acquire(50);
    const second = b.acquire(5); // would fit, but waits behind the first
    expect(await settled(first)).toBeUndefined();
    expect(await settled(second)).toBeUndefined();
    expect(b.waiting).toBe(2);
    b.release(90);
    expect(await settled(first)).toEqual({ value: true });
    expect(await settled(second)).toEqual({ value: true });
    expect(b.used).toBe(55);
  });

  it("refuses a reservation larger than the whole limit", async () => {
    const b = new ByteBudget(100);
    expect(await b.acquire(101)).toBe(false);
    expect(b.used).toBe(0);
  });

  it("withdraws an aborted reservation, and lets the ones behind it proceed", async () => {
    const b = new ByteBudget(100);
    await b.acquire(60);
    const abort = new AbortController();
    const big = b.acquire(80, abort.signal);
    const small = b.acquire(30);
    abort.abort();
    expect(await big).toBe(false);
    expect(await settled(small)).toEqual({ value: true });
    expect(b.used).toBe(90);
    expect(b.waiting).toBe(0);
    // An already-aborted signal reserves nothing.
    expect(await b.acquire(1, abort.signal)).toBe(false);
  });

  it("never goes below zero", () => {
    const b = new ByteBudget(10);
    b.release(5);
    expect(b.used).toBe(0);
    expect(() => new ByteBudget(0)).toThrow(RangeError);
  });
});
