// Hostile plugins are contained: each failure is decided by fail policy (on_message_send is
// fail-closed by default, so a failing plugin yields "plugin error"/"plugin timeout"), the
// isolate is rebuilt, and every other plugin keeps answering.
//
// All hostile plugins share one host and one hook; each acts only when the event's ttlSecs
// equals its number, and allows otherwise.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { PluginHost } from "./index.ts";
import { HOST_TEST_TIMEOUT_MS, WAIT_MS, memoryLogger, sampleEvent, tempDir, waitFor } from "./test-support.ts";

const hostile: Record<string, string> = {
  loop: `while (true) {}`,
  recursion: `const f = (n) => f(n + 1) + 1; return f(0);`,
  throws: `throw new Error("boom");`,
  "throws-string": `throw "not an Error";`,
  number: `return 42;`,
  false: `return false;`,
  string: `return "allow";`,
  "huge-reason": `return { reject: "x".repeat(10_000_000) };`,
  "long-reason": `return { reject: "y".repeat(257) };`,
  "newline-reason": `return { reject: "line one\\nline two" };`,
  function: `return () => ({ allow: true });`,
  "proxy-trap-throws": `return new Proxy({}, { getPrototypeOf() { throw new Error("trap"); } });`,
  "proxy-fake-allow": `return new Proxy({}, { get: () => true });`,
  getter: `return { get reject() { return "from a getter"; } };`,
  async: `return Promise.resolve({ allow: true });`,
  "class-instance": `return new (class Decision { constructor() { this.allow = true; } })();`,
  array: `return [{ allow: true }];`,
  require: `return require("node:fs").readFileSync("/etc/passwd", "utf8");`,
  process: `return process.exit(1);`,
  fetch: `return globalThis.fetch("http://example.com");`,
  timers: `setTimeout(() => {}, 0);`,
  "microtask-loop": `Promise.resolve().then(() => { for (;;) {} });`,
  "eval-process": `return eval("process").exit(1);`,
  "constructor-escape": `return ({}).constructor.constructor("return process")().exit(1);`,
  "this-constructor": `return this.constructor.constructor("return process")();`,
  "log-constructor": `return log.constructor("return process")().exit(1);`,
  "dynamic-import": `import("node:fs").then((fs) => fs.writeFileSync(PWNED, "x"), (err) => log("import failed: " + err));`,
  "log-flood": `for (let i = 0; i < 100000; i++) log("spam", i, { big: "z".repeat(10000) });`,
};
const names = Object.keys(hostile);
const allowed = ["loop", "timers", "log-flood", "dynamic-import"];
const ttlOf = (name: string) => names.indexOf(name) + 1;
const pluginName = (name: string) => `${String(ttlOf(name)).padStart(2, "0")}-${name}`;

// Reports what a plugin can reach; its reason must show that nothing dangerous is there.
const PROBE = `
export function on_message_send(e) {
  if (e.ttlSecs !== 999) return;
  const r = [];
  const t = (name, f) => { try { const v = f(); r.push(name + ":" + (v === undefined ? "undef" : typeof v)); } catch (err) { r.push(name + ":threw"); } };
  t("require", () => require);
  t("process", () => process);
  t("fetch", () => globalThis.fetch);
  t("setTimeout", () => setTimeout);
  t("setImmediate", () => globalThis.setImmediate);
  t("queueMicrotask", () => globalThis.queueMicrotask);
  t("eval", () => eval("process"));
  t("ctor", () => ({}).constructor.constructor("return process")());
  t("ctorGlobal", () => ({}).constructor.constructor("return globalThis.process")());
  t("Buffer", () => globalThis.Buffer);
  t("WebAssembly", () => globalThis.WebAssembly);
  t("SAB", () => globalThis.SharedArrayBuffer);
  t("Atomics", () => globalThis.Atomics);
  t("secret", () => globalThis.secret);
  t("polluted", () => ({}).polluted);
  t("importMeta", () => import.meta.url);
  return { reject: r.join(" ") };
}`;

let host: PluginHost;
const log = memoryLogger();
const d = tempDir();
const PWNED = join(d.dir, "pwned");
const send = (ttlSecs: number) => host.call("on_message_send", sampleEvent("on_message_send", { ttlSecs }));

beforeAll(async () => {
  // One plugin sets globals and pollutes prototypes; others must not see any of it.
  d.write(
    "00-setter.js",
    `globalThis.secret = "s3cret"; Object.prototype.polluted = 1;
    export function on_message_send(e) { globalThis.secret = "s3cret-" + e.connectionId; }`,
  );
  names.forEach((name, i) => {
    expect(ttlOf(name)).toBe(i + 1);
    const code = hostile[name].replace("PWNED", JSON.stringify(PWNED));
    d.write(
      `${pluginName(name)}.js`,
      `export function on_message_send(e) { if (e.ttlSecs !== ${i + 1}) return; ${code} }`,
    );
  });
  d.write("98-probe.js", PROBE);
  d.write(
    "99-last.js",
    `export function on_message_send(e) { if (e.ttlSecs === 1000) return { reject: "last plugin reached" }; }`,
  );
  host = await PluginHost.start({ dir: d.dir, logger: log });
}, HOST_TEST_TIMEOUT_MS);
afterAll(async () => {
  await host?.stop();
  d.cleanup();
});

