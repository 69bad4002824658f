// isolated-vm glue: one isolate per plugin. Only the plugin host's child process imports this
// module (it must run under `node --no-node-snapshot`); the front never loads isolated-vm.
//
// What guest code gets: the JavaScript built-ins of a fresh context minus WebAssembly,
// SharedArrayBuffer, Atomics, WeakRef and FinalizationRegistry, plus `log(...)` and a `console`
// forwarding to it. The host holds References to guest functions; the guest never receives a
// Reference, ExternalCopy or host object — events arrive as copies, the log callback is wrapped
// in a guest function that passes one string.
//
// Trusted helper functions (describe, bind) are compiled into the context before the plugin's
// module is evaluated, so they hold the original built-ins even if the plugin later patches them;
// they reduce whatever a hook returns to a plain record of primitives that is copied out
// (`result: { copy: true }`) and then validated by policy.ts. Guest code they trigger (getters,
// Proxy traps, toJSON) runs inside the same call, under the same budget.
//
// A call's budget (`limits.timeoutMs`) is CPU time. A hook runs synchronously on this thread, so
// the thread's CPU time (process.threadCpuUsage) grows by what the call used; isolated-vm's
// Isolate#cpuTime would be the natural source, but the prebuilt Linux binary measures it with a
// steady clock (wall time). isolated-vm can only interrupt a call by wall-clock time, so a call
// runs under a wall-clock backstop (wallBackstopMs) and is judged by its CPU time when it ends.
import { stripTypeScriptTypes } from "node:module";
import { basename } from "node:path";
import { pathToFileURL } from "node:url";
import ivm from "isolated-vm";
import type { HookName } from "../api/index.ts";
import {
  DEFAULT_LIMITS,
  HEAP_RESET_FRACTION,
  HOOK_EXPORT_NAMES,
  LogLimiter,
  MAX_COPIED_STRING,
  cleanLogLine,
  hooksFromExports,
  interpretResult,
  resolveManifest,
  wallBackstopMs,
  type GuestResult,
  type OutcomeKind,
  type ResolvedPlugin,
} from "./policy.ts";

/** CPU time budget for evaluating a module's top level. */
export const LOAD_BUDGET_MS = 1000;
/** The wall-clock backstop of each loading step (evaluating the module, reading its exports). */
export const LOAD_BACKSTOP_MS = wallBackstopMs(LOAD_BUDGET_MS);
const MAX_MANIFEST_JSON = 16 * 1024;
const MAX_ERROR_CHARS = 300;

export class PluginLoadError extends Error {}

export interface CallResult {
  outcome: OutcomeKind;
  /** Rejection reason, or what went wrong (error/timeout). */
  reason?: string;
  /** Wall time of the call. */
  ms: number;
  /** CPU time of the call (what its budget limits). */
  cpuMs: number;
  /** Set when the call succeeded but left the heap above HEAP_RESET_FRACTION of the limit: the isolate will be rebuilt (state reset). Bytes used. */
  heapReset?: number;
}

export interface RunnerHooks {
  /** A line the plugin logged (already rate-limited, cut and cleaned). */
  onLog(line: string): void;
  /** V8 lost control of an isolate: the process must end (isolated-vm's advice). */
  onCatastrophicError(message: string): void;
  /** A loading step that runs plugin code (evaluating the module, reading its manifest) starts; each has its own LOAD_BACKSTOP_MS. */
  onLoadStep(): void;
}

// Runs first in a fresh context: installs log/console, removes what plugins must not have.
const PRELUDE = `"use strict";
const hostLog = $0;
const S = String, stringify = JSON.stringify, apply = Reflect.apply, slice = String.prototype.slice;
const defineProperty = Object.defineProperty, freeze = Object.freeze;
const show = (x) => {
  try {
    if (typeof x === "string") return x;
    if (typeof x === "object" && x !== null) { const j = stringify(x); if (typeof j === "string") return j; }
    return S(x);
  } catch { return "[unprintable]"; }
};
function log(...args) {
  let s = "";
  for (let i = 0; i < args.length && s.length < 512; i++) s += (i === 0 ? "" : " ") + show(args[i]);
  hostLog(apply(slice, s, [0, 512]));
}
defineProperty(globalThis, "log", { value: log, writable: false, enumerable: false, configurable: false });
defineProperty(globalThis, "console", {
  value: freeze({ log, info: log, warn: log, error: log, debug: log }), writable: true, enumerable: false, configurable: true,
});
for (const k of ["WebAssembly", "SharedArrayBuffer", "Atomics", "WeakRef", "FinalizationRegistry"]) delete globalThis[k];
`;

