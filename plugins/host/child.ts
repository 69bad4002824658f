// The plugin host's child process: `node --no-node-snapshot plugins/host/child.ts`, forked by
// PluginHost with an IPC channel. It loads plugins into isolates and answers one "result" per
// "call": every plugin exporting the hook runs in order until one rejects (observers: all run).
// If V8 runs out of memory here, only this process dies; the host restarts it.
import { readFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type { HookName } from "../api/index.ts";
import { IsolatePlugin, LOAD_BACKSTOP_MS, PluginLoadError } from "./isolate-runner.ts";
import { Breaker, STALL_GRACE_MS, combine, stallAfterMs, type PluginOutcome } from "./policy.ts";
import { STALL_MARKER, type FromChild, type LoadError, type LoadedPluginInfo, type ToChild } from "./protocol.ts";

if (typeof process.send !== "function") {
  process.stderr.write("plugins/host/child.ts is started by PluginHost (plugins/host/index.ts) with an IPC channel\n");
  process.exit(2);
}

const send = (m: FromChild) => {
  if (process.connected) process.send!(m);
};

// Stall watch. A plugin call that outlives its wall-clock backstop by a second (STALL_GRACE_MS)
// means isolated-vm could not stop it (V8 thrashing at the isolate's memory limit does that).
// This thread is blocked then, so a worker thread watches a shared [call counter, running
// plugin] pair and names the plugin on stderr (a direct write, no event loop needed); the host
// kills this process and suspends that plugin in the next one. Loading a file is watched the
// same way (the host then skips that file until it changes).
const IDLE = -1;
const LOADING = -2;
// [calls/loads started, index of the running entry, LOADING, or IDLE]
const running = new Int32Array(new SharedArrayBuffer(8));
running[1] = IDLE;
const STALL_WATCH = `
const { workerData, parentPort } = require("node:worker_threads");
const { writeSync } = require("node:fs");
const running = new Int32Array(workerData.sab);
let plugins = [], loading = null;
parentPort.on("message", (m) => { if (m.plugins) plugins = m.plugins; else loading = m.loading; });
let seen = -1, since = 0, reported = -1;
setInterval(() => {
  const seq = Atomics.load(running, 0), idx = Atomics.load(running, 1), now = Date.now();
  if (idx === ${IDLE} || seq !== seen) { seen = seq; since = now; return; }
  const p = idx === ${LOADING} ? loading : plugins[idx];
  if (!p || reported === seq || now - since <= p.stallMs) return;
  reported = seq;
  writeSync(2, ${JSON.stringify(STALL_MARKER)} + JSON.stringify({ file: p.file, plugin: p.name, ms: now - since }) + "\\n");
}, 100);
`;
const stallWatch = new Worker(STALL_WATCH, { eval: true, workerData: { sab: running.buffer } });
stallWatch.unref();

interface Entry {
  plugin: IsolatePlugin;
  breaker: Breaker;
  /** Position in `entries` (what the stall watch is told). */
  index: number;
}

/** Loaded plugins in run order. */
let entries: Entry[] = [];
let byHook = new Map<HookName, Entry[]>();
const resetQueue = new Set<Entry>();
let resetScheduled = false;

const runnerHooks = (file: string, name: () => string) => ({
  onLog: (line: string) => send({ t: "plog", plugin: name(), line }),
  onCatastrophicError: (message: string) => {
    // isolated-vm: V8 lost control of an isolate; end the process, the host restarts it.
    process.stderr.write(`isolated-vm catastrophic error in ${file}: ${message}\n`);
    process.abort();
  },
  // The stall watch times each loading step on its own: a new step restarts its clock.
  onLoadStep: () => {
    if (Atomics.load(running, 1) === LOADING) Atomics.add(running, 0, 1);
  },
});

/** Marks the start of a module evaluation (load or reset) for the stall watch; end it with Atomics.store(running, 1, IDLE). */
function watchLoading(file: string): void {
  // Each step of a load runs under LOAD_BACKSTOP_MS (see RunnerHooks.onLoadStep).
  stallWatch.postMessage({ loading: { file, name: file, stallMs: LOAD_BACKSTOP_MS + STALL_GRACE_MS } });
  Atomics.add(running, 0, 1);
  Atomics.store(running, 1, LOADING);
}

/** Rebuilds a plugin's isolate (fresh state) under the stall watch. */
function resetEntry(e: Entry): void {
  watchLoading(e.plugin.file);
  try {
    e.plugin.reset();
  } finally {
    Atomics.store(running, 1, IDLE);
  }
}

function load(seq: number, files: string[], suspended: Record<string, number>): void {
  const previous = new Map(entries.map((e) => [e.plugin.file, e]));
  const next: Entry[] = [];
  const errors: LoadError[] = [];
  const reloaded: string[] = [];
  const names = new Set<string>();
  for (const file of files) {
    const prev = previous.get(file);
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      errors.push({ file, error: `cannot read: ${(err as Error).message}`, keptPrevious: false });
      continue;
    }
    let entry: Entry | undefined;
    if (prev && prev.plugin.text === text) {
      entry = prev;
    } else {
      send({ t: "loading", seq, file });
      watchLoading(file);
      let label = file;
      try {
        const plugin = IsolatePlugin.load(
          file,
          text,
          runnerHooks(file, () => label),
        );
        label = plugin.info.name;
        entry = { plugin, breaker: new Breaker(), index: -1 };
        if (prev) reloaded.push(file);
      } catch (err) {
        const error = err instanceof PluginLoadError ? err.message : `load failed: ${String(err)}`;
        // A reload that fails keeps the previous version running (a half-saved edit must not
        // silently drop, say, an address filter).
        errors.push({ file, error, keptPrevious: prev !== undefined });
        entry = prev;
      } finally {
        Atomics.store(running, 1, IDLE);
      }
    }
    if (!entry) continue;
    if (names.has(entry.plugin.info.name)) {
      errors.push({ file, error: `duplicate plugin name "${entry.plugin.info.name}"`, keptPrevious: false });
      if (entry !== prev) entry.plugin.dispose();
      continue;
    }
    names.add(entry.plugin.info.name);
    next.push(entry);
  }
  for (const e of next) {
    const until = suspended[e.plugin.file];
    if (until !== undefined && until > Date.now()) e.breaker.suspendUntil(until);
  }
  const kept = new Set(next);
  for (const e of entries) if (!kept.has(e)) e.plugin.dispose();
  entries = next;
  entries.forEach((e, i) => (e.index = i));
  byHook = new Map();
  for (const e of entries) for (const h of e.plugin.info.hooks) byHook.set(h, [...(byHook.get(h) ?? []), e]);
  stallWatch.postMessage({
    plugins: entries.map(({ plugin: { file, info } }) => ({
      file,
      name: info.name,
      stallMs: stallAfterMs(info.limits.timeoutMs),
    })),
  });
  const plugins: LoadedPluginInfo[] = entries.map(({ plugin: { info, file } }) => ({
    name: info.name,
    version: info.version,
    file,
    hooks: info.hooks,
    limits: info.limits,
    failPolicy: info.failPolicy,
  }));
  send({ t: "loaded", seq, plugins, errors, reloaded });
}

