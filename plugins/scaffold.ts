// Scaffolding for a new plugin: `<name>.js` (a commented template with all six hooks) and
// `<name>.test.ts` (a vitest test that runs it through the real PluginHost).
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HOST_INDEX = fileURLToPath(new URL("./host/index.ts", import.meta.url));
const TEST_SUPPORT = fileURLToPath(new URL("./host/test-support.ts", import.meta.url));
const PLUGIN_API = fileURLToPath(new URL("./api/index.ts", import.meta.url));

export class ScaffoldError extends Error {}

function importPath(fromDir: string, target: string): string {
  const rel = relative(fromDir, target).split(sep).join("/");
  return rel.startsWith(".") ? rel : `./${rel}`;
}

export function pluginTemplate(name: string): string {
  return `// ${name}: a qpq-edge gateway plugin. See docs/plugins.md for the whole reference.
//
// It runs in its own sandbox (an isolated-vm isolate): no imports, no require/process/fetch,
// no timers, no network or files. Module-level variables persist between calls (until the
// plugin is reloaded or reset after a failure). \`log(...)\` writes one line to the gateway log.
//
// Each hook receives a plain copy of its event and may return:
//   nothing / true / { allow: true }                 → allow
//   { reject: "reason" } or { allow: false, reason }  → reject (the reason, ≤ 256 printable
//                                                        characters, is sent to the client)
// Anything else counts as a plugin error and is decided by the fail policy.
// Delete the hooks you do not need: a hook that is not exported costs nothing.

// Configuration: constants at the top of this file (edit, save; a watched plugin directory
// reloads the plugin on the next call).

export const manifest = {
  name: ${JSON.stringify(name)},
  version: "0.1.0",
  // limits: { memoryMb: 32, timeoutMs: 50 },  // per isolate / per call
  // failPolicy: "closed",                      // or "open", or { on_message_send: "open", … }
};

/** A connection was accepted. Rejecting closes it. */
export function on_connect(event) {
  // event: { connectionId, clientAddress: "ip:port", alpn: "qpq", transport: "quic" | "websocket", time }
}

/** A connection ended. Observer: the return value is ignored. */
export function on_disconnect(event) {
  // event: { connectionId, clientAddress, transport, time, durationMs, reason }
}

/** A message is about to be enqueued (Enqueue, or BatchEnqueue: one payload, several recipients). Rejecting answers Forbidden. */
export function on_message_send(event) {
  // event: { connectionId, clientAddress, senderIdentity? (hex, absent in sealed-sender mode),
  //          recipients: hex[], channelId, payloadSize, ttlSecs, messageId (hex or ""), batch, time }
}

/** Messages were delivered by Fetch/FetchWait. Observer: the return value is ignored. */
export function on_message_receive(event) {
  // event: { connectionId, recipient, deviceId, channelId, count, sizes: number[], wait, time }
}

/** A member is being added to a channel. Rejecting answers Forbidden. */
export function on_group_join(event) {
  // event: { channelId ("" while the group is being created), member, actor, time }
}

/** A member is being removed from (or leaving) a channel. Rejecting answers Forbidden. */
export function on_group_leave(event) {
  // event: { channelId, member, actor, time }
}
`;
}

export function testTemplate(name: string, testDir: string): string {
  return `// Runs ${name}.js through the real plugin host (a child process with isolated-vm).
// Run it from the qpq-edge checkout: npm run plugin -- test ${testDir}
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, test } from "vitest";
import { PluginHost } from ${JSON.stringify(importPath(testDir, HOST_INDEX))};
import { HOST_TEST_TIMEOUT_MS, memoryLogger, sampleEvent } from ${JSON.stringify(importPath(testDir, TEST_SUPPORT))};
import type { HookEvent, HookName } from ${JSON.stringify(importPath(testDir, PLUGIN_API))};

// The decisions this plugin should make: one row per case, yours to edit as the rules grow.
// \`event\` overrides fields of a valid sample event (sampleEvent); \`expect\` is "allow" or
// { reject: "the reason the plugin gives" }. Observer hooks (on_disconnect,
// on_message_receive) always count as "allow": check what they log instead. Delete the rows
// of hooks you deleted from the plugin.
type Case = { [H in HookName]: { name: string; hook: H; event?: Partial<HookEvent<H>>; expect: "allow" | { reject: string } } }[HookName];

const cases: Case[] = [
  { name: "accepts a QUIC connection", hook: "on_connect", event: { transport: "quic" }, expect: "allow" },
  { name: "observes a disconnect", hook: "on_disconnect", expect: "allow" },
  { name: "allows a 100-byte message to one recipient", hook: "on_message_send", event: { payloadSize: 100 }, expect: "allow" },
  // { name: "rejects a 1 MB message", hook: "on_message_send", event: { payloadSize: 1_000_000 }, expect: { reject: "message too large" } },
  { name: "observes a delivery", hook: "on_message_receive", expect: "allow" },
  { name: "allows a member to join", hook: "on_group_join", expect: "allow" },
  { name: "allows a member to leave", hook: "on_group_leave", expect: "allow" },
];

const log = memoryLogger();
let host: PluginHost;
beforeAll(async () => {
  // Starting the host (a child process with isolates) takes seconds on a busy machine.
  host = await PluginHost.start({ files: [fileURLToPath(new URL("./${name}.js", import.meta.url))], logger: log });
}, HOST_TEST_TIMEOUT_MS);
afterAll(() => host?.stop());

test("loads without errors", () => {
  expect(log.find("plugin failed to load; skipped")).toEqual([]);
  expect(host.plugins.map((p) => p.name)).toEqual([${JSON.stringify(name)}]);
});

function decide<H extends HookName>(c: { hook: H; event?: Partial<HookEvent<H>> }) {
  return host.call(c.hook, sampleEvent(c.hook, c.event ?? {}));
}

for (const c of cases) {
  test(\`\${c.hook}: \${c.name}\`, async () => {
    expect(host.has(c.hook), \`${name}.js does not export \${c.hook}: delete this row\`).toBe(true);
    const decision = await decide(c);
    expect(decision).toEqual(c.expect === "allow" ? { allow: true } : { allow: false, reason: c.expect.reject, plugin: ${JSON.stringify(name)} });
  }, HOST_TEST_TIMEOUT_MS);
}
`;
}

/**
 * Writes `<dir>/<name>.js` and `<dir>/<name>.test.ts` (creating `dir`); refuses to overwrite.
 * Returns the paths written.
 */
export function scaffoldPlugin(dir: string, name: string): { plugin: string; test: string } {
  if (!NAME_RE.test(name))
    throw new ScaffoldError(
      `invalid plugin name "${name}": use 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit`,
    );
  const abs = resolve(dir);
  const plugin = join(abs, `${name}.js`);
  const test = join(abs, `${name}.test.ts`);
  for (const f of [plugin, test]) if (existsSync(f)) throw new ScaffoldError(`${f} already exists`);
  mkdirSync(abs, { recursive: true });
  writeFileSync(plugin, pluginTemplate(name));
  writeFileSync(test, testTemplate(name, abs));
  return { plugin, test };
}
