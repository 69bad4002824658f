// The edge-to-edge surface, mounted at /federation (edge/app.ts):
//   POST /federation/rpc/<900-905>  a signed request from a peer (signature.ts), answered like
//                                   /rpc: HTTP 200, the wire status in x-qpq-status.
//   GET  /federation/metrics        per-peer link metrics, Prometheus text (front secret).
//   GET  /federation/peers          each peer's FederationHealth (905) answer, asked now (front secret).
// A refused signature stores nothing, answers Unauthorized naming the reason, and is counted.
import { Hono } from "hono";
import {
  MAX_PAYLOAD,
  Method,
  RelayHeader,
  Status,
  badRequest,
  decode,
  encode,
  encodeError,
  pb,
  toErrorReply,
  unknownMethod,
  type ErrorReply,
} from "../../proto/index.ts";
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { EdgeDeps } from "../deps.ts";
import { bodyLimit } from "../middleware/body-limit.ts";
import { frontOnly } from "../middleware/front-auth.ts";
import { federationMethods } from "../methods/federation.ts";
import type { FederationDeps } from "./config.ts";
import { outboxOf } from "./config.ts";
import { findPeer, listPeers, type Peer } from "./peers.ts";
import {
  SIGNATURE_MAX_AGE_SECS,
  SignatureRefusal,
  type ParsedSignature,
  checkCreated,
  checkDigest,
  importPeerKey,
  parseSignature,
  replayKey,
  toBase64Url,
  verifySignature,
} from "./signature.ts";
import { renderFederationMetrics } from "./metrics.ts";
import { toHex } from "../../proto/util/hex.ts";
import { PERMANENT, callPeer } from "./client.ts";

/** Room for a relay's fields around one frame's payload. */
const RELAY_BODY_MAX = MAX_PAYLOAD + 64 * 1024;
/** Relays in one bundle (the outbox sends at most FEDERATION_LIMITS.outboxBatch). */
const RELAY_BUNDLE_MAX = 256;
/** Where refusals of requests that name no known peer are counted (one object, not one per name). */
const UNKNOWN = "*";

/** Hex recipient keys a relay names; none when it does not decode (run() then refuses it). */
function relayRecipients(method: number, request: Uint8Array): string[] {
  try {
    if (method === Method.RelayEnqueue) return [toHex(pb.RelayEnqueueRequest.decode(request).recipientKey)];
    return pb.RelayBatchEnqueueRequest.decode(request).recipientKeys.map((k) => toHex(k));
  } catch {
    return [];
  }
}

function answer(status: number, body: Uint8Array, retryAfterMs = 0): Response {
  const headers: Record<string, string> = {
    [RelayHeader.status]: String(status),
    "content-type": "application/x-protobuf",
  };
  if (retryAfterMs) headers[RelayHeader.retryAfter] = String(retryAfterMs);
  return new Response(body, { status: 200, headers });
}

function refusal(status: number, message: string, retryAfterMs = 0): Response {
  return answer(status, encodeError({ message, retryAfterMs }), retryAfterMs);
}

/**
 * What the headers alone show, checked before a body byte is read: a signature in the accepted
 * form, a created time inside the window, and a configured peer as signer. Throws SignatureRefusal.
 */
async function checkHeaders(deps: EdgeDeps, fed: FederationDeps, headers: Headers): Promise<Signed> {
  const parsed = parseSignature(headers.get("signature-input"), headers.get("signature"));
  checkCreated(parsed.created, Math.floor(Date.now() / 1000));
  const peer = await findPeer(deps.db, parsed.keyId);
  if (!peer || peer.domain === fed.domain) {
    throw new SignatureRefusal("unknown-peer", `${parsed.keyId} is not a federation peer of ${fed.domain}`);
  }
  return { parsed, peer };
}

