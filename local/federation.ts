// Federation on this machine (`npm start`): QPQ_FEDERATION_DOMAIN names the region, QPQ_EDGE_LISTEN
// fixes the local edge's HTTP address (so peers can reach it across restarts), and
// QPQ_FEDERATION_PEERS is a JSON file of peers, written into the edge's federation_peers table at
// start and again whenever the file changes (the edge picks a change up within seconds).
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { resolve } from "node:path";
import type { Miniflare } from "miniflare";
import { ConfigError } from "../proto/util/config-error.ts";
import type { Logger } from "../proto/util/log.ts";
import { isDomain } from "../edge/federation/domain.ts";

export interface PeerConfig {
  domain: string;
  url: string;
  /** Raw Ed25519 public key, base64url (what `npm run federation -- keygen` prints). */
  publicKey: string;
}

export interface LocalFederation {
  /** Edge variables: FEDERATION_DOMAIN and, with a fixed edge address, FEDERATION_URL. */
  vars: Record<string, string>;
  domain: string | undefined;
  edgePort: number | undefined;
  peersFile: string | undefined;
}

/** "127.0.0.1:8787" → 8787; the local edge always listens on 127.0.0.1. */
function edgePort(listen: string): number {
  const m = /^(?:127\.0\.0\.1|localhost):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[1]) : NaN;
  if (!(port > 0 && port < 65536)) {
    throw new ConfigError(`QPQ_EDGE_LISTEN must be 127.0.0.1:<port>, got ${JSON.stringify(listen)}`);
  }
  return port;
}

export function localFederation(env: NodeJS.ProcessEnv): LocalFederation {
  const domain = env.QPQ_FEDERATION_DOMAIN?.trim().toLowerCase() || undefined;
  if (domain && !isDomain(domain))
    throw new ConfigError(`QPQ_FEDERATION_DOMAIN ${JSON.stringify(domain)} is not a domain`);
  const port = env.QPQ_EDGE_LISTEN ? edgePort(env.QPQ_EDGE_LISTEN) : undefined;
  const peersFile = env.QPQ_FEDERATION_PEERS ? resolve(env.QPQ_FEDERATION_PEERS) : undefined;
  if (peersFile && !domain) throw new ConfigError("QPQ_FEDERATION_PEERS needs QPQ_FEDERATION_DOMAIN");
  const vars: Record<string, string> = {};
  if (domain) vars.FEDERATION_DOMAIN = domain;
  if (domain && port) vars.FEDERATION_URL = `http://127.0.0.1:${port}`;
  return { vars, domain, edgePort: port, peersFile };
}

function base64urlToBytes(value: string): Uint8Array {
  return new Uint8Array(Buffer.from(value, "base64url"));
}

/** Reads and checks a peers file; every problem names the entry. */
export function readPeers(file: string): PeerConfig[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new ConfigError(`${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!Array.isArray(parsed)) throw new ConfigError(`${file}: expected a JSON array of peers`);
  return parsed.map((p: unknown, i) => {
    const e = p as Partial<PeerConfig> | null;
    const at = `${file}[${i}]`;
    if (!e || typeof e.domain !== "string" || !isDomain(e.domain.toLowerCase())) {
      throw new ConfigError(`${at}: domain must be a domain name`);
    }
    if (typeof e.url !== "string" || !/^https?:\/\//.test(e.url))
      throw new ConfigError(`${at}: url must be http(s)://`);
    if (typeof e.publicKey !== "string" || base64urlToBytes(e.publicKey).length !== 32) {
      throw new ConfigError(`${at}: publicKey must be a base64url Ed25519 public key (32 bytes)`);
    }
    return { domain: e.domain.toLowerCase(), url: e.url, publicKey: e.publicKey };
  });
}

interface D1 {
  prepare(sql: string): { bind(...v: unknown[]): unknown };
  batch(statements: unknown[]): Promise<unknown>;
}

/** Replaces the edge's peer table with `peers` (one batch: never half a configuration). */
export async function writePeers(db: D1, peers: PeerConfig[]): Promise<void> {
  const now = Date.now();
  await db.batch([
    db.prepare("DELETE FROM federation_peers").bind(),
    ...peers.map((p) =>
      db
        .prepare("INSERT INTO federation_peers (domain, url, public_key, updated_at) VALUES (?, ?, ?, ?)")
        .bind(p.domain, p.url, base64urlToBytes(p.publicKey), now),
    ),
  ]);
}

/** Syncs the peers file into the edge now and on every change; stop() ends the watch. */
export async function syncPeers(miniflare: Miniflare, file: string, logger: Logger): Promise<{ stop(): void }> {
  const db = (await miniflare.getD1Database("DB")) as unknown as D1;
  const load = async () => {
    const peers = readPeers(file);
    await writePeers(db, peers);
    logger.info("federation peers loaded", { file, peers: peers.map((p) => p.domain) });
  };
  await load();
  const onChange = () => {
    load().catch((err) =>
      logger.warn("federation peers file not applied (the previous peers stay)", {
        file,
        error: err instanceof Error ? err.message : String(err),
      }),
    );
  };
  // Polling: works for editors that replace the file, and on every platform.
  watchFile(file, { interval: 1_000 }, onChange);
  return { stop: () => unwatchFile(file, onChange) };
}

/** The raw public key (base64url) of a PKCS#8 Ed25519 private key (base64). */
export function publicKeyOf(pkcs8Base64: string): string {
  const privateKey = createPrivateKey({ key: Buffer.from(pkcs8Base64, "base64"), format: "der", type: "pkcs8" });
  const jwk = createPublicKey(privateKey).export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new ConfigError("FEDERATION_SIGNING_KEY is not an Ed25519 key");
  return jwk.x;
}
