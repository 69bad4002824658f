// PluginHost: the front's handle on the sandboxed plugins. It lives in the front's process but
// never loads isolated-vm there: plugins run in a child process (child.ts) that this class forks,
// feeds over IPC and supervises. If the child dies or stops answering it is restarted with
// backoff; meanwhile, and for calls in flight, each hook follows the fail policy of the plugins
// that export it. With no plugin files there is no child at all and `has()` is false for every
// hook, so the front pays nothing.
import { fork, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { readdirSync, statSync, watch, type FSWatcher } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { FailPolicy, HookEvent, HookName } from "../api/index.ts";
import { PluginMetrics } from "./metrics.ts";
import {
  ALLOW, HOOKS, callDeadlineMs, decideWithoutHost, eventIds, sanitizeEvent, stallSuspensionMs, type PluginOutcome, type ResolvedLimits,
} from "./policy.ts";
import { STALL_MARKER, type FromChild, type LoadedPluginInfo, type ToChild } from "./protocol.ts";

/** The child process entry and the Node flags it needs (isolated-vm requires --no-node-snapshot). */
export const CHILD_ENTRY = fileURLToPath(new URL("./child.ts", import.meta.url));
export const CHILD_EXEC_ARGV: readonly string[] = ["--no-node-snapshot", "--disable-warning=ExperimentalWarning"];

export type { HookEvent, HookName };

export interface HostLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface PluginHostOptions {
  /** Directory of plugins: every *.js, *.mjs and *.ts file (not *.test.*, *.spec.*, *.d.ts or dotfiles), run in file-name order. */
  dir?: string;
  /** Explicit plugin files, run after the directory's, in the given order. */
  files?: string[];
  logger?: HostLogger;
  /** Reload plugins when files in `dir` (and the directories of `files`) change. */
  watch?: boolean;
  /** How long a call may wait for the child before it is decided by fail policy (default 1000 ms). If the child sent nothing at all for that long, it is killed and restarted. */
  callTimeoutMs?: number;
}

export interface PluginSummary {
  readonly name: string;
  readonly file: string;
  readonly hooks: HookName[];
  readonly version: string;
  readonly limits: ResolvedLimits;
  readonly failPolicy: Readonly<Record<HookName, FailPolicy>>;
}

export type CallDecision = { allow: true } | { allow: false; reason: string; plugin: string };

interface Pending {
  hook: HookName;
  event: Record<string, unknown>;
  resolve(d: CallDecision): void;
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
const DEBOUNCE_MS = 100;

const PLUGIN_FILE = /\.(m?js|ts)$/;
const NOT_PLUGIN = /(\.(test|spec)\.[cm]?[jt]s|\.d\.[cm]?ts)$/;

/** Plugin files of a directory, sorted by file name (the run order). */
export function listPluginFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isFile() && !d.name.startsWith(".") && PLUGIN_FILE.test(d.name) && !NOT_PLUGIN.test(d.name))
    .map((d) => d.name)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((n) => join(resolve(dir), n));
}

const stderrLogger: HostLogger = {
  info: (msg, fields) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: "info", msg, ...fields }) + "\n"),
  warn: (msg, fields) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: "warn", msg, ...fields }) + "\n"),
  error: (msg, fields) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: "error", msg, ...fields }) + "\n"),
};

function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

export class PluginHost {
  private readonly dir: string | undefined;
  private readonly files: string[];
  private readonly logger: HostLogger;
  private readonly callTimeoutMs: number;
  private readonly metrics = new PluginMetrics();
  private readonly emitter = new EventEmitter();

  private summaries: readonly PluginSummary[] = Object.freeze([]);
  private byHook = new Map<HookName, LoadedPluginInfo[]>();
  private deadlines = new Map<HookName, number>();

