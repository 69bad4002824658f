// Session signals from a RecipientQueue to the fronts: only the two documented shapes are read;
// anything else a (compromised or buggy) edge sends is ignored, never thrown.
import { describe, it, expect } from "vitest";
import { assertionDeviceHex, formatSessionSignal, parseSessionSignal } from "../../proto/index.ts";

describe("session signals", () => {
  it("round-trips a device revocation and an account deletion", () => {
    expect(parseSessionSignal(formatSessionSignal({ revokedDevice: "00ff" }))).toEqual({ revokedDevice: "00ff" });
    expect(parseSessionSignal(formatSessionSignal({ revokedDevice: "" }))).toEqual({ revokedDevice: "" });
    expect(parseSessionSignal(formatSessionSignal({ accountDeleted: true }))).toEqual({ accountDeleted: true });
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
