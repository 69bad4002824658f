// 700-702, 710: the devices of an account and their push tokens (docs/protocol.md, "Devices").
// D1 holds the device list; the account's RecipientQueue holds the same devices' cursors. Order
// of writes: RegisterDevice writes D1 then the queue, RevokeDevice the queue then D1, so the
// queue never holds a device D1 does not list and a revocation takes effect on the hot path first.
import { and, asc, eq, sql } from "drizzle-orm";
import { Method, pb, badRequest, forbidden, notFound, unauthorized } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { LIMITS } from "../lib/limits.ts";
import { equalBytes } from "../lib/crypto.ts";
import { queueOf } from "../durable/recipient-queue-client.ts";
import { accepted } from "../durable/refusable.ts";
import { devices, p2pEndpoints, pushTokens, sessions } from "../../schema/tables.ts";

const PLATFORMS = ["apns", "fcm"] as const;

function deviceName(value: string): string {
  const name = value.normalize("NFC");
  if ([...name].length > LIMITS.deviceNameMax)
    throw badRequest(`name must be at most ${LIMITS.deviceNameMax} characters`);
  if (/[\p{Cc}\p{Cf}]/u.test(name)) throw badRequest("name must not contain control or format characters");
  return name;
}

export const deviceMethods: MethodTable = {
  // Idempotent per device id: registering a known id again only renames it (was_new = false).
  [Method.RegisterDevice]: unary("user", pb.RegisterDeviceRequest, pb.RegisterDeviceResponse, async (ctx, req) => {
    const caller = requireCaller(ctx);
    if (req.deviceId.length === 0)
      throw badRequest("device_id must be 1-64 bytes (the empty id is the default device, which every account has)");
    const deviceId = v.deviceId(req.deviceId);
    const name = deviceName(req.name);
    const { db } = ctx.deps;
    const identityKey = caller.identityKey;
    const now = Date.now();
    // One statement, so concurrent registrations cannot overshoot the limit.
    const inserted = await db.run(sql`INSERT INTO ${devices} (identity_key, device_id, name, created_at, last_seen_at)
      SELECT ${identityKey}, ${deviceId}, ${name}, ${now}, 0
      WHERE (SELECT COUNT(*) FROM ${devices} WHERE identity_key = ${identityKey}) < ${LIMITS.devicesPerAccount}
      ON CONFLICT DO NOTHING`);
    const wasNew = inserted.meta.changes === 1;
    const thisDevice = and(eq(devices.identityKey, identityKey), eq(devices.deviceId, deviceId));
    if (!wasNew) {
      const renamed = await db.update(devices).set({ name }).where(thisDevice).run();
      if (renamed.meta.changes !== 1) {
        throw forbidden(
          `device limit reached: an account has at most ${LIMITS.devicesPerAccount} devices (the default device included); revoke one first (RevokeDevice)`,
        );
      }
    }
    // Also for a known device: a retry after the queue could not be told completes the registration.
    try {
      accepted(await queueOf(ctx.deps, identityKey).addDevice(deviceId));
    } catch (err) {
      // Refused (an id revoked minutes ago) or failed: a new row goes again, so nothing half-made stays.
      if (wasNew) await db.delete(devices).where(thisDevice);
      throw err;
    }
    return { wasNew };
  }),

  [Method.ListDevices]: unary("user", pb.ListDevicesRequest, pb.ListDevicesResponse, async (ctx) => {
    const caller = requireCaller(ctx);
    const rows = await ctx.deps.db
      .select()
      .from(devices)
      .where(eq(devices.identityKey, caller.identityKey))
      .orderBy(asc(devices.createdAt), asc(devices.deviceId))
      .all();
    return {
      devices: rows.map((d) => ({
        deviceId: d.deviceId,
        name: d.name,
        registeredAtMs: d.createdAt,
        lastSeenMs: d.lastSeenAt,
        current: equalBytes(d.deviceId, caller.deviceId),
      })),
      currentDeviceId: caller.deviceId,
    };
  }),

  // Any device of the account, the caller's own and the default one included. The queue first
  // (its reads and acks are refused at once, the queue stops waiting for it), then D1: the device,
  // its sessions and its push token in one transaction. A retry after a failure finishes it.
  [Method.RevokeDevice]: unary("user", pb.RevokeDeviceRequest, pb.RevokeDeviceResponse, async (ctx, req) => {
    const caller = requireCaller(ctx);
    const deviceId = v.deviceId(req.deviceId);
    const identityKey = caller.identityKey;
    const { db } = ctx.deps;
    const known = await db
      .select({ id: devices.deviceId })
      .from(devices)
      .where(and(eq(devices.identityKey, identityKey), eq(devices.deviceId, deviceId)))
      .get();
    if (!known) throw notFound("no such device on this account");
    await queueOf(ctx.deps, identityKey).revokeDevice(deviceId);
    await db.batch([
      db.delete(sessions).where(and(eq(sessions.identityKey, identityKey), eq(sessions.deviceId, deviceId))),
      db.delete(pushTokens).where(and(eq(pushTokens.identityKey, identityKey), eq(pushTokens.deviceId, deviceId))),
      db.delete(devices).where(and(eq(devices.identityKey, identityKey), eq(devices.deviceId, deviceId))),
      db
        .delete(p2pEndpoints)
        .where(and(eq(p2pEndpoints.identityKey, identityKey), eq(p2pEndpoints.deviceId, deviceId))),
    ]);
    return {};
  }),

  // The token of the caller's own device (only that device knows it); an empty token removes it.
  // Stored for a push service to use; this server sends no APNs/FCM pushes itself.
  [Method.RegisterPushToken]: unary(
    "user",
    pb.RegisterPushTokenRequest,
    pb.RegisterPushTokenResponse,
    async (ctx, req) => {
      const caller = requireCaller(ctx);
      v.deviceId(req.deviceId);
      if (req.deviceId.length > 0 && !equalBytes(req.deviceId, caller.deviceId)) {
        throw forbidden("device_id names another device: a device registers only its own push token");
      }
      const { db } = ctx.deps;
      const where = and(eq(pushTokens.identityKey, caller.identityKey), eq(pushTokens.deviceId, caller.deviceId));
      if (req.token.length === 0) {
        await db.delete(pushTokens).where(where);
        return {};
      }
      const platform = PLATFORMS.find((p) => p === req.platform);
      if (!platform) throw badRequest(`platform must be "apns" or "fcm", got "${req.platform.slice(0, 16)}"`);
      if (req.token.length > LIMITS.pushTokenMax)
        throw badRequest(`token must be 1-${LIMITS.pushTokenMax} bytes, got ${req.token.length}`);
      // Only while the device exists: a token written after a concurrent revocation would outlive it.
      const { identityKey, deviceId } = caller;
      const stored = await db.run(sql`INSERT INTO ${pushTokens} (identity_key, device_id, platform, token, updated_at)
      SELECT ${identityKey}, ${deviceId}, ${platform}, ${req.token}, ${Date.now()}
      WHERE EXISTS (SELECT 1 FROM ${devices} WHERE identity_key = ${identityKey} AND device_id = ${deviceId})
      ON CONFLICT (identity_key, device_id) DO UPDATE SET platform = excluded.platform, token = excluded.token, updated_at = excluded.updated_at`);
      if (stored.meta.changes !== 1) throw unauthorized("this device was revoked: log in again");
      return {};
    },
  ),
};
