// Runs the whole local system as `npm start` does (node scripts/start.ts) in its own process
// group, so a test can SIGKILL the front, Miniflare and its workerd children at once and start it
// again on the same data directory.
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { QpqClient } from "../../sdk/client.ts";
import type { QuicTransport } from "../../sdk/transport.ts";

const root = new URL("../..", import.meta.url).pathname;
/** Lines of the child's output kept for failure messages. */
const TAIL_LINES = 40;
/** Lines of the child's output kept for output(): tests that search the logs. */
const ALL_LINES = 200_000;
/** Polling bounds: generous, as a busy 2-core machine may take long to start or to reap. */
const POLL_MS = 250;
const READY_ATTEMPTS = 240;
const GONE_ATTEMPTS = 240;

export interface SystemProcess {
  /** Process id of `node scripts/start.ts`, also the id of its process group. */
  pid: number;
  quicPort: number;
  edgeUrl: string;
  /** The development certificate the front serves, to pin in clients. */
  ca: string;
  connect(opts?: { requestTimeoutMs?: number }): Promise<QpqClient<QuicTransport>>;
  /** Sends SIGKILL to the whole process group without waiting. */
  killNow(): void;
  /** Resolves once no process of the group is alive and neither port is held any more. */
  waitGone(): Promise<void>;
  /** The last lines the processes printed, for failure messages. */
  tail(): string;
  /** Everything the processes printed so far (front and edge logs; up to ALL_LINES lines). */
  output(): string;
}

/**
 * Starts the system and resolves once it printed where it listens and answers Health over QUIC.
 * On failure the process group is killed before the promise rejects.
 */
export async function spawnSystem(dataDir: string, env: Record<string, string> = {}): Promise<SystemProcess> {
  const proc = spawn(process.execPath, [join(root, "scripts/start.ts")], {
    cwd: root,
    // A new session and process group: workerd and any helper child share it, so one kill(-pid)
    // reaches all of them.
    detached: true,
    env: {
      ...process.env,
      QPQ_DATA_DIR: dataDir,
      QPQ_LISTEN: "127.0.0.1:0",
      QPQ_LOG_LEVEL: "info",
      // Off, so parallel runs do not collide on start.ts's fixed default ports.
      QPQ_METRICS_LISTEN: "",
      QPQ_WS_LISTEN: "",
      QPQ_PLUGIN_DIR: "",
      QPQ_PLUGINS: "",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pid = proc.pid;
  if (pid === undefined) throw new Error("could not spawn scripts/start.ts");
  const lines: string[] = [];
  const all: string[] = [];
  const keep = (line: string) => {
    lines.push(line);
    if (lines.length > TAIL_LINES) lines.shift();
    if (all.length < ALL_LINES) all.push(line);
  };
  // Both pipes are read to the end, so the child never blocks on a full pipe.
  createInterface({ input: proc.stdout! }).on("line", keep);
  const stderr = createInterface({ input: proc.stderr! });
  stderr.on("line", keep);
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const tail = () => lines.join("\n");
  const killNow = () => killGroup(pid);

  try {
    const running = await new Promise<{ quic: string; edge: string }>((resolve, reject) => {
      stderr.on("line", (line) => {
        let entry: { msg?: string; quic?: string; edge?: string };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          return; // not a log line
        }
        if (entry.msg === "qpq-edge is running" && entry.quic && entry.edge)
          resolve({ quic: entry.quic, edge: entry.edge });
        if (entry.msg === "start-up failed") reject(new Error(`start-up failed:\n${tail()}`));
      });
      proc.once("exit", (code, signal) =>
        reject(new Error(`scripts/start.ts exited early (${code ?? signal}):\n${tail()}`)),
      );
    });
    const quicPort = Number(/:(\d+) /.exec(running.quic)?.[1]);
    if (!Number.isInteger(quicPort) || quicPort <= 0) throw new Error(`no QUIC port in "${running.quic}"`);
    const ca = readFileSync(join(dataDir, "dev-ca.pem"), "utf8");
    const connect = (opts: { requestTimeoutMs?: number } = {}) =>
      QpqClient.connect({ host: "127.0.0.1", port: quicPort, ca, requestTimeoutMs: opts.requestTimeoutMs });
    await waitHealthy(connect, proc, tail);
    return {
      pid,
      quicPort,
      edgeUrl: running.edge,
      ca,
      connect,
      killNow,
      tail,
      output: () => all.join("\n"),
      async waitGone() {
        await exited;
        await waitGroupGone(pid, tail);
        await waitTcpRefused(new URL(running.edge), tail);
        await waitUdpFree(quicPort, tail);
      },
    };
  } catch (err) {
    killNow();
    throw err;
  }
}

/** SIGKILL to every process of the group; a group that is already gone is fine. */
export function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

async function waitHealthy(
  connect: () => Promise<QpqClient<QuicTransport>>,
  proc: ChildProcess,
  tail: () => string,
): Promise<void> {
  let last: unknown;
  for (let i = 0; i < READY_ATTEMPTS; i++) {
    if (proc.exitCode !== null || proc.signalCode !== null) break;
    try {
      const client = await connect();
      try {
        if ((await client.health()).status === "ok") return;
      } finally {
        await client.close();
      }
    } catch (err) {
      last = err;
    }
    await sleep(POLL_MS);
  }
  throw new Error(`the system never answered Health (${String(last)}):\n${tail()}`);
}

/** Live (not zombie) processes of a group. Zombies hold no sockets or files. */
function liveMembers(pgid: number): number[] {
  if (!existsSync("/proc/self/stat")) {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const members: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid && fields[0] !== "Z") members.push(Number(name));
  }
  return members;
}

async function waitGroupGone(pgid: number, tail: () => string): Promise<void> {
  for (let i = 0; i < GONE_ATTEMPTS; i++) {
    const members = liveMembers(pgid);
    if (members.length === 0) return;
    killGroup(pgid);
    await sleep(POLL_MS);
  }
  throw new Error(`processes of group ${pgid} still alive after SIGKILL: ${liveMembers(pgid).join(", ")}\n${tail()}`);
}

async function waitTcpRefused(url: URL, tail: () => string): Promise<void> {
  for (let i = 0; i < GONE_ATTEMPTS; i++) {
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect({ host: url.hostname, port: Number(url.port) });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (!accepted) return;
    await sleep(POLL_MS);
  }
  throw new Error(`something still accepts connections on ${url.host}:\n${tail()}`);
}

async function waitUdpFree(port: number, tail: () => string): Promise<void> {
  for (let i = 0; i < GONE_ATTEMPTS; i++) {
    const bound = await new Promise<boolean>((resolve) => {
      const socket = createSocket("udp4");
      socket.once("error", () => {
        socket.close();
        resolve(false);
      });
      socket.bind(port, "127.0.0.1", () => socket.close(() => resolve(true)));
    });
    if (bound) return;
    await sleep(POLL_MS);
  }
  throw new Error(`UDP port ${port} is still held after the kill:\n${tail()}`);
}