// describe(namespace): which hook exports exist (their typeof) and the manifest as JSON text.
const DESCRIBE = `"use strict";
const names = $0, maxJson = $1;
const create = Object.create, stringify = JSON.stringify;
return function describe(ns) {
  const types = create(null);
  for (let i = 0; i < names.length; i++) { const v = ns[names[i]]; if (v !== undefined) types[names[i]] = typeof v; }
  const out = create(null);
  out.types = types;
  const m = ns.manifest;
  if (m !== undefined) {
    let j;
    try { j = stringify(m); } catch { j = undefined; }
    if (typeof j !== "string" || j.length > maxJson) out.manifestError = "manifest must be plain JSON data (at most " + maxJson + " characters)";
    else out.manifest = j;
  }
  return out;
};`;

// bind(namespace, exports): returns call(hook, event) → a description of the result (GuestResult).
const BIND = `"use strict";
const maxStr = $0;
const create = Object.create, keys = Object.keys, getProto = Object.getPrototypeOf, gopd = Object.getOwnPropertyDescriptor;
const hasOwn = Object.hasOwn, isArray = Array.isArray, apply = Reflect.apply, slice = String.prototype.slice;
const ObjectProto = Object.prototype, PromiseProto = Promise.prototype;
const val = (v) => {
  if (v === null) return { t: "null" };
  const t = typeof v;
  if (t === "boolean" || t === "number") return { t, v };
  if (t === "string") return v.length > maxStr ? { t, v: apply(slice, v, [0, maxStr]), len: v.length } : { t, v, len: v.length };
  if (t === "object") return { t: isArray(v) ? "array" : "object" };
  return { t };
};
const field = (o, k) => {
  const d = gopd(o, k);
  if (d === undefined) return undefined;
  if (!hasOwn(d, "value")) return { t: "accessor" };
  return val(d.value);
};
const describe = (r) => {
  if (r === undefined) return { t: "undefined" };
  if (r === null || typeof r !== "object") return val(r);
  if (isArray(r)) return { t: "array" };
  const p = getProto(r);
  if (p === PromiseProto) return { t: "promise" };
  if (p !== ObjectProto && p !== null) return { t: "exotic" };
  return { t: "object", allow: field(r, "allow"), reject: field(r, "reject"), reason: field(r, "reason") };
};
return function bind(ns, exportsByHook) {
  const fns = create(null);
  const hooks = keys(exportsByHook);
  for (let i = 0; i < hooks.length; i++) fns[hooks[i]] = ns[exportsByHook[hooks[i]]];
  return function call(hook, event) { return describe(apply(fns[hook], undefined, [event])); };
};`;

/** JavaScript to run for a plugin file: TypeScript files have their types stripped. */
export function prepareSource(file: string, text: string): string {
  if (!file.endsWith(".ts")) return text;
  try {
    return stripTypeScriptTypes(text, { mode: "strip" });
  } catch (err) {
    throw new PluginLoadError(
      `TypeScript: ${errorText(err)} (only erasable syntax is supported: no enums, namespaces or parameter properties)`,
    );
  }
}

function errorText(err: unknown): string {
  let s: string;
  if (err instanceof Error)
    s =
      err.name && err.name !== "Error" && !err.message.startsWith(err.name)
        ? `${err.name}: ${err.message}`
        : err.message;
  else s = String(err);
  return s.replace(/[\p{Cc}\u2028\u2029]+/gu, " ").slice(0, MAX_ERROR_CHARS);
}