describe("hostile plugins are contained", { timeout: HOST_TEST_TIMEOUT_MS }, () => {
  test("all plugins loaded", () => {
    expect(host.plugins).toHaveLength(names.length + 3);
  });

  test("infinite loop → timeout, decided fail-closed; the next call of another plugin works", async () => {
    // "plugin timeout" (not "plugin host unavailable") shows the child stopped the loop itself,
    // within the front's deadline for the call.
    expect(await send(ttlOf("loop"))).toEqual({ allow: false, reason: "plugin timeout", plugin: pluginName("loop") });
    expect(await send(1000)).toEqual({ allow: false, reason: "last plugin reached", plugin: "99-last" });
    const name = pluginName("loop");
    expect(host.stats(name, "on_message_send")).toMatchObject({ timeouts: 1, errors: 0 });
    // Stopped at the wall-clock backstop; over its CPU budget unless the machine starved it of CPU.
    expect(log.find("plugin timed out", (f) => f.plugin === name)[0].fields.reason).toMatch(
      /^(exceeded 50 ms of CPU time|stopped by the 500 ms wall-clock backstop after \d+ ms of CPU time \(budget 50 ms\))$/,
    );
    // the loop plugin's isolate was rebuilt: it allows events not meant for it
    expect(await send(0)).toEqual({ allow: true });
  });

  const failing = names.filter((n) => !allowed.includes(n));
  test.each(failing)("%s → error, decided fail-closed", async (name) => {
    expect(await send(ttlOf(name))).toEqual({
      allow: false,
      reason: name === "microtask-loop" ? "plugin timeout" : "plugin error",
      plugin: pluginName(name),
    });
    // contained: the plugins after it still run, and the plugin itself works again
    expect(await send(1000)).toEqual({ allow: false, reason: "last plugin reached", plugin: "99-last" });
    expect(await send(0)).toEqual({ allow: true });
  });

  test("error reasons are logged, not sent to the client", () => {
    const reason = (name: string) =>
      log.records.find((r) => r.fields.plugin === pluginName(name) && r.level === "warn")?.fields.reason;
    expect(reason("throws")).toBe("threw boom");
    expect(reason("recursion")).toMatch(/Maximum call stack size exceeded/);
    expect(reason("require")).toMatch(/require is not defined/);
    expect(reason("process")).toMatch(/process is not defined/);
    expect(reason("fetch")).toMatch(/not a function/);
    expect(reason("eval-process")).toMatch(/process is not defined/);
    expect(reason("constructor-escape")).toMatch(/process is not defined/);
    expect(reason("number")).toBe("invalid result: returned a number");
    expect(reason("false")).toMatch(/invalid result: returned false/);
    expect(reason("huge-reason")).toMatch(/longer than 256/);
    expect(reason("function")).toBe("invalid result: returned a function");
    expect(reason("getter")).toMatch(/not getters/);
    expect(reason("async")).toMatch(/Promise/);
    expect(reason("class-instance")).toMatch(/non-plain object/);
    expect(reason("proxy-fake-allow")).toMatch(/without allow or reject/);
  });

  test("timers do not exist: setTimeout throws", async () => {
    expect(await send(ttlOf("timers"))).toMatchObject({ allow: false, reason: "plugin error" });
  });

  test("dynamic import is refused", async () => {
    expect(await send(ttlOf("dynamic-import"))).toEqual({ allow: true });
    await waitFor(
      () => log.find("plugin log", (f) => f.plugin === pluginName("dynamic-import")).length > 0,
      WAIT_MS,
      "import failure log",
    );
    expect(log.find("plugin log", (f) => f.plugin === pluginName("dynamic-import"))[0].fields.line).toMatch(
      /^import failed: /,
    );
    expect(existsSync(PWNED)).toBe(false);
  });

  test("log flooding is rate-limited and cut", async () => {
    const before = log.find("plugin log").length;
    const r = await send(ttlOf("log-flood"));
    // the flood either finishes (allowed) or runs out of time (fail-closed); either way the log stays small
    expect(r.allow || r.reason === "plugin timeout").toBe(true);
    const lines = log.find("plugin log").slice(before);
    // a burst of 50, then 20/s for as long as the call ran, each of those preceded by a
    // "[N log lines dropped …]" notice (how long it ran depends on how busy the machine is)
    const { seconds } = host.stats(pluginName("log-flood"), "on_message_send");
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.length).toBeLessThanOrEqual(50 + 2 * Math.ceil(20 * seconds + 1));
    for (const l of lines) expect(String(l.fields.line).length).toBeLessThanOrEqual(512);
  });

  test("no escape hatch: no require/process/fetch/timers/host objects, no other plugin's globals", async () => {
    const r = await send(999);
    expect(r).toEqual({
      allow: false,
      plugin: "98-probe",
      reason:
        "require:threw process:threw fetch:undef setTimeout:threw setImmediate:undef queueMicrotask:undef eval:threw ctor:threw " +
        "ctorGlobal:undef Buffer:undef WebAssembly:undef SAB:undef Atomics:undef secret:undef polluted:undef importMeta:undef",
    });
  });
});
