// The catalogue of plugins: which files are plugins and in what order, which of them are held
// back (quarantined for crashing the child while loading, suspended for stalling it), and the
// set the child last reported loaded, indexed by hook. No processes and no I/O beyond reading
// the plugin directory and file times.
import { readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { FailPolicy, HookName } from "../api/index.ts";
import { HOOKS, callDeadlineMs, stallSuspensionMs, type ResolvedLimits } from "./policy.ts";
import type { LoadedPluginInfo } from "./protocol.ts";
import type { HostLogger } from "./logger.ts";

export interface PluginSummary {
  readonly name: string;
  readonly file: string;
  readonly hooks: HookName[];
  readonly version: string;
  readonly limits: ResolvedLimits;
  readonly failPolicy: Readonly<Record<HookName, FailPolicy>>;
}

/** What the child is asked to load: the files in run order, and file → time (ms since the epoch) until which a plugin stays suspended. */
export interface LoadRequest {
  files: string[];
  suspended: Record<string, number>;
}

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

/** A file's modification time, or -1 when it cannot be read (a deleted file counts as changed). */
function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

export class PluginCatalogue {
  private readonly dir: string | undefined;
  private readonly files: string[];
  private readonly callTimeoutMs: number;
  private readonly logger: HostLogger;

  private summaries: readonly PluginSummary[] = Object.freeze([]);
  private byHook = new Map<HookName, LoadedPluginInfo[]>();
  private deadlines = new Map<HookName, number>();
  /** File the child announced it is loading: if the child dies meanwhile, that file is blamed. */
  private loadingFile: string | null = null;
  /** Files that crashed the child while loading → their mtime then; skipped until they change. */
  private readonly quarantine = new Map<string, number>();
  /** Plugins that stalled a child (see child.ts, "stall watch"): suspended in the next ones. */
  private readonly stalls = new Map<string, { count: number; mtime: number; until: number }>();

  constructor(opts: { dir?: string; files?: string[]; callTimeoutMs: number; logger: HostLogger }) {
    this.dir = opts.dir === undefined ? undefined : resolve(opts.dir);
    this.files = (opts.files ?? []).map((f) => resolve(f));
    this.callTimeoutMs = opts.callTimeoutMs;
    this.logger = opts.logger;
  }

  /** Directories whose changes can change the plugin set: the plugin directory and those of the explicit files. */
  watchedDirs(): string[] {
    const dirs = new Set<string>();
    if (this.dir) dirs.add(this.dir);
    for (const f of this.files) dirs.add(dirname(f));
    return [...dirs];
  }

  /** Current plugin files: the directory's (sorted), then the explicit ones; quarantined files left out. Changed files are released from quarantine and stall suspension. */
  scan(): string[] {
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

  /** The files to load now, with the plugins still suspended for stalling a child. */
  loadRequest(): LoadRequest {
    const files = this.scan();
    const now = Date.now();
    const suspended: Record<string, number> = {};
    for (const [file, st] of this.stalls) if (st.until > now) suspended[file] = st.until;
    return { files, suspended };
  }

  // --- the loaded set ---------------------------------------------------------------------

  /** Replaces the loaded set with what the child reported. */
  apply(plugins: LoadedPluginInfo[]): void {
    this.loadingFile = null;
    const byHook = new Map<HookName, LoadedPluginInfo[]>();
    for (const h of HOOKS) {
      const list = plugins.filter((p) => p.hooks.includes(h));
      if (list.length > 0) byHook.set(h, list);
    }
    this.byHook = byHook;
    this.deadlines = new Map(
      [...byHook].map(([h, list]) => [
        h,
        callDeadlineMs(
          this.callTimeoutMs,
          list.map((p) => p.limits.timeoutMs),
        ),
      ]),
    );
    this.summaries = Object.freeze(
      plugins.map((p) =>
        Object.freeze({
          name: p.name,
          file: p.file,
          hooks: p.hooks,
          version: p.version,
          limits: p.limits,
          failPolicy: p.failPolicy,
        }),
      ),
    );
  }

  /** The loaded plugins, in run order. */
  get plugins(): readonly PluginSummary[] {
    return this.summaries;
  }

  /** The loaded plugins exporting `hook`, in run order; undefined when none does. */
  pluginsFor(hook: HookName): readonly LoadedPluginInfo[] | undefined {
    return this.byHook.get(hook);
  }

  /** How long a call of `hook` may wait for the child. */
  callDeadline(hook: HookName): number {
    return this.deadlines.get(hook) ?? this.callTimeoutMs;
  }

  // --- loading, quarantine and stalls -------------------------------------------------------

  /** The child announced it is evaluating `file`. */
  loading(file: string): void {
    this.loadingFile = file;
  }

  isLoading(file: string): boolean {
    return file === this.loadingFile;
  }

  /** The child died: the file it was loading, if any, is quarantined until it changes. Returns that file. */
  blameLoading(): string | null {
    const file = this.loadingFile;
    this.loadingFile = null;
    if (file !== null) this.quarantine.set(file, mtimeOf(file));
    return file;
  }

  /** A plugin stalled the child: it stays suspended in the next children for a time that grows with each stall of the same file version. Returns that time (ms). */
  recordStall(file: string): number {
    const count = (this.stalls.get(file)?.count ?? 0) + 1;
    const ms = stallSuspensionMs(count);
    this.stalls.set(file, { count, mtime: mtimeOf(file), until: Date.now() + ms });
    return ms;
  }
}
