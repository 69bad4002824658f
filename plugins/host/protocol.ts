// Messages between the plugin host (in the front's process) and its child process, over the
// Node IPC channel (JSON serialisation). One "call" → one "result", in order.
import type { FailPolicy, HookName } from "../api/index.ts";
import type { PluginOutcome, ResolvedLimits } from "./policy.ts";
import type { HookDecision } from "../../proto/util/hook-decision.ts";

/** A loaded plugin as the child reports it. */
export interface LoadedPluginInfo {
  name: string;
  version: string;
  file: string;
  hooks: HookName[];
  limits: ResolvedLimits;
  failPolicy: Record<HookName, FailPolicy>;
}

export interface LoadError {
  file: string;
  error: string;
  /** True when an earlier version of the file stays loaded (a reload that failed). */
  keptPrevious: boolean;
}

export type ToChild =
  /** `suspended`: file → time (ms since the epoch) until which that plugin must not run (it stalled a previous child). */
  | { t: "load"; seq: number; files: string[]; suspended: Record<string, number> }
  | { t: "call"; id: number; hook: HookName; event: Record<string, unknown> };

export type FromChild =
  | { t: "loading"; seq: number; file: string }
  | { t: "loaded"; seq: number; plugins: LoadedPluginInfo[]; errors: LoadError[]; reloaded: string[] }
  | { t: "result"; id: number; outcomes: PluginOutcome[]; decision: HookDecision }
  | { t: "plog"; plugin: string; line: string }
  | { t: "log"; level: "info" | "warn" | "error"; msg: string; fields?: Record<string, unknown> };

/** Prefix of the stderr line the child's stall watch writes: `QPQ_PLUGIN_STALLED {"file","plugin","ms"}`. */
export const STALL_MARKER = "QPQ_PLUGIN_STALLED ";
