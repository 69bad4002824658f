// Server-wide bans as login and resume check them (edge/methods/moderation.ts sets them).
import { and, eq, gt, or } from "drizzle-orm";
import { forbidden } from "../../proto/index.ts";
import type { Db } from "../deps.ts";
import { bans } from "../../schema/tables.ts";

/** A live ban: permanent (expires_at 0) or expiring later. */
export const live = (now: number) => or(eq(bans.expiresAt, 0), gt(bans.expiresAt, now));

/** Forbidden while a server-wide ban of `identity` holds (one D1 read, on the cold path). */
export async function refuseBanned(db: Db, identity: Uint8Array): Promise<void> {
  const row = await db
    .select({ reason: bans.reason })
    .from(bans)
    .where(and(eq(bans.identityKey, identity), eq(bans.channelId, new Uint8Array(0)), live(Date.now())))
    .get();
  if (row) throw forbidden(row.reason ? `this account is banned: ${row.reason}` : "this account is banned");
}
