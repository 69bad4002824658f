import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, test } from "vitest";
import { main } from "./cli.ts";
import { PluginHost } from "./host/index.ts";
import { HOOKS } from "./host/policy.ts";
import { HOST_TEST_TIMEOUT_MS, memoryLogger, sampleEvent, tempDir } from "./host/test-support.ts";
import { ScaffoldError, scaffoldPlugin } from "./scaffold.ts";

const d = tempDir();
afterAll(() => d.cleanup());

test("writes a plugin exporting all six hooks that loads and allows, and refuses to overwrite", async () => {
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
}, HOST_TEST_TIMEOUT_MS);

test("cli: plugin new <name> [--dir]; usage errors", () => {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(`ERR ${l}`) };
  expect(main(["plugin", "new", "cli-made", "--dir", join(d.dir, "cli")], io)).toBe(0);
  expect(existsSync(join(d.dir, "cli", "cli-made.js"))).toBe(true);
  expect(existsSync(join(d.dir, "cli", "cli-made.test.ts"))).toBe(true);
  expect(main(["plugin", "new", "cli-made", "--dir", join(d.dir, "cli")], io)).toBe(1);
  expect(lines.at(-1)).toMatch(/^ERR error: .* already exists$/);
  expect(main(["plugin", "delete", "x"], io)).toBe(2);
  expect(main(["plugin", "new"], io)).toBe(2);
  expect(main(["plugin", "new", "x", "--bogus"], io)).toBe(2);
  expect(main(["--help"], io)).toBe(0);
});

test("the generated test passes under vitest", () => {
  // Generated inside the repository, where the unit project's include pattern finds it.
  const local = fileURLToPath(new URL("./local/", import.meta.url));
  const hadLocal = existsSync(local);
  const dir = join(local, `scaffold-selftest-${process.pid}`);
  try {
    const { test: testFile } = scaffoldPlugin(dir, "selftest");
    const vitest = fileURLToPath(new URL("../node_modules/vitest/vitest.mjs", import.meta.url));
    const r = spawnSync(process.execPath, [vitest, "run", "--project", "unit", testFile], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      encoding: "utf8",
      timeout: 2 * HOST_TEST_TIMEOUT_MS,
      env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/2 passed/);
  } finally {
    rmSync(hadLocal ? dir : local, { recursive: true, force: true });
  }
}, 3 * HOST_TEST_TIMEOUT_MS);
