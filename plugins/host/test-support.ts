// Helpers for the plugin tests: temp plugin directories, a capturing logger, sample events
// (sample-events.ts) and a bounded poll.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HostLogger } from "./index.ts";

export interface LogRecord {
  level: "info" | "warn" | "error";
  msg: string;
  fields: Record<string, unknown>;
}

export function memoryLogger(): HostLogger & {
  records: LogRecord[];
  find(msg: string, pred?: (f: Record<string, unknown>) => boolean): LogRecord[];
} {
  const records: LogRecord[] = [];
  const at = (level: LogRecord["level"]) => (msg: string, fields?: Record<string, unknown>) => {
    records.push({ level, msg, fields: fields ?? {} });
  };
  return {
    records,
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    find: (msg, pred = () => true) => records.filter((r) => r.msg === msg && pred(r.fields)),
  };
}

/** A fresh temp directory; remove it with the returned cleanup. */
export function tempDir(prefix = "qpq-plugins-"): {
  dir: string;
  write(name: string, code: string): string;
  cleanup(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    write(name, code) {
      const file = join(dir, name);
      writeFileSync(file, code);
      return file;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Timeout for a test (or hook) that starts a plugin host: a child process and isolates, which
 * take seconds when every core is busy. Tests wait for conditions (waitFor), never for a time.
 */
export const HOST_TEST_TIMEOUT_MS = 60_000;

type Truthy<T> = Exclude<T, undefined | null | false | 0 | "">;

/** How long waitFor waits by default: generous, it only bounds a test that is stuck. */
export const WAIT_MS = 30_000;

/** Polls `check` every 20 ms until it returns a truthy value, for at most `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = WAIT_MS,
  what = "condition",
): Promise<Truthy<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as Truthy<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export { sampleEvent } from "./sample-events.ts";
