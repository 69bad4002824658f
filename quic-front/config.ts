// Front configuration from the environment (names mirror the Rust qpq server's).
import { MAX_PAYLOAD } from "../proto/index.ts";
import { ConfigError } from "../proto/util/config-error.ts";
import { isLevel, type Level } from "../proto/util/log.ts";

export interface FrontConfig {
  host: string;
  port: number;
  dataDir: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  edgeUrl: string;
  frontSecret: string;
  /** id this front reports to the edge in connection ids (many fronts can share one edge). */
  frontId: string;
  rpcTimeoutMs: number;
  drainTimeoutMs: number;
  metricsListen?: { host: string; port: number };
  /** Plugins: every *.js/*.mjs/*.ts in this directory, in file-name order (QPQ_PLUGIN_DIR). */
  pluginDir?: string;
  /** Further plugin files, in order (QPQ_PLUGINS, comma-separated). */
  pluginFiles: string[];
  /** WebSocket bridge (same frames for browsers); off unless set. */
  wsListen?: { host: string; port: number };
  production: boolean;
  maxConnections: number;
  /** Open connections from one client address (an IPv6 client: its /64). */
  maxConnectionsPerAddress: number;
  /** A connection that has not logged in or resumed a session this long after opening is closed. */
  authTimeoutMs: number;
  maxStreamsPerConnection: number;
  /** Concurrent FetchWaits per connection and per identity (on this front). */
  fetchWaitPerConnection: number;
  fetchWaitPerIdentity: number;
  /** Token bucket per connection: sustained RPCs per second and burst. */
  rpcPerSecond: number;
  rpcBurst: number;
  /** Login/registration attempts per client address per minute. */
  authPerMinute: number;
  /** A request (and its answer) must cross within this, plus 1 s per minTransferBytesPerSecond. */
  transferTimeoutMs: number;
  minTransferBytesPerSecond: number;
  /** Announced payload bytes one connection may hold in partly received requests. */
  connectionBufferBytes: number;
  logLevel: Level;
  /**
   * Stack frames V8 captures per Error in the front's process (QPQ_STACK_TRACE_LIMIT). The QUIC
   * library builds an Error for every lock acquisition; capturing Node's default 10 frames cost
   * 10-20 % of the front's CPU in the benchmark. Applied by the process entry points only.
   */
  stackTraceLimit: number;
  /**
   * The QUIC server path (QPQ_QUIC_DRIVER): "lean", the driver in quic-front/quic/ straight over
   * quiche, or "js-quic", @matrixai/quic's QUICServer.
   */
  quicDriver: "lean" | "js-quic";
  /** A QUIC connection that receives nothing for this long is closed (QPQ_IDLE_TIMEOUT). */
  idleTimeoutMs: number;
  /** Sealed-sender mode (QPQ_SEALED_SENDER; must match the edge's SEALED_SENDER): quic-front/sealed-sender.ts. */
  sealedSender: boolean;
}

