import { describe, expect, test } from "vitest";
import { ALLOW } from "../../proto/util/hook-decision.ts";
import {
  Breaker,
  DEFAULT_FAIL_POLICY,
  DEFAULT_LIMITS,
  HOOKS,
  HOOK_EXPORTS,
  LogLimiter,
  REASON_HOST_UNAVAILABLE,
  REASON_PLUGIN_ERROR,
  REASON_PLUGIN_TIMEOUT,
  checkReason,
  cleanLogLine,
  combine,
  decideWithoutHost,
  eventIds,
  hookFromName,
  hooksFromExports,
  interpretResult,
  STALL_GRACE_MS,
  callDeadlineMs,
  nameFromFile,
  rejection,
  resolveManifest,
  sanitizeEvent,
  stallAfterMs,
  wallBackstopMs,
  type GuestResult,
  type PluginOutcome,
} from "./policy.ts";

const str = (v: string) => ({ t: "string" as const, v, len: v.length });
const obj = (fields: Omit<GuestResult, "t">): GuestResult => ({ t: "object", ...fields });

describe("hook table", () => {
  test("six hooks with their camelCase export names", () => {
    expect(HOOKS).toEqual([
      "on_connect",
      "on_disconnect",
      "on_message_send",
      "on_message_receive",
      "on_group_join",
      "on_group_leave",
    ]);
    expect(HOOK_EXPORTS.on_message_send).toBe("onMessageSend");
    expect(hookFromName("onGroupLeave")).toBe("on_group_leave");
    expect(hookFromName("on_connect")).toBe("on_connect");
    expect(hookFromName("onconnect")).toBeUndefined();
    expect(hookFromName("manifest")).toBeUndefined();
  });

  test("default fail policy: closed for the guards, open for observers and on_group_leave", () => {
    expect(DEFAULT_FAIL_POLICY).toEqual({
      on_connect: "closed",
      on_message_send: "closed",
      on_group_join: "closed",
      on_disconnect: "open",
      on_message_receive: "open",
      on_group_leave: "open",
    });
    expect(DEFAULT_LIMITS).toEqual({ memoryMb: 32, timeoutMs: 50 });
  });

  test("exports: functions only, one form per hook", () => {
    expect(hooksFromExports({ on_connect: "function", onMessageSend: "function", helper: "function" })).toEqual({
      ok: true,
      value: { on_connect: "on_connect", on_message_send: "onMessageSend" },
    });
    const both = hooksFromExports({ on_connect: "function", onConnect: "function" });
    expect(both.ok).toBe(false);
    const notFn = hooksFromExports({ on_connect: "object" });
    expect(notFn).toEqual({ ok: false, error: "export on_connect is a object, not a function" });
  });
});

