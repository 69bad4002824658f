// 800-801: direct peer endpoints (docs/protocol.md, "P2P endpoints"). Each device of an identity
// publishes at most one opaque address with a bounded lifetime; Resolve answers only unexpired
// ones. Expired rows are never answered and are deleted by the storage sweep and on publish.
import { and, desc, eq, gt, lte, sql } from "drizzle-orm";
import { Method, pb, badRequest, forbidden } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { LIMITS } from "../lib/limits.ts";
import { p2pEndpoints } from "../../schema/tables.ts";

export const p2pMethods: MethodTable = {
  // The caller's device's endpoint: replaces the previous one; an empty address withdraws it.
  [Method.PublishEndpoint]: unary("user", pb.PublishEndpointRequest, pb.PublishEndpointResponse, async (ctx, req) => {
    const { identityKey, deviceId } = requireCaller(ctx);
    const { db, storage } = ctx.deps;
    const mine = and(eq(p2pEndpoints.identityKey, identityKey), eq(p2pEndpoints.deviceId, deviceId));
    if (req.address.length === 0) {
      await db.delete(p2pEndpoints).where(mine);
      return { expiresAtMs: 0 };
    }
    if (req.address.length > storage.p2pAddressMax) {
      throw badRequest(`address must be at most ${storage.p2pAddressMax} bytes, got ${req.address.length}`);
    }
    const ttlSecs = req.ttlSecs === 0 ? storage.p2pDefaultTtlSecs : Math.min(req.ttlSecs, storage.p2pMaxTtlSecs);
    const now = Date.now();
    const expiresAt = now + ttlSecs * 1000;
    // Expired ones first; then one statement: at most devicesPerAccount live endpoints per identity,
    // whatever runs concurrently.
    await db
      .delete(p2pEndpoints)
      .where(and(eq(p2pEndpoints.identityKey, identityKey), lte(p2pEndpoints.expiresAt, now)));
    const stored =
      await db.run(sql`INSERT INTO ${p2pEndpoints} (identity_key, device_id, address, published_at, expires_at)
        SELECT ${identityKey}, ${deviceId}, ${req.address}, ${now}, ${expiresAt}
        WHERE (SELECT COUNT(*) FROM ${p2pEndpoints} WHERE identity_key = ${identityKey} AND device_id <> ${deviceId}) < ${LIMITS.devicesPerAccount}
        ON CONFLICT (identity_key, device_id) DO UPDATE SET address = excluded.address,
          published_at = excluded.published_at, expires_at = excluded.expires_at`);
    if (stored.meta.changes !== 1) {
      throw forbidden(`an identity publishes at most ${LIMITS.devicesPerAccount} endpoints (one per device)`);
    }
    return { expiresAtMs: expiresAt };
  }),

  // Any signed-in caller may resolve any identity: addresses are opaque to the server (clients
  // that want them private encrypt them for their peers).
  [Method.ResolveEndpoint]: unary("user", pb.ResolveEndpointRequest, pb.ResolveEndpointResponse, async (ctx, req) => {
    const identityKey = v.identityKey(req.identityKey, "identity_key");
    const rows = await ctx.deps.db
      .select()
      .from(p2pEndpoints)
      .where(and(eq(p2pEndpoints.identityKey, identityKey), gt(p2pEndpoints.expiresAt, Date.now())))
      .orderBy(desc(p2pEndpoints.publishedAt), desc(p2pEndpoints.expiresAt))
      .all();
    const newest = rows[0];
    return {
      address: newest?.address ?? new Uint8Array(0),
      expiresAtMs: newest?.expiresAt ?? 0,
      endpoints: rows.map((r) => ({ deviceId: r.deviceId, address: r.address, expiresAtMs: r.expiresAt })),
    };
  }),
};