  private child: ChildProcess | null = null;
  private childStartedAt = 0;
  private lastMessageAt = 0;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private loadSeq = 0;
  private readonly loadWaiters = new Map<number, (ok: boolean) => void>();
  /** File the child announced it is loading: if the child dies meanwhile, that file is quarantined. */
  private loadingFile: string | null = null;
  /** Files that crashed the child while loading → their mtime then; skipped until they change. */
  private readonly quarantine = new Map<string, number>();
  /** Plugins that stalled a child (see child.ts, "stall watch"): suspended in the next ones. */
  private readonly stalls = new Map<string, { count: number; mtime: number; until: number }>();
  private restartTimer: NodeJS.Timeout | null = null;
  private backoffMs = MIN_BACKOFF_MS;
  private watchdog: NodeJS.Timeout | null = null;
  private readonly watchers: FSWatcher[] = [];
  private debounce: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastUnavailableLog = 0;
  private unavailableSinceLog = 0;
  private firstLoad: { resolve(): void; reject(err: Error): void } | null = null;
  private startFailures = 0;

  private constructor(opts: PluginHostOptions) {
    this.dir = opts.dir === undefined ? undefined : resolve(opts.dir);
    this.files = (opts.files ?? []).map((f) => resolve(f));
    this.logger = opts.logger ?? stderrLogger;
    this.callTimeoutMs = opts.callTimeoutMs ?? 1000;
  }

  /**
   * Loads the plugins and, if there are any, starts the child process. Resolves once the child
   * has loaded them (files that fail to load are reported through logger.error and skipped);
   * rejects only if the child process itself cannot start.
   */
  static async start(opts: PluginHostOptions = {}): Promise<PluginHost> {
    const host = new PluginHost(opts);
    try {
      if (host.scan().length > 0) await host.startFirst();
      if (opts.watch) host.startWatching();
    } catch (err) {
      await host.stop();
      throw err;
    }
    return host;
  }

  /** Does any loaded plugin export this hook? Synchronous and cheap: call it before building an event. */
  has(hook: HookName): boolean {
    return this.byHook.has(hook);
  }

  /**
   * Runs `hook` through every plugin exporting it, in order; the first rejection wins. Never
   * rejects the promise: failures are decided by fail policy. The event is reduced to its
   * documented fields before it leaves this process.
   */
  call<H extends HookName>(hook: H, event: HookEvent<H>): Promise<CallDecision> {
    const plugins = this.byHook.get(hook);
    if (!plugins) return Promise.resolve(ALLOW);
    const ev = sanitizeEvent(hook, event);
    const child = this.child;
    if (!child || !child.connected) return Promise.resolve(this.withoutHost(hook, ev));
    const id = this.nextId++;
    const span = this.deadlines.get(hook) ?? this.callTimeoutMs;
    return new Promise<CallDecision>((resolvePromise) => {
      this.pending.set(id, { hook, event: ev, resolve: resolvePromise, span, deadline: Date.now() + span });
      child.send({ t: "call", id, hook, event: ev } satisfies ToChild);
    });
  }

  /** The loaded plugins, in run order. */
  get plugins(): ReadonlyArray<PluginSummary> {
    return this.summaries;
  }

  /** Process id of the child, while one runs (tests and diagnostics). */
  get childPid(): number | undefined {
    return this.child?.pid;
  }

  /** Prometheus text (no trailing newline): per-plugin counters, host restarts and availability. */
  renderMetrics(): string {
    return this.metrics.render();
  }

  /** Counters of one plugin and hook (tests and diagnostics). */
  stats(plugin: string, hook: HookName): { calls: number; rejects: number; errors: number; timeouts: number; seconds: number } {
    return this.metrics.get(plugin, hook);
  }

  /** "reload": the child (re)loaded the plugin set — after a file change or a restart. */
  on(event: "reload", listener: () => void): void {
    this.emitter.on(event, listener);
  }

  off(event: "reload", listener: () => void): void {
    this.emitter.off(event, listener);
  }

  /** Stops watching and ends the child; calls still pending are decided by fail policy. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.watchers.splice(0)) w.close();
    for (const t of [this.debounce, this.restartTimer, this.watchdog]) if (t) clearTimeout(t);
    this.debounce = this.restartTimer = this.watchdog = null;
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

  /** Current plugin files: the directory's (sorted), then the explicit ones; quarantined files left out. */
  private scan(): string[] {
    const out: string[] = [];
    if (this.dir) {
      try {
        out.push(...listPluginFiles(this.dir));
      } catch (err) {
        this.logger.error("cannot read plugin directory", { dir: this.dir, error: (err as Error).message });
      }
    }
    for (const f of this.files) if (!out.includes(f)) out.push(f);
    for (const [file, mtime] of this.quarantine) if (mtimeOf(file) !== mtime) this.quarantine.delete(file);
    for (const [file, st] of this.stalls) if (mtimeOf(file) !== st.mtime) this.stalls.delete(file);
    return out.filter((f) => !this.quarantine.has(f));
  }