describe("manifest", () => {
  const exported = {
    on_connect: "on_connect",
    on_message_send: "onMessageSend",
    on_disconnect: "on_disconnect",
  } as const;

  test("defaults from the file name and the exports", () => {
    const r = resolveManifest(undefined, exported, "10-my plugin.ts");
    expect(r.ok && r.value).toEqual({
      name: "10-my-plugin",
      version: "0.0.0",
      hooks: ["on_connect", "on_disconnect", "on_message_send"],
      exports: exported,
      limits: DEFAULT_LIMITS,
      failPolicy: DEFAULT_FAIL_POLICY,
    });
    expect(nameFromFile("/x/y/_.js")).toBe("plugin");
  });

  test("hooks list narrows the active hooks and must name exported hooks", () => {
    const r = resolveManifest({ hooks: ["onConnect"] }, exported, "a.js");
    expect(r.ok && r.value.hooks).toEqual(["on_connect"]);
    expect(resolveManifest({ hooks: ["on_group_join"] }, exported, "a.js")).toEqual({
      ok: false,
      error: "manifest.hooks lists on_group_join but the module does not export it",
    });
    expect(resolveManifest({ hooks: ["nope"] }, exported, "a.js").ok).toBe(false);
    expect(resolveManifest({ hooks: "on_connect" }, exported, "a.js").ok).toBe(false);
  });

  test("no hooks at all is an error", () => {
    expect(resolveManifest(undefined, {}, "a.js")).toMatchObject({
      ok: false,
      error: expect.stringContaining("no hooks"),
    });
  });

  test("fail policy: one string for deciding hooks, or a per-hook map; observers cannot be closed", () => {
    const open = resolveManifest({ failPolicy: "open" }, exported, "a.js");
    expect(open.ok && open.value.failPolicy.on_connect).toBe("open");
    expect(open.ok && open.value.failPolicy.on_group_join).toBe("open");
    const closed = resolveManifest({ failPolicy: "closed" }, exported, "a.js");
    expect(closed.ok && closed.value.failPolicy).toMatchObject({
      on_group_leave: "closed",
      on_disconnect: "open",
      on_message_receive: "open",
    });
    const map = resolveManifest({ failPolicy: { onMessageSend: "open" } }, exported, "a.js");
    expect(map.ok && map.value.failPolicy).toMatchObject({ on_message_send: "open", on_connect: "closed" });
    expect(resolveManifest({ failPolicy: { on_disconnect: "closed" } }, exported, "a.js").ok).toBe(false);
    expect(resolveManifest({ failPolicy: "sometimes" }, exported, "a.js").ok).toBe(false);
    expect(resolveManifest({ failPolicy: { on_bogus: "open" } }, exported, "a.js").ok).toBe(false);
  });

  test("limits are bounded integers", () => {
    const r = resolveManifest({ limits: { memoryMb: 64, timeoutMs: 5 } }, exported, "a.js");
    expect(r.ok && r.value.limits).toEqual({ memoryMb: 64, timeoutMs: 5 });
    expect(resolveManifest({ limits: { memoryMb: 4 } }, exported, "a.js").ok).toBe(false);
    expect(resolveManifest({ limits: { timeoutMs: 0 } }, exported, "a.js").ok).toBe(false);
    expect(resolveManifest({ limits: { timeoutMs: 10.5 } }, exported, "a.js").ok).toBe(false);
    expect(resolveManifest({ limits: { cpuMs: 10 } }, exported, "a.js").ok).toBe(false);
  });

  test("name, version and unknown keys", () => {
    expect(resolveManifest({ name: "ok.name-1", version: "1.2.3" }, exported, "a.js").ok).toBe(true);
    expect(resolveManifest({ name: "-bad" }, exported, "a.js").ok).toBe(false);
    expect(resolveManifest({ name: 'a"b' }, exported, "a.js").ok).toBe(false);
    expect(resolveManifest({ version: "1 2" }, exported, "a.js").ok).toBe(false);
    expect(resolveManifest({ failpolicy: "open" }, exported, "a.js")).toEqual({
      ok: false,
      error: 'unknown manifest key "failpolicy"',
    });
    expect(resolveManifest([], exported, "a.js").ok).toBe(false);
    expect(resolveManifest("x", exported, "a.js").ok).toBe(false);
  });
});