const isTimeout = (msg: string) => msg.includes("Script execution timed out");
const isDisposedMsg = (msg: string) => msg.includes("Isolate was disposed");

/** CPU time of the calling thread, ms. */
function threadCpuMs(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}

/** What the top-level code of a module that used `cpuMs` ran longer than. */
function loadOverBudget(cpuMs: number): string {
  return cpuMs > LOAD_BUDGET_MS
    ? `${LOAD_BUDGET_MS} ms of CPU time`
    : `the ${LOAD_BACKSTOP_MS} ms wall-clock backstop (after ${Math.round(cpuMs)} ms of CPU time; budget ${LOAD_BUDGET_MS} ms)`;
}

/** Why a call that used `cpuMs` of its `budgetMs` was stopped by the wall-clock backstop, or judged over budget. */
function overBudget(budgetMs: number, cpuMs: number): string {
  return cpuMs > budgetMs
    ? `exceeded ${budgetMs} ms of CPU time`
    : `stopped by the ${wallBackstopMs(budgetMs)} ms wall-clock backstop after ${Math.round(cpuMs)} ms of CPU time (budget ${budgetMs} ms)`;
}

interface Booted {
  isolate: ivm.Isolate;
  call: ivm.Reference<(hook: string, event: unknown) => GuestResult>;
}

/**
 * One plugin in its own isolate. `call` never throws: every failure becomes an outcome, after
 * which the isolate is marked for reset (disposed and rebuilt from the same source with fresh
 * state, by `reset()` — the child calls it right after answering, or the next call does).
 */
export class IsolatePlugin {
  readonly file: string;
  /** The file's text as loaded (the child compares it to detect changes). */
  readonly text: string;
  readonly info: ResolvedPlugin;
  private readonly js: string;
  private readonly hooks: RunnerHooks;
  private readonly onLine: (line: unknown) => void;
  private booted: Booted | null;
  private bootError: string | null = null;
  private dirty = false;
  private disposed = false;

  private constructor(
    file: string,
    text: string,
    js: string,
    hooks: RunnerHooks,
    onLine: (line: unknown) => void,
    info: ResolvedPlugin,
    booted: Booted,
  ) {
    this.file = file;
    this.text = text;
    this.js = js;
    this.hooks = hooks;
    this.onLine = onLine;
    this.info = info;
    this.booted = booted;
  }

  /** Compiles, evaluates and validates a plugin; throws PluginLoadError with a one-line explanation. */
  static load(file: string, text: string, hooks: RunnerHooks): IsolatePlugin {
    const js = prepareSource(file, text);
    const limiter = new LogLimiter();
    const onLine = (line: unknown) => {
      if (typeof line !== "string") return;
      const dropped = limiter.dropped;
      if (!limiter.take()) return;
      if (dropped > 0) {
        hooks.onLog(`[${dropped} log lines dropped: more than ${limiter.ratePerSec}/s]`);
        limiter.dropped = 0;
      }
      hooks.onLog(cleanLogLine(line));
    };
    // The manifest (and so the memory limit) is known only after evaluating the module: the
    // first evaluation runs under the default limit and is kept unless the manifest asks for
    // another one.
    let mod = evaluate(file, js, DEFAULT_LIMITS.memoryMb, hooks, onLine);
    let info: ResolvedPlugin;
    try {
      hooks.onLoadStep();
      const desc = describe(mod);
      if (desc.manifestError) throw new PluginLoadError(desc.manifestError);
      const exported = hooksFromExports(desc.types);
      if (!exported.ok) throw new PluginLoadError(exported.error);
      const manifest: unknown = desc.manifest === undefined ? undefined : JSON.parse(desc.manifest);
      const resolved = resolveManifest(manifest, exported.value, basename(file));
      if (!resolved.ok) throw new PluginLoadError(resolved.error);
      info = resolved.value;
      if (info.limits.memoryMb !== DEFAULT_LIMITS.memoryMb) {
        mod.isolate.dispose();
        mod = evaluate(file, js, info.limits.memoryMb, hooks, onLine);
      }
    } catch (err) {
      if (!mod.isolate.isDisposed) mod.isolate.dispose();
      throw err;
    }
    return new IsolatePlugin(file, text, js, hooks, onLine, info, bind(mod, info));
  }

