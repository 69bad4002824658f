// 900-905: what a federation peer may ask of this region, over signed edge-to-edge requests
// (edge/federation/routes.ts verifies the signature first; client sessions never reach these).
// A relay is enqueued into the local recipient's RecipientQueue as if a local sender had sent
// it, so pushes, devices, acks and receive hooks work unchanged.
import { Method, badRequest, decode, encode, forbidden, pb } from "../../proto/index.ts";
import type { EdgeDeps } from "../deps.ts";
import type { FederationDeps } from "../federation/config.ts";
import type { Peer } from "../federation/peers.ts";
import { homeOf, learnHome } from "../federation/ownership.ts";
import { queueOf } from "../durable/recipient-queue-client.ts";
import { accepted } from "../durable/refusable.ts";
import { senderTag } from "../lib/sender-tag.ts";
import { acceptRelayedSender } from "../lib/sealed-sender.ts";
import { concatBytes } from "../lib/crypto.ts";
import { encodeUtf8 } from "../../proto/util/text.ts";
import { LIMITS } from "../lib/limits.ts";
import * as v from "../lib/validate.ts";
import { popKeyPackage } from "./keys.ts";
import { resolveLocal } from "./user.ts";
import { hybridKeys } from "../../schema/tables.ts";
import { eq } from "drizzle-orm";

export interface FederationContext {
  deps: EdgeDeps;
  fed: FederationDeps;
  /** The peer whose signature verified. */
  peer: Peer;
}

export type FederationHandler = (ctx: FederationContext, body: Uint8Array) => Promise<Uint8Array>;

const FEDERATED_TAG = encodeUtf8("qpq-federated-sender-v1");

/**
 * The sender tag the recipient's queue sees for a relayed message: keyed on the origin domain and,
 * when the relay names one, the sender (never the same as a local sender's tag). A peer may only
 * relay senders of its own domain: a sender registered here or owned by another domain is refused.
 */
async function relayedSender(ctx: FederationContext, named: Uint8Array): Promise<Uint8Array> {
  // Sealed-sender mode keeps no trace of a sender a peer names (lib/sealed-sender.ts).
  const senderIdentity = acceptRelayedSender(ctx.deps, named);
  if (senderIdentity.length > 0) {
    v.identityKey(senderIdentity, "sender_identity");
    // Known already (cached per isolate after the first relay): no D1 write per relay.
    const known = (await homeOf(ctx.deps.db, senderIdentity)) === ctx.peer.domain;
    if (!known && (await learnHome(ctx.deps.db, senderIdentity, ctx.peer.domain)) === "conflict") {
      throw forbidden(`sender_identity is not a user of ${ctx.peer.domain}: a peer relays only its own users`);
    }
  }
  const domain = encodeUtf8(ctx.peer.domain);
  return senderTag(
    await ctx.deps.senderTagKey,
    concatBytes(FEDERATED_TAG, Uint8Array.of(domain.length), domain, senderIdentity),
  );
}

interface RelayCommon {
  payload: Uint8Array;
  channelId: Uint8Array;
  ttlSecs: number;
  messageId: Uint8Array;
  originDomain: string;
  senderIdentity: Uint8Array;
}

/** Checks what every relay carries; the message id is required (the receiver deduplicates on it). */
function checkRelay(ctx: FederationContext, req: RelayCommon) {
  if (req.originDomain !== ctx.peer.domain) {
    throw forbidden(`origin_domain ${JSON.stringify(req.originDomain)} is not the signer's domain ${ctx.peer.domain}`);
  }
  if (req.messageId.length !== LIMITS.messageId) {
    throw badRequest(`message_id is required on a relay (${LIMITS.messageId} bytes)`);
  }
  return { channel: v.channelId(req.channelId), payload: v.payload(req.payload), messageId: req.messageId };
}