describe("results", () => {
  const send = "on_message_send" as const;

  test("allow forms", () => {
    expect(interpretResult(send, { t: "undefined" })).toEqual({ kind: "allow" });
    expect(interpretResult(send, { t: "boolean", v: true })).toEqual({ kind: "allow" });
    expect(interpretResult(send, obj({ allow: { t: "boolean", v: true } }))).toEqual({ kind: "allow" });
  });

  test("reject forms", () => {
    expect(interpretResult(send, obj({ reject: str("too big") }))).toEqual({ kind: "reject", reason: "too big" });
    expect(interpretResult(send, obj({ allow: { t: "boolean", v: false }, reason: str("nope") }))).toEqual({
      kind: "reject",
      reason: "nope",
    });
    expect(interpretResult(send, obj({ allow: { t: "boolean", v: false }, reject: str("r") }))).toEqual({
      kind: "reject",
      reason: "r",
    });
  });

  test("everything else is invalid", () => {
    const invalid: GuestResult[] = [
      { t: "boolean", v: false },
      { t: "null" },
      { t: "number", v: 1 },
      { t: "string", v: "ok", len: 2 },
      { t: "function" },
      { t: "array" },
      { t: "promise" },
      { t: "exotic" },
      { t: "symbol" },
      { t: "bigint" },
      obj({}),
      obj({ allow: { t: "string", v: "yes", len: 3 } }),
      obj({ allow: { t: "boolean", v: false } }),
      obj({ reject: { t: "number", v: 1 } }),
      obj({ reject: { t: "accessor" } }),
      obj({ allow: { t: "accessor" } }),
      obj({ allow: { t: "boolean", v: true }, reject: str("both") }),
      obj({ reject: str("") }),
      obj({ reject: str("   ") }),
      obj({ reject: str("line\nbreak") }),
      obj({ reject: str("bidi \u202e trick") }),
      obj({ reject: str("x".repeat(257)) }),
      obj({ reject: { t: "string", v: "x".repeat(1024), len: 5_000_000 } }),
      obj({ reject: { t: "object" } }),
    ];
    for (const r of invalid) expect(interpretResult(send, r), JSON.stringify(r)).toMatchObject({ kind: "invalid" });
  });

  test("reasons: up to 256 characters (code points) of printable text", () => {
    expect(checkReason(str("x".repeat(256)))).toEqual({ ok: true, value: "x".repeat(256) });
    expect(checkReason(str("é🙂 ok")).ok).toBe(true);
    expect(checkReason(str("🙂".repeat(256))).ok).toBe(true); // 512 UTF-16 units, 256 characters
    expect(checkReason(str("🙂".repeat(257))).ok).toBe(false);
    expect(checkReason(str("\ud800 lone surrogate")).ok).toBe(false);
    expect(checkReason(str("tab\there")).ok).toBe(false);
    expect(checkReason(undefined).ok).toBe(false);
  });

  test("observers ignore their return value", () => {
    expect(interpretResult("on_disconnect", obj({ reject: str("no") }))).toEqual({ kind: "allow" });
    expect(interpretResult("on_message_receive", { t: "number", v: 3 })).toEqual({ kind: "allow" });
  });
});

describe("decisions", () => {
  const o = (plugin: string, outcome: PluginOutcome["outcome"], reason?: string): PluginOutcome => ({
    plugin,
    outcome,
    reason,
    ms: 1,
  });

  test("first rejection wins, in plugin order", () => {
    const d = combine("on_message_send", [
      { outcome: o("a", "allow"), policy: "closed" },
      { outcome: o("b", "reject", "b says no"), policy: "closed" },
      { outcome: o("c", "reject", "c says no"), policy: "closed" },
    ]);
    expect(d).toEqual({ allow: false, reason: "b says no", plugin: "b" });
    expect(combine("on_message_send", [{ outcome: o("a", "allow"), policy: "closed" }])).toBe(ALLOW);
    expect(combine("on_message_send", [])).toBe(ALLOW);
  });

  test("errors and timeouts follow the fail policy", () => {
    expect(rejection("on_connect", o("a", "error", "threw"), "closed")).toEqual({
      allow: false,
      reason: REASON_PLUGIN_ERROR,
      plugin: "a",
    });
    expect(rejection("on_connect", o("a", "timeout"), "closed")).toEqual({
      allow: false,
      reason: REASON_PLUGIN_TIMEOUT,
      plugin: "a",
    });
    expect(rejection("on_connect", o("a", "error"), "open")).toBeNull();
    expect(rejection("on_connect", o("a", "timeout"), "open")).toBeNull();
    expect(
      combine("on_group_join", [
        { outcome: o("a", "error"), policy: "open" },
        { outcome: o("b", "timeout"), policy: "closed" },
      ]),
    ).toEqual({ allow: false, reason: REASON_PLUGIN_TIMEOUT, plugin: "b" });
  });

  test("observers never reject", () => {
    expect(rejection("on_disconnect", o("a", "reject", "x"), "closed")).toBeNull();
    expect(rejection("on_message_receive", o("a", "error"), "closed")).toBeNull();
  });

  test("without the host: first fail-closed plugin rejects", () => {
    const p = (name: string, policy: "open" | "closed") => ({
      name,
      failPolicy: { ...DEFAULT_FAIL_POLICY, on_message_send: policy },
    });
    expect(decideWithoutHost("on_message_send", [p("a", "open"), p("b", "closed")])).toEqual({
      allow: false,
      reason: REASON_HOST_UNAVAILABLE,
      plugin: "b",
    });
    expect(decideWithoutHost("on_message_send", [p("a", "open")])).toBe(ALLOW);
    expect(decideWithoutHost("on_disconnect", [p("a", "closed")])).toBe(ALLOW);
  });
});

