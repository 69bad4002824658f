import { describe, expect, it } from "vitest";
import { RequestSlots, TransportError } from "../../sdk/request-slots.ts";

async function settled<T>(p: Promise<T>): Promise<PromiseSettledResult<T> | undefined> {
  let out: PromiseSettledResult<T> | undefined;
  p.then(
    (value) => (out = { status: "fulfilled", value }),
    (reason: unknown) => (out = { status: "rejected", reason }),
  );
  await new Promise((r) => setImmediate(r));
  return out;
}

const start = () => "stream";

describe("RequestSlots", () => {
  it("starts up to maxInFlight at once and queues the rest in order", async () => {
    const s = new RequestSlots({ maxInFlight: 2, maxQueued: 10 });
    const a = await s.acquire(start);
    await s.acquire(start);
    const order: number[] = [];
    const c = s.acquire(() => order.push(3));
    const d = s.acquire(() => order.push(4));
    expect({ inFlight: s.inFlight, queued: s.queued }).toEqual({ inFlight: 2, queued: 2 });
    a.release();
    a.release(); // twice is harmless
    await c;
    expect(order).toEqual([3]);
    expect(await settled(d)).toBeUndefined();
    expect(s.inFlight).toBe(2);
  });

  it("refuses at once beyond maxQueued", async () => {
    const s = new RequestSlots({ maxInFlight: 1, maxQueued: 1 });
    await s.acquire(start);
    void s.acquire(start);
    await expect(s.acquire(start)).rejects.toThrow(/too many requests waiting/);
  });

  it("drops a queued request whose signal aborts, with the signal's reason", async () => {
    const s = new RequestSlots({ maxInFlight: 1, maxQueued: 5 });
    await s.acquire(start);
    const abort = new AbortController();
    const queued = s.acquire(start, abort.signal);
    abort.abort(new TransportError("deadline"));
    await expect(queued).rejects.toThrow("deadline");
    expect(s.queued).toBe(0);
  });

  it("rejects queued and later requests once closed", async () => {
    const s = new RequestSlots({ maxInFlight: 1, maxQueued: 5 });
    await s.acquire(start);
    const queued = s.acquire(start);
    s.close(new TransportError("gone"));
    await expect(queued).rejects.toThrow("gone");
    await expect(s.acquire(start)).rejects.toThrow("gone");
  });

  it("frees the slot when starting throws, and rejects with that error", async () => {
    const s = new RequestSlots({ maxInFlight: 1, maxQueued: 5 });
    await expect(
      s.acquire(() => {
        throw new TransportError("no stream");
      }),
    ).rejects.toThrow("no stream");
    expect(s.inFlight).toBe(0);
    const held = await s.acquire(start);
    const queued = s.acquire(() => {
      throw new TransportError("still no stream");
    });
    const after = s.acquire(start);
    held.release();
    await expect(queued).rejects.toThrow("still no stream");
    expect((await after).value).toBe("stream");
  });

  it("waits while the connection cannot take a request, even below maxInFlight", async () => {
    let credit = 1;
    const s = new RequestSlots({ maxInFlight: 10, maxQueued: 10, canStart: () => credit > 0, recheckMs: 1 });
    await s.acquire(() => credit--);
    const next = s.acquire(() => credit--);
    expect(await settled(next)).toBeUndefined();
    credit = 1; // the peer granted a stream; no event says so
    await next;
    expect(credit).toBe(0);
    expect(s.inFlight).toBe(2);
  });
});
