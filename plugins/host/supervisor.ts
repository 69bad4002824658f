// Supervises the plugin host's child process (child.ts): forks it with an IPC channel, sends it
// loads and calls, decides the calls it does not answer in time, kills it when it stops
// answering or when its stall watch names a plugin, and restarts it with backoff when it exits.
// What the plugins are, and what to do with their answers, is the owner's business.
import { fork, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { HookName } from "../api/index.ts";
import type { PluginOutcome } from "./policy.ts";
import type { HookDecision } from "../../proto/util/hook-decision.ts";
import { STALL_MARKER, type FromChild, type ToChild } from "./protocol.ts";
import type { LoadRequest } from "./catalogue.ts";
import type { HostLogger } from "./logger.ts";

/** The child process entry and the Node flags it needs (isolated-vm requires --no-node-snapshot). */
export const CHILD_ENTRY = fileURLToPath(new URL("./child.ts", import.meta.url));
export const CHILD_EXEC_ARGV: readonly string[] = ["--no-node-snapshot", "--disable-warning=ExperimentalWarning"];

export type LoadedMessage = Extract<FromChild, { t: "loaded" }>;

/** What the child's stall watch reported: the plugin whose call (or file whose load) its time limit could not stop. */
export interface StallReport {
  file: string;
  plugin: unknown;
  ms: unknown;
}

/** The supervisor's owner: it knows the plugins and decides what their answers mean. */
export interface SupervisorOwner {
  /** Are there plugin files to load (a file change with no child running starts one)? */
  hasPlugins(): boolean;
  /** What the child should load now. */
  loadRequest(): LoadRequest;
  /** The child is evaluating `file`. */
  loading(file: string): void;
  /** The child (re)loaded the plugin set. */
  loaded(m: LoadedMessage): void;
  /** The child answered a call; `outcomes` says what each plugin did. */
  answered(hook: HookName, event: Record<string, unknown>, outcomes: PluginOutcome[]): void;
  /** A call the child cannot answer (it is down, too slow, or died with the call in flight). */
  unanswered(hook: HookName, event: Record<string, unknown>): HookDecision;
  /** The child's stall watch named a plugin; the supervisor kills the child afterwards. */
  stalled(report: StallReport): void;
  /** The child exited; true when the file it was loading takes the blame. */
  exited(): boolean;
}

interface Pending {
  hook: HookName;
  event: Record<string, unknown>;
  resolve(d: HookDecision): void;
  /** How long this call may wait for the child, and when that ends. */
  span: number;
  deadline: number;
}

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;
/** A child that ran this long before dying restarts after the minimum backoff again. */
const HEALTHY_UPTIME_MS = 10_000;
/** A load (or the first start) may take this long without any message from the child. */
const LOAD_DEADLINE_MS = 10_000;
/** A child that died this often before loading anything, with no plugin to blame, cannot start at all. */
const MAX_START_FAILURES = 3;

export class ChildSupervisor {
  private readonly owner: SupervisorOwner;
  private readonly logger: HostLogger;
  private readonly callTimeoutMs: number;
  /** Counted on each restart (the owner's metrics). */
  private readonly onRestart: () => void;

  private child: ChildProcess | null = null;
  private childStartedAt = 0;
  private lastMessageAt = 0;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private loadSeq = 0;
  private readonly loadWaiters = new Map<number, (ok: boolean) => void>();
  private restartTimer: NodeJS.Timeout | null = null;
  private backoffMs = MIN_BACKOFF_MS;
  private watchdog: NodeJS.Timeout | null = null;
  private stopped = false;
  private firstLoad: { resolve(): void; reject(err: Error): void } | null = null;
  private startFailures = 0;

  constructor(opts: { owner: SupervisorOwner; logger: HostLogger; callTimeoutMs: number; onRestart: () => void }) {
    this.owner = opts.owner;
    this.logger = opts.logger;
    this.callTimeoutMs = opts.callTimeoutMs;
    this.onRestart = opts.onRestart;
  }

  /** Starts the child; resolves once it loaded the plugins, rejects if it cannot start at all. */
  start(): Promise<void> {
    return new Promise<void>((res, rej) => {
      this.firstLoad = { resolve: res, reject: rej };
      this.spawn();
    });
  }

  /** Process id of the child, while one runs. */
  get childPid(): number | undefined {
    return this.child?.pid;
  }

  /** Sends a call to the child; resolves with its decision, or the owner's when the child cannot answer within `span` ms. */
  call(hook: HookName, event: Record<string, unknown>, span: number): Promise<HookDecision> {
    const child = this.child;
    if (!child || !child.connected) return Promise.resolve(this.owner.unanswered(hook, event));
    const id = this.nextId++;
    return new Promise<HookDecision>((resolvePromise) => {
      this.pending.set(id, { hook, event, resolve: resolvePromise, span, deadline: Date.now() + span });
      child.send({ t: "call", id, hook, event } satisfies ToChild);
    });
  }

  /** The plugin set may have changed: the running child reloads it, or a child is started for it. */
  reload(): void {
    if (this.stopped) return;
    if (this.child) {
      void this.load();
    } else if (!this.restartTimer && this.owner.hasPlugins()) {
      // First plugin file appeared (or the child is down without a pending restart).
      this.spawn();
    }
  }

  /** Ends the child; calls still pending are decided by the owner. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.restartTimer, this.watchdog]) if (t) clearTimeout(t);
    this.restartTimer = this.watchdog = null;
    const child = this.child;
    this.child = null;
    this.failPending();
    if (child && child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((done) => {
        child.once("exit", () => done());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 2000).unref();
      });
    }
  }

  // -------------------------------------------------------------------------------------------

  private spawn(): void {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const child = fork(CHILD_ENTRY, [], {
      execPath: process.execPath,
      execArgv: [...CHILD_EXEC_ARGV],
      env,
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      serialization: "json",
    });
    this.child = child;
    this.childStartedAt = this.lastMessageAt = Date.now();
    child.on("message", (m: FromChild) => {
      if (child === this.child) this.onMessage(m);
    });
    child.on("exit", (code, signal) => this.onExit(child, code, signal));
    child.on("error", (err) => {
      this.logger.error("plugin host process error", { error: err.message });
      if (child.pid === undefined) this.onExit(child, null, null);
    });
    if (child.stderr) {
      createInterface({ input: child.stderr }).on("line", (line) => {
        if (line.startsWith(STALL_MARKER)) this.onStall(child, line.slice(STALL_MARKER.length));
        else if (line.trim()) this.logger.warn("plugin host stderr", { line: line.slice(0, 500) });
      });
    }
    this.ensureWatchdog();
    void this.load();
  }

  /** Sends the current file list to the child; resolves true once it reports the plugins loaded. */
  private load(): Promise<boolean> {
    const child = this.child;
    if (!child || !child.connected) return Promise.resolve(false);
    const seq = ++this.loadSeq;
    this.lastMessageAt = Date.now();
    const { files, suspended } = this.owner.loadRequest();
    child.send({ t: "load", seq, files, suspended } satisfies ToChild);
    return new Promise<boolean>((res) => this.loadWaiters.set(seq, res));
  }

  private onMessage(m: FromChild): void {
    this.lastMessageAt = Date.now();
    switch (m.t) {
      case "result": {
        const p = this.pending.get(m.id);
        if (!p) return; // already decided by the watchdog
        this.pending.delete(m.id);
        this.owner.answered(p.hook, p.event, m.outcomes);
        p.resolve(m.decision);
        return;
      }
      case "loading":
        this.owner.loading(m.file);
        return;
      case "loaded":
        this.loadWaiters.get(m.seq)?.(true);
        this.loadWaiters.delete(m.seq);
        if (this.firstLoad) {
          this.firstLoad.resolve();
          this.firstLoad = null;
        }
        if (m.plugins.length === 0) this.retireChild();
        this.owner.loaded(m);
        return;
      case "plog":
        this.logger.info("plugin log", { plugin: m.plugin, line: m.line });
        return;
      case "log":
        this.logger[m.level](m.msg, m.fields);
        return;
    }
  }

  /** Nothing loaded: end the idle child (a later file change starts a new one). */
  private retireChild(): void {
    const child = this.child;
    if (!child || this.pending.size > 0 || this.loadWaiters.size > 0) return;
    this.child = null;
    child.disconnect(); // the child exits when its IPC channel closes
  }

  private failPending(): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.resolve(this.owner.unanswered(p.hook, p.event));
    for (const res of this.loadWaiters.values()) res(false);
    this.loadWaiters.clear();
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    this.child = null;
    const uptime = Date.now() - this.childStartedAt;
    const crashedLoading = this.owner.exited();
    this.failPending();
    if (this.stopped) return;
    if (this.firstLoad && !crashedLoading && ++this.startFailures >= MAX_START_FAILURES) {
      // The child died before loading anything, and no plugin was to blame: it cannot start at
      // all (isolated-vm missing, wrong Node version, …).
      this.firstLoad.reject(
        new Error(`plugin host process failed to start (exit code ${code}, signal ${signal}); see the logged stderr`),
      );
      this.firstLoad = null;
      return;
    }
    if (uptime >= HEALTHY_UPTIME_MS) this.backoffMs = MIN_BACKOFF_MS;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    this.logger.warn("plugin host process exited; restarting", { code, signal, restartInMs: delay });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopped) return;
      this.onRestart();
      this.spawn();
    }, delay);
  }

  /** The child's stall watch named a plugin its time limit could not stop: tell the owner, replace the child. */
  private onStall(child: ChildProcess, json: string): void {
    let info: { file?: unknown; plugin?: unknown; ms?: unknown };
    try {
      info = JSON.parse(json);
    } catch {
      return;
    }
    if (typeof info.file !== "string") return;
    this.owner.stalled({ file: info.file, plugin: info.plugin, ms: info.ms });
    if (child === this.child) child.kill("SIGKILL");
  }

  private ensureWatchdog(): void {
    if (this.watchdog) return;
    const every = Math.max(10, Math.min(250, Math.floor(this.callTimeoutMs / 4)));
    this.watchdog = setInterval(() => this.checkDeadlines(), every);
    this.watchdog.unref();
  }

  /** Calls past their deadline are decided by the owner; a child silent for too long is killed (and restarted). */
  private checkDeadlines(): void {
    const now = Date.now();
    const silent = now - this.lastMessageAt;
    let hung = false;
    for (const [id, p] of this.pending) {
      if (p.deadline > now) continue;
      this.pending.delete(id);
      // Nothing at all from the child during this call's whole allowance: it is stuck. Not while
      // it is loading, though: a child starting on a busy machine can be silent for longer than
      // a call's allowance, and LOAD_DEADLINE_MS bounds that silence.
      if (silent >= p.span && this.loadWaiters.size === 0) hung = true;
      p.resolve(this.owner.unanswered(p.hook, p.event));
    }
    const child = this.child;
    if (!child) return;
    if (hung || (this.loadWaiters.size > 0 && silent > LOAD_DEADLINE_MS)) {
      this.logger.error("plugin host process stopped answering; killing it", { silentMs: silent, pid: child.pid });
      child.kill("SIGKILL");
    }
  }
}
