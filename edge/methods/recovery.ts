// 750-752: account-recovery bundles (docs/protocol.md, "Recovery"). The bundle is encrypted by
// the client under a key it derives from its recovery token; the server holds it under
// SHA-256(token) and never sees the token. Fetch needs no session (whoever recovers has lost the
// identity key a login needs), so it is the guessing surface: every fetch, found or not, takes a
// token from two buckets in D1 shared by every front and isolate, one per client address (IPv6:
// its /64) and one per token hash, before anything is looked up.
import { and, eq, ne } from "drizzle-orm";
import { Method, pb, badRequest, forbidden, notFound, rateLimited } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable, type RpcContext } from "../rpc.ts";
import { bucketKey, takeToken } from "../lib/rate-bucket.ts";
import { equalBytes } from "../lib/crypto.ts";
import { addressKey } from "../../proto/util/client-address.ts";
import { recoveryBundles } from "../../schema/tables.ts";

const TOKEN_HASH_BYTES = 32;

function tokenHash(value: Uint8Array): Uint8Array {
  if (value.length !== TOKEN_HASH_BYTES) {
    throw badRequest(
      `token_hash must be ${TOKEN_HASH_BYTES} bytes (SHA-256 of the recovery token), got ${value.length}`,
    );
  }
  return value;
}

/** Takes one fetch from the caller's address bucket, then from the token's; RateLimited when either is empty. */
async function takeFetch(ctx: RpcContext, hash: Uint8Array): Promise<void> {
  const { db, storage } = ctx.deps;
  const now = Date.now();
  // A request without an address (not through a front) shares one bucket with all such requests.
  const address = ctx.clientAddr ? addressKey(ctx.clientAddr) : "unknown";
  const byAddress = await takeToken(
    db,
    await bucketKey("recovery-address", address),
    now,
    storage.recoveryFetchPerAddress,
  );
  if (byAddress > 0) throw rateLimited("too many recovery fetches from this address: try again later", byAddress);
  const byToken = await takeToken(db, await bucketKey("recovery-token", hash), now, storage.recoveryFetchPerToken);
  if (byToken > 0) throw rateLimited("too many recovery fetches for this token: try again later", byToken);
}

export const recoveryMethods: MethodTable = {
  // One bundle per identity: a new one replaces the old (and its token).
  [Method.StoreRecoveryBundle]: unary(
    "user",
    pb.StoreRecoveryBundleRequest,
    pb.StoreRecoveryBundleResponse,
    async (ctx, req) => {
      const caller = requireCaller(ctx).identityKey;
      const hash = tokenHash(req.tokenHash);
      const max = ctx.deps.storage.recoveryBundleMax;
      if (req.bundle.length === 0 || req.bundle.length > max) {
        throw badRequest(`bundle must be 1-${max} bytes, got ${req.bundle.length}`);
      }
      const { db } = ctx.deps;
      const taken = await db
        .select({ identityKey: recoveryBundles.identityKey })
        .from(recoveryBundles)
        .where(eq(recoveryBundles.tokenHash, hash))
        .get();
      if (taken && !equalBytes(taken.identityKey, caller)) {
        throw forbidden("this token hash holds another identity's bundle: use a fresh random recovery token");
      }
      await db.batch([
        db
          .delete(recoveryBundles)
          .where(and(eq(recoveryBundles.identityKey, caller), ne(recoveryBundles.tokenHash, hash))),
        db
          .insert(recoveryBundles)
          .values({ tokenHash: hash, identityKey: caller, bundle: req.bundle, updatedAt: Date.now() })
          .onConflictDoUpdate({
            target: recoveryBundles.tokenHash,
            set: { bundle: req.bundle, updatedAt: Date.now() },
            setWhere: eq(recoveryBundles.identityKey, caller),
          }),
      ]);
      return {};
    },
  ),

  [Method.FetchRecoveryBundle]: unary(
    "none",
    pb.FetchRecoveryBundleRequest,
    pb.FetchRecoveryBundleResponse,
    async (ctx, req) => {
      const hash = tokenHash(req.tokenHash);
      await takeFetch(ctx, hash);
      const row = await ctx.deps.db
        .select({ bundle: recoveryBundles.bundle })
        .from(recoveryBundles)
        .where(eq(recoveryBundles.tokenHash, hash))
        .get();
      if (!row) throw notFound("no recovery bundle for this token");
      return { bundle: row.bundle };
    },
  ),

  // The caller's own bundle (whatever its token); token_hash, when given, must name it.
  [Method.DeleteRecoveryBundle]: unary(
    "user",
    pb.DeleteRecoveryBundleRequest,
    pb.DeleteRecoveryBundleResponse,
    async (ctx, req) => {
      const caller = requireCaller(ctx).identityKey;
      const own = eq(recoveryBundles.identityKey, caller);
      const where =
        req.tokenHash.length === 0 ? own : and(own, eq(recoveryBundles.tokenHash, tokenHash(req.tokenHash)));
      await ctx.deps.db.delete(recoveryBundles).where(where);
      return {};
    },
  ),
};
