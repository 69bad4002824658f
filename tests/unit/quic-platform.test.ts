// The start-up check of the native QUIC binding: one clear line where the front cannot run.
import { describe, expect, it } from "vitest";
import { bindingProblem, bindingTargets, thisMachineProblem } from "../../quic-front/quic/platform.ts";

describe("native QUIC binding check", () => {
  it("accepts a binding whose version matches the JavaScript", () => {
    expect(bindingProblem("linux", "x64", "2.0.9", new Map([["linux-x64", "2.0.9"]]))).toBeUndefined();
    expect(bindingProblem("darwin", "arm64", "2.0.9", new Map([["darwin-universal", "2.0.9"]]))).toBeUndefined();
  });

  it("names the platform and the versions when the binding is older than the JavaScript", () => {
    const line = bindingProblem("darwin", "arm64", "2.0.9", new Map([["darwin-arm64", "1.2.12"]]));
    expect(line).toBe(
      "QUIC front unavailable on darwin-arm64: its native QUIC binding is 1.2.12 but @matrixai/quic is 2.0.9 " +
        "(@matrixai/quic 2.0.9 publishes its native binding for linux-x64 only); run the front on linux-x64",
    );
    expect(line).not.toContain("\n");
    expect(bindingProblem("win32", "x64", "2.0.9", new Map([["win32-x64", "1.2.12"]]))).toContain("win32-x64");
  });

  it("says so when no binding is installed at all (linux-arm64)", () => {
    expect(bindingProblem("linux", "arm64", "2.0.9", new Map())).toBe(
      "QUIC front unavailable on linux-arm64: no native QUIC binding is installed for it " +
        "(@matrixai/quic 2.0.9 publishes its native binding for linux-x64 only); run the front on linux-x64",
    );
  });

  it("tries the same packages as the library's loader", () => {
    expect(bindingTargets("darwin", "x64")).toEqual([
      "darwin-x64",
      "darwin-x64+arm64",
      "darwin-arm64+x64",
      "darwin-universal",
    ]);
    expect(bindingTargets("linux", "x64")).toEqual(["linux-x64"]);
  });

  it.runIf(process.platform === "linux" && process.arch === "x64")(
    "finds nothing wrong on this linux-x64 machine",
    () => {
      expect(thisMachineProblem()).toBeUndefined();
    },
  );
});
