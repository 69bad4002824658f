// Production entry of the QUIC front: configuration from the environment, graceful SIGTERM.
//   QPQ_EDGE_URL=https://… QPQ_FRONT_SECRET=… QPQ_TLS_CERT=… QPQ_TLS_KEY=… node quic-front/main.ts
// First: a machine without a matching native QUIC binding gets one clear line, not a crash.
import "./quic/platform-check.ts";
import { configFromEnv, type FrontConfig } from "./config.ts";
import { ConfigError } from "../proto/util/config-error.ts";
import { createLogger, type Logger } from "../proto/util/log.ts";
import { startFront } from "./run.ts";

function failed(logger: Logger, err: unknown): never {
  logger.error("front failed to start", {
    error: err instanceof Error ? err.message : String(err),
    config: err instanceof ConfigError,
  });
  process.exit(1);
}

// The configuration is read and validated once, first; it sets the log level and the rest.
let config: FrontConfig;
try {
  config = configFromEnv(process.env);
} catch (err) {
  failed(createLogger(), err);
}
Error.stackTraceLimit = config.stackTraceLimit;
const logger = createLogger(config.logLevel);
try {
  const running = await startFront(config, logger);
  const { front } = running;
  logger.info("qpq-edge front listening", {
    quic: `${front.listenHost}:${front.port}`,
    websocket: front.wsUrl,
    edge: config.edgeUrl,
    metrics: running.metricsUrl,
    selfSignedCertificate: running.tls.selfSigned,
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("draining", { signal, timeoutMs: config.drainTimeoutMs });
    await running.stop();
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
} catch (err) {
  failed(logger, err);
}
