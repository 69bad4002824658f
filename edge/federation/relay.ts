// The origin side of a relay: Enqueue and BatchEnqueue to identities homed on a peer store a
// relay request in that peer's outbox (durable/federation-outbox.ts) and answer Ok from there.
import { Method, encode, pb, unavailable } from "../../proto/index.ts";
import type { EdgeDeps } from "../deps.ts";
import { accepted } from "../durable/refusable.ts";
import type { OutboxEntry } from "../durable/federation-outbox.ts";
import { concatBytes, randomBytes, sha256 } from "../lib/crypto.ts";
import { encodeUtf8 } from "../../proto/util/text.ts";
import { outboxOf } from "./config.ts";
import { homeOf } from "./ownership.ts";
import { findPeer } from "./peers.ts";
import { LIMITS } from "../lib/limits.ts";

export interface RelayInput {
  /** Recipients homed on one peer. */
  recipients: Uint8Array[];
  /**
   * The sender's identity key, sent to the peer so it keys quotas and duplicates per sender.
   * null: a sealed-sender relay, which names no sender edge-to-edge (`dedupSeed` then stands in).
   */
  senderIdentity: Uint8Array | null;
  /** What keys the relay message id besides message_id when no sender identity is sent (e.g. the sender tag). */
  dedupSeed?: Uint8Array;
  /** The tag the sender's share of the outbox is counted on (what the recipient queue would key it on). */
  quotaTag: Uint8Array;
  channel: Uint8Array;
  payload: Uint8Array;
  ttlSecs: number;
  /** The client's message_id (empty: none). */
  messageId: Uint8Array;
}

const RELAY_ID_LABEL = encodeUtf8("qpq-relay-id-v1");

/**
 * The relay's message id: with a client message_id, a hash of it and the sender, so a client's
 * retry relays under the same id (and a peer cannot learn the client's id); without, random.
 */
async function relayMessageId(input: RelayInput): Promise<Uint8Array> {
  if (input.messageId.length === 0) return randomBytes(LIMITS.messageId);
  const who = input.senderIdentity ?? input.dedupSeed ?? new Uint8Array(0);
  return (await sha256(concatBytes(RELAY_ID_LABEL, Uint8Array.of(who.length), who, input.messageId))).slice(
    0,
    LIMITS.messageId,
  );
}

/** Groups recipients by home domain; null when any of them has none known (or federation is off). */
export async function homesOf(deps: EdgeDeps, recipients: Uint8Array[]): Promise<Map<string, number[]> | null> {
  const fed = deps.federation;
  if (!fed) return null;
  const byDomain = new Map<string, number[]>();
  for (let i = 0; i < recipients.length; i++) {
    const home = await homeOf(deps.db, recipients[i]);
    if (!home || home === fed.domain) return null;
    byDomain.set(home, [...(byDomain.get(home) ?? []), i]);
  }
  return byDomain;
}

/** Stores the relay in the outbox of `domain`; duplicate when a retry found it still pending. */
export async function relayTo(deps: EdgeDeps, domain: string, input: RelayInput): Promise<{ duplicate: boolean }> {
  const fed = deps.federation;
  if (!fed) throw new Error("unreachable: relayTo without federation");
  // A home that is no longer a configured peer would hold the message for good: say so instead.
  if (!(await findPeer(deps.db, domain))) {
    throw unavailable(`the recipient's home region ${domain} is not a federation peer of this region`, 60_000);
  }
  const messageId = await relayMessageId(input);
  const common = {
    payload: input.payload,
    channelId: input.channel,
    ttlSecs: input.ttlSecs,
    messageId,
    originDomain: fed.domain,
    senderIdentity: input.senderIdentity ?? new Uint8Array(0),
  };
  const single = input.recipients.length === 1;
  const body = single
    ? encode(pb.RelayEnqueueRequest, { ...common, recipientKey: input.recipients[0] })
    : encode(pb.RelayBatchEnqueueRequest, { ...common, recipientKeys: input.recipients });
  const dedupKey = await sha256(concatBytes(messageId, ...input.recipients));
  const entry: OutboxEntry = {
    method: single ? Method.RelayEnqueue : Method.RelayBatchEnqueue,
    body,
    dedupKey,
    size: input.payload.length,
    sender: input.quotaTag,
    recipients: input.recipients,
  };
  const [r] = accepted(await outboxOf(fed, "out", domain).enqueue({ peer: domain, entries: [entry] }));
  return r;
}

/** For a single recipient the local queue did not know: relays it when it is homed on a peer. */
export async function relayIfRemote(deps: EdgeDeps, input: RelayInput): Promise<{ duplicate: boolean } | null> {
  const homes = await homesOf(deps, input.recipients);
  if (!homes || homes.size !== 1) return null;
  const [domain] = homes.keys();
  return relayTo(deps, domain, input);
}

/**
 * BatchEnqueue recipients the local queues did not know (`unknown`, indices into `keys`): when
 * every one of them is homed on a peer, relays to each peer's outbox and answers true; otherwise
 * relays nothing and answers false (the caller reports NotFound as before).
 */
export async function relayUnknownRecipients(
  deps: EdgeDeps,
  keys: Uint8Array[],
  unknown: number[],
  input: Omit<RelayInput, "recipients">,
): Promise<boolean> {
  const recipients = unknown.map((i) => keys[i]);
  const homes = await homesOf(deps, recipients);
  if (!homes) return false;
  for (const [domain, at] of homes) await relayTo(deps, domain, { ...input, recipients: at.map((i) => recipients[i]) });
  return true;
}
