import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, test } from "vitest";
import { main, testCommand } from "./cli.ts";
import { PluginHost } from "./host/index.ts";
import { HOOKS } from "./host/policy.ts";
import { HOST_TEST_TIMEOUT_MS, memoryLogger, sampleEvent, tempDir } from "./host/test-support.ts";
import { ScaffoldError, scaffoldPlugin } from "./scaffold.ts";

const REPO = resolve(fileURLToPath(new URL("..", import.meta.url)));
const d = tempDir();
afterAll(() => d.cleanup());

test(
  "writes a plugin exporting all six hooks that loads and allows, and refuses to overwrite",
  async () => {
    const { plugin, test: testFile } = scaffoldPlugin(join(d.dir, "local"), "my-plugin");
    expect(plugin).toBe(join(d.dir, "local", "my-plugin.js"));
    expect(readFileSync(testFile, "utf8")).toContain("PluginHost.start");
    const log = memoryLogger();
    const host = await PluginHost.start({ dir: join(d.dir, "local"), logger: log });
    try {
      expect(log.find("plugin failed to load; skipped")).toEqual([]);
      expect(host.plugins).toMatchObject([{ name: "my-plugin", version: "0.1.0", hooks: HOOKS }]);
      for (const h of HOOKS) expect(await host.call(h, sampleEvent(h))).toEqual({ allow: true });
    } finally {
      await host.stop();
    }
    expect(() => scaffoldPlugin(join(d.dir, "local"), "my-plugin")).toThrow(ScaffoldError);
    expect(() => scaffoldPlugin(d.dir, "../escape")).toThrow(/invalid plugin name/);
    expect(() => scaffoldPlugin(d.dir, "")).toThrow(/invalid plugin name/);
  },
  HOST_TEST_TIMEOUT_MS,
);

test("cli: plugin new <name> [--dir] resolves --dir from where the user ran it; usage errors", async () => {
  const lines: string[] = [];
  const io = { out: (l: string) => void lines.push(l), err: (l: string) => void lines.push(`ERR ${l}`), cwd: d.dir };
  expect(await main(["plugin", "new", "cli-made", "--dir", "cli"], io)).toBe(0);
  expect(existsSync(join(d.dir, "cli", "cli-made.js"))).toBe(true);
  expect(existsSync(join(d.dir, "cli", "cli-made.test.ts"))).toBe(true);
  // Typed outside the checkout: the printed command goes there first.
  expect(lines).toEqual([
    "created cli/cli-made.js",
    "created cli/cli-made.test.ts",
    `test it: cd ${REPO} && npm run plugin -- test ${join(d.dir, "cli")}`,
  ]);
  expect(await main(["plugin", "new", "cli-made", "--dir", "cli"], io)).toBe(1);
  expect(lines.at(-1)).toMatch(/^ERR error: .* already exists$/);
  expect(await main(["plugin", "delete", "x"], io)).toBe(2);
  expect(await main(["plugin", "new"], io)).toBe(2);
  expect(await main(["plugin", "new", "x", "--bogus"], io)).toBe(2);
  expect(await main(["plugin", "test", "x", "--dir", "y"], io)).toBe(2);
  expect(await main(["plugin", "test", join(d.dir, "nowhere")], io)).toBe(1);
  expect(await main(["--help"], io)).toBe(0);
  expect(testCommand(join(REPO, "plugins", "local"), REPO)).toBe("npm run plugin -- test plugins/local");
  expect(testCommand(join(d.dir, "cli"), join(REPO, "plugins"))).toBe(`npm run plugin -- test ${join(d.dir, "cli")}`);
});

/** `npm run plugin -- test <dir>` as a user runs it (npm run starts it in the repository). */
function pluginTest(dir: string) {
  return spawnSync(process.execPath, [join(REPO, "plugins/cli.ts"), "plugin", "test", dir], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 2 * HOST_TEST_TIMEOUT_MS,
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
  });
}

test(
  "the generated test passes for a directory outside the repository, and its table grows with the rules",
  () => {
    const outside = tempDir("qpq-plugin-outside-");
    try {
      const { plugin, test: testFile } = scaffoldPlugin(outside.dir, "quota");
      let r = pluginTest(outside.dir);
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/7 passed/); // loads + one row per hook

      // A real rule: the template's rows still pass, and the commented row, once enabled, checks it.
      writeFileSync(
        plugin,
        readFileSync(plugin, "utf8").replace(
          "export function on_message_send(event) {",
          'export function on_message_send(event) {\n  if (event.payloadSize > 1000) return { reject: "message too large" };',
        ),
      );
      const table = readFileSync(testFile, "utf8");
      const row = /^ {2}\/\/ (\{ name: "rejects a 1 MB message".*)$/m;
      expect(table).toMatch(row);
      writeFileSync(testFile, table.replace(row, "  $1"));
      r = pluginTest(outside.dir);
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/8 passed/);

      // A row whose expectation the plugin does not meet fails the run.
      writeFileSync(
        testFile,
        readFileSync(testFile, "utf8").replace('reject: "message too large"', 'reject: "something else"'),
      );
      r = pluginTest(testFile);
      expect(r.status).toBe(1);
      expect(r.stdout + r.stderr).toMatch(/1 failed/);
    } finally {
      outside.cleanup();
    }
  },
  4 * HOST_TEST_TIMEOUT_MS,
);
