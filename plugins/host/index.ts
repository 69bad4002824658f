// PluginHost: the front's handle on the sandboxed plugins. It lives in the front's process but
// never loads isolated-vm there: plugins run in a child process (child.ts). This class is a
// façade over three parts — the catalogue (which plugins exist and are loaded), the supervisor
// (the child process, its calls and restarts) and the watcher (file changes) — and adds what
// the front sees: per-plugin metrics and log lines, and the fail-policy decision for calls the
// child cannot answer. With no plugin files there is no child at all and `has()` is false for
// every hook, so the front pays nothing.
import { EventEmitter } from "node:events";
import type { HookEvent, HookName } from "../api/index.ts";
import { PluginCatalogue, type PluginSummary } from "./catalogue.ts";
import type { HostLogger } from "./logger.ts";
import { createLogger } from "../../proto/util/log.ts";
import { PluginMetrics } from "./metrics.ts";
import { decideWithoutHost, eventIds, sanitizeEvent, type PluginOutcome } from "./policy.ts";
import { ALLOW, type HookDecision } from "../../proto/util/hook-decision.ts";
import { ChildSupervisor, type LoadedMessage, type StallReport } from "./supervisor.ts";
import { ThrottledLog } from "./throttled-log.ts";
import { PluginWatcher } from "./watcher.ts";

export { listPluginFiles, type PluginSummary } from "./catalogue.ts";
export type { HostLogger } from "./logger.ts";
export { CHILD_ENTRY, CHILD_EXEC_ARGV } from "./supervisor.ts";
export type { HookEvent, HookName };

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

export class PluginHost {
  private readonly logger: HostLogger;
  private readonly metrics = new PluginMetrics();
  private readonly emitter = new EventEmitter();
  private readonly unavailableLog = new ThrottledLog(1000);
  private readonly catalogue: PluginCatalogue;
  private readonly supervisor: ChildSupervisor;
  private watcher: PluginWatcher | null = null;

  private constructor(opts: PluginHostOptions) {
    this.logger = opts.logger ?? createLogger("info");
    const callTimeoutMs = opts.callTimeoutMs ?? 1000;
    this.catalogue = new PluginCatalogue({ dir: opts.dir, files: opts.files, callTimeoutMs, logger: this.logger });
    this.supervisor = new ChildSupervisor({
      owner: {
        hasPlugins: () => this.catalogue.scan().length > 0,
        loadRequest: () => this.catalogue.loadRequest(),
        loading: (file) => this.catalogue.loading(file),
        loaded: (m) => this.onLoaded(m),
        answered: (hook, event, outcomes) => {
          for (const o of outcomes) this.account(hook, event, o);
        },
        unanswered: (hook, event) => this.withoutHost(hook, event),
        stalled: (r) => this.onStall(r),
        exited: () => this.onChildExit(),
      },
      logger: this.logger,
      callTimeoutMs,
      onRestart: () => this.metrics.restarts++,
    });
  }

  /**
   * Loads the plugins and, if there are any, starts the child process. Resolves once the child
   * has loaded them (files that fail to load are reported through logger.error and skipped);
   * rejects only if the child process itself cannot start.
   */
  static async start(opts: PluginHostOptions = {}): Promise<PluginHost> {
    const host = new PluginHost(opts);
    try {
      if (host.catalogue.scan().length > 0) await host.supervisor.start();
      if (opts.watch)
        host.watcher = PluginWatcher.start(host.catalogue.watchedDirs(), () => host.supervisor.reload(), host.logger);
    } catch (err) {
      await host.stop();
      throw err;
    }
    return host;
  }

  /** Does any loaded plugin export this hook? Synchronous and cheap: call it before building an event. */
  has(hook: HookName): boolean {
    return this.catalogue.pluginsFor(hook) !== undefined;
  }

