// Pure plugin policy: hook table, fail policies, limits, manifest validation, result validation,
// decision combination, event sanitising, log limiting and the failure breaker. No isolated-vm,
// no I/O: everything here is unit-tested directly.
import type { FailPolicy, HookName } from "../api/index.ts";
import { ALLOW, type HookDecision } from "../../proto/util/hook-decision.ts";
import { TokenBucket } from "../../proto/util/token-bucket.ts";
import { toHex } from "../../proto/util/hex.ts";
import { ALPN } from "../../proto/wire/transport.ts";

export type { FailPolicy, HookName };

/** The six hooks, in documentation order. */
export const HOOKS: readonly HookName[] = [
  "on_connect",
  "on_disconnect",
  "on_message_send",
  "on_message_receive",
  "on_group_join",
  "on_group_leave",
];

/** snake_case hook → accepted camelCase export name. */
export const HOOK_EXPORTS: Readonly<Record<HookName, string>> = {
  on_connect: "onConnect",
  on_disconnect: "onDisconnect",
  on_message_send: "onMessageSend",
  on_message_receive: "onMessageReceive",
  on_group_join: "onGroupJoin",
  on_group_leave: "onGroupLeave",
};

const CAMEL_TO_HOOK: ReadonlyMap<string, HookName> = new Map(HOOKS.map((h) => [HOOK_EXPORTS[h], h]));

/** Every export name the host looks for (snake_case and camelCase). */
export const HOOK_EXPORT_NAMES: readonly string[] = HOOKS.flatMap((h) => [h, HOOK_EXPORTS[h]]);

export function isHookName(x: unknown): x is HookName {
  return typeof x === "string" && (HOOKS as readonly string[]).includes(x);
}

/** Maps an export or manifest name (snake_case or camelCase) to its hook, if it is one. */
export function hookFromName(name: string): HookName | undefined {
  return isHookName(name) ? name : CAMEL_TO_HOOK.get(name);
}

/** Observer hooks: their return value is ignored and they can never reject. */
export const OBSERVERS: ReadonlySet<HookName> = new Set<HookName>(["on_disconnect", "on_message_receive"]);

export const isObserver = (hook: HookName): boolean => OBSERVERS.has(hook);

/**
 * Default fail policy per hook. Closed where the hook guards something (admission of a
 * connection, a message, a new member): a broken guard must not silently open the door. Open for
 * the observers (nothing to refuse) and for on_group_leave: refusing to let a member leave or be
 * removed because a plugin broke would keep people in groups against their will, which is worse
 * than missing one audit record.
 */
export const DEFAULT_FAIL_POLICY: Readonly<Record<HookName, FailPolicy>> = {
  on_connect: "closed",
  on_disconnect: "open",
  on_message_send: "closed",
  on_message_receive: "open",
  on_group_join: "closed",
  on_group_leave: "open",
};

export interface ResolvedLimits {
  memoryMb: number;
  timeoutMs: number;
}

export const DEFAULT_LIMITS: Readonly<ResolvedLimits> = { memoryMb: 32, timeoutMs: 50 };
export const LIMIT_BOUNDS: Readonly<Record<keyof ResolvedLimits, readonly [number, number]>> = {
  memoryMb: [8, 512],
  timeoutMs: [1, 5000],
};

/** Longest accepted rejection reason, in characters (code points). */
export const MAX_REASON_CHARS = 256;
/** The runner inside the isolate copies out at most this many UTF-16 units of any string. */
export const MAX_COPIED_STRING = 1024;

/** Reasons given to the caller when a plugin could not decide (fail-closed). */
export const REASON_PLUGIN_ERROR = "plugin error";
export const REASON_PLUGIN_TIMEOUT = "plugin timeout";
export const REASON_HOST_UNAVAILABLE = "plugin host unavailable";

// ---------------------------------------------------------------------------------------------
// Manifest

