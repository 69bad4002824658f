// The whole system on one machine: the edge in workerd via Miniflare (local/edge.ts) and the
// QUIC front, plus the metrics endpoint.
import { resolve } from "node:path";
import { startEdge } from "./edge.ts";
import type { QpqFront } from "../quic-front/server.ts";
import type { PluginHost } from "../plugins/host/index.ts";
import { configFromEnv } from "../quic-front/config.ts";
import { createLogger, type Logger } from "../proto/util/log.ts";
import { startFront, type RunningFront } from "../quic-front/run.ts";


export interface LocalSystemOptions {
  dataDir: string;
  /** QUIC listen address, default 127.0.0.1:5001 (QPQ_LISTEN overrides when started by npm start). */
  env?: NodeJS.ProcessEnv;
  /** Port for the local edge (0 = pick a free one). */
  edgePort?: number;
  logger?: Logger;
  /** Extra edge variables (limits) for tests. */
  edgeVars?: Record<string, string>;
}

export interface LocalSystem {
  front: QpqFront;
  quicPort: number;
  edgeUrl: string;
  certPem: string;
  metricsUrl?: string;
  plugins?: PluginHost;
  stop(): Promise<void>;
}

export async function startLocalSystem(opts: LocalSystemOptions): Promise<LocalSystem> {
  const env = opts.env ?? process.env;
  const logger = opts.logger ?? createLogger((env.QPQ_LOG_LEVEL as "info") ?? "info");
  const dataDir = resolve(opts.dataDir);
  const edge = await startEdge({ dataDir, port: opts.edgePort, logger, vars: opts.edgeVars });
  let running: RunningFront;
  try {
    const config = configFromEnv({ QPQ_LISTEN: "127.0.0.1:5001", ...env }, {
      edgeUrl: edge.url, frontSecret: edge.secrets.FRONT_SECRET, dataDir,
    });
    running = await startFront(config, logger);
  } catch (err) {
    await edge.stop();
    throw err;
  }
  return {
    front: running.front,
    quicPort: running.front.port,
    edgeUrl: edge.url,
    certPem: running.tls.certPem,
    metricsUrl: running.metricsUrl,
    plugins: running.plugins,
    async stop() {
      await running.stop();
      await edge.stop();
    },
  };
}
