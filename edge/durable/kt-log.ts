// The worker side of KeyTransparency: finds the single log object and turns its refusals back
// into errors. appendBinding/appendRevocation are what registration and account deletion call.
import type { RevocationReason } from "../../proto/kt/entry.ts";
import { accepted } from "./refusable.ts";
import type { Appended } from "./key-transparency.ts";
import type { EdgeDeps } from "../deps.ts";

/** Everything below needs only the log's binding. */
export type KtDeps = Pick<EdgeDeps, "ktLog">;

export function ktLog(deps: KtDeps) {
  return deps.ktLog.get(deps.ktLog.idFromName("log"));
}

/**
 * Logs a new account's binding. The account already exists when this runs, so a failure is only
 * logged: ResolveUser appends a missing binding the first time the name is resolved.
 */
export async function appendBinding(
  deps: KtDeps & Pick<EdgeDeps, "logger">,
  username: string,
  identityKey: Uint8Array,
): Promise<void> {
  try {
    accepted(await ktLog(deps).bind({ username, identityKey }));
  } catch (err) {
    deps.logger.warn("could not log the key-transparency binding", {
      error: err instanceof Error ? err.message : String(err),
    });
  }
}

/**
 * Logs a revocation of `identityKey` (last bound to `username`). Idempotent: a key already
 * revoked answers its first revocation's leaf and appends nothing, so a retried DeleteAccount
 * logs one revocation. Throws (Unavailable, Internal) when the log cannot be reached.
 */
export async function appendRevocation(
  deps: KtDeps,
  username: string,
  identityKey: Uint8Array,
  reason: RevocationReason,
): Promise<Appended> {
  return accepted(await ktLog(deps).revoke({ username, identityKey, reason }));
}
