// The cold-path device check: a caller assertion stays valid for up to ASSERTION_TTL_MS, so a
// method that touches D1 anyway first makes sure the asserted device is still registered and
// the account is not being deleted. One D1 read; the delivery hot path relies on the queue.
import { unauthorized } from "../../proto/index.ts";
import { and, eq, sql } from "drizzle-orm";
import { bans, devices, users } from "../../schema/tables.ts";
import type { Db } from "../deps.ts";
import type { Caller } from "./caller-assertion.ts";

export interface LiveAccount {
  username: string;
  /** Set once DeleteAccount started on the account. */
  deletingAt: number | null;
  /** Whether the caller's device is registered. */
  deviceRegistered: boolean;
  /** Whether a server-wide ban holds (edge/methods/moderation.ts). */
  banned: boolean;
}

/** The caller's account and whether its device is registered; undefined when no account exists. */
export async function accountOf(db: Db, caller: Caller): Promise<LiveAccount | undefined> {
  const row = await db
    .select({
      username: users.username,
      deletingAt: users.deletingAt,
      device: devices.deviceId,
      // In the same read: a ban refuses every cold-path call even before the front hears of it.
      banned: sql<number>`EXISTS (SELECT 1 FROM ${bans} b WHERE b.identity_key = ${users.identityKey}
        AND b.channel_id = x'' AND (b.expires_at = 0 OR b.expires_at > ${Date.now()}))`,
    })
    .from(users)
    .leftJoin(devices, and(eq(devices.identityKey, users.identityKey), eq(devices.deviceId, caller.deviceId)))
    .where(eq(users.identityKey, caller.identityKey))
    .get();
  if (!row) return undefined;
  return {
    username: row.username,
    deletingAt: row.deletingAt,
    deviceRegistered: row.device !== null,
    banned: Boolean(row.banned),
  };
}

/**
 * Unauthorized unless the caller's account exists, is not being deleted, and still has the
 * caller's device. The front unbinds a session the edge answers Unauthorized for.
 */
export async function requireLiveDevice(db: Db, caller: Caller): Promise<void> {
  const account = await accountOf(db, caller);
  if (!account) throw unauthorized("this account no longer exists");
  if (account.deletingAt !== null) throw unauthorized("this account is being deleted");
  if (!account.deviceRegistered) throw unauthorized("this device was revoked: log in again");
  if (account.banned) throw unauthorized("this account is banned");
}
