// Which deployment owns a remote identity key (D1 remote_identities), learned from proxied
// ResolveUser answers and from relays received. The first binding wins: a peer cannot move an
// identity another domain (or this one) already owns. Positive answers are cached per isolate,
// so repeated sends to a remote identity cost no D1 read.
import { eq, sql } from "drizzle-orm";
import type { Db } from "../deps.ts";
import { remoteIdentities, users } from "../../schema/tables.ts";
import { toHex } from "../../proto/util/hex.ts";
import { FEDERATION_LIMITS } from "./limits.ts";

const owners = new Map<string, { domain: string; until: number }>();

/** The home domain of an identity that is not registered here, or null when none is known. */
export async function homeOf(db: Db, identityKey: Uint8Array, now = Date.now()): Promise<string | null> {
  const hex = toHex(identityKey);
  const hit = owners.get(hex);
  if (hit && hit.until > now) return hit.domain;
  const row = await db
    .select({ domain: remoteIdentities.domain })
    .from(remoteIdentities)
    .where(eq(remoteIdentities.identityKey, identityKey))
    .get();
  if (!row) return null;
  remember(hex, row.domain, now);
  return row.domain;
}

function remember(hex: string, domain: string, now: number): void {
  if (owners.size >= FEDERATION_LIMITS.ownerCacheMax) owners.delete(owners.keys().next().value as string);
  owners.set(hex, { domain, until: now + FEDERATION_LIMITS.ownerCacheMs });
}

/**
 * Records that `domain` owns `identityKey`, unless the identity is registered here or already
 * owned by another domain: then "conflict", and nothing is recorded.
 */
export async function learnHome(db: Db, identityKey: Uint8Array, domain: string): Promise<"ok" | "conflict"> {
  // One statement: never recorded for an identity registered here.
  await db.run(sql`
    INSERT OR IGNORE INTO ${remoteIdentities} (identity_key, domain, learned_at)
    SELECT ${identityKey}, ${domain}, ${Date.now()}
    WHERE NOT EXISTS (SELECT 1 FROM ${users} WHERE identity_key = ${identityKey})`);
  const owner = await db
    .select({ domain: remoteIdentities.domain })
    .from(remoteIdentities)
    .where(eq(remoteIdentities.identityKey, identityKey))
    .get();
  if (owner?.domain !== domain) return "conflict";
  remember(toHex(identityKey), domain, Date.now());
  return "ok";
}