  /** True when the last call failed and the isolate must be rebuilt before it runs again. */
  get needsReset(): boolean {
    return !this.disposed && (this.dirty || this.booted === null);
  }

  /** Disposes the isolate and builds a fresh one (fresh module state). Never throws. */
  reset(): void {
    if (this.disposed) return;
    this.disposeIsolate();
    this.dirty = false;
    try {
      this.booted = bind(evaluate(this.file, this.js, this.info.limits.memoryMb, this.hooks, this.onLine), this.info);
      this.bootError = null;
    } catch (err) {
      this.booted = null;
      this.bootError = errorText(err);
    }
  }

  /** Runs one hook with a copy of `event`, within the plugin's CPU budget (and its wall-clock backstop). */
  call(hook: HookName, event: Record<string, unknown>): CallResult {
    if (this.needsReset) this.reset();
    const b = this.booted;
    if (!b) return { outcome: "error", reason: `cannot restart: ${this.bootError ?? "unknown"}`, ms: 0, cpuMs: 0 };
    const budget = this.info.limits.timeoutMs;
    const start = performance.now();
    const cpuStart = threadCpuMs();
    let r: GuestResult;
    try {
      const arg = new ivm.ExternalCopy(event).copyInto({ release: true });
      r = b.call.applySync(undefined, [hook, arg], { timeout: wallBackstopMs(budget), result: { copy: true } });
    } catch (err) {
      const cpuMs = threadCpuMs() - cpuStart;
      const ms = performance.now() - start;
      this.dirty = true;
      const msg = errorText(err);
      if (b.isolate.isDisposed || isDisposedMsg(msg))
        return {
          outcome: "error",
          reason: `out of memory (limit ${this.info.limits.memoryMb} MB): isolate disposed`,
          ms,
          cpuMs,
        };
      if (isTimeout(msg)) return { outcome: "timeout", reason: overBudget(budget, cpuMs), ms, cpuMs };
      return { outcome: "error", reason: `threw ${msg}`, ms, cpuMs };
    }
    const cpuMs = threadCpuMs() - cpuStart;
    const ms = performance.now() - start;
    if (cpuMs > budget) {
      // Finished, but over budget: its answer is discarded, as if it had been stopped in time.
      this.dirty = true;
      return { outcome: "timeout", reason: overBudget(budget, cpuMs), ms, cpuMs };
    }
    const v = interpretResult(hook, r);
    const out: CallResult =
      v.kind === "allow"
        ? { outcome: "allow", ms, cpuMs }
        : v.kind === "reject"
          ? { outcome: "reject", reason: v.reason, ms, cpuMs }
          : { outcome: "error", reason: `invalid result: ${v.error}`, ms, cpuMs };
    if (v.kind === "invalid") this.dirty = true;
    // V8 near an isolate's limit can thrash in GC where neither the timeout nor the memory limit
    // stops it; a plugin whose state keeps growing is reset well before that.
    const heap = b.isolate.getHeapStatisticsSync();
    const used = heap.used_heap_size + heap.externally_allocated_size;
    if (used > HEAP_RESET_FRACTION * this.info.limits.memoryMb * 1024 * 1024) {
      this.dirty = true;
      out.heapReset = used;
    }
    return out;
  }

  dispose(): void {
    this.disposed = true;
    this.disposeIsolate();
    this.bootError = "unloaded";
  }

  private disposeIsolate(): void {
    const b = this.booted;
    this.booted = null;
    if (b && !b.isolate.isDisposed) {
      try {
        b.isolate.dispose();
      } catch {
        // already gone
      }
    }
  }
}

interface Evaluated {
  isolate: ivm.Isolate;
  namespace: ivm.Reference<unknown>;
  describeFn: ivm.Reference<(ns: unknown) => Description>;
  bindFn: ivm.Reference<(ns: unknown, exportsByHook: unknown) => (hook: string, event: unknown) => GuestResult>;
}

