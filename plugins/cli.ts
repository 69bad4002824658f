#!/usr/bin/env node
// `npm run plugin -- new <name> [--dir plugins/local]`: scaffolds a plugin and its test.
import { relative } from "node:path";
import { parseArgs } from "node:util";
import { ScaffoldError, scaffoldPlugin } from "./scaffold.ts";

export const USAGE = `npm run plugin — gateway plugins

Usage:
  npm run plugin -- new <name> [--dir <directory>]

    Writes <directory>/<name>.js (a commented template exporting all six hooks) and
    <directory>/<name>.test.ts (a vitest test running it through the real plugin host).
    --dir defaults to plugins/local. Refuses to overwrite existing files.

Then: edit the plugin, run its test (npx vitest run --project unit <directory>/<name>.test.ts),
and install it by copying <name>.js into QPQ_PLUGIN_DIR (see docs/plugins.md).
`;

export interface CliIO {
  out(line: string): void;
  err(line: string): void;
}

const stdio: CliIO = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
};

/** Runs the command; returns the exit code (0 ok, 1 failure, 2 usage). */
export function main(argv: string[], io: CliIO = stdio): number {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { dir: { type: "string" }, help: { type: "boolean", short: "h" } } });
  } catch (err) {
    io.err(`error: ${(err as Error).message}`);
    io.err(USAGE);
    return 2;
  }
  const [group, command, name, ...rest] = parsed.positionals;
  if (parsed.values.help || group === undefined) {
    io.out(USAGE);
    return group === undefined && !parsed.values.help ? 2 : 0;
  }
  if (group !== "plugin" || command !== "new" || name === undefined || rest.length > 0) {
    io.err(USAGE);
    return 2;
  }
  try {
    const written = scaffoldPlugin(parsed.values.dir ?? "plugins/local", name);
    io.out(`created ${relative(process.cwd(), written.plugin)}`);
    io.out(`created ${relative(process.cwd(), written.test)}`);
    io.out(`test it: npx vitest run --project unit ${relative(process.cwd(), written.test)}`);
    return 0;
  } catch (err) {
    if (!(err instanceof ScaffoldError)) throw err;
    io.err(`error: ${err.message}`);
    return 1;
  }
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2));