/** Runs one plugin's hook (or skips it while its breaker is open) under the stall watch. */
function runEntry(e: Entry, hook: HookName, event: Record<string, unknown>): PluginOutcome {
  const name = e.plugin.info.name;
  const now = Date.now();
  if (!e.breaker.allows(now)) {
    return {
      plugin: name,
      outcome: "error",
      reason: "suspended after repeated failures",
      ms: 0,
      cpuMs: 0,
      suspended: true,
    };
  }
  if (e.plugin.needsReset) resetEntry(e);
  Atomics.add(running, 0, 1);
  Atomics.store(running, 1, e.index);
  const r = e.plugin.call(hook, event);
  Atomics.store(running, 1, IDLE);
  const o: PluginOutcome = { plugin: name, outcome: r.outcome, ms: r.ms, cpuMs: r.cpuMs };
  if (r.reason !== undefined) o.reason = r.reason;
  if (r.outcome === "error" || r.outcome === "timeout") {
    const suspendMs = e.breaker.failure(now);
    if (suspendMs > 0)
      send({
        t: "log",
        level: "warn",
        msg: "plugin suspended after repeated failures",
        fields: { plugin: name, ms: suspendMs },
      });
  } else {
    e.breaker.success();
  }
  if (r.heapReset !== undefined)
    send({
      t: "log",
      level: "warn",
      msg: "plugin near its memory limit; isolate rebuilt (its state is reset)",
      fields: { plugin: name, usedBytes: r.heapReset, limitMb: e.plugin.info.limits.memoryMb },
    });
  if (e.plugin.needsReset) resetQueue.add(e);
  return o;
}

function call(id: number, hook: HookName, event: Record<string, unknown>): void {
  const outcomes: PluginOutcome[] = [];
  // Lazy: combine() stops at the first rejection, so the plugins after it never run.
  function* run() {
    for (const e of byHook.get(hook) ?? []) {
      const outcome = runEntry(e, hook, event);
      outcomes.push(outcome);
      yield { outcome, policy: e.plugin.info.failPolicy[hook] };
    }
  }
  const decision = combine(hook, run());
  send({ t: "result", id, outcomes, decision });
  if (resetQueue.size > 0 && !resetScheduled) {
    resetScheduled = true;
    setImmediate(resetPending);
  }
}

/** Rebuilds failed isolates after the answer went out, so the next call does not pay for it. */
function resetPending(): void {
  resetScheduled = false;
  for (const e of resetQueue) if (e.plugin.needsReset) resetEntry(e);
  resetQueue.clear();
}

process.on("message", (m: ToChild) => {
  if (m.t === "call") call(m.id, m.hook, m.event);
  else if (m.t === "load") load(m.seq, m.files, m.suspended);
});
// The host went away: nothing left to serve.
process.on("disconnect", () => process.exit(0));
