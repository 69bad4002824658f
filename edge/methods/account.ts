// 950 DeleteAccount: the caller's own account and everything it owns (docs/protocol.md,
// "Deleting an account"). The steps run in an order that leaves no account half alive: the
// account is first marked deleting (no login, no new messages, its name stays taken), then its
// data goes, and its sessions and user row go last, in one transaction. Every step is
// idempotent, so a call interrupted anywhere is finished by calling again with the same session
// (the session outlives every step but the last).
import { and, eq, sql } from "drizzle-orm";
import { Method, pb, unauthorized } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable } from "../rpc.ts";
import { queueOf } from "../durable/recipient-queue-client.ts";
import { accountOf } from "../lib/live-device.ts";
import { appendRevocation } from "../durable/kt-log.ts";
import { announceDeparture, groupsOf } from "../lib/channel-members.ts";
import { LIMITS } from "../lib/limits.ts";
import {
  blobAccess,
  blobUploads,
  p2pEndpoints,
  recoveryBundles,
  channelMembers,
  channels,
  devices,
  hybridKeys,
  keyPackages,
  lastResortKeyPackages,
  pendingLogins,
  pushTokens,
  sessions,
  users,
} from "../../schema/tables.ts";

export const accountMethods: MethodTable = {
  [Method.DeleteAccount]: {
    ...unary("user", pb.DeleteAccountRequest, pb.DeleteAccountResponse, async (ctx) => {
      const caller = requireCaller(ctx);
      const identityKey = caller.identityKey;
      const { db } = ctx.deps;
      const account = await accountOf(ctx.deps.db, caller);
      // Already gone: an earlier call finished (this connection's assertion outlived it).
      if (!account) return { success: true };
      // Once deletion started, the devices may already be purged: the session is what counts.
      if (account.deletingAt === null && !account.deviceRegistered)
        throw unauthorized("this device was revoked: log in again");
      const { username } = account;

      // 1. From here on: no login (answers like an unknown user), no enqueue (NotFound), no other
      //    method (lib/live-device.ts); the name stays taken until the end.
      await db
        .update(users)
        .set({ deletingAt: sql`COALESCE(${users.deletingAt}, ${Date.now()})` })
        .where(eq(users.identityKey, identityKey));
      // 2. The queue: messages, cursors, devices, registration flag, alarm; push sockets closed.
      await queueOf(ctx.deps, identityKey).purge();
      // 3. The key-transparency log: one revocation (a repeat answers the first one).
      await appendRevocation(ctx.deps, username, identityKey, "account_deleted");
      // The groups it leaves (their members are told once it has left, below).
      const groups = await groupsOf(ctx.deps, identityKey, LIMITS.deletedAccountGroupsAnnounced);
      // 4. Everything else the account owns. Channels left without members go with it; group
      //    channels with other members stay theirs, under a new creator. Its blobs expire now (their rows and
      //    R2 objects go with the next storage sweep); its recovery bundle and P2P endpoints go now.
      await db.batch([
        db.delete(pushTokens).where(eq(pushTokens.identityKey, identityKey)),
        db.delete(devices).where(eq(devices.identityKey, identityKey)),
        db.delete(keyPackages).where(eq(keyPackages.identityKey, identityKey)),
        db.delete(lastResortKeyPackages).where(eq(lastResortKeyPackages.identityKey, identityKey)),
        db.delete(hybridKeys).where(eq(hybridKeys.identityKey, identityKey)),
        db
          .delete(channels)
          .where(
            and(
              sql`${channels.id} IN (SELECT channel_id FROM ${channelMembers} WHERE identity_key = ${identityKey})`,
              sql`NOT EXISTS (SELECT 1 FROM ${channelMembers} m WHERE m.channel_id = ${channels.id} AND m.identity_key <> ${identityKey})`,
            ),
          ),
        // A group this account created passes to its longest-standing admin, else its
        // longest-standing member: a group always has a creator-role member behind creator_key.
        db
          .update(channelMembers)
          .set({ role: "creator" })
          .where(
            sql`rowid IN (
              SELECT (SELECT m.rowid FROM ${channelMembers} m WHERE m.channel_id = c.id AND m.identity_key <> ${identityKey}
                      ORDER BY (m.role = 'admin') DESC, m.joined_at, m.identity_key LIMIT 1)
              FROM ${channels} c WHERE c.kind = 'group' AND c.creator_key = ${identityKey})`,
          ),
        db
          .update(channels)
          .set({
            creatorKey: sql`(SELECT m.identity_key FROM ${channelMembers} m
              WHERE m.channel_id = ${channels.id} AND m.role = 'creator' AND m.identity_key <> ${identityKey} LIMIT 1)`,
          })
          .where(
            and(
              eq(channels.kind, "group"),
              eq(channels.creatorKey, identityKey),
              sql`EXISTS (SELECT 1 FROM ${channelMembers} m
                WHERE m.channel_id = ${channels.id} AND m.role = 'creator' AND m.identity_key <> ${identityKey})`,
            ),
          ),
        db.delete(channelMembers).where(eq(channelMembers.identityKey, identityKey)),
        db.delete(pendingLogins).where(eq(pendingLogins.username, username)),
        db.update(blobAccess).set({ expiresAt: 0 }).where(eq(blobAccess.ownerKey, identityKey)),
        // Shares to this account; its own rows stay (expired) so the sweep releases those blobs.
        db
          .delete(blobAccess)
          .where(and(eq(blobAccess.identityKey, identityKey), sql`${blobAccess.ownerKey} <> ${identityKey}`)),
        db.update(blobUploads).set({ expiresAt: 0 }).where(eq(blobUploads.ownerKey, identityKey)),
        db.delete(recoveryBundles).where(eq(recoveryBundles.identityKey, identityKey)),
        db.delete(p2pEndpoints).where(eq(p2pEndpoints.identityKey, identityKey)),
      ]);
      // A hint only: a failure here must not hold the deletion back.
      await announceDeparture(ctx.deps, identityKey, groups).catch((err: unknown) =>
        ctx.deps.logger.warn("departure not announced", { error: err instanceof Error ? err.message : String(err) }),
      );
      // 5. Last, together: the sessions (so a retry was possible until now) and the user row,
      //    which frees the username for a new registration.
      await db.batch([
        db.delete(sessions).where(eq(sessions.identityKey, identityKey)),
        db.delete(users).where(eq(users.identityKey, identityKey)),
      ]);
      return { success: true };
    }),
    deviceCheck: "handler",
  },
};
