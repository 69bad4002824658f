// 500-501: directory look-ups by username and by identity key.
import { eq } from "drizzle-orm";
import { Method, pb, notFound } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { users } from "../../schema/tables.ts";
import { ktLog } from "../durable/kt-log.ts";
import { accepted } from "../durable/refusable.ts";
import { treeHeadMessage } from "./transparency.ts";

export const userMethods: MethodTable = {
  // The key comes with the key-transparency inclusion proof of its binding, a signed tree head
  // and the consistency proof from the tree size the client last verified.
  [Method.ResolveUser]: unary("user", pb.ResolveUserRequest, pb.ResolveUserResponse, async (ctx, req) => {
    requireCaller(ctx);
    const username = v.username(req.username);
    const row = await ctx.deps.db
      .select({ identityKey: users.identityKey })
      .from(users)
      .where(eq(users.username, username))
      .get();
    if (!row) throw notFound("no such user");
    const proof = accepted(
      await ktLog(ctx.deps).prove({ username, identityKey: row.identityKey, knownTreeSize: req.knownTreeSize }),
    );
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
