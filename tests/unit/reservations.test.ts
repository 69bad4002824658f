// BatchEnqueue reservations of one queue (edge/lib/reservations.ts), with time as a parameter.
import { describe, it, expect } from "vitest";
import { Reservations } from "../../edge/lib/reservations.ts";

describe("Reservations", () => {
  it("holds room per sender until taken", () => {
    const r = new Reservations();
    r.hold("r1", "alice", 100, 30_000);
    r.hold("r2", "alice", 50, 30_000);
    r.hold("r3", "bob", 7, 30_000);
    expect({ count: r.count, bytes: r.bytes }).toEqual({ count: 3, bytes: 157 });
    expect(r.heldBy("alice")).toEqual({ count: 2, bytes: 150 });
    expect(r.take("r1", 1_000)).toMatchObject({ sender: "alice", size: 100 });
    expect(r.take("r1", 1_000)).toBeUndefined(); // single use
    expect(r.heldBy("alice")).toEqual({ count: 1, bytes: 50 });
    expect({ count: r.count, bytes: r.bytes }).toEqual({ count: 2, bytes: 57 });
  });

  it("frees room nobody committed once it expires", () => {
    const r = new Reservations();
    r.hold("early", "alice", 10, 30_000);
    r.hold("late", "alice", 20, 45_000);
    r.sweep(29_999);
    expect(r.count).toBe(2);
    r.sweep(30_000);
    expect({ count: r.count, bytes: r.bytes }).toEqual({ count: 1, bytes: 20 });
    expect(r.take("early", 30_000)).toBeUndefined();
    expect(r.take("late", 44_999)).toMatchObject({ size: 20 });
    expect({ count: r.count, bytes: r.bytes }).toEqual({ count: 0, bytes: 0 });
  });

  it("does not hand out an expired reservation", () => {
    const r = new Reservations();
    r.hold("r", "alice", 10, 1_000);
    expect(r.take("r", 1_000)).toBeUndefined();
    expect(r.bytes).toBe(0);
  });
});
