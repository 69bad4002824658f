// The edge engine: a Hono app built from explicit dependencies. worker.ts turns bindings into
// dependencies; tests may build it from fixtures.
import { Hono } from "hono";
import {
  MAX_PAYLOAD, Status, encodeError, toErrorReply, unknownMethod, unauthorized, formatSessionGrant, RelayHeader as H,
} from "../proto/index.ts";
import type { EdgeDeps } from "./deps.ts";
import type { RpcContext } from "./rpc.ts";
import { methods } from "./methods/index.ts";
import { queueOf } from "./durable/recipient-queue-client.ts";
import { sha256, timingSafeEqual } from "./lib/crypto.ts";
import { encodeUtf8 } from "../proto/util/text.ts";
import { toHex } from "../proto/util/hex.ts";
import { ASSERTION_TTL_MS, mintAssertion, verifyAssertion } from "./lib/caller-assertion.ts";
import { requireLiveDevice } from "./lib/live-device.ts";

async function frontIsAuthentic(deps: EdgeDeps, presented: string | undefined): Promise<boolean> {
  if (!presented) return false;
  return timingSafeEqual(await sha256(encodeUtf8(presented)), await deps.frontSecretDigest);
}

/**
 * A refusal sent before the request body was read. `connection: close` because workerd drops a
 * keep-alive connection whose body was left unread anyway; saying so lets the client know.
 */
function refuse(status: 401 | 413, text: string): Response {
  return new Response(text, { status, headers: { "content-type": "text/plain", connection: "close" } });
}

/**
 * Reads a body, counting the bytes actually received: Content-Length may be absent (chunked) or
 * lie. Null once more than `max` bytes arrived; the rest is cancelled, never buffered.
 */
async function readCapped(body: ReadableStream<Uint8Array> | null, max: number): Promise<Uint8Array | null> {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

export function createApp(deps: EdgeDeps): Hono {
  const app = new Hono();

  app.get("/health", (c) => c.json({ status: "ok", version: deps.version }));

  app.get("/.well-known/qpq", async (c) => {
    const { publicKey } = await deps.signing;
    return c.json({ version: deps.version, delivery_proof_key: toHex(publicKey), kt_public_key: toHex(await deps.ktPublicKey) });
  });

  // Push subscription of a front for one identity: a WebSocket into that identity's queue object.
  app.get("/push", async (c) => {
    if (!(await frontIsAuthentic(deps, c.req.header(H.frontAuth)))) return refuse(401, "front authentication failed");
    const assertion = c.req.header(H.caller);
    const caller = assertion ? await verifyAssertion(await deps.assertionKey, assertion, Date.now()) : null;
    if (!caller) return c.text("caller assertion missing or expired", 403);
    return queueOf(deps, caller.identityKey).fetch(c.req.raw);
  });

  app.post("/rpc/:method{[0-9]{1,5}}", async (c) => {
    // The secret first: nobody else gets a single body byte read.
    if (!(await frontIsAuthentic(deps, c.req.header(H.frontAuth)))) return refuse(401, "front authentication failed");
    // No legitimate front sends more than one frame's payload: refuse an announced larger body
    // unread, and stop reading one that turns out larger than announced (or is chunked).
    if (Number(c.req.header("content-length") ?? 0) > MAX_PAYLOAD) return refuse(413, "payload too large");
    const body = await readCapped(c.req.raw.body, MAX_PAYLOAD);
    if (!body) return refuse(413, "payload too large");
    const methodId = Number(c.req.param("method"));
    const ctx: RpcContext = {
      deps,
      caller: null,
      clientAddr: c.req.header(H.clientAddr) ?? "",
      connectionId: c.req.header(H.connection) ?? "",
      requestId: Number(c.req.header(H.requestId) ?? 0),
    };
    const headers: Record<string, string> = {};
    let status: number = Status.Ok;
    let payload: Uint8Array;
    try {
      const spec = methods[methodId];
      if (!spec) throw unknownMethod(methodId);
      const assertion = c.req.header(H.caller);
      if (assertion) ctx.caller = await verifyAssertion(await deps.assertionKey, assertion, Date.now());
      if (spec.auth === "user" && !ctx.caller) throw unauthorized();
      if (spec.auth === "user" && (spec.deviceCheck ?? "account") === "account") await requireLiveDevice(ctx);
      payload = await spec.handle(ctx, body);
      if (ctx.queueDepth !== undefined) headers[H.queueDepth] = String(ctx.queueDepth);
      if (ctx.session) {
        const s = ctx.session;
        const expires = Math.min(s.sessionExpiresAt, Date.now() + ASSERTION_TTL_MS);
        const minted = await mintAssertion(await deps.assertionKey, s, expires);
        headers[H.session] = formatSessionGrant({
          assertion: minted, identityKeyHex: toHex(s.identityKey), sessionExpiresAt: s.sessionExpiresAt, assertionExpiresAt: expires,
        });
      }
    } catch (err) {
      const reply = toErrorReply(err);
      if (reply.status === Status.Internal) {
        deps.logger.error("handler failed", { method: methodId, requestId: ctx.requestId, error: err instanceof Error ? err.message : String(err) });
      }
      status = reply.status;
      payload = encodeError(reply);
      if (reply.retryAfterMs) headers[H.retryAfter] = String(reply.retryAfterMs);
    }
    headers[H.status] = String(status);
    headers["content-type"] = "application/x-protobuf";
    return new Response(payload, { status: 200, headers });
  });

  app.notFound((c) => c.text("not found", 404));
  app.onError((_err, c) => c.text("internal error", 500));
  return app;
}