describe("events", () => {
  test("only documented fields, with documented types", () => {
    const ev = sanitizeEvent("on_message_send", {
      connectionId: "c1",
      clientAddress: "1.2.3.4:5",
      senderIdentity: new Uint8Array([0xab, 0x01]),
      recipients: ["AA", new Uint8Array([1])],
      channelId: "cc",
      payloadSize: 10n,
      ttlSecs: Number.NaN,
      messageId: "",
      batch: 1,
      time: 5,
      payload: new Uint8Array(100),
      sessionToken: "secret",
    });
    expect(ev).toEqual({
      connectionId: "c1",
      clientAddress: "1.2.3.4:5",
      senderIdentity: "ab01",
      recipients: ["aa", "01"],
      channelId: "cc",
      payloadSize: 10,
      ttlSecs: 0,
      messageId: "",
      batch: false,
      time: 5,
    });
  });

  test("optional sender identity stays absent; time defaults to now; strings are capped", () => {
    const ev = sanitizeEvent("on_message_send", { connectionId: "x".repeat(2000), recipients: "nope" }, 42);
    expect("senderIdentity" in ev).toBe(false);
    expect(ev.time).toBe(42);
    expect(ev.recipients).toEqual([]);
    expect((ev.connectionId as string).length).toBe(512);
    expect(sanitizeEvent("on_connect", { transport: "carrier-pigeon", alpn: "h3" }, 1)).toMatchObject({
      transport: "quic",
      alpn: "qpq",
    });
  });

  test("log ids never include other event contents", () => {
    expect(
      eventIds({ connectionId: "c", channelId: "cc", messageId: "", clientAddress: "1.2.3.4:5", payloadSize: 3 }),
    ).toEqual({
      connectionId: "c",
      channelId: "cc",
    });
  });
});

describe("log limiter and breaker", () => {
  test("log lines: bursts, then a steady rate; lines cleaned and cut", () => {
    const l = new LogLimiter(10, 3, 0);
    expect([l.take(0), l.take(0), l.take(0), l.take(0)]).toEqual([true, true, true, false]);
    expect(l.dropped).toBe(1);
    expect(l.take(100)).toBe(true);
    expect(l.take(100)).toBe(false);
    expect(cleanLogLine("a\nb\u0000c" + "x".repeat(1000))).toMatch(/^a b cx+$/);
    expect(cleanLogLine("x".repeat(1000)).length).toBe(512);
  });

  test("breaker: suspends after consecutive failures, doubling; success resets", () => {
    const b = new Breaker(3, 100, 250);
    expect([b.failure(0), b.failure(0)]).toEqual([0, 0]);
    expect(b.allows(0)).toBe(true);
    expect(b.failure(0)).toBe(100);
    expect(b.allows(50)).toBe(false);
    expect(b.allows(100)).toBe(true);
    expect(b.failure(100)).toBe(200); // half-open: one more failure trips again, for longer
    expect(b.failure(300)).toBe(250); // capped
    b.success();
    expect([b.failure(1000), b.failure(1000), b.failure(1000)]).toEqual([0, 0, 100]);
  });
});

describe("time budgets", () => {
  test("wall-clock backstop: ten times the CPU budget, at least 250 ms, at most 2 s over it", () => {
    expect(wallBackstopMs(1)).toBe(250);
    expect(wallBackstopMs(50)).toBe(500);
    expect(wallBackstopMs(200)).toBe(2000);
    expect(wallBackstopMs(1000)).toBe(3000);
    expect(wallBackstopMs(5000)).toBe(7000);
    for (const b of [1, 7, 50, 333, 5000]) expect(wallBackstopMs(b)).toBeGreaterThan(b);
  });

  test("the stall watch waits past the backstop; the front waits past the stall watch", () => {
    expect(stallAfterMs(50)).toBe(500 + STALL_GRACE_MS);
    // one plugin: its backstop, the stall grace, and a second
    expect(callDeadlineMs(1000, [50])).toBe(500 + STALL_GRACE_MS + 1000);
    expect(callDeadlineMs(1000, [50])).toBeGreaterThan(stallAfterMs(50));
    // several plugins run one after the other
    expect(callDeadlineMs(1000, [50, 1000])).toBe(500 + 3000 + STALL_GRACE_MS + 1000);
    // the host's call timeout when that is longer
    expect(callDeadlineMs(60_000, [50])).toBe(60_000);
  });
});
