// 300-304: MLS KeyPackages (single use, FIFO) and hybrid post-quantum keys.
import { eq, inArray, sql } from "drizzle-orm";
import { Method, pb, forbidden, rateLimited, badRequest } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable, type RpcContext } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { LIMITS } from "../lib/limits.ts";
import { hybridPublicKey } from "../lib/hybrid-key.ts";
import { equalBytes, sha256 } from "../lib/crypto.ts";
import { toHex } from "../../proto/util/hex.ts";
import { keyPackages, hybridKeys, lastResortKeyPackages } from "../../schema/tables.ts";
import type { Db } from "../deps.ts";
import { fetchHybridKeyRemote, fetchKeyPackageRemote } from "../federation/proxy.ts";

function ownKey(ctx: RpcContext, identityKey: Uint8Array): Uint8Array {
  const caller = requireCaller(ctx);
  v.identityKey(identityKey, "identity_key");
  if (!equalBytes(identityKey, caller.identityKey)) throw forbidden("identity_key is not the caller's identity");
  return identityKey;
}

/** Pops the identity's oldest KeyPackage, else its last-resort one (FetchKeyPackage here and 902). */
export async function popKeyPackage(
  db: Db,
  identityKey: Uint8Array,
): Promise<{ package: Uint8Array; lastResort: boolean }> {
  // One DELETE ... RETURNING: atomic, so two concurrent fetches never get the same package.
  const row = await db
    .delete(keyPackages)
    .where(
      eq(keyPackages.id, sql`(SELECT id FROM ${keyPackages} WHERE identity_key = ${identityKey} ORDER BY id LIMIT 1)`),
    )
    .returning({ pkg: keyPackages.package })
    .get();
  if (row) return { package: row.pkg, lastResort: false };
  // The single-use queue is dry: the last-resort package, if any, is served and kept (RFC 9750).
  const last = await db
    .select({ pkg: lastResortKeyPackages.package })
    .from(lastResortKeyPackages)
    .where(eq(lastResortKeyPackages.identityKey, identityKey))
    .get();
  return last ? { package: last.pkg, lastResort: true } : { package: new Uint8Array(0), lastResort: false };
}

export const keyMethods: MethodTable = {
  [Method.UploadKeyPackage]: unary(
    "user",
    pb.UploadKeyPackageRequest,
    pb.UploadKeyPackageResponse,
    async (ctx, req) => {
      const identityKey = ownKey(ctx, req.identityKey);
      const pkg = v.keyPackage(req.package);
      const fingerprint = await sha256(pkg);
      const { db } = ctx.deps;
      if (req.lastResort) {
        // One per identity: a newer last-resort package replaces the older one.
        const createdAt = Date.now();
        await db
          .insert(lastResortKeyPackages)
          .values({ identityKey, package: pkg, fingerprint, createdAt })
          .onConflictDoUpdate({
            target: lastResortKeyPackages.identityKey,
            set: { package: pkg, fingerprint, createdAt },
          });
        return { fingerprint };
      }
      // Insert only while the identity stays under both caps: one statement, so concurrent uploads
      // cannot overshoot them.
      const inserted = await db.run(sql`
      INSERT INTO ${keyPackages} (identity_key, package, fingerprint, created_at)
      SELECT ${identityKey}, ${pkg}, ${fingerprint}, ${Date.now()}
      FROM (SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(package)), 0) AS bytes
            FROM ${keyPackages} WHERE identity_key = ${identityKey})
      WHERE n < ${LIMITS.keyPackagesPerIdentity} AND bytes + ${pkg.length} <= ${LIMITS.keyPackageBytesPerIdentity}`);
      if (inserted.meta.changes !== 1) {
        throw rateLimited(
          `key package store is full (at most ${LIMITS.keyPackagesPerIdentity} packages and ${LIMITS.keyPackageBytesPerIdentity} bytes per identity); wait until some are fetched`,
          60_000,
        );
      }
      return { fingerprint };
    },
  ),

  [Method.FetchKeyPackage]: unary("user", pb.FetchKeyPackageRequest, pb.FetchKeyPackageResponse, async (ctx, req) => {
    requireCaller(ctx);
    const identityKey = v.identityKey(req.identityKey, "identity_key");
    const local = await popKeyPackage(ctx.deps.db, identityKey);
    if (local.package.length > 0) return local;
    // None here: an identity homed on a federation peer is answered by its home region (902).
    return (await fetchKeyPackageRemote(ctx.deps, identityKey)) ?? local;
  }),

  [Method.UploadHybridKey]: unary("user", pb.UploadHybridKeyRequest, pb.UploadHybridKeyResponse, async (ctx, req) => {
    const identityKey = ownKey(ctx, req.identityKey);
    const publicKey = hybridPublicKey(req.hybridPublicKey);
    const updatedAt = Date.now();
    await ctx.deps.db
      .insert(hybridKeys)
      .values({ identityKey, publicKey, updatedAt })
      .onConflictDoUpdate({ target: hybridKeys.identityKey, set: { publicKey, updatedAt } });
    return {};
  }),

  [Method.FetchHybridKey]: unary("user", pb.FetchHybridKeyRequest, pb.FetchHybridKeyResponse, async (ctx, req) => {
    requireCaller(ctx);
    const identityKey = v.identityKey(req.identityKey, "identity_key");
    const row = await ctx.deps.db
      .select({ key: hybridKeys.publicKey })
      .from(hybridKeys)
      .where(eq(hybridKeys.identityKey, identityKey))
      .get();
    // None here: an identity homed on a federation peer is answered by its home region (903).
    return { hybridPublicKey: row?.key ?? (await fetchHybridKeyRemote(ctx.deps, identityKey)) ?? new Uint8Array(0) };
  }),

  [Method.FetchHybridKeys]: unary("user", pb.FetchHybridKeysRequest, pb.FetchHybridKeysResponse, async (ctx, req) => {
    requireCaller(ctx);
    if (req.identityKeys.length > LIMITS.hybridKeysPerLookup) {
      throw badRequest(
        `identity_keys must hold at most ${LIMITS.hybridKeysPerLookup} keys, got ${req.identityKeys.length}`,
      );
    }
    req.identityKeys.forEach((k, i) => v.identityKey(k, `identity_keys[${i}]`));
    if (req.identityKeys.length === 0) return { keys: [] };
    const byKey = new Map<string, Uint8Array>();
    // D1 binds at most 100 parameters per statement.
    for (let i = 0; i < req.identityKeys.length; i += 90) {
      const rows = await ctx.deps.db
        .select()
        .from(hybridKeys)
        .where(inArray(hybridKeys.identityKey, req.identityKeys.slice(i, i + 90)))
        .all();
      for (const r of rows) byKey.set(toHex(r.identityKey), r.publicKey);
    }
    return { keys: req.identityKeys.map((k) => byKey.get(toHex(k)) ?? new Uint8Array(0)) };
  }),
};