export interface ResolvedPlugin {
  name: string;
  version: string;
  /** Active hooks, in HOOKS order. */
  hooks: HookName[];
  /** Export name serving each active hook (snake_case or camelCase form). */
  exports: Partial<Record<HookName, string>>;
  limits: ResolvedLimits;
  /** Effective fail policy of every hook (observers always "open"). */
  failPolicy: Record<HookName, FailPolicy>;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MANIFEST_KEYS = new Set(["name", "version", "hooks", "limits", "failPolicy"]);

/** Plugin name derived from a file name: "10-max-size.ts" → "10-max-size" (invalid characters become "-"). */
export function nameFromFile(fileName: string): string {
  const base = fileName.replace(/^.*[\\/]/, "").replace(/\.(m?js|ts)$/, "");
  const cleaned = base
    .replace(/[^A-Za-z0-9._-]/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 64);
  return cleaned || "plugin";
}

/**
 * Which hooks a module exports. `exportTypes` maps each hook export name present in the module
 * (snake_case or camelCase) to its `typeof`.
 */
export function hooksFromExports(exportTypes: Record<string, string>): Result<Partial<Record<HookName, string>>> {
  const found: Partial<Record<HookName, string>> = {};
  for (const [exportName, type] of Object.entries(exportTypes)) {
    const hook = hookFromName(exportName);
    if (!hook) continue;
    if (type !== "function") return { ok: false, error: `export ${exportName} is a ${type}, not a function` };
    if (found[hook])
      return { ok: false, error: `both ${found[hook]} and ${exportName} are exported; export one of them` };
    found[hook] = exportName;
  }
  return { ok: true, value: found };
}

function isPlainRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function checkLimit(key: keyof ResolvedLimits, v: unknown): Result<number> {
  const [lo, hi] = LIMIT_BOUNDS[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi)
    return { ok: false, error: `manifest.limits.${key} must be an integer in ${lo}..${hi}` };
  return { ok: true, value: v };
}

function checkPolicy(where: string, v: unknown): Result<FailPolicy> {
  if (v === "open" || v === "closed") return { ok: true, value: v };
  return { ok: false, error: `${where} must be "open" or "closed"` };
}

/**
 * Validates a plugin's manifest (already copied out of the isolate as plain JSON data, or
 * undefined when the module exports none) against the hooks it exports.
 */
export function resolveManifest(
  manifest: unknown,
  exported: Partial<Record<HookName, string>>,
  fileName: string,
): Result<ResolvedPlugin> {
  const m: Record<string, unknown> = manifest === undefined ? {} : (manifest as Record<string, unknown>);
  if (!isPlainRecord(m)) return { ok: false, error: "manifest must be an object" };
  for (const k of Object.keys(m)) if (!MANIFEST_KEYS.has(k)) return { ok: false, error: `unknown manifest key "${k}"` };

  let name = nameFromFile(fileName);
  if (m.name !== undefined) {
    if (typeof m.name !== "string" || !NAME_RE.test(m.name))
      return { ok: false, error: "manifest.name must be 1-64 of [A-Za-z0-9._-], starting with a letter or digit" };
    name = m.name;
  }
  let version = "0.0.0";
  if (m.version !== undefined) {
    if (typeof m.version !== "string" || !/^[\x21-\x7e]{1,32}$/.test(m.version))
      return { ok: false, error: "manifest.version must be 1-32 printable ASCII characters" };
    version = m.version;
  }

  const exports: Partial<Record<HookName, string>> = {};
  if (m.hooks !== undefined) {
    if (!Array.isArray(m.hooks)) return { ok: false, error: "manifest.hooks must be an array of hook names" };
    for (const h of m.hooks) {
      const hook = typeof h === "string" ? hookFromName(h) : undefined;
      if (!hook) return { ok: false, error: `manifest.hooks: unknown hook ${JSON.stringify(h)}` };
      const exp = exported[hook];
      if (!exp) return { ok: false, error: `manifest.hooks lists ${hook} but the module does not export it` };
      exports[hook] = exp;
    }
  } else {
    Object.assign(exports, exported);
  }
  const hooks = HOOKS.filter((h) => exports[h] !== undefined);
  if (hooks.length === 0) return { ok: false, error: `no hooks: export at least one of ${HOOKS.join(", ")}` };

  const limits: ResolvedLimits = { ...DEFAULT_LIMITS };
  if (m.limits !== undefined) {
    if (!isPlainRecord(m.limits)) return { ok: false, error: "manifest.limits must be an object" };
    for (const [k, v] of Object.entries(m.limits)) {
      if (k !== "memoryMb" && k !== "timeoutMs") return { ok: false, error: `unknown manifest.limits key "${k}"` };
      const r = checkLimit(k, v);
      if (!r.ok) return r;
      limits[k] = r.value;
    }
  }

  const failPolicy: Record<HookName, FailPolicy> = { ...DEFAULT_FAIL_POLICY };
  if (typeof m.failPolicy === "string") {
    const r = checkPolicy("manifest.failPolicy", m.failPolicy);
    if (!r.ok) return r;
    for (const h of HOOKS) if (!isObserver(h)) failPolicy[h] = r.value;
  } else if (m.failPolicy !== undefined) {
    if (!isPlainRecord(m.failPolicy))
      return { ok: false, error: 'manifest.failPolicy must be "open", "closed" or a per-hook map' };
    for (const [k, v] of Object.entries(m.failPolicy)) {
      const hook = hookFromName(k);
      if (!hook) return { ok: false, error: `manifest.failPolicy: unknown hook "${k}"` };
      const r = checkPolicy(`manifest.failPolicy.${k}`, v);
      if (!r.ok) return r;
      if (isObserver(hook) && r.value === "closed")
        return { ok: false, error: `manifest.failPolicy.${k}: ${hook} is an observer and cannot be fail-closed` };
      failPolicy[hook] = r.value;
    }
  }
  return { ok: true, value: { name, version, hooks, exports, limits, failPolicy } };
}

// ---------------------------------------------------------------------------------------------
// Results

/**
 * A value as described by the trusted runner inside the isolate: its kind, and for booleans,
 * numbers and strings the value (strings cut to MAX_COPIED_STRING units, with their full length).
 */
export interface GuestValue {
  t:
    | "undefined"
    | "null"
    | "boolean"
    | "number"
    | "string"
    | "bigint"
    | "symbol"
    | "function"
    | "object"
    | "array"
    | "promise"
    | "exotic"
    | "accessor";
  v?: boolean | number | string;
  len?: number;
}

/** The description of a hook's return value: its kind, and for plain objects the three fields read as data properties. */
export interface GuestResult {
  t: GuestValue["t"];
  v?: boolean | number | string;
  len?: number;
  allow?: GuestValue;
  reject?: GuestValue;
  reason?: GuestValue;
}

export type Verdict = { kind: "allow" } | { kind: "reject"; reason: string } | { kind: "invalid"; error: string };

// Control characters, lone surrogates, line/paragraph separators and bidi overrides/isolates.
const UNPRINTABLE = /[\p{Cc}\p{Cs}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** Checks a rejection reason: 1–256 characters of printable text, not only spaces. */
export function checkReason(v: GuestValue | undefined): Result<string> {
  if (!v || v.t !== "string" || typeof v.v !== "string")
    return { ok: false, error: `reason must be a string, got ${v?.t ?? "nothing"}` };
  const len = v.len ?? v.v.length;
  if (len > MAX_COPIED_STRING || [...v.v].length > MAX_REASON_CHARS)
    return { ok: false, error: `reason longer than ${MAX_REASON_CHARS} characters` };
  if (v.v.trim() === "") return { ok: false, error: "reason is empty" };
  if (UNPRINTABLE.test(v.v)) return { ok: false, error: "reason contains non-printable characters" };
  return { ok: true, value: v.v };
}

/** Interprets what a hook returned (see Decision in the API). Observers always allow. */
export function interpretResult(hook: HookName, r: GuestResult): Verdict {
  if (isObserver(hook)) return { kind: "allow" };
  switch (r.t) {
    case "undefined":
      return { kind: "allow" };
    case "boolean":
      return r.v === true
        ? { kind: "allow" }
        : { kind: "invalid", error: 'returned false; return { reject: "reason" } to reject' };
    case "object": {
      if (r.allow?.t === "accessor" || r.reject?.t === "accessor" || r.reason?.t === "accessor")
        return { kind: "invalid", error: "result fields must be data properties, not getters" };
      const allow = r.allow === undefined || r.allow.t === "undefined" ? undefined : r.allow;
      const reject = r.reject === undefined || r.reject.t === "undefined" ? undefined : r.reject;
      if (allow && allow.t !== "boolean") return { kind: "invalid", error: `allow must be a boolean, got ${allow.t}` };
      if (reject) {
        if (allow?.v === true) return { kind: "invalid", error: "result has both allow: true and reject" };
        const reason = checkReason(reject);
        return reason.ok
          ? { kind: "reject", reason: reason.value }
          : { kind: "invalid", error: `reject: ${reason.error}` };
      }
      if (allow?.v === true) return { kind: "allow" };
      if (allow?.v === false) {
        const reason = checkReason(r.reason);
        return reason.ok
          ? { kind: "reject", reason: reason.value }
          : { kind: "invalid", error: `allow: false needs a reason: ${reason.error}` };
      }
      return { kind: "invalid", error: "object result without allow or reject" };
    }
    case "promise":
      return { kind: "invalid", error: "returned a Promise; hooks must be synchronous" };
    default:
      return { kind: "invalid", error: `returned ${r.t === "exotic" ? "a non-plain object" : `a ${r.t}`}` };
  }
}

// ---------------------------------------------------------------------------------------------
// Outcomes and decisions

export type OutcomeKind = "allow" | "reject" | "error" | "timeout";

export interface PluginOutcome {
  plugin: string;
  outcome: OutcomeKind;
  /** Rejection reason, or what went wrong for error/timeout (for logs, never sent to clients). */
  reason?: string;
  /** Wall time spent in the plugin, ms. */
  ms: number;
  /** CPU time spent in the plugin, ms (what its time budget limits). */
  cpuMs?: number;
  /** The plugin was not run: it is suspended after repeated failures (counted as an error, not logged per call). */
  suspended?: true;
}

/**
 * Does this plugin outcome end the chain with a rejection? A reject does; an error or timeout
 * does when the plugin's policy for the hook is fail-closed. Observers never reject.
 */
export function rejection(hook: HookName, o: PluginOutcome, policy: FailPolicy): HookDecision | null {
  if (isObserver(hook)) return null;
  if (o.outcome === "reject") return { allow: false, reason: o.reason ?? "rejected", plugin: o.plugin };
  if ((o.outcome === "error" || o.outcome === "timeout") && policy === "closed")
    return {
      allow: false,
      reason: o.outcome === "timeout" ? REASON_PLUGIN_TIMEOUT : REASON_PLUGIN_ERROR,
      plugin: o.plugin,
    };
  return null;
}

/**
 * Combines outcomes in plugin order: the first rejection wins; otherwise allow. Outcomes are
 * taken one at a time and none after the first rejection, so a lazy sequence (the child's) runs
 * no plugin after one that rejected.
 */
export function combine(
  hook: HookName,
  outcomes: Iterable<{ outcome: PluginOutcome; policy: FailPolicy }>,
): HookDecision {
  for (const { outcome, policy } of outcomes) {
    const r = rejection(hook, outcome, policy);
    if (r) return r;
  }
  return ALLOW;
}

/** The decision when no plugin could run (the host process is down): the first fail-closed plugin rejects. */
export function decideWithoutHost(
  hook: HookName,
  plugins: readonly { name: string; failPolicy: Record<HookName, FailPolicy> }[],
): HookDecision {
  if (isObserver(hook)) return ALLOW;
  for (const p of plugins)
    if (p.failPolicy[hook] === "closed") return { allow: false, reason: REASON_HOST_UNAVAILABLE, plugin: p.name };
  return ALLOW;
}

// ---------------------------------------------------------------------------------------------
// Events: only the documented fields, with the documented types, reach a plugin.

type FieldKind =
  "string" | "hex" | "hexOrEmpty" | "number" | "boolean" | "hexArray" | "numberArray" | "transport" | "alpn";
type FieldSpec = { kind: FieldKind; optional?: boolean };

const f = (kind: FieldKind, optional = false): FieldSpec => ({ kind, optional });
const GROUP_FIELDS: Record<string, FieldSpec> = {
  channelId: f("hexOrEmpty"),
  member: f("hex"),
  actor: f("hex"),
  time: f("number"),
};

export const EVENT_FIELDS: Readonly<Record<HookName, Record<string, FieldSpec>>> = {
  on_connect: {
    connectionId: f("string"),
    clientAddress: f("string"),
    alpn: f("alpn"),
    transport: f("transport"),
    time: f("number"),
  },
  on_disconnect: {
    connectionId: f("string"),
    clientAddress: f("string"),
    transport: f("transport"),
    time: f("number"),
    durationMs: f("number"),
    reason: f("string"),
  },
  on_message_send: {
    connectionId: f("string"),
    clientAddress: f("string"),
    senderIdentity: f("hex", true),
    recipients: f("hexArray"),
    channelId: f("hex"),
    payloadSize: f("number"),
    ttlSecs: f("number"),
    messageId: f("hexOrEmpty"),
    batch: f("boolean"),
    time: f("number"),
  },
  on_message_receive: {
    connectionId: f("string"),
    recipient: f("hex"),
    deviceId: f("hex"),
    channelId: f("hex"),
    count: f("number"),
    sizes: f("numberArray"),
    wait: f("boolean"),
    time: f("number"),
  },
  on_group_join: GROUP_FIELDS,
  on_group_leave: GROUP_FIELDS,
};

const MAX_STRING = 512;
const MAX_ARRAY = 10_000;
function hexField(v: unknown): string {
  if (v instanceof Uint8Array) return toHex(v.subarray(0, MAX_STRING / 2));
  return typeof v === "string" ? v.slice(0, MAX_STRING).toLowerCase() : "";
}

function toNumber(v: unknown): number {
  const n = typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : NaN;
  return Number.isFinite(n) ? n : 0;
}

function sanitizeField(kind: FieldKind, v: unknown): unknown {
  switch (kind) {
    case "string":
      return typeof v === "string"
        ? v.slice(0, MAX_STRING)
        : v === undefined || v === null
          ? ""
          : String(v).slice(0, MAX_STRING);
    case "hex":
    case "hexOrEmpty":
      return hexField(v);
    case "number":
      return toNumber(v);
    case "boolean":
      return v === true;
    case "transport":
      return v === "websocket" ? "websocket" : "quic";
    case "alpn":
      return ALPN;
    case "hexArray":
      return Array.isArray(v) ? v.slice(0, MAX_ARRAY).map(hexField) : [];
    case "numberArray":
      return Array.isArray(v) ? v.slice(0, MAX_ARRAY).map(toNumber) : [];
  }
}

/**
 * Builds the event a plugin receives: only the documented fields of the hook, with their
 * documented types (Uint8Array ids become lower-case hex, strings are cut to 512 characters,
 * arrays to 10,000 entries); `time` defaults to now. Anything else the caller passed is dropped,
 * so secrets or payload bytes can never reach a plugin by accident.
 */
export function sanitizeEvent(hook: HookName, event: object, now = Date.now()): Record<string, unknown> {
  const src = event as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const spec = EVENT_FIELDS[hook];
  for (const key in spec) {
    const s = spec[key];
    const v = src[key];
    if (v === undefined && s.optional) continue;
    out[key] = key === "time" && v === undefined ? now : sanitizeField(s.kind, v);
  }
  return out;
}

/** Ids of an event that may appear in host log lines (never other event contents). */
export function eventIds(event: Record<string, unknown>): Record<string, unknown> {
  const ids: Record<string, unknown> = {};
  for (const k of ["connectionId", "messageId", "channelId"])
    if (typeof event[k] === "string" && event[k] !== "") ids[k] = event[k];
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Plugin log limiting and the failure breaker

export const LOG_LINE_MAX = 512;

/** Token bucket for a plugin's log lines (default 20/s, bursts of 50); counts what it drops. */
export class LogLimiter {
  private readonly bucket: TokenBucket;
  dropped = 0;
  readonly ratePerSec: number;
  readonly burst: number;
  constructor(ratePerSec = 20, burst = 50, now = Date.now()) {
    this.ratePerSec = ratePerSec;
    this.burst = burst;
    this.bucket = new TokenBucket(ratePerSec, burst, now);
  }
  take(now = Date.now()): boolean {
    if (this.bucket.take(now) === 0) return true;
    this.dropped++;
    return false;
  }
}

/** A log line from a plugin: one line, printable, at most LOG_LINE_MAX characters. */
export function cleanLogLine(s: string): string {
  return s.slice(0, LOG_LINE_MAX).replace(/[\p{Cc}\u2028\u2029]/gu, " ");
}

/**
 * Suspends a plugin after `threshold` consecutive failures (error, timeout, out of memory),
 * for `baseMs`; after that the first failure suspends it again for twice as long (up to `maxMs`);
 * one success resets it. While
 * suspended the plugin is not run and its calls are decided by its fail policy, so a plugin that
 * loops on every call cannot eat the host's time.
 */
export class Breaker {
  private failures = 0;
  private trips = 0;
  private until = 0;
  readonly threshold: number;
  readonly baseMs: number;
  readonly maxMs: number;
  constructor(threshold = 5, baseMs = 1000, maxMs = 60_000) {
    this.threshold = threshold;
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }
  /** True when the plugin may run now. */
  allows(now = Date.now()): boolean {
    return now >= this.until;
  }
  /** Suspends the plugin until `until` (ms since the epoch), e.g. after it stalled a previous host process. */
  suspendUntil(until: number): void {
    this.until = Math.max(this.until, until);
    this.failures = this.threshold - 1;
  }
  success(): void {
    this.failures = 0;
    this.trips = 0;
  }
  /** Records a failure; returns the suspension in ms when this failure trips the breaker, else 0. */
  failure(now = Date.now()): number {
    this.failures++;
    if (this.failures < this.threshold) return 0;
    // Half-open afterwards: the first failure after the suspension trips it again, for longer.
    this.failures = this.threshold - 1;
    const ms = Math.min(this.maxMs, this.baseMs * 2 ** this.trips);
    this.trips++;
    this.until = now + ms;
    return ms;
  }
}

/**
 * How long a plugin that stalled the host process (its time limit did not stop it — in practice
 * V8 thrashing at the isolate's memory limit) is suspended: 10 s, doubling with each stall of
 * the same file version, at most 10 minutes.
 */
export function stallSuspensionMs(stalls: number): number {
  return Math.min(600_000, 10_000 * 2 ** Math.max(0, stalls - 1));
}

/** Fraction of its memory limit a plugin's heap may hold after a call before its isolate is rebuilt. V8 (with isolated-vm) was seen to fail at about 75 % of the limit, often fatally for the whole process. */
export const HEAP_RESET_FRACTION = 0.6;

/**
 * A plugin's `timeoutMs` is a budget of CPU time per call (measured with the CPU clock of the
 * thread that runs it, see isolate-runner.ts). isolated-vm can only interrupt a call by
 * wall-clock time, so each call also runs under this wall-clock backstop: ten times the budget,
 * at least 250 ms, at most 2 s more than the budget. On an idle machine a call that keeps running
 * is stopped by the backstop; on a busy one a call that used little CPU is not stopped because
 * it was kept waiting for a core.
 */
export function wallBackstopMs(cpuBudgetMs: number): number {
  return Math.max(250, cpuBudgetMs + Math.min(9 * cpuBudgetMs, 2000));
}

/** How long past its wall-clock backstop a call must run before the child's stall watch reports it (isolated-vm could not stop it). */
export const STALL_GRACE_MS = 1000;

/** When the child's stall watch reports a call of a plugin with this CPU budget. */
export function stallAfterMs(cpuBudgetMs: number): number {
  return wallBackstopMs(cpuBudgetMs) + STALL_GRACE_MS;
}

/**
 * The front's deadline for one call of a hook: the host's call timeout, or more when the
 * plugins on the hook may legitimately take longer (their wall-clock backstops, plus the stall
 * watch's grace, so that a stalled plugin is reported before the front gives up on the child,
 * plus a second).
 */
export function callDeadlineMs(callTimeoutMs: number, timeoutsMs: readonly number[]): number {
  return Math.max(callTimeoutMs, timeoutsMs.reduce((a, b) => a + wallBackstopMs(b), 0) + STALL_GRACE_MS + 1000);
}
