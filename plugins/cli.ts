#!/usr/bin/env node
// `npm run plugin -- new <name> [--dir plugins/local]`: scaffolds a plugin and its test;
// `npm run plugin -- test <directory | file>`: runs such tests wherever they live.
import { statSync } from "node:fs";
import { basename, dirname, isAbsolute, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ScaffoldError, scaffoldPlugin } from "./scaffold.ts";

const REPO = resolve(fileURLToPath(new URL("..", import.meta.url)));

export const USAGE = `npm run plugin — gateway plugins

Usage:
  npm run plugin -- new <name> [--dir <directory>]

    Writes <directory>/<name>.js (a commented template exporting all six hooks) and
    <directory>/<name>.test.ts (a vitest test running it through the real plugin host, with a
    table of sample events and the decisions you expect, to edit as the rules grow).
    --dir defaults to plugins/local. Refuses to overwrite existing files.

  npm run plugin -- test <directory | file.test.ts>

    Runs the plugin tests in that directory (or that one file) under vitest, wherever the
    directory is (inside this checkout or not).

Then install the plugin by copying <name>.js into QPQ_PLUGIN_DIR (see docs/plugins.md).
`;

export interface CliIO {
  out(line: string): void;
  err(line: string): void;
  /** Directory relative paths are resolved against: where the user typed the command. */
  cwd: string;
}

const stdio: CliIO = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
  // npm run starts scripts in the package root; INIT_CWD is where the user ran npm.
  cwd: process.env.INIT_CWD ?? process.cwd(),
};

/** A path as the user can type it from `from`: relative when under it, absolute otherwise. */
function shown(path: string, from: string): string {
  const rel = relative(from, path);
  return rel === "" ? "." : rel.startsWith("..") || isAbsolute(rel) ? path : rel;
}

/** The command that runs the tests of `dir`, typed from `cwd`. */
export function testCommand(dir: string, cwd: string): string {
  const inRepo = !relative(REPO, cwd).startsWith("..");
  const command = `npm run plugin -- test ${shown(dir, inRepo ? cwd : REPO)}`;
  return inRepo ? command : `cd ${REPO} && ${command}`;
}

/** Runs the command; resolves to the exit code (0 ok, 1 failure, 2 usage). */
export async function main(argv: string[], io: CliIO = stdio): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { dir: { type: "string" }, help: { type: "boolean", short: "h" } },
    });
  } catch (err) {
    io.err(`error: ${(err as Error).message}`);
    io.err(USAGE);
    return 2;
  }
  const [group, command, target, ...rest] = parsed.positionals;
  if (parsed.values.help || group === undefined) {
    io.out(USAGE);
    return group === undefined && !parsed.values.help ? 2 : 0;
  }
  if (
    group !== "plugin" ||
    target === undefined ||
    rest.length > 0 ||
    !(command === "new" || (command === "test" && parsed.values.dir === undefined))
  ) {
    io.err(USAGE);
    return 2;
  }
  if (command === "test") return runTests(resolve(io.cwd, target), io);
  try {
    const written = scaffoldPlugin(resolve(io.cwd, parsed.values.dir ?? "plugins/local"), target);
    io.out(`created ${shown(written.plugin, io.cwd)}`);
    io.out(`created ${shown(written.test, io.cwd)}`);
    io.out(`test it: ${testCommand(dirname(written.test), io.cwd)}`);
    return 0;
  } catch (err) {
    if (!(err instanceof ScaffoldError)) throw err;
    io.err(`error: ${err.message}`);
    return 1;
  }
}

/**
 * vitest rooted at the plugin's directory with no config file: the repository's config (its
 * projects and include patterns) would find nothing outside its own folders.
 */
async function runTests(path: string, io: CliIO): Promise<number> {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch {
    io.err(`error: ${path} does not exist`);
    return 1;
  }
  const { startVitest } = await import("vitest/node");
  const vitest = await startVitest("test", isFile ? [basename(path)] : [], {
    root: isFile ? dirname(path) : path,
    run: true,
    watch: false,
    config: false,
  });
  try {
    const files = vitest.state.getFiles();
    if (files.length === 0) return 1; // vitest has said "No test files found"
    return vitest.state.getCountOfFailedTests() > 0 || files.some((f) => f.result?.state === "fail") ? 1 : 0;
  } finally {
    await vitest.close();
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
