// Session signals from a RecipientQueue to the fronts: only the two documented shapes are read;
// anything else a (compromised or buggy) edge sends is ignored, never thrown.
import { describe, it, expect } from "vitest";
import {
  PushEvent,
  assertionDeviceHex,
  formatQueueEvent,
  formatSessionSignal,
  parseQueueEvent,
  parseSessionSignal,
  pb,
} from "../../proto/index.ts";

describe("session signals", () => {
  it("round-trips a device revocation and an account deletion", () => {
    expect(parseSessionSignal(formatSessionSignal({ revokedDevice: "00ff" }))).toEqual({ revokedDevice: "00ff" });
    expect(parseSessionSignal(formatSessionSignal({ revokedDevice: "" }))).toEqual({ revokedDevice: "" });
    expect(parseSessionSignal(formatSessionSignal({ accountDeleted: true }))).toEqual({ accountDeleted: true });
    expect(parseSessionSignal(formatSessionSignal({ banned: true }))).toEqual({ banned: true });
    expect(parseSessionSignal('{"banned":"yes"}')).toBeUndefined();
  });

  it("ignores malformed, unknown and oversized signals", () => {
    for (const text of [
      "",
      "not json",
      "null",
      "[]",
      '"revokedDevice"',
      '{"revokedDevice":"XYZ"}',
      '{"revokedDevice":"abc"}',
      '{"revokedDevice":1}',
      '{"accountDeleted":"yes"}',
      '{"other":true}',
      JSON.stringify({ revokedDevice: "ab".repeat(65) }),
      " ".repeat(600) + '{"accountDeleted":true}',
    ]) {
      expect(parseSessionSignal(text)).toBeUndefined();
    }
  });

  it("reads the device of a caller assertion, and nothing from other shapes", () => {
    expect(assertionDeviceHex(`v1.${"ab".repeat(32)}.0a0b.1700000000000.mac`)).toBe("0a0b");
    expect(assertionDeviceHex(`v1.${"ab".repeat(32)}..1700000000000.mac`)).toBe("");
    expect(assertionDeviceHex("v2.a.0a.1.mac")).toBeUndefined();
    expect(assertionDeviceHex("v1.a.0a.1")).toBeUndefined();
    expect(assertionDeviceHex("v1.a.zz.1.mac")).toBeUndefined();
  });
});

describe("queue events on the push subscription", () => {
  it("frames typing, presence and membership apart from a bare PushNewMessage", () => {
    const body = pb.PushTyping.encode({ senderKey: new Uint8Array(32).fill(7), typing: true }).finish();
    const framed = formatQueueEvent(PushEvent.Typing, body);
    expect(Array.from(framed.subarray(0, 3))).toEqual([0, 0x03, 0xe9]);
    const parsed = parseQueueEvent(framed);
    expect(parsed?.eventId).toBe(PushEvent.Typing);
    expect(pb.PushTyping.decode(parsed!.event).typing).toBe(true);
    expect(parseQueueEvent(formatQueueEvent(PushEvent.Membership, new Uint8Array(0)))).toEqual({
      eventId: PushEvent.Membership,
      event: new Uint8Array(0),
    });
  });

  it("reads a PushNewMessage, whose first byte is a field tag, as no framed event", () => {
    const bare = pb.PushNewMessage.encode({ recipientKey: new Uint8Array(32), seq: 1, size: 1 }).finish();
    expect(bare[0]).not.toBe(0);
    expect(parseQueueEvent(bare)).toBeUndefined();
    expect(parseQueueEvent(Uint8Array.of(0, 3))).toBeUndefined();
  });
});
