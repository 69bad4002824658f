// The peer registry: D1 table federation_peers, which operators change without a redeploy. Each
// isolate keeps a row for FEDERATION_LIMITS.peerCacheMs, so a change applies within seconds.
import { eq } from "drizzle-orm";
import type { Db } from "../deps.ts";
import { federationPeers } from "../../schema/tables.ts";
import { FEDERATION_LIMITS } from "./limits.ts";

export interface Peer {
  domain: string;
  /** Base URL of the peer's edge; requests go to <url>/federation/rpc/<method>. */
  url: string;
  /** Raw Ed25519 public key (32 bytes). */
  publicKey: Uint8Array;
}

const cache = new Map<string, { peer: Peer | null; until: number }>();
/** Unknown names are cached too (a flood of them costs one read each per window), within a bound. */
const CACHE_MAX = 1024;

export async function findPeer(db: Db, domain: string, now = Date.now()): Promise<Peer | null> {
  const hit = cache.get(domain);
  if (hit && hit.until > now) return hit.peer;
  const row = await db.select().from(federationPeers).where(eq(federationPeers.domain, domain)).get();
  const peer =
    row && row.publicKey.length === 32 ? { domain: row.domain, url: row.url, publicKey: row.publicKey } : null;
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(domain, { peer, until: now + FEDERATION_LIMITS.peerCacheMs });
  return peer;
}

export async function listPeers(db: Db): Promise<Peer[]> {
  const rows = await db.select().from(federationPeers).all();
  return rows.map((r) => ({ domain: r.domain, url: r.url, publicKey: r.publicKey }));
}
