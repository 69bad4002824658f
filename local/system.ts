// The whole system on one machine: the edge in workerd via Miniflare (local/edge.ts) and the
// QUIC front, plus the metrics endpoint.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { resolve } from "node:path";
import { startEdge } from "./edge.ts";
import { QpqFront } from "../quic-front/server.ts";
import { loadTls } from "../quic-front/cert.ts";
import { configFromEnv } from "../quic-front/config.ts";
import { createLogger, type Logger } from "../quic-front/log.ts";


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
  stop(): Promise<void>;
}

export async function startLocalSystem(opts: LocalSystemOptions): Promise<LocalSystem> {
  const env = opts.env ?? process.env;
  const logger = opts.logger ?? createLogger((env.QPQ_LOG_LEVEL as "info") ?? "info");
  const dataDir = resolve(opts.dataDir);
  const edge = await startEdge({ dataDir, port: opts.edgePort, logger, vars: opts.edgeVars });
  const { secrets } = edge;
  const edgeUrl = edge.url;
  const stopEdge = edge.stop;

  const config = configFromEnv({ QPQ_LISTEN: "127.0.0.1:5001", ...env }, {
    edgeUrl, frontSecret: secrets.FRONT_SECRET, dataDir,
  });
  const tls = await loadTls({ certFile: config.tlsCertFile, keyFile: config.tlsKeyFile, dataDir });
  const front = new QpqFront({ config, tls, logger });
  try {
    await front.start();
  } catch (err) {
    await stopEdge();
    throw err;
  }

  let metricsServer: Server | undefined;
  let metricsUrl: string | undefined;
  if (config.metricsListen) {
    metricsServer = createServer((req, res) => {
      if (req.url === "/metrics") {
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(front.metrics.render());
      } else res.writeHead(404).end();
    });
    metricsServer.listen(config.metricsListen.port, config.metricsListen.host);
    await once(metricsServer, "listening");
    const addr = metricsServer.address() as { port: number };
    metricsUrl = `http://${config.metricsListen.host}:${addr.port}/metrics`;
  }

  return {
    front,
    quicPort: front.port,
    edgeUrl,
    certPem: tls.certPem,
    metricsUrl,
    async stop() {
      await front.stop();
      metricsServer?.close();
      await stopEdge();
    },
  };
}
