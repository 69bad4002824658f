// Starts a complete front from its configuration: TLS material, the plugin host (when plugins
// are configured), the QUIC listener and WebSocket bridge, and the metrics endpoint. Used by the
// production entry (main.ts), `npm start` and the benchmark, so all three run the same thing.
import { loadTls, type TlsMaterial } from "./cert.ts";
import type { FrontConfig } from "./config.ts";
import type { Logger } from "../proto/util/log.ts";
import { serveMetrics } from "./metrics-server.ts";
import { federationMetrics } from "./edge-metrics.ts";
import { QpqFront } from "./server.ts";
import { PluginHost } from "../plugins/host/index.ts";
import { checkEdgeSealedSender } from "./sealed-sender.ts";

export interface RunningFront {
  front: QpqFront;
  tls: TlsMaterial;
  plugins: PluginHost | undefined;
  metricsUrl: string | undefined;
  stop(): Promise<void>;
}

export async function startFront(config: FrontConfig, logger: Logger): Promise<RunningFront> {
  await checkEdgeSealedSender(config.edgeUrl, config.sealedSender, logger);
  const tls = await loadTls({ certFile: config.tlsCertFile, keyFile: config.tlsKeyFile, dataDir: config.dataDir });
  if (tls.note) logger.info("development certificate", { change: tls.note });
  const plugins =
    config.pluginDir || config.pluginFiles.length > 0
      ? await PluginHost.start({ dir: config.pluginDir, files: config.pluginFiles, logger, watch: true })
      : undefined;
  const front = new QpqFront({ config, tls, logger, hooks: plugins });
  if (plugins) front.metrics.register({ render: () => plugins.renderMetrics() });
  try {
    await front.start();
  } catch (err) {
    await plugins?.stop();
    throw err;
  }
  let metrics: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  try {
    metrics = config.metricsListen
      ? await serveMetrics(front.metrics, config.metricsListen, () =>
          federationMetrics(config.edgeUrl, config.frontSecret),
        )
      : undefined;
  } catch (err) {
    await front.stop();
    await plugins?.stop();
    throw err;
  }
  return {
    front,
    tls,
    plugins,
    metricsUrl: metrics?.url,
    async stop() {
      await front.stop();
      metrics?.close();
      await plugins?.stop();
    },
  };
}
