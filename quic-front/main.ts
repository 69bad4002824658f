// Production entry of the QUIC front: configuration from the environment, graceful SIGTERM.
//   QPQ_EDGE_URL=https://… QPQ_FRONT_SECRET=… QPQ_TLS_CERT=… QPQ_TLS_KEY=… node quic-front/main.ts
import { configFromEnv, ConfigError } from "./config.ts";
import { loadTls } from "./cert.ts";
import { createLogger } from "./log.ts";
import { QpqFront } from "./server.ts";
import { serveMetrics } from "./metrics-server.ts";

const logger = createLogger((process.env.QPQ_LOG_LEVEL as "info") ?? "info");
try {
  const config = configFromEnv(process.env);
  const tls = await loadTls({ certFile: config.tlsCertFile, keyFile: config.tlsKeyFile, dataDir: config.dataDir });
  const front = new QpqFront({ config, tls, logger });
  await front.start();
  const metrics = config.metricsListen ? await serveMetrics(front.metrics, config.metricsListen) : undefined;
  logger.info("qpq-edge front listening", {
    quic: `${front.listenHost}:${front.port}`, edge: config.edgeUrl, metrics: metrics?.url, selfSignedCertificate: tls.selfSigned,
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("draining", { signal, timeoutMs: config.drainTimeoutMs });
    await front.stop();
    metrics?.close();
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
} catch (err) {
  logger.error("front failed to start", { error: err instanceof Error ? err.message : String(err), config: err instanceof ConfigError });
  process.exit(1);
}
