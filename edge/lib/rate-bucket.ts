// Token buckets in D1 (table rate_buckets), so a limit is the same whichever front or isolate a
// request comes through. Each bucket is keyed by SHA-256 of (purpose, subject): the subject (a
// recovery token hash, a client address, an identity) is never stored as such.
import { lt, sql } from "drizzle-orm";
import type { Db } from "../deps.ts";
import { rateBuckets } from "../../schema/tables.ts";
import { sha256 } from "./crypto.ts";
import { encodeUtf8 } from "../../proto/util/text.ts";
import { toHex } from "../../proto/util/hex.ts";

export interface RateLimit {
  /** Tokens a bucket holds when full (requests allowed at once). */
  burst: number;
  /** Tokens regained per hour. */
  perHour: number;
}

/** The bucket key of `subject` for one purpose. */
export function bucketKey(purpose: string, subject: Uint8Array | string): Promise<Uint8Array> {
  const text = typeof subject === "string" ? subject : toHex(subject);
  return sha256(encodeUtf8(`${purpose}\0${text}`));
}

/**
 * Takes one token from the bucket `key` at `now` (ms). Returns 0 when taken, else how long until
 * one is available. One statement takes it (refill and take are atomic across isolates); a
 * refusal leaves the bucket untouched, so refused requests do not push the wait further out.
 */
export async function takeToken(db: Db, key: Uint8Array, now: number, limit: RateLimit): Promise<number> {
  const perMs = limit.perHour / 3_600_000;
  // A row idle long enough to be full again says nothing a missing row does not: drop it.
  const fullAfterMs = Math.ceil(limit.burst / perMs);
  const refilled = sql`MIN(${limit.burst}, ${rateBuckets.tokens} + MAX(0, ${now} - ${rateBuckets.updatedAt}) * ${perMs})`;
  const [, taken] = await db.batch([
    db.delete(rateBuckets).where(lt(rateBuckets.updatedAt, now - fullAfterMs)),
    db
      .insert(rateBuckets)
      .values({ key, tokens: limit.burst - 1, updatedAt: now })
      .onConflictDoUpdate({
        target: rateBuckets.key,
        set: { tokens: sql`${refilled} - 1`, updatedAt: now },
        setWhere: sql`${refilled} >= 1`,
      })
      .returning({ tokens: rateBuckets.tokens }),
  ]);
  if (taken.length > 0) return 0;
  const row = await db
    .select()
    .from(rateBuckets)
    .where(sql`${rateBuckets.key} = ${key}`)
    .get();
  const tokens = row ? Math.min(limit.burst, row.tokens + Math.max(0, now - row.updatedAt) * perMs) : limit.burst;
  return Math.max(1, Math.ceil((1 - tokens) / perMs));
}