  /**
   * Runs `hook` through every plugin exporting it, in order; the first rejection wins. Never
   * rejects the promise: failures are decided by fail policy. The event is reduced to its
   * documented fields before it leaves this process.
   */
  call<H extends HookName>(hook: H, event: HookEvent<H>): Promise<HookDecision> {
    if (!this.has(hook)) return Promise.resolve(ALLOW);
    return this.supervisor.call(hook, sanitizeEvent(hook, event), this.catalogue.callDeadline(hook));
  }

  /** The loaded plugins, in run order. */
  get plugins(): ReadonlyArray<PluginSummary> {
    return this.catalogue.plugins;
  }

  /** Process id of the child, while one runs (tests and diagnostics). */
  get childPid(): number | undefined {
    return this.supervisor.childPid;
  }

  /** Prometheus text (no trailing newline): per-plugin counters, host restarts and availability. */
  renderMetrics(): string {
    return this.metrics.render();
  }

  /** Counters of one plugin and hook (tests and diagnostics). */
  stats(
    plugin: string,
    hook: HookName,
  ): { calls: number; rejects: number; errors: number; timeouts: number; seconds: number; cpuSeconds: number } {
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
    this.watcher?.close();
    this.watcher = null;
    await this.supervisor.stop();
  }

  // -------------------------------------------------------------------------------------------

  private onLoaded(m: LoadedMessage): void {
    this.catalogue.apply(m.plugins);
    this.metrics.loaded = m.plugins.length;
    this.logger.info("plugins loaded", { plugins: m.plugins.map((p) => p.name) });
    for (const e of m.errors) {
      this.metrics.loadErrors++;
      this.logger.error(
        e.keptPrevious ? "plugin failed to reload; previous version keeps running" : "plugin failed to load; skipped",
        {
          file: e.file,
          error: e.error,
        },
      );
    }
    for (const file of m.reloaded) this.logger.info("plugin reloaded", { file });
    this.emitter.emit("reload");
  }

  /** Metrics and one log line per rejection, error and timeout (ids only, never event contents). */
  private account(hook: HookName, event: Record<string, unknown>, o: PluginOutcome): void {
    this.metrics.record(hook, o);
    if (o.outcome === "allow" || o.suspended) return;
    const fields = { plugin: o.plugin, hook, reason: o.reason, ...eventIds(event) };
    if (o.outcome === "reject") this.logger.info("plugin rejected", fields);
    else this.logger.warn(o.outcome === "timeout" ? "plugin timed out" : "plugin error", fields);
  }

  /** A call the child cannot answer follows the fail policy of the plugins exporting the hook. */
  private withoutHost(hook: HookName, event: Record<string, unknown>): HookDecision {
    this.metrics.hostUnavailable(hook);
    const d = decideWithoutHost(hook, this.catalogue.pluginsFor(hook) ?? []);
    this.unavailableLog.note((calls) =>
      this.logger.warn("plugin host unavailable; hooks follow their fail policy", {
        hook,
        calls,
        decision: d.allow ? "allow" : "reject",
        ...eventIds(event),
      }),
    );
    return d;
  }

  /** The child died: a file it was loading is skipped until it changes. True when a file was blamed. */
  private onChildExit(): boolean {
    const file = this.catalogue.blameLoading();
    if (file === null) return false;
    this.metrics.loadErrors++;
    this.logger.error("plugin crashed or stalled the plugin host while loading; skipped until the file changes", {
      file,
    });
    return true;
  }

  /** The child's stall watch named a plugin its time limit could not stop; the supervisor replaces the child. */
  private onStall(r: StallReport): void {
    if (this.catalogue.isLoading(r.file)) {
      // Stuck evaluating the file: onChildExit quarantines it until it changes.
      this.logger.error("plugin stalled the plugin host while loading; restarting the host without it", {
        file: r.file,
        stalledMs: r.ms,
      });
      return;
    }
    const ms = this.catalogue.recordStall(r.file);
    this.logger.error(
      "plugin stalled the plugin host (its time limit could not stop it, usually memory exhaustion); restarting the host with the plugin suspended",
      {
        plugin: r.plugin,
        file: r.file,
        stalledMs: r.ms,
        suspendedForMs: ms,
      },
    );
  }
}
