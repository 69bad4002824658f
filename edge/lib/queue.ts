// The worker side of RecipientQueue: finds a recipient's object and turns refusals back into errors.
import { QpqError } from "../../proto/index.ts";
import type { Refusable } from "../durable/recipient-queue.ts";
import type { EdgeDeps } from "../deps.ts";
import { toHex } from "./crypto.ts";

export function queueOf(deps: EdgeDeps, recipient: Uint8Array) {
  return deps.queues.get(deps.queues.idFromName(toHex(recipient)));
}

export function accepted<T>(result: Refusable<T>): T {
  if (result.ok) return result.value;
  throw new QpqError(result.error.status, result.error.message, result.error.retryAfterMs);
}