async function enqueueLocal(
  ctx: FederationContext,
  recipient: Uint8Array,
  sender: Uint8Array,
  m: { channel: Uint8Array; payload: Uint8Array; messageId: Uint8Array },
  ttlSecs: number,
) {
  return accepted(
    await queueOf(ctx.deps, recipient).enqueue({
      recipient,
      sender,
      channel: m.channel,
      payload: m.payload,
      ttlSecs,
      messageId: m.messageId,
    }),
  );
}

export const federationMethods: Record<number, FederationHandler> = {
  [Method.RelayEnqueue]: async (ctx, body) => {
    const req = decode(pb.RelayEnqueueRequest, body, "RelayEnqueueRequest");
    const m = checkRelay(ctx, req);
    const recipient = v.identityKey(req.recipientKey, "recipient_key");
    const sender = await relayedSender(ctx, req.senderIdentity);
    const r = await enqueueLocal(ctx, recipient, sender, m, req.ttlSecs);
    return encode(pb.RelayEnqueueResponse, { seq: r.seq, duplicate: r.duplicate });
  },

  // Each recipient is its own idempotent enqueue: a retry after a partial failure stores only the
  // missing ones.
  [Method.RelayBatchEnqueue]: async (ctx, body) => {
    const req = decode(pb.RelayBatchEnqueueRequest, body, "RelayBatchEnqueueRequest");
    const m = checkRelay(ctx, req);
    if (req.recipientKeys.length === 0 || req.recipientKeys.length > LIMITS.batchRecipientsMax) {
      throw badRequest(`recipient_keys must hold 1-${LIMITS.batchRecipientsMax} keys`);
    }
    const keys = req.recipientKeys.map((k, i) => v.identityKey(k, `recipient_keys[${i}]`));
    const sender = await relayedSender(ctx, req.senderIdentity);
    const seqs: number[] = [];
    for (const k of keys) seqs.push((await enqueueLocal(ctx, k, sender, m, req.ttlSecs)).seq);
    return encode(pb.RelayBatchEnqueueResponse, { seqs });
  },

  [Method.ProxyFetchKeyPackage]: async (ctx, body) => {
    const req = decode(pb.ProxyFetchKeyPackageRequest, body, "ProxyFetchKeyPackageRequest");
    const entry = await popKeyPackage(ctx.deps.db, v.identityKey(req.identityKey, "identity_key"));
    return encode(pb.ProxyFetchKeyPackageResponse, { package: entry.package, lastResort: entry.lastResort });
  },

  [Method.ProxyFetchHybridKey]: async (ctx, body) => {
    const req = decode(pb.ProxyFetchHybridKeyRequest, body, "ProxyFetchHybridKeyRequest");
    const identityKey = v.identityKey(req.identityKey, "identity_key");
    const row = await ctx.deps.db
      .select({ key: hybridKeys.publicKey })
      .from(hybridKeys)
      .where(eq(hybridKeys.identityKey, identityKey))
      .get();
    return encode(pb.ProxyFetchHybridKeyResponse, { hybridPublicKey: row?.key ?? new Uint8Array(0) });
  },

  // Only names of this region: the peer strips its users' "@domain" before asking.
  [Method.ProxyResolveUser]: async (ctx, body) => {
    const req = decode(pb.ProxyResolveUserRequest, body, "ProxyResolveUserRequest");
    const resolution = await resolveLocal(ctx.deps, req.username, 0);
    return encode(pb.ProxyResolveUserResponse, {
      identityKey: resolution.identityKey,
      resolution: encode(pb.ResolveUserResponse, resolution),
      ktPublicKey: await ctx.deps.ktPublicKey,
    });
  },

  [Method.FederationHealth]: async (ctx, body) => {
    decode(pb.FederationHealthRequest, body, "FederationHealthRequest");
    return encode(pb.FederationHealthResponse, {
      status: "ok",
      domain: ctx.fed.domain,
      uptimeSecs: Math.floor((Date.now() - ctx.deps.startedAt) / 1000),
    });
  },
};
