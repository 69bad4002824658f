// The plugin host through its real child process: loading, order, events, fail policy, metrics.
import { afterAll, afterEach, describe, expect, test } from "vitest";
import type { HookName } from "../api/index.ts";
import { PluginHost } from "./index.ts";
import { HOOKS } from "./policy.ts";
import { HOST_TEST_TIMEOUT_MS, memoryLogger, sampleEvent, tempDir } from "./test-support.ts";

const hosts: PluginHost[] = [];
const dirs: { cleanup(): void }[] = [];
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.stop()));
});
afterAll(() => dirs.forEach((d) => d.cleanup()));

async function start(opts: Parameters<typeof PluginHost.start>[0]) {
  const host = await PluginHost.start(opts);
  hosts.push(host);
  return host;
}
function dir() {
  const d = tempDir();
  dirs.push(d);
  return d;
}

describe("no plugins", { timeout: HOST_TEST_TIMEOUT_MS }, () => {
  test("no child process, has() false for every hook, calls allow", async () => {
    const d = dir();
    d.write("README.txt", "not a plugin");
    d.write("helper.test.ts", "export function on_connect() { return { reject: 'tests are not plugins' }; }");
    for (const opts of [{}, { dir: d.dir }]) {
      const host = await start(opts);
      expect(host.childPid).toBeUndefined();
      expect(host.plugins).toEqual([]);
      for (const h of HOOKS) expect(host.has(h)).toBe(false);
      expect(await host.call("on_connect", sampleEvent("on_connect"))).toEqual({ allow: true });
      expect(host.renderMetrics()).toContain("plugins_loaded 0");
    }
  });
});

