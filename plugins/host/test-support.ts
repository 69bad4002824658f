// Helpers for the plugin tests: temp plugin directories, a capturing logger, sample events and
// a bounded poll.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HookEvent, HookName } from "../api/index.ts";
import type { HostLogger } from "./index.ts";

export interface LogRecord {
  level: "info" | "warn" | "error";
  msg: string;
  fields: Record<string, unknown>;
}

export function memoryLogger(): HostLogger & { records: LogRecord[]; find(msg: string, pred?: (f: Record<string, unknown>) => boolean): LogRecord[] } {
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
export function tempDir(prefix = "qpq-plugins-"): { dir: string; write(name: string, code: string): string; cleanup(): void } {
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
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = WAIT_MS, what = "condition"): Promise<Truthy<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as Truthy<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const KEY_A = "a1".repeat(32);
const KEY_B = "b2".repeat(32);
const CHANNEL = "c3".repeat(16);

/** A valid sample event for each hook; override fields as needed. */
export function sampleEvent<H extends HookName>(hook: H, over: Partial<HookEvent<H>> = {}): HookEvent<H> {
  const time = Date.now();
  const base: { [K in HookName]: HookEvent<K> } = {
    on_connect: { connectionId: "conn-1", clientAddress: "127.0.0.1:50000", alpn: "qpq", transport: "quic", time },
    on_disconnect: { connectionId: "conn-1", clientAddress: "127.0.0.1:50000", transport: "quic", time, durationMs: 1234, reason: "client closed" },
    on_message_send: {
      connectionId: "conn-1", clientAddress: "127.0.0.1:50000", senderIdentity: KEY_A, recipients: [KEY_B], channelId: CHANNEL,
      payloadSize: 100, ttlSecs: 3600, messageId: "0f".repeat(16), batch: false, time,
    },
    on_message_receive: { connectionId: "conn-1", recipient: KEY_B, deviceId: "d4".repeat(16), channelId: CHANNEL, count: 2, sizes: [100, 200], wait: false, time },
    on_group_join: { channelId: CHANNEL, member: KEY_B, actor: KEY_A, time },
    on_group_leave: { channelId: CHANNEL, member: KEY_B, actor: KEY_A, time },
  };
  return { ...base[hook], ...over };
}