interface Description {
  types: Record<string, string>;
  manifest?: string;
  manifestError?: string;
}

/** A fresh isolate with the prelude and trusted helpers, then the plugin module (imports refused) evaluated. */
function evaluate(
  file: string,
  js: string,
  memoryMb: number,
  hooks: RunnerHooks,
  onLine: (line: unknown) => void,
): Evaluated {
  hooks.onLoadStep();
  const isolate = new ivm.Isolate({
    memoryLimit: memoryMb,
    onCatastrophicError: (message) => hooks.onCatastrophicError(message),
  });
  try {
    const context = isolate.createContextSync();
    context.evalClosureSync(PRELUDE, [new ivm.Callback(onLine)], { timeout: LOAD_BACKSTOP_MS });
    const describeFn = context.evalClosureSync(
      DESCRIBE,
      [new ivm.ExternalCopy([...HOOK_EXPORT_NAMES]).copyInto(), MAX_MANIFEST_JSON],
      {
        timeout: LOAD_BACKSTOP_MS,
        result: { reference: true },
      },
    ) as Evaluated["describeFn"];
    const bindFn = context.evalClosureSync(BIND, [MAX_COPIED_STRING], {
      timeout: LOAD_BACKSTOP_MS,
      result: { reference: true },
    }) as Evaluated["bindFn"];

    let mod: ivm.Module;
    try {
      mod = isolate.compileModuleSync(js, { filename: pathToFileURL(file).href });
    } catch (err) {
      throw new PluginLoadError(`does not compile: ${errorText(err)}`);
    }
    if (mod.dependencySpecifiers.length > 0)
      throw new PluginLoadError(
        `imports are not allowed (found ${mod.dependencySpecifiers.map((s) => JSON.stringify(s)).join(", ")}); a plugin is one self-contained module`,
      );
    const cpuStart = threadCpuMs();
    try {
      mod.instantiateSync(context, () => {
        throw new Error("imports are not allowed");
      });
      mod.evaluateSync({ timeout: LOAD_BACKSTOP_MS });
    } catch (err) {
      const msg = errorText(err);
      if (isolate.isDisposed || isDisposedMsg(msg))
        throw new PluginLoadError(`top-level code ran out of memory (${memoryMb} MB)`);
      if (isTimeout(msg))
        throw new PluginLoadError(`top-level code ran longer than ${loadOverBudget(threadCpuMs() - cpuStart)}`);
      throw new PluginLoadError(`top-level code threw ${msg}`);
    }
    const cpuMs = threadCpuMs() - cpuStart;
    if (cpuMs > LOAD_BUDGET_MS) throw new PluginLoadError(`top-level code ran longer than ${loadOverBudget(cpuMs)}`);
    return { isolate, namespace: mod.namespace, describeFn, bindFn };
  } catch (err) {
    if (!isolate.isDisposed) isolate.dispose();
    throw err instanceof PluginLoadError ? err : new PluginLoadError(errorText(err));
  }
}

function describe(e: Evaluated): Description {
  try {
    return e.describeFn.applySync(undefined, [e.namespace.derefInto()], {
      timeout: LOAD_BACKSTOP_MS,
      result: { copy: true },
    });
  } catch (err) {
    throw new PluginLoadError(`reading exports failed: ${errorText(err)}`);
  }
}

function bind(e: Evaluated, info: ResolvedPlugin): Booted {
  try {
    const exportsCopy = new ivm.ExternalCopy({ ...info.exports }).copyInto({ release: true });
    const call = e.bindFn.applySync(undefined, [e.namespace.derefInto(), exportsCopy], {
      timeout: LOAD_BACKSTOP_MS,
      result: { reference: true },
    }) as Booted["call"];
    return { isolate: e.isolate, call };
  } catch (err) {
    if (!e.isolate.isDisposed) e.isolate.dispose();
    throw new PluginLoadError(`binding hooks failed: ${errorText(err)}`);
  }
}
