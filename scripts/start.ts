// `npm start`: the whole system locally, in one command. Ctrl-C / SIGTERM stops it cleanly.
import { startLocalSystem } from "../local/system.ts";
import { createLogger } from "../proto/util/log.ts";
import { join } from "node:path";

const logger = createLogger((process.env.QPQ_LOG_LEVEL as "info") ?? "info");
const dataDir = process.env.QPQ_DATA_DIR ?? ".qpq-data";
const env = { QPQ_METRICS_LISTEN: "127.0.0.1:9464", QPQ_WS_LISTEN: "127.0.0.1:5002", ...process.env };

try {
  Error.stackTraceLimit = Number(process.env.QPQ_STACK_TRACE_LIMIT ?? 4); // see FrontConfig.stackTraceLimit
  const system = await startLocalSystem({ dataDir, env, logger });
  logger.info("qpq-edge is running", {
    quic: `udp://${system.front.listenHost}:${system.quicPort} (ALPN qpq)`,
    websocket: system.front.wsUrl,
    edge: system.edgeUrl,
    metrics: system.metricsUrl,
    certificate: join(dataDir, "dev-cert.pem"),
    dataDir,
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
  logger.error("start-up failed", { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}
