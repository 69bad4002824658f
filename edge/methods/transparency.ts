// 510, 511, 520: key transparency. The log itself is the KeyTransparency Durable Object; this
// module validates, authorises and maps its answers to the wire messages (docs/protocol.md).
import { eq } from "drizzle-orm";
import { Method, pb, badRequest, forbidden, notFound } from "../../proto/index.ts";
import { isRevocationReason, type RevocationReason } from "../../proto/kt/entry.ts";
import type { SignedTreeHead } from "../../proto/kt/tree-head.ts";
import { unary, requireCaller, type MethodTable } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { equalBytes } from "../lib/crypto.ts";
import { appendRevocation, ktLog } from "../durable/kt-log.ts";
import { accepted } from "../durable/refusable.ts";
import { users } from "../../schema/tables.ts";

/** Reasons a client may give; "account_deleted" is logged by DeleteAccount only. */
const CLIENT_REASONS: readonly RevocationReason[] = ["compromised", "superseded", "user_revoked"];

function reasonOf(value: string): RevocationReason {
  if (value === "") return "user_revoked";
  if (!isRevocationReason(value) || !CLIENT_REASONS.includes(value)) {
    throw badRequest(
      `reason must be one of ${CLIENT_REASONS.join(", ")} (or empty for user_revoked), got "${value.slice(0, 64)}"`,
    );
  }
  return value;
}

export function treeHeadMessage(head: SignedTreeHead) {
  return { treeSize: head.treeSize, root: head.root, timestampMs: head.timestampMs, signature: head.signature };
}

export const transparencyMethods: MethodTable = {
  // Own key only (an admin revocation comes with the moderation methods). Idempotent.
  [Method.RevokeKey]: unary("user", pb.RevokeKeyRequest, pb.RevokeKeyResponse, async (ctx, req) => {
    const caller = requireCaller(ctx);
    const identityKey = v.identityKey(req.identityKey, "identity_key");
    const reason = reasonOf(req.reason);
    if (!equalBytes(identityKey, caller.identityKey)) throw forbidden("only your own identity key can be revoked");
    const row = await ctx.deps.db
      .select({ username: users.username })
      .from(users)
      .where(eq(users.identityKey, identityKey))
      .get();
    if (!row) throw notFound("no account has this identity key");
    const { leafIndex } = await appendRevocation(ctx.deps, row.username, identityKey, reason);
    return { success: true, leafIndex };
  }),

  [Method.CheckRevocation]: unary("user", pb.CheckRevocationRequest, pb.CheckRevocationResponse, async (ctx, req) => {
    requireCaller(ctx);
    const identityKey = v.identityKey(req.identityKey, "identity_key");
    const status = await ktLog(ctx.deps).revocation(identityKey);
    return { revoked: status.revoked, reason: status.reason, timestampMs: status.timeMs, leafIndex: status.leafIndex };
  }),

  [Method.AuditKeyTransparency]: unary(
    "user",
    pb.AuditKeyTransparencyRequest,
    pb.AuditKeyTransparencyResponse,
    async (ctx, req) => {
      requireCaller(ctx);
      const audit = accepted(await ktLog(ctx.deps).audit({ start: req.start, end: req.end, firstSize: req.firstSize }));
      return {
        entries: audit.entries.map((e) => ({ index: e.index, leafHash: e.leafHash, entry: e.entry })),
        treeSize: audit.head.treeSize,
        root: audit.head.root,
        treeHead: treeHeadMessage(audit.head),
        consistencyPath: audit.consistency,
      };
    },
  ),
};
