// The plugin authoring API: what a qpq-edge gateway plugin receives and may return.
//
// A plugin is one ES module (JavaScript, or TypeScript that only needs type stripping) exporting
// any of the six hook functions below, plus an optional `manifest`. It runs in its own
// isolated-vm isolate: no imports, no require/process/fetch/timers, no host objects. The only
// globals besides the JavaScript built-ins are `log(...)` and a `console` that forwards to it.
//
// Hook export names: the snake_case name or its camelCase form (table below); exporting both
// forms of one hook is an error.
//
//   on_connect          onConnect          decides  (reject closes the connection)
//   on_disconnect       onDisconnect       observes (return value ignored)
//   on_message_send     onMessageSend      decides  (reject answers Forbidden with the reason)
//   on_message_receive  onMessageReceive   observes (return value ignored)
//   on_group_join       onGroupJoin        decides  (reject answers Forbidden with the reason)
//   on_group_leave      onGroupLeave       decides  (reject answers Forbidden with the reason)
//
// Hooks are synchronous: returning a Promise (an `async function`) is an invalid result.
// TypeScript plugins may `import type { … } from "…/plugins/api/index.ts"` — type-only imports
// disappear when types are stripped; any other import makes the plugin fail to load.

/** The six gateway hooks, in the snake_case form used in manifests, metrics and logs. */
export type HookName =
  "on_connect" | "on_disconnect" | "on_message_send" | "on_message_receive" | "on_group_join" | "on_group_leave";

/** Lower-case hex string (identity keys, channel ids, message ids, device ids). */
export type Hex = string;

/** A connection was accepted (QUIC with ALPN qpq, or the WebSocket bridge). */
export interface ConnectEvent {
  /** Opaque per-connection id, stable for the connection's lifetime. */
  connectionId: string;
  /** Client address as "ip:port" (IPv6 as "[ip]:port"). */
  clientAddress: string;
  alpn: "qpq";
  transport: "quic" | "websocket";
  /** Milliseconds since the Unix epoch. */
  time: number;
}

/** A connection ended (observer). */
export interface DisconnectEvent {
  connectionId: string;
  clientAddress: string;
  transport: "quic" | "websocket";
  time: number;
  /** How long the connection lasted. */
  durationMs: number;
  /** Why it ended, e.g. "client closed", "idle timeout", "rejected by plugin", "server draining". */
  reason: string;
}

/** An Enqueue (one recipient) or a BatchEnqueue (one payload for several recipients) is about to be relayed: one event per request. */
export interface MessageSendEvent {
  connectionId: string;
  clientAddress: string;
  /** The sender's identity key; absent in sealed-sender mode. */
  senderIdentity?: Hex;
  /** Recipient identity keys. */
  recipients: Hex[];
  channelId: Hex;
  /** Ciphertext size in bytes (the payload itself is never given to plugins). */
  payloadSize: number;
  ttlSecs: number;
  /** Client-chosen idempotency id, or "" when absent. */
  messageId: Hex | "";
  /** True for a BatchEnqueue. */
  batch: boolean;
  time: number;
}

/** Fetch or FetchWait delivered messages to a device (observer). */
export interface MessageReceiveEvent {
  connectionId: string;
  recipient: Hex;
  deviceId: Hex;
  channelId: Hex;
  /** Number of messages delivered. */
  count: number;
  /** Size in bytes of each delivered message. */
  sizes: number[];
  /** True for FetchWait (long poll). */
  wait: boolean;
  time: number;
}

/** A member is being added to a channel (CreateChannel with members, AddMember, …). */
export interface GroupJoinEvent {
  /** The channel; "" while a group is being created (its id is assigned afterwards). */
  channelId: Hex | "";
  /** Identity being added. */
  member: Hex;
  /** Identity performing the change. */
  actor: Hex;
  time: number;
}

/** A member is being removed from a channel (RemoveMember, leaving, …). */
export type GroupLeaveEvent = GroupJoinEvent;

/** Event type for each hook. */
export interface HookEvents {
  on_connect: ConnectEvent;
  on_disconnect: DisconnectEvent;
  on_message_send: MessageSendEvent;
  on_message_receive: MessageReceiveEvent;
  on_group_join: GroupJoinEvent;
  on_group_leave: GroupLeaveEvent;
}

export type HookEvent<H extends HookName> = HookEvents[H];

/**
 * What a deciding hook may return.
 * - allow: `undefined` (no return), `true`, or `{ allow: true }`
 * - reject: `{ reject: "reason" }` or `{ allow: false, reason: "reason" }`; the reason is 1–256
 *   printable characters and is sent to the client (with status Forbidden) and logged.
 * Anything else (false, numbers, strings, arrays, functions, Promises, objects with getters, an
 * over-long or non-printable reason) is an invalid result and counts as a plugin error, decided
 * by the plugin's fail policy.
 * Observers (on_disconnect, on_message_receive): the return value is ignored; only a throw or a
 * timeout counts (as an error/timeout in the metrics and logs).
 */
export type Decision =
  void | undefined | true | { allow: true } | { reject: string } | { allow: false; reason: string };

/** "closed": a failure of this plugin rejects the call; "open": it is ignored (the call proceeds). */
export type FailPolicy = "open" | "closed";

export interface Limits {
  /** Isolate heap limit in MiB (8–512, default 32). A guideline: V8 may exceed it 2–3×. */
  memoryMb?: number;
  /** Wall-clock budget of one hook call in ms (1–5000, default 50). */
  timeoutMs?: number;
}

/** Optional `export const manifest = { … }` of a plugin. Unknown keys make the plugin fail to load. */
export interface Manifest {
  /** Plugin name used in metrics and logs: 1–64 of [A-Za-z0-9._-], starting with a letter or digit. Default: the file name without extension. */
  name?: string;
  version?: string;
  /** Hooks to activate (snake_case or camelCase). Each must be exported; exported hooks not listed stay inactive. Default: every exported hook. */
  hooks?: string[];
  limits?: Limits;
  /** One policy for every hook, or a per-hook map (hooks not in the map keep their default). */
  failPolicy?: FailPolicy | Partial<Record<HookName, FailPolicy>>;
}

/** Signature of the global `log` function available inside a plugin (arguments are stringified, one line, ≤ 512 characters, rate-limited). */
export type LogFunction = (...args: unknown[]) => void;

/** The shape of a plugin module, for TypeScript authors: `export const on_connect: Plugin["on_connect"] = …`. */
export interface Plugin {
  manifest?: Manifest;
  on_connect?(event: ConnectEvent): Decision;
  on_disconnect?(event: DisconnectEvent): void;
  on_message_send?(event: MessageSendEvent): Decision;
  on_message_receive?(event: MessageReceiveEvent): void;
  on_group_join?(event: GroupJoinEvent): Decision;
  on_group_leave?(event: GroupLeaveEvent): Decision;
}
