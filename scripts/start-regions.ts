// `npm run start:regions`: two federated regions on this machine, a.localhost and b.localhost,
// each its own edge (Miniflare, own data directory) and QUIC front, configured as each other's
// peer. Data under QPQ_DATA_DIR (default .qpq-data)/regions/{a,b}. Ctrl-C stops both.
//   region a: QUIC 127.0.0.1:5001, edge http://127.0.0.1:8787
//   region b: QUIC 127.0.0.1:5011, edge http://127.0.0.1:8788
// First: a machine without a matching native QUIC binding gets one clear line, not a crash.
import "../quic-front/quic/platform-check.ts";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startLocalSystem, type LocalSystem } from "../local/system.ts";
import { loadOrCreateSecrets } from "../local/secrets.ts";
import { publicKeyOf } from "../local/federation.ts";
import { DEV_TLS_FILES } from "../quic-front/cert.ts";
import { createLogger } from "../proto/util/log.ts";

const logger = createLogger((process.env.QPQ_LOG_LEVEL as "info" | undefined) ?? "info");
const base = resolve(process.env.QPQ_DATA_DIR ?? ".qpq-data", "regions");

const regions = [
  { name: "a", domain: "a.localhost", quic: 5001, edge: 8787, ws: 5002, metrics: 9464 },
  { name: "b", domain: "b.localhost", quic: 5011, edge: 8788, ws: 5012, metrics: 9465 },
];

// Keys first: each region's peers file names the other's public key.
const keys = new Map<string, string>();
for (const r of regions) {
  const dir = join(base, r.name);
  mkdirSync(dir, { recursive: true });
  keys.set(r.name, publicKeyOf((await loadOrCreateSecrets(dir)).FEDERATION_SIGNING_KEY));
}

const running: LocalSystem[] = [];
try {
  for (const r of regions) {
    const dir = join(base, r.name);
    const peersFile = join(dir, "federation-peers.json");
    const peers = regions
      .filter((p) => p !== r)
      .map((p) => ({ domain: p.domain, url: `http://127.0.0.1:${p.edge}`, publicKey: keys.get(p.name) }));
    writeFileSync(peersFile, JSON.stringify(peers, null, 2) + "\n");
    const system = await startLocalSystem({
      env: {
        ...process.env,
        QPQ_DATA_DIR: dir,
        QPQ_LISTEN: `127.0.0.1:${r.quic}`,
        QPQ_WS_LISTEN: `127.0.0.1:${r.ws}`,
        QPQ_METRICS_LISTEN: `127.0.0.1:${r.metrics}`,
        QPQ_FEDERATION_DOMAIN: r.domain,
        QPQ_EDGE_LISTEN: `127.0.0.1:${r.edge}`,
        QPQ_FEDERATION_PEERS: peersFile,
      },
      dataDir: dir,
      logger,
    });
    running.push(system);
    logger.info("region running", {
      domain: r.domain,
      quic: `127.0.0.1:${system.quicPort}`,
      ca: join(dir, DEV_TLS_FILES.ca),
      edge: system.edgeUrl,
      peers: peersFile,
    });
  }
} catch (err) {
  logger.error("start-up failed", { error: err instanceof Error ? err.message : String(err) });
  await Promise.allSettled(running.map((s) => s.stop()));
  process.exit(1);
}

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info("stopping", { signal });
  await Promise.allSettled(running.map((s) => s.stop()));
  process.exit(0);
};
// Miniflare's own exit hooks would exit at once; the drain above owns shutdown.
process.removeAllListeners("SIGINT");
process.removeAllListeners("SIGTERM");
process.on("SIGINT", () => void stop("SIGINT"));
process.on("SIGTERM", () => void stop("SIGTERM"));