describe("loading", { timeout: HOST_TEST_TIMEOUT_MS }, () => {
  test("run order is file-name order, then explicit files; TypeScript and camelCase exports work", async () => {
    const d = dir();
    const extra = dir();
    d.write(
      "10-first.js",
      `export function on_message_send(e) { if (e.payloadSize <= 1) return { reject: "first" }; }`,
    );
    d.write(
      "20-second.ts",
      `import type { MessageSendEvent, Decision } from "../api/index.ts";
       interface Limits { max: number }
       const limits: Limits = { max: 2 };
       export function onMessageSend(e: MessageSendEvent): Decision {
         return e.payloadSize <= limits.max ? { allow: false, reason: "second" } : true;
       }`,
    );
    d.write(
      "30-third.mjs",
      `export const onConnect = () => ({ allow: true }); export function on_message_send(e) { if (e.payloadSize <= 3) return { reject: "third" }; }`,
    );
    d.write(".hidden.js", `export function on_message_send() { return { reject: "hidden" }; }`);
    d.write("types.d.ts", `export declare function on_message_send(): void;`);
    const last = extra.write(
      "last.js",
      `export function on_message_send(e) { return e.payloadSize <= 4 ? { reject: "last" } : undefined; }`,
    );
    const host = await start({ dir: d.dir, files: [last], logger: memoryLogger() });

    expect(host.plugins.map((p) => p.name)).toEqual(["10-first", "20-second", "30-third", "last"]);
    expect(host.plugins[2].hooks).toEqual(["on_connect", "on_message_send"]);
    expect(host.has("on_message_send")).toBe(true);
    expect(host.has("on_connect")).toBe(true);
    expect(host.has("on_group_join")).toBe(false);
    const reasons = [];
    for (const payloadSize of [1, 2, 3, 4, 5]) {
      const d = await host.call("on_message_send", sampleEvent("on_message_send", { payloadSize }));
      reasons.push(d.allow ? "allow" : `${d.plugin}:${d.reason}`);
    }
    expect(reasons).toEqual(["10-first:first", "20-second:second", "30-third:third", "last:last", "allow"]);
    expect(typeof host.childPid).toBe("number");
  });

  test("broken files are reported and skipped; the others keep running", async () => {
    const d = dir();
    const log = memoryLogger();
    const broken: Record<string, string> = {
      "a-syntax.js": `export function on_connect( {`,
      "b-throws.js": `throw new Error("top-level boom"); export function on_connect() {}`,
      "c-manifest.js": `export const manifest = { name: "x", failPolicy: "maybe" }; export function on_connect() {}`,
      "d-nohooks.js": `export function helper() {}`,
      "e-import.js": `import { readFileSync } from "node:fs"; export function on_connect() { readFileSync("/etc/passwd"); }`,
      "f-enum.ts": `enum Color { Red } export function on_connect() { return Color.Red; }`,
      "g-loops.js": `while (true) {} export function on_connect() {}`,
      "h-both.js": `export function on_connect() {} export function onConnect() {}`,
      "i-unknown-key.js": `export const manifest = { nmae: "typo" }; export function on_connect() {}`,
      "j-getter.js": `export const manifest = { get name() { throw new Error("no"); } }; export function on_connect() {}`,
    };
    for (const [name, code] of Object.entries(broken)) d.write(name, code);
    d.write(
      "z-good.js",
      `export function on_connect(e) { return e.clientAddress.startsWith("10.") ? { reject: "no tens" } : undefined; }`,
    );
    const host = await start({ dir: d.dir, logger: log });

    expect(host.plugins.map((p) => p.name)).toEqual(["z-good"]);
    const errors = log.find("plugin failed to load; skipped");
    expect(errors.map((e) => String(e.fields.file).replace(/^.*\//, "")).sort()).toEqual(Object.keys(broken).sort());
    const byFile = (f: string) => String(errors.find((e) => String(e.fields.file).endsWith(f))?.fields.error);
    expect(byFile("a-syntax.js")).toMatch(/does not compile/);
    expect(byFile("b-throws.js")).toMatch(/top-level code threw.*top-level boom/);
    expect(byFile("c-manifest.js")).toMatch(/failPolicy/);
    expect(byFile("d-nohooks.js")).toMatch(/no hooks/);
    expect(byFile("e-import.js")).toMatch(/imports are not allowed/);
    expect(byFile("f-enum.ts")).toMatch(/TypeScript/);
    expect(byFile("g-loops.js")).toMatch(/longer than/);
    expect(byFile("h-both.js")).toMatch(/both on_connect and onConnect/);
    expect(byFile("i-unknown-key.js")).toMatch(/unknown manifest key "nmae"/);
    expect(byFile("j-getter.js")).toMatch(/manifest must be plain JSON data/);
    expect(host.childPid).toBeTypeOf("number");
    expect(host.renderMetrics()).toContain(`plugin_load_errors_total ${Object.keys(broken).length}`);

    expect(await host.call("on_connect", sampleEvent("on_connect", { clientAddress: "10.0.0.1:5" }))).toEqual({
      allow: false,
      reason: "no tens",
      plugin: "z-good",
    });
    expect(await host.call("on_connect", sampleEvent("on_connect"))).toEqual({ allow: true });
  });

  test("when every file fails to load, no child process is left running", async () => {
    const d = dir();
    const log = memoryLogger();
    d.write("broken.js", `export function on_connect( {`);
    const host = await start({ dir: d.dir, logger: log });
    expect(host.plugins).toEqual([]);
    expect(host.childPid).toBeUndefined();
    expect(log.find("plugin failed to load; skipped")).toHaveLength(1);
    for (const h of HOOKS) expect(host.has(h)).toBe(false);
  });

  test("duplicate plugin names: the later file is skipped", async () => {
    const d = dir();
    const log = memoryLogger();
    d.write(
      "a.js",
      `export const manifest = { name: "same" }; export function on_connect() { return { reject: "from a" }; }`,
    );
    d.write(
      "b.js",
      `export const manifest = { name: "same" }; export function on_connect() { return { reject: "from b" }; }`,
    );
    const host = await start({ dir: d.dir, logger: log });
    expect(host.plugins.map((p) => p.file.replace(/^.*\//, ""))).toEqual(["a.js"]);
    expect(log.find("plugin failed to load; skipped")[0].fields.error).toMatch(/duplicate plugin name "same"/);
    expect(await host.call("on_connect", sampleEvent("on_connect"))).toMatchObject({ reason: "from a" });
  });
});

describe("events", { timeout: HOST_TEST_TIMEOUT_MS }, () => {
  test("plugins get a copy of exactly the documented fields", async () => {
    const d = dir();
    const log = memoryLogger();
    // The first plugin vandalises its copy; the second must still see the original values.
    d.write("1-vandal.js", `export function on_message_send(e) { e.payloadSize = 1e9; e.recipients.length = 0; }`);
    d.write("2-show.js", `export function on_message_send(e) { log(JSON.stringify(e)); }`);
    const host = await start({ dir: d.dir, logger: log });
    const sent = sampleEvent("on_message_send", { payloadSize: 77 });
    const withSecrets = {
      ...sent,
      payload: new Uint8Array([1, 2, 3]),
      sessionToken: "secret-token",
      senderIdentity: undefined,
    };
    expect(await host.call("on_message_send", withSecrets)).toEqual({ allow: true });
    expect(sent.payloadSize).toBe(77);
    const line = log.find("plugin log", (f) => f.plugin === "2-show")[0]?.fields.line as string;
    const seen = JSON.parse(line);
    const { senderIdentity: _omitted, ...expected } = sent;
    expect(seen).toEqual(expected);
    expect(line).not.toContain("secret-token");
  });
});

describe("fail policy", { timeout: HOST_TEST_TIMEOUT_MS }, () => {
  const thrower = HOOKS.map((h) => `export function ${h}() { throw new Error("broken ${h}"); }`).join("\n");
  const decisions = async (host: PluginHost) => {
    const out: Record<string, string> = {};
    for (const h of HOOKS) {
      const d = await host.call(h, sampleEvent(h));
      out[h] = d.allow ? "allow" : d.reason;
    }
    return out;
  };

  test("defaults: closed for connect, send, join; open for observers and leave", async () => {
    const d = dir();
    d.write("thrower.js", thrower);
    const log = memoryLogger();
    const host = await start({ dir: d.dir, logger: log });
    expect(await decisions(host)).toEqual({
      on_connect: "plugin error",
      on_disconnect: "allow",
      on_message_send: "plugin error",
      on_message_receive: "allow",
      on_group_join: "plugin error",
      on_group_leave: "allow",
    });
    for (const h of HOOKS) expect(host.stats("thrower", h)).toMatchObject({ calls: 1, errors: 1, rejects: 0 });
    // Five consecutive failures suspend the plugin (the sixth call is decided without running it,
    // counted as an error, and not logged again).
    const errs = log.find("plugin error");
    expect(errs).toHaveLength(5);
    expect(log.find("plugin suspended after repeated failures", (f) => f.plugin === "thrower")).toHaveLength(1);
    expect(errs[0].fields).toMatchObject({
      plugin: "thrower",
      hook: "on_connect",
      reason: "threw broken on_connect",
      connectionId: "conn-1",
    });
    expect(errs[0].fields).not.toHaveProperty("clientAddress");
  });

  test("manifest overrides: all open, or per hook", async () => {
    const d = dir();
    d.write("a-open.js", `export const manifest = { failPolicy: "open" };\n${thrower}`);
    let host = await start({ dir: d.dir, logger: memoryLogger() });
    expect(Object.values(await decisions(host))).toEqual(HOOKS.map(() => "allow"));
    await host.stop();

    const d2 = dir();
    d2.write(
      "b-mixed.js",
      `export const manifest = { failPolicy: { on_message_send: "open", onGroupLeave: "closed" } };\n${thrower}`,
    );
    host = await start({ dir: d2.dir, logger: memoryLogger() });
    expect(await decisions(host)).toEqual({
      on_connect: "plugin error",
      on_disconnect: "allow",
      on_message_send: "allow",
      on_message_receive: "allow",
      on_group_join: "plugin error",
      on_group_leave: "plugin error",
    });
    expect(host.plugins[0].failPolicy).toMatchObject({ on_message_send: "open", on_group_leave: "closed" });
  });

  test("observers cannot reject: their return value is ignored", async () => {
    const d = dir();
    d.write(
      "obs.js",
      `export function on_disconnect() { return { reject: "no" }; } export function on_message_receive() { return 42; }`,
    );
    const host = await start({ dir: d.dir, logger: memoryLogger() });
    const obs: HookName[] = ["on_disconnect", "on_message_receive"];
    for (const h of obs) {
      expect(await host.call(h, sampleEvent(h))).toEqual({ allow: true });
      expect(host.stats("obs", h)).toMatchObject({ calls: 1, errors: 0, rejects: 0 });
    }
  });
});

describe("metrics and logs", { timeout: HOST_TEST_TIMEOUT_MS }, () => {
  test("per-plugin counters in Prometheus text; one log line per rejection", async () => {
    const d = dir();
    const log = memoryLogger();
    d.write("gate.js", `export function on_message_send(e) { if (e.payloadSize > 10) return { reject: "too big" }; }`);
    const host = await start({ dir: d.dir, logger: log });
    for (const payloadSize of [1, 20, 30])
      await host.call("on_message_send", sampleEvent("on_message_send", { payloadSize }));
    const text = host.renderMetrics();
    expect(text).toContain('plugin_calls_total{plugin="gate",hook="on_message_send"} 3');
    expect(text).toContain('plugin_rejects_total{plugin="gate",hook="on_message_send"} 2');
    expect(text).toContain('plugin_errors_total{plugin="gate",hook="on_message_send"} 0');
    expect(text).toContain('plugin_timeouts_total{plugin="gate",hook="on_message_send"} 0');
    expect(text).toMatch(/plugin_seconds_total\{plugin="gate",hook="on_message_send"\} \d/);
    expect(text).toContain("plugin_host_restarts_total 0");
    expect(text).toContain("# TYPE plugin_seconds_total counter");
    const rejections = log.find("plugin rejected");
    expect(rejections).toHaveLength(2);
    expect(rejections[0].fields).toEqual({
      plugin: "gate",
      hook: "on_message_send",
      reason: "too big",
      connectionId: "conn-1",
      channelId: "c3".repeat(16),
      messageId: "0f".repeat(16),
    });
  });
});
