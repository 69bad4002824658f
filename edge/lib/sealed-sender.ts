// Sealed-sender mode (docs/protocol.md, "Sealed sender"): one setting for the fronts and the edge
// (`SEALED_SENDER` in wrangler.toml [vars], `QPQ_SEALED_SENDER` on every front; `npm start` sets
// both from the latter). In it the edge still requires an authenticated caller for every enqueue,
// but what a recipient's queue stores with a message, keys its quotas, rate and idempotency on,
// is the front's tag of the sending client address (a key only that front process holds, new at
// each start), never the sender's identity nor a tag derived from it. This module is the one place
// that decides what stands for the sender: enqueues ask `enqueueSender`, edge-to-edge relays ask
// `senderForFederation`.
import { unavailable } from "../../proto/index.ts";
import { ConfigError } from "../../proto/util/config-error.ts";
import { fromHex } from "../../proto/util/hex.ts";
import type { Caller } from "./caller-assertion.ts";
import type { Logger } from "../../proto/util/log.ts";
import { SENDER_TAG_BYTES, senderTag } from "./sender-tag.ts";

/** SEALED_SENDER: "true"/"1" on, ""/"false"/"0" (or unset) off; anything else is a configuration error. */
export function sealedSenderFromEnv(value: string | undefined): boolean {
  const v = (value ?? "").trim().toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "" || v === "false" || v === "0") return false;
  throw new ConfigError(`SEALED_SENDER must be "true" or "false", got "${value}"`);
}

export interface EnqueueSender {
  /**
   * What the recipient's queue stores with the message and keys the sender's share, rate and
   * idempotency on: the identity's sender tag normally, the front's address tag when sealed.
   */
  tag: Uint8Array;
  /**
   * The sender identity's tag, for checks that must know the sender (per-channel bans), never
   * stored with a message. Computed per request and dropped with it.
   */
  identityTag: Uint8Array;
}

const TAG_HEX = new RegExp(`^[0-9a-f]{${SENDER_TAG_BYTES * 2}}$`);

/**
 * Who a recipient's queue is told sent an Enqueue/BatchEnqueue. A front and an edge that disagree
 * on the mode answer Unavailable rather than store a message under the wrong rule.
 */
export async function enqueueSender(
  deps: { sealedSender: boolean; senderTagKey: Promise<CryptoKey>; logger: Logger },
  caller: Caller,
  /** The relay's sealed-sender header (RelayHeader.sealedSender), if the front sent one. */
  header: string | undefined,
): Promise<EnqueueSender> {
  const identityTag = await senderTag(await deps.senderTagKey, caller.identityKey);
  if (deps.sealedSender) {
    const tag = header !== undefined && TAG_HEX.test(header) ? fromHex(header) : null;
    if (!tag) {
      deps.logger.error("front and edge disagree on sealed-sender mode", { front: "off", edge: "on" });
      throw unavailable(
        "this server is misconfigured (sealed-sender mode is on at the edge but not at the front)",
        60_000,
      );
    }
    return { tag, identityTag };
  }
  if (header !== undefined) {
    deps.logger.error("front and edge disagree on sealed-sender mode", { front: "on", edge: "off" });
    throw unavailable(
      "this server is misconfigured (sealed-sender mode is on at the front but not at the edge)",
      60_000,
    );
  }
  return { tag: identityTag, identityTag };
}

/**
 * The sender identity an edge may hand to another edge with a relayed message: none in
 * sealed-sender mode (the receiving edge then keys its quotas on the relaying peer, not on a
 * sender it was never told).
 */
export function senderForFederation(deps: { sealedSender: boolean }, caller: Caller): Uint8Array | undefined {
  return deps.sealedSender ? undefined : caller.identityKey;
}

/**
 * What a relay received from a peer may use of the sender identity it names (to learn the sender's
 * home region, to key the recipient's quota): nothing in sealed-sender mode, so a peer that does
 * name its senders still leaves no trace of them here; the relay is then keyed on the peer's domain.
 */
export function acceptRelayedSender(deps: { sealedSender: boolean }, senderIdentity: Uint8Array): Uint8Array {
  return deps.sealedSender ? new Uint8Array(0) : senderIdentity;
}
