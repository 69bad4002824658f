// 500-501: directory look-ups by username and by identity key.
import { eq } from "drizzle-orm";
import { Method, pb, notFound } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { users } from "../../schema/tables.ts";
import { ktLog } from "../durable/kt-log.ts";
import { accepted } from "../durable/refusable.ts";
import { treeHeadMessage } from "./transparency.ts";
import type { EdgeDeps } from "../deps.ts";
import { resolveRemote, splitAddress } from "../federation/proxy.ts";

/** A local name's key with its KT proof (ResolveUser here; 904 for a peer asking for it). */
export async function resolveLocal(deps: EdgeDeps, name: string, knownTreeSize: number) {
  const username = v.username(name);
  const row = await deps.db
    .select({ identityKey: users.identityKey })
    .from(users)
    .where(eq(users.username, username))
    .get();
  if (!row) throw notFound("no such user");
  const proof = accepted(await ktLog(deps).prove({ username, identityKey: row.identityKey, knownTreeSize }));
  return {
    identityKey: row.identityKey,
    proof: {
      leafIndex: proof.leafIndex,
      treeSize: proof.head.treeSize,
      path: proof.path,
      root: proof.head.root,
      entry: proof.entry,
    },
    treeHead: treeHeadMessage(proof.head),
    consistencyPath: proof.consistency,
  };
}

export const userMethods: MethodTable = {
  // The key comes with the key-transparency inclusion proof of its binding, a signed tree head
  // and the consistency proof from the tree size the client last verified. name@domain of another
  // region is answered by that region (its proof, its tree head and its log key).
  [Method.ResolveUser]: unary("user", pb.ResolveUserRequest, pb.ResolveUserResponse, async (ctx, req) => {
    requireCaller(ctx);
    const address = splitAddress(req.username);
    if (address && address.domain !== ctx.deps.federation?.domain) {
      return resolveRemote(ctx.deps, address.name, address.domain);
    }
    return resolveLocal(ctx.deps, address?.name ?? req.username, req.knownTreeSize);
  }),

  [Method.ResolveIdentity]: unary("user", pb.ResolveIdentityRequest, pb.ResolveIdentityResponse, async (ctx, req) => {
    requireCaller(ctx);
    const identityKey = v.identityKey(req.identityKey, "identity_key");
    const row = await ctx.deps.db
      .select({ username: users.username, createdAt: users.createdAt })
      .from(users)
      .where(eq(users.identityKey, identityKey))
      .get();
    if (!row) throw notFound("no user has this identity key");
    return { username: row.username, createdAtMs: row.createdAt };
  }),
};
