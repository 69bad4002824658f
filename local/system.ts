// The whole system on one machine: the edge in workerd via Miniflare (local/edge.ts) and the
// QUIC front, plus the metrics endpoint.
import { resolve } from "node:path";
import { startEdge } from "./edge.ts";
import type { QpqFront } from "../quic-front/server.ts";
import type { PluginHost } from "../plugins/host/index.ts";
import { settingsFromEnv, withEdge, type FrontSettings } from "../quic-front/config.ts";
import { createLogger, type Logger } from "../proto/util/log.ts";
import { startFront, type RunningFront } from "../quic-front/run.ts";
import { localFederation, publicKeyOf, syncPeers } from "./federation.ts";
import { parseAdmins } from "../edge/lib/admins.ts";

export interface LocalSystemOptions {
  /** The front's settings, read once by the caller (localSettings); default: localSettings(env). */
  settings?: FrontSettings;
  /** Default: the settings' data directory (QPQ_DATA_DIR). */
  dataDir?: string;
  /** Where the settings come from when none are given (default process.env). */
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
  /** The certificate clients pin: the development CA, or the configured certificate. */
  certPem: string;
  metricsUrl?: string;
  plugins?: PluginHost;
  /** Set with QPQ_FEDERATION_DOMAIN: the region's domain and federation public key (base64url). */
  federation?: { domain: string; publicKey: string };
  stop(): Promise<void>;
}

/** The front's settings for a system on this machine: the QUIC listener defaults to 127.0.0.1:5001. */
export function localSettings(env: NodeJS.ProcessEnv): FrontSettings {
  return settingsFromEnv({ QPQ_LISTEN: "127.0.0.1:5001", ...env });
}

export async function startLocalSystem(opts: LocalSystemOptions): Promise<LocalSystem> {
  const settings = opts.settings ?? localSettings(opts.env ?? process.env);
  const logger = opts.logger ?? createLogger(settings.logLevel);
  const dataDir = resolve(opts.dataDir ?? settings.dataDir);
  // One setting for both halves: the front's QPQ_SEALED_SENDER sets the edge's SEALED_SENDER.
  // Federation (local/federation.ts): QPQ_FEDERATION_DOMAIN, QPQ_EDGE_LISTEN, QPQ_FEDERATION_PEERS.
  const fed = localFederation(opts.env ?? process.env);
  // Moderation administrators (edge/lib/admins.ts), checked here so a typo fails the start.
  const admins = (opts.env ?? process.env).QPQ_ADMIN_IDENTITIES;
  if (admins) parseAdmins(admins);
  const vars = {
    SEALED_SENDER: String(settings.sealedSender),
    ...(admins ? { QPQ_ADMIN_IDENTITIES: admins } : {}),
    ...fed.vars,
    ...opts.edgeVars,
  };
  const edge = await startEdge({ dataDir, port: opts.edgePort ?? fed.edgePort, logger, vars });
  let running: RunningFront;
  let peers: { stop(): void } | undefined;
  try {
    if (fed.peersFile) peers = await syncPeers(edge.miniflare, fed.peersFile, logger);
    const config = withEdge({ ...settings, dataDir }, { edgeUrl: edge.url, frontSecret: edge.secrets.FRONT_SECRET });
    running = await startFront(config, logger);
  } catch (err) {
    peers?.stop();
    await edge.stop();
    throw err;
  }
  return {
    front: running.front,
    quicPort: running.front.port,
    edgeUrl: edge.url,
    certPem: running.tls.caPem,
    metricsUrl: running.metricsUrl,
    plugins: running.plugins,
    federation: fed.domain
      ? { domain: fed.domain, publicKey: publicKeyOf(edge.secrets.FEDERATION_SIGNING_KEY) }
      : undefined,
    async stop() {
      peers?.stop();
      await running.stop();
      await edge.stop();
    },
  };
}