export function parseHostPort(value: string, what: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(value.trim());
  if (!m) throw new ConfigError(`${what} must be host:port, got "${value}"`);
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError(`${what} port out of range: ${port}`);
  return { host: m[1] || "0.0.0.0", port };
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new ConfigError(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

/** "true"/"1" or "false"/"0"/unset; anything else is an error, so a typo cannot turn a mode off. */
function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = (env[name] ?? "").trim().toLowerCase();
  if (raw === "true" || raw === "1") return true;
  if (raw === "" || raw === "false" || raw === "0") return false;
  throw new ConfigError(`${name} must be true or false, got "${env[name]}"`);
}

/** Durations accept "30", "30s" or "30000ms". */
function duration(env: NodeJS.ProcessEnv, name: string, fallbackMs: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallbackMs;
  const m = /^(\d+)(ms|s)?$/.exec(raw.trim());
  if (!m) throw new ConfigError(`${name} must be a duration like 30s or 500ms, got "${raw}"`);
  return m[2] === "ms" ? Number(m[1]) : Number(m[1]) * 1000;
}

/**
 * Everything but the edge the front relays to: what a process that starts its own edge
 * (`npm start`) reads and validates before it has one.
 */
export type FrontSettings = Omit<FrontConfig, "edgeUrl" | "frontSecret">;

/** The whole configuration from the environment (QPQ_EDGE_URL and QPQ_FRONT_SECRET included), validated. */
export function configFromEnv(env: NodeJS.ProcessEnv, overrides: Partial<FrontConfig> = {}): FrontConfig {
  const { edgeUrl = env.QPQ_EDGE_URL ?? "", frontSecret = env.QPQ_FRONT_SECRET ?? "", ...settings } = overrides;
  return withEdge(settingsFromEnv(env, settings), { edgeUrl, frontSecret });
}

/** The settings from the environment, validated (see FrontSettings). */
export function settingsFromEnv(env: NodeJS.ProcessEnv, overrides: Partial<FrontSettings> = {}): FrontSettings {
  const listen = parseHostPort(env.QPQ_LISTEN ?? "0.0.0.0:5001", "QPQ_LISTEN");
  const production = env.QPQ_PRODUCTION === "1" || env.QPQ_PRODUCTION === "true";
  const level = env.QPQ_LOG_LEVEL ?? "info";
  if (!isLevel(level)) throw new ConfigError(`QPQ_LOG_LEVEL must be debug|info|warn|error`);
  const settings: FrontSettings = {
    host: listen.host,
    port: listen.port,
    dataDir: env.QPQ_DATA_DIR ?? ".qpq-data",
    tlsCertFile: env.QPQ_TLS_CERT || undefined,
    tlsKeyFile: env.QPQ_TLS_KEY || undefined,
    frontId: env.QPQ_FRONT_ID ?? `front-${process.pid}`,
    rpcTimeoutMs: duration(env, "QPQ_RPC_TIMEOUT", 30_000),
    drainTimeoutMs: duration(env, "QPQ_DRAIN_TIMEOUT", 30_000),
    metricsListen: env.QPQ_METRICS_LISTEN ? parseHostPort(env.QPQ_METRICS_LISTEN, "QPQ_METRICS_LISTEN") : undefined,
    wsListen: env.QPQ_WS_LISTEN ? parseHostPort(env.QPQ_WS_LISTEN, "QPQ_WS_LISTEN") : undefined,
    pluginDir: env.QPQ_PLUGIN_DIR || undefined,
    pluginFiles: (env.QPQ_PLUGINS ?? "")
      .split(",")
      .map((f) => f.trim())
      .filter(Boolean),
    production,
    maxConnections: int(env, "QPQ_MAX_CONNECTIONS", 10_000),
    maxConnectionsPerAddress: int(env, "QPQ_MAX_CONNECTIONS_PER_ADDRESS", 64),
    authTimeoutMs: duration(env, "QPQ_AUTH_TIMEOUT", 30_000),
    maxStreamsPerConnection: int(env, "QPQ_MAX_STREAMS", 1000),
    fetchWaitPerConnection: int(env, "QPQ_FETCH_WAIT_PER_CONNECTION", 4),
    fetchWaitPerIdentity: int(env, "QPQ_FETCH_WAIT_PER_IDENTITY", 16),
    rpcPerSecond: int(env, "QPQ_RPC_PER_SECOND", 500),
    rpcBurst: int(env, "QPQ_RPC_BURST", 1000),
    // Generous for many users behind one NAT address: the edge also limits logins per username.
    authPerMinute: int(env, "QPQ_AUTH_PER_MINUTE", 300),
    transferTimeoutMs: duration(env, "QPQ_TRANSFER_TIMEOUT", 10_000),
    minTransferBytesPerSecond: int(env, "QPQ_MIN_TRANSFER_RATE", 256 * 1024),
    connectionBufferBytes: int(env, "QPQ_CONNECTION_BUFFER_BYTES", 16 * 1024 * 1024),
    logLevel: level,
    stackTraceLimit: int(env, "QPQ_STACK_TRACE_LIMIT", 4),
    sealedSender: flag(env, "QPQ_SEALED_SENDER"),
    quicDriver: quicDriver(env.QPQ_QUIC_DRIVER),
    idleTimeoutMs: duration(env, "QPQ_IDLE_TIMEOUT", 120_000),
    ...overrides,
  };
  atLeastOne(settings);
  return settings;
}

/** The configuration of a front relaying to `edge`, validated as a whole. */
export function withEdge(settings: FrontSettings, edge: Pick<FrontConfig, "edgeUrl" | "frontSecret">): FrontConfig {
  const cfg: FrontConfig = { ...settings, ...edge };
  validate(cfg);
  return cfg;
}

function atLeastOne(cfg: FrontSettings): void {
  for (const [name, value] of [
    ["QPQ_RPC_PER_SECOND", cfg.rpcPerSecond],
    ["QPQ_RPC_BURST", cfg.rpcBurst],
    ["QPQ_AUTH_PER_MINUTE", cfg.authPerMinute],
    ["QPQ_MAX_CONNECTIONS", cfg.maxConnections],
    ["QPQ_MAX_STREAMS", cfg.maxStreamsPerConnection],
    ["QPQ_MAX_CONNECTIONS_PER_ADDRESS", cfg.maxConnectionsPerAddress],
    ["QPQ_AUTH_TIMEOUT", cfg.authTimeoutMs],
    ["QPQ_FETCH_WAIT_PER_CONNECTION", cfg.fetchWaitPerConnection],
    ["QPQ_FETCH_WAIT_PER_IDENTITY", cfg.fetchWaitPerIdentity],
    ["QPQ_TRANSFER_TIMEOUT", cfg.transferTimeoutMs],
    ["QPQ_MIN_TRANSFER_RATE", cfg.minTransferBytesPerSecond],
    ["QPQ_IDLE_TIMEOUT", cfg.idleTimeoutMs],
  ] as const) {
    if (value < 1) throw new ConfigError(`${name} must be at least 1, got ${value}`);
  }
  // Smaller than one frame would refuse every large request outright.
  if (cfg.connectionBufferBytes < MAX_PAYLOAD) {
    throw new ConfigError(
      `QPQ_CONNECTION_BUFFER_BYTES must be at least ${MAX_PAYLOAD} (one frame), got ${cfg.connectionBufferBytes}`,
    );
  }
}

function validate(cfg: FrontConfig): void {
  atLeastOne(cfg);
  if (!cfg.edgeUrl) throw new ConfigError("QPQ_EDGE_URL is required");
  if (!/^https?:\/\//.test(cfg.edgeUrl)) throw new ConfigError("QPQ_EDGE_URL must be an http(s) URL");
  if (!cfg.frontSecret) throw new ConfigError("QPQ_FRONT_SECRET is required");
  if (cfg.production) {
    if (!cfg.tlsCertFile || !cfg.tlsKeyFile)
      throw new ConfigError("production mode refuses the development certificate: set QPQ_TLS_CERT and QPQ_TLS_KEY");
    if (cfg.frontSecret.length < 32)
      throw new ConfigError("production mode needs a QPQ_FRONT_SECRET of at least 32 characters");
    if (!cfg.edgeUrl.startsWith("https://")) throw new ConfigError("production mode needs an https:// QPQ_EDGE_URL");
  }
}

function quicDriver(value: string | undefined): "lean" | "js-quic" {
  const v = value || "lean";
  if (v !== "lean" && v !== "js-quic") throw new ConfigError(`QPQ_QUIC_DRIVER must be lean|js-quic, got "${v}"`);
  return v;
}
