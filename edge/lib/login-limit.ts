// Login attempts per username, held in D1 so the limit is the same whichever front or isolate
// a request comes through. The front's per-address limit stops one address from spraying many
// names; this one stops many addresses from guessing one account's password.
import { lt, sql } from "drizzle-orm";
import type { Db } from "../deps.ts";
import { loginAttempts } from "../../schema/tables.ts";
import { sha256 } from "./crypto.ts";
import { encodeUtf8 } from "../../proto/util/text.ts";

export interface LoginLimit {
  /** Attempts a username may make at once. */
  burst: number;
  /** Attempts regained per minute. */
  perMinute: number;
}

/** Bucket key: never the username itself. */
export function usernameKey(username: string): Promise<Uint8Array> {
  return sha256(encodeUtf8(`login-attempts\0${username}`));
}

/**
 * Takes one attempt for `username` at `now` (ms). Returns 0 when allowed, else how long until
 * the next attempt is allowed. One statement: the bucket refills and is taken atomically, and a
 * refused attempt leaves it untouched (refusals do not push the wait further out).
 */
export async function takeLoginAttempt(db: Db, username: string, now: number, limit: LoginLimit): Promise<number> {
  const key = await usernameKey(username);
  const perMs = limit.perMinute / 60_000;
  // Stale rows are full buckets: dropping them keeps the table as small as recent activity.
  const fullAfterMs = Math.ceil(limit.burst / perMs);
  const refilled = sql`MIN(${limit.burst}, ${loginAttempts.tokens} + MAX(0, ${now} - ${loginAttempts.updatedAt}) * ${perMs})`;
  const [, taken] = await db.batch([
    db.delete(loginAttempts).where(lt(loginAttempts.updatedAt, now - fullAfterMs)),
    db
      .insert(loginAttempts)
      .values({ usernameHash: key, tokens: limit.burst - 1, updatedAt: now })
      .onConflictDoUpdate({
        target: loginAttempts.usernameHash,
        set: { tokens: sql`${refilled} - 1`, updatedAt: now },
        setWhere: sql`${refilled} >= 1`,
      })
      .returning({ tokens: loginAttempts.tokens }),
  ]);
  if (taken.length > 0) return 0;
  const row = await db
    .select()
    .from(loginAttempts)
    .where(sql`${loginAttempts.usernameHash} = ${key}`)
    .get();
  const tokens = row ? Math.min(limit.burst, row.tokens + Math.max(0, now - row.updatedAt) * perMs) : limit.burst;
  return Math.max(1, Math.ceil((1 - tokens) / perMs));
}
