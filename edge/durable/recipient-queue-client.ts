// The worker side of RecipientQueue: finds a recipient's object (its refusals: refusable.ts's accepted).
import type { EdgeDeps } from "../deps.ts";
import { toHex } from "../../proto/util/hex.ts";

export function queueOf(deps: EdgeDeps, recipient: Uint8Array) {
  return deps.queues.get(deps.queues.idFromName(toHex(recipient)));
}

/**
 * Tells a new account's queue that it may accept messages. The account already exists when this
 * runs, so a failure is only logged: the queue then finds the account in D1 on its first enqueue.
 */
export async function markRegistered(deps: EdgeDeps, identityKey: Uint8Array): Promise<void> {
  try {
    await queueOf(deps, identityKey).markRegistered();
  } catch (err) {
    deps.logger.warn("could not mark queue registered", { error: err instanceof Error ? err.message : String(err) });
  }
}