/** Then, with the body: its digest, the signature under the peer's key, and the replay check last (it writes). */
async function checkSigned(fed: FederationDeps, signed: Signed, req: Request, body: Uint8Array): Promise<Peer> {
  const { parsed, peer } = signed;
  const digest = await checkDigest(req.headers.get("content-digest"), body);
  const key = await importPeerKey(peer.publicKey).catch(() => {
    throw new SignatureRefusal("unknown-peer", `the configured key of ${peer.domain} is not an Ed25519 key`);
  });
  await verifySignature(parsed, { method: req.method, path: new URL(req.url).pathname, digest }, key);
  const seen = await outboxOf(fed, "in", peer.domain).checkReplay({
    key: await replayKey(parsed),
    expiresAt: (parsed.created + SIGNATURE_MAX_AGE_SECS + 1) * 1000,
  });
  if (seen === "replay") throw new SignatureRefusal("replay", "this signature was already used");
  if (seen === "full") throw new SignatureRefusal("replay", "too many signed requests in the window; retry later");
  return peer;
}

interface Signed {
  parsed: ParsedSignature;
  peer: Peer;
}

type SignedVariables = { Variables: { body: Uint8Array; signed: Signed } };

export function federationRoutes(deps: EdgeDeps): Hono {
  const app = new Hono();
  const fed = deps.federation;

  /** A refused signature: counted (per configured peer, else in one place), logged, answered Unauthorized. */
  async function refused(fed: FederationDeps, headers: Headers, err: SignatureRefusal): Promise<Response> {
    const known = err.reason !== "unknown-peer" && err.reason !== "unsigned" && err.reason !== "malformed";
    const claimed = known
      ? (/keyid="([a-z0-9.-]+)"/.exec(headers.get("signature-input") ?? "")?.[1] ?? UNKNOWN)
      : UNKNOWN;
    const counted = (await findPeer(deps.db, claimed).catch(() => null)) ? claimed : UNKNOWN;
    await outboxOf(fed, "in", counted)
      .countRefusal({ peer: counted, reason: err.reason })
      .catch(() => {});
    deps.logger.warn("federation request refused", { reason: err.reason, peer: counted });
    return refusal(Status.Unauthorized, `signature refused (${err.reason}): ${err.message}`);
  }

  // Headers first: an unsigned, stale or unknown signer's request gets no body byte read.
  const signedHeaders = createMiddleware<SignedVariables>(async (c, next) => {
    if (!fed) return c.text("federation is off on this deployment", 404);
    try {
      c.set("signed", await checkHeaders(deps, fed, c.req.raw.headers));
    } catch (err) {
      if (!(err instanceof SignatureRefusal)) throw err;
      return refused(fed, c.req.raw.headers, err);
    }
    await next();
  });

  /** The peer whose signature verified, or the refusal to answer (counted, nothing stored). */
  async function verified(c: Context<SignedVariables>, fed: FederationDeps): Promise<Peer | Response> {
    try {
      return await checkSigned(fed, c.var.signed, c.req.raw, c.var.body);
    } catch (err) {
      if (!(err instanceof SignatureRefusal)) throw err;
      return refused(fed, c.req.raw.headers, err);
    }
  }

  /** Runs one method for a verified peer; a refusal is counted and returned as an ErrorReply. */
  async function run(
    fed: FederationDeps,
    peer: Peer,
    methodId: number,
    body: Uint8Array,
  ): Promise<{ ok: true; body: Uint8Array } | { ok: false; reply: ErrorReply }> {
    const handler = federationMethods[methodId];
    try {
      if (!handler) throw unknownMethod(methodId);
      return { ok: true, body: await handler({ deps, fed, peer }, body) };
    } catch (err) {
      const reply = toErrorReply(err);
      if (reply.status === Status.Internal) {
        deps.logger.error("federation handler failed", {
          method: methodId,
          peer: peer.domain,
          error: err instanceof Error ? err.message : String(err),
        });
      } else {
        await outboxOf(fed, "in", peer.domain)
          .countRefusal({ peer: peer.domain, reason: `status_${reply.status}` })
          .catch(() => {});
      }
      return { ok: false, reply };
    }
  }

  app.post("/rpc/:method{9[0-9]{2}}", signedHeaders, bodyLimit(RELAY_BODY_MAX), async (c) => {
    if (!fed) return c.text("federation is off on this deployment", 404);
    const peer = await verified(c, fed);
    if (peer instanceof Response) return peer;
    const r = await run(fed, peer, Number(c.req.param("method")), c.var.body);
    return r.ok ? answer(Status.Ok, r.body) : refusal(r.reply.status, r.reply.message, r.reply.retryAfterMs);
  });

  // The outbox's batch: relays stored in order, per recipient.
  app.post("/relay-bundle", signedHeaders, bodyLimit(RELAY_BODY_MAX), async (c) => {
    if (!fed) return c.text("federation is off on this deployment", 404);
    const peer = await verified(c, fed);
    if (peer instanceof Response) return peer;
    let bundle: ReturnType<typeof pb.RelayBundleRequest.decode>;
    try {
      bundle = decode(pb.RelayBundleRequest, c.var.body, "RelayBundleRequest");
      if (bundle.items.length === 0 || bundle.items.length > RELAY_BUNDLE_MAX) {
        throw badRequest(`a relay bundle holds 1-${RELAY_BUNDLE_MAX} relays`);
      }
    } catch (err) {
      const reply = toErrorReply(err);
      return refusal(reply.status, reply.message);
    }
    const results: { status?: number; message?: string; retryAfterMs?: number; notAttempted?: boolean }[] = [];
    // Order is kept per recipient: after a relay to X could not be stored for now, later relays
    // naming X are not tried (not_attempted); relays to others go on, so one busy recipient does
    // not hold back everyone's messages.
    const blocked = new Set<string>();
    for (const item of bundle.items) {
      const request = item.request ?? new Uint8Array(0);
      if (item.method !== Method.RelayEnqueue && item.method !== Method.RelayBatchEnqueue) {
        results.push({ status: Status.BadRequest, message: "a bundle carries only relays (900, 901)" });
        continue;
      }
      const recipients = relayRecipients(item.method, request);
      if (recipients.some((r) => blocked.has(r))) {
        recipients.forEach((r) => blocked.add(r));
        results.push({ notAttempted: true });
        continue;
      }
      const r = await run(fed, peer, item.method, request);
      if (r.ok) {
        results.push({ status: Status.Ok });
        continue;
      }
      results.push({ status: r.reply.status, message: r.reply.message, retryAfterMs: r.reply.retryAfterMs });
      if (!PERMANENT.has(r.reply.status)) recipients.forEach((k) => blocked.add(k));
    }
    return answer(Status.Ok, encode(pb.RelayBundleResponse, { results }));
  });

  // Operators: each configured peer asked FederationHealth (905) now, with the answer or the failure.
  app.get("/peers", frontOnly(deps), async (c) => {
    if (!fed) return c.json({ domain: null, peers: [] });
    const peers = await listPeers(deps.db);
    const results = await Promise.all(
      peers.map(async (p) => {
        const started = Date.now();
        try {
          const a = await callPeer(
            fed,
            p,
            Method.FederationHealth,
            encode(pb.FederationHealthRequest, { originDomain: fed.domain }),
          );
          if (a.status !== Status.Ok)
            return { domain: p.domain, url: p.url, ok: false, error: `status ${a.status}: ${a.message}` };
          const h = pb.FederationHealthResponse.decode(a.body);
          return {
            domain: p.domain,
            url: p.url,
            ok: h.status === "ok" && h.domain === p.domain,
            status: h.status,
            answeredAs: h.domain,
            uptimeSecs: Number(h.uptimeSecs),
            rttMs: Date.now() - started,
          };
        } catch (err) {
          return { domain: p.domain, url: p.url, ok: false, error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    return c.json({ domain: fed.domain, peers: results });
  });

  app.get("/metrics", frontOnly(deps), async (c) => {
    if (!fed) return c.text("", 200, { "content-type": "text/plain; version=0.0.4" });
    const peers = await listPeers(deps.db);
    const rows = await Promise.all(
      peers.map(async (p) => ({
        peer: p.domain,
        out: await outboxOf(fed, "out", p.domain).metrics(),
        in: await outboxOf(fed, "in", p.domain).metrics(),
      })),
    );
    const unknown = await outboxOf(fed, "in", UNKNOWN).metrics();
    return c.text(renderFederationMetrics(rows, unknown, Date.now()), 200, {
      "content-type": "text/plain; version=0.0.4",
    });
  });

  return app;
}

/** The federation part of /.well-known/qpq: domain, base URL and public key (base64url). */
export async function wellKnownFederation(deps: EdgeDeps, requestUrl: string) {
  const fed = deps.federation;
  if (!fed) return {};
  return {
    federation_domain: fed.domain,
    federation_url: fed.url ?? new URL(requestUrl).origin,
    federation_public_key: toBase64Url((await fed.signing).publicKey),
  };
}
