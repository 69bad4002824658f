// Sealed-sender mode at the front (docs/protocol.md, "Sealed sender"; the edge's half is
// edge/lib/sealed-sender.ts). The front still knows who is connected, but it hands the edge, with
// each Enqueue/BatchEnqueue, only a tag of the sending client address under a key that lives in
// this process's memory and nowhere else (new at every start): recipient queues key the sender's
// share, rate and idempotency on it, and nobody can later turn a stored tag back into an address
// or link it to an identity. Plugin events drop `senderIdentity`; logs and metrics never had it.
import { createHmac, randomBytes } from "node:crypto";
import { addressKey } from "../proto/util/client-address.ts";
import { ConfigError } from "../proto/util/config-error.ts";
import type { Logger } from "../proto/util/log.ts";

/** Matches the edge's sender-tag length (edge/lib/sender-tag.ts). */
const TAG_BYTES = 16;

export class SealedSenderTags {
  readonly #key = randomBytes(32);

  /** 32 hex: HMAC-SHA256(process key, the address's limit key), so an IPv6 client is its /64. */
  tagOf(remoteAddr: string): string {
    return createHmac("sha256", this.#key)
      .update(addressKey(remoteAddr))
      .digest()
      .subarray(0, TAG_BYTES)
      .toString("hex");
  }
}

/**
 * Compares the front's mode with the edge's (`sealed_sender` in /.well-known/qpq) and refuses to
 * start on a mismatch. An edge that cannot be asked right now is logged and let be: it refuses
 * every enqueue of a mismatched front anyway (Unavailable), so nothing is stored under the wrong rule.
 */
export async function checkEdgeSealedSender(
  edgeUrl: string,
  sealedSender: boolean,
  logger: Logger,
  timeoutMs = 5_000,
): Promise<void> {
  let edgeMode: unknown;
  try {
    const res = await fetch(new URL("/.well-known/qpq", edgeUrl), { signal: AbortSignal.timeout(timeoutMs) });
    edgeMode = res.ok ? ((await res.json()) as { sealed_sender?: unknown }).sealed_sender : undefined;
  } catch (err) {
    logger.warn("could not ask the edge for its sealed-sender mode; it refuses enqueues on a mismatch", {
      error: err instanceof Error ? err.message : String(err),
    });
    return;
  }
  if (typeof edgeMode !== "boolean") {
    logger.warn("the edge does not say its sealed-sender mode; it refuses enqueues on a mismatch");
    return;
  }
  if (edgeMode !== sealedSender) {
    throw new ConfigError(
      `sealed-sender mode differs: QPQ_SEALED_SENDER=${sealedSender} here, SEALED_SENDER=${edgeMode} at the edge; set both alike`,
    );
  }
}
