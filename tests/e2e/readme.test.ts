// The README's two-user walkthrough, run as printed: the system started as `npm start` starts
// it, then each command of the "Two users with the CLI" block through a shell with the user's
// npm (node_modules/.bin removed from PATH, as in a fresh terminal), and its output compared
// with the comment beside it. The overrides are the ones the README documents: QPQ_SERVER and
// QPQ_DATA_DIR for a second instance, and fresh profile directories instead of /tmp/alice, /tmp/bob.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { spawnSystem, type SystemProcess } from "../support/process-system.ts";

const root = new URL("../..", import.meta.url).pathname;

interface Step {
  command: string;
  /** What the comment says: stdout's first lines, or stderr. */
  expect: { stream: "stdout" | "stderr"; text: string } | undefined;
}

/** The first ```sh block under "## Two users with the CLI", one step per command line. */
function walkthrough(readme: string): Step[] {
  const section = readme.split(/^## /m).find((s) => s.startsWith("Two users with the CLI"));
  const block = section && /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error('README has no ```sh block under "## Two users with the CLI"');
  return block
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.trimStart().startsWith("#"))
    .map((line) => {
      const m = /^(.*?)\s+#\s+(.*)$/.exec(line);
      const command = (m ? m[1] : line).trim();
      const comment = m?.[2] ?? "";
      const printed = /^prints "([^"]*)"/.exec(comment);
      const said = /^says "([^"]*)" on stderr/.exec(comment);
      return {
        command,
        expect: printed
          ? { stream: "stdout", text: printed[1] }
          : said
            ? { stream: "stderr", text: said[1] }
            : undefined,
      };
    });
}

/** The README's placeholders as patterns: <seq> is captured (the same seq throughout), <n> any number. */
function pattern(text: string): RegExp {
  const escaped = text
    .replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
    .replaceAll("<TAB>", "\\t")
    .replaceAll("<seq>", "(?<seq>\\d+)")
    .replaceAll("<n>", "\\d+");
  return new RegExp(`^${escaped}\\n`);
}

function sh(command: string, env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile("sh", ["-c", command], { cwd: root, env, timeout: 90_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
    );
    child.stdin?.end();
  });
}

describe("README walkthrough", () => {
  let sys: SystemProcess;
  let dataDir: string;
  let profiles: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "qpq-readme-"));
    profiles = mkdtempSync(join(tmpdir(), "qpq-readme-profiles-"));
    sys = await spawnSystem(dataDir);
  });

  afterAll(async () => {
    if (sys) {
      sys.killNow();
      await sys.waitGone();
    }
    for (const d of [dataDir, profiles]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it("parses every command and its documented output", () => {
    const steps = walkthrough(readFileSync(join(root, "README.md"), "utf8"));
    expect(steps.length).toBeGreaterThanOrEqual(9);
    for (const s of steps) {
      expect(s.command, s.command).toMatch(/^(QPQ_PASSWORD='[^']*'\s+)?npm run -s qpq -- /);
      expect(s.expect, `no documented output for: ${s.command}`).toBeDefined();
    }
  });

  it("runs as printed and prints what the README says", async () => {
    const steps = walkthrough(readFileSync(join(root, "README.md"), "utf8"));
    // A fresh terminal: the system's npm and node, not the ones this test runs under.
    const PATH = (process.env.PATH ?? "")
      .split(delimiter)
      .filter((p) => !p.endsWith(join("node_modules", ".bin")))
      .join(delimiter);
    const env: NodeJS.ProcessEnv = {
      PATH,
      HOME: profiles,
      QPQ_SERVER: `127.0.0.1:${sys.quicPort}`,
      QPQ_DATA_DIR: dataDir,
    };
    let seq: string | undefined;
    for (const step of steps) {
      const command = step.command.replace(
        /--profile \/tmp\/(\w+)/g,
        (_, who: string) => `--profile ${join(profiles, who)}`,
      );
      const r = await sh(command, env);
      const where = `${step.command}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
      expect(r.code, where).toBe(0);
      const { stream, text } = step.expect!;
      const other = stream === "stdout" ? r.stderr : r.stdout;
      expect(other, where).toBe(""); // no npm noise, no engine warnings
      const m = pattern(text).exec(r[stream]);
      expect(m, where).not.toBeNull();
      if (stream === "stderr") expect(r.stderr, where).toBe(`${text}\n`);
      const got = m!.groups?.seq;
      if (got !== undefined) {
        seq ??= got;
        expect(got, `${where}\n(the seq send printed was ${seq})`).toBe(seq);
      }
    }
    expect(seq).toBeDefined();
  });
});