  private startFirst(): Promise<void> {
    return new Promise<void>((res, rej) => {
      this.firstLoad = { resolve: res, reject: rej };
      this.spawn();
    });
  }

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
    const files = this.scan();
    const now = Date.now();
    const suspended: Record<string, number> = {};
    for (const [file, st] of this.stalls) if (st.until > now) suspended[file] = st.until;
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
        for (const o of m.outcomes) this.account(p.hook, p.event, o);
        p.resolve(m.decision);
        return;
      }
      case "loading":
        this.loadingFile = m.file;
        return;
      case "loaded":
        this.loadingFile = null;
        this.applyLoaded(m.plugins);
        for (const e of m.errors) {
          this.metrics.loadErrors++;
          this.logger.error(e.keptPrevious ? "plugin failed to reload; previous version keeps running" : "plugin failed to load; skipped", {
            file: e.file,
            error: e.error,
          });
        }
        for (const file of m.reloaded) this.logger.info("plugin reloaded", { file });
        this.loadWaiters.get(m.seq)?.(true);
        this.loadWaiters.delete(m.seq);
        if (this.firstLoad) {
          this.firstLoad.resolve();
          this.firstLoad = null;
        }
        if (m.plugins.length === 0) this.retireChild();
        this.emitter.emit("reload");
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

  private applyLoaded(plugins: LoadedPluginInfo[]): void {
    const byHook = new Map<HookName, LoadedPluginInfo[]>();
    for (const h of HOOKS) {
      const list = plugins.filter((p) => p.hooks.includes(h));
      if (list.length > 0) byHook.set(h, list);
    }
    this.byHook = byHook;
    this.deadlines = new Map([...byHook].map(([h, list]) => [h, callDeadlineMs(this.callTimeoutMs, list.map((p) => p.limits.timeoutMs))]));
    this.summaries = Object.freeze(
      plugins.map((p) => Object.freeze({ name: p.name, file: p.file, hooks: p.hooks, version: p.version, limits: p.limits, failPolicy: p.failPolicy })),
    );
    this.metrics.loaded = plugins.length;
    const names = plugins.map((p) => p.name);
    this.logger.info("plugins loaded", { plugins: names });
  }

  /** Metrics and one log line per rejection, error and timeout (ids only, never event contents). */
  private account(hook: HookName, event: Record<string, unknown>, o: PluginOutcome): void {
    this.metrics.record(hook, o);
    if (o.outcome === "allow" || o.suspended) return;
    const fields = { plugin: o.plugin, hook, reason: o.reason, ...eventIds(event) };
    if (o.outcome === "reject") this.logger.info("plugin rejected", fields);
    else this.logger.warn(o.outcome === "timeout" ? "plugin timed out" : "plugin error", fields);
  }

  private withoutHost(hook: HookName, event: Record<string, unknown>): CallDecision {
    this.metrics.hostUnavailable(hook);
    const d = decideWithoutHost(hook, this.byHook.get(hook) ?? []);
    this.unavailableSinceLog++;
    const now = Date.now();
    if (now - this.lastUnavailableLog >= 1000) {
      this.logger.warn("plugin host unavailable; hooks follow their fail policy", {
        hook,
        calls: this.unavailableSinceLog,
        decision: d.allow ? "allow" : "reject",
        ...eventIds(event),
      });
      this.lastUnavailableLog = now;
      this.unavailableSinceLog = 0;
    }
    return d;
  }

  private failPending(): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.resolve(this.withoutHost(p.hook, p.event));
    for (const res of this.loadWaiters.values()) res(false);
    this.loadWaiters.clear();
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    this.child = null;
    const uptime = Date.now() - this.childStartedAt;
    const crashedLoading = this.loadingFile !== null;
    if (this.loadingFile) {
      this.quarantine.set(this.loadingFile, mtimeOf(this.loadingFile));
      this.metrics.loadErrors++;
      this.logger.error("plugin crashed or stalled the plugin host while loading; skipped until the file changes", { file: this.loadingFile });
      this.loadingFile = null;
    }
    this.failPending();
    if (this.stopped) return;
    if (this.firstLoad && !crashedLoading && ++this.startFailures >= 3) {
      // The child died three times before loading anything, and no plugin was to blame: it
      // cannot start at all (isolated-vm missing, wrong Node version, …).
      this.firstLoad.reject(new Error(`plugin host process failed to start (exit code ${code}, signal ${signal}); see the logged stderr`));
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
      this.metrics.restarts++;
      this.spawn();
    }, delay);
  }

  /** The child's stall watch named a plugin its time limit could not stop: suspend it, replace the child. */
  private onStall(child: ChildProcess, json: string): void {
    let info: { file?: unknown; plugin?: unknown; ms?: unknown };
    try {
      info = JSON.parse(json);
    } catch {
      return;
    }
    if (typeof info.file !== "string") return;
    if (info.file === this.loadingFile) {
      // Stuck evaluating the file: onExit quarantines it until it changes.
      this.logger.error("plugin stalled the plugin host while loading; restarting the host without it", { file: info.file, stalledMs: info.ms });
      if (child === this.child) child.kill("SIGKILL");
      return;
    }
    const prev = this.stalls.get(info.file);
    const count = (prev?.count ?? 0) + 1;
    const ms = stallSuspensionMs(count);
    this.stalls.set(info.file, { count, mtime: mtimeOf(info.file), until: Date.now() + ms });
    this.logger.error("plugin stalled the plugin host (its time limit could not stop it, usually memory exhaustion); restarting the host with the plugin suspended", {
      plugin: info.plugin,
      file: info.file,
      stalledMs: info.ms,
      suspendedForMs: ms,
    });
    if (child === this.child) child.kill("SIGKILL");
  }

  private ensureWatchdog(): void {
    if (this.watchdog) return;
    const every = Math.max(10, Math.min(250, Math.floor(this.callTimeoutMs / 4)));
    this.watchdog = setInterval(() => this.checkDeadlines(), every);
    this.watchdog.unref();
  }

  /** Calls past their deadline are decided by fail policy; a child silent for too long is killed (and restarted). */
  private checkDeadlines(): void {
    const now = Date.now();
    const silent = now - this.lastMessageAt;
    let hung = false;
    for (const [id, p] of this.pending) {
      if (p.deadline > now) continue;
      this.pending.delete(id);
      // Nothing at all from the child during this call's whole allowance: it is stuck.
      if (silent >= p.span) hung = true;
      p.resolve(this.withoutHost(p.hook, p.event));
    }
    const child = this.child;
    if (!child) return;
    if (hung || (this.loadWaiters.size > 0 && silent > LOAD_DEADLINE_MS)) {
      this.logger.error("plugin host process stopped answering; killing it", { silentMs: silent, pid: child.pid });
      child.kill("SIGKILL");
    }
  }

  private startWatching(): void {
    const dirs = new Set<string>();
    if (this.dir) dirs.add(this.dir);
    for (const f of this.files) dirs.add(dirname(f));
    for (const d of dirs) {
      try {
        const w = watch(d, { persistent: false }, () => this.scheduleRescan());
        w.on("error", (err) => this.logger.error("plugin directory watch failed", { dir: d, error: err.message }));
        this.watchers.push(w);
      } catch (err) {
        this.logger.error("cannot watch plugin directory", { dir: d, error: (err as Error).message });
      }
    }
  }

  private scheduleRescan(): void {
    if (this.stopped) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.rescan();
    }, DEBOUNCE_MS);
  }

  private rescan(): void {
    if (this.stopped) return;
    if (this.child) {
      void this.load();
    } else if (!this.restartTimer && this.scan().length > 0) {
      // First plugin file appeared (or the child is down without a pending restart).
      this.spawn();
    }
  }
}
