// `npm start`: the whole system locally, in one command. Ctrl-C / SIGTERM stops it cleanly.
// First: a machine without a matching native QUIC binding gets one clear line, not a crash.
import "../quic-front/quic/platform-check.ts";
import { localSettings, startLocalSystem } from "../local/system.ts";
import { createLogger, type Logger } from "../proto/util/log.ts";
import type { FrontSettings } from "../quic-front/config.ts";
import { DEV_TLS_FILES } from "../quic-front/cert.ts";
import { join } from "node:path";

function failed(logger: Logger, err: unknown): never {
  logger.error("start-up failed", { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}

// The front's settings are read and validated once, first: they set the log level, the stack
// trace limit (see FrontConfig.stackTraceLimit) and the data directory.
let settings: FrontSettings;
try {
  settings = localSettings({ QPQ_METRICS_LISTEN: "127.0.0.1:9464", QPQ_WS_LISTEN: "127.0.0.1:5002", ...process.env });
} catch (err) {
  failed(createLogger(), err);
}
const logger = createLogger(settings.logLevel);
const dataDir = settings.dataDir;

try {
  Error.stackTraceLimit = settings.stackTraceLimit;
  const system = await startLocalSystem({ settings, logger });
  logger.info("qpq-edge is running", {
    quic: `udp://${system.front.listenHost}:${system.quicPort} (ALPN qpq)`,
    websocket: system.front.wsUrl,
    edge: system.edgeUrl,
    metrics: system.metricsUrl,
    ca: join(dataDir, DEV_TLS_FILES.ca),
    dataDir,
    // With QPQ_FEDERATION_DOMAIN: the domain and the public key peers configure for this region.
    ...(system.federation ? { federation: system.federation } : {}),
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("stopping", { signal });
    await system.stop();
    logger.info("stopped");
    process.exit(0);
  };
  // Miniflare installs exit hooks that exit at once on a signal; the drain below owns shutdown
  // (and disposes Miniflare itself).
  process.removeAllListeners("SIGINT");
  process.removeAllListeners("SIGTERM");
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
} catch (err) {
  failed(logger, err);
}
