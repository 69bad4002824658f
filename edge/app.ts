// The edge engine: a Hono app built from explicit dependencies. worker.ts turns bindings into
// dependencies; tests may build it from fixtures.
import { Hono } from "hono";
import {
  MAX_PAYLOAD, Status, encodeError, toErrorReply, unknownMethod, unauthorized, formatSessionGrant, RelayHeader as H,
} from "../proto/index.ts";
import type { EdgeDeps } from "./deps.ts";
import type { RpcContext } from "./rpc.ts";
import { methods } from "./methods/index.ts";
import { queueOf } from "./lib/queue.ts";
import { sha256, timingSafeEqual, toHex } from "./lib/crypto.ts";
import { ASSERTION_TTL_MS, mintAssertion, verifyAssertion } from "./lib/caller-assertion.ts";

const encoder = new TextEncoder();

async function frontIsAuthentic(deps: EdgeDeps, presented: string | undefined): Promise<boolean> {
  if (!presented) return false;
  return timingSafeEqual(await sha256(encoder.encode(presented)), await deps.frontSecretDigest);
}

export function createApp(deps: EdgeDeps): Hono {
  const app = new Hono();

  app.get("/health", (c) => c.json({ status: "ok", version: deps.version }));

  app.get("/.well-known/qpq", async (c) => {
    const { publicKey } = await deps.signing;
    return c.json({ version: deps.version, delivery_proof_key: toHex(publicKey) });
  });

  // Push subscription of a front for one identity: a WebSocket into that identity's queue object.
  app.get("/push", async (c) => {
    if (!(await frontIsAuthentic(deps, c.req.header(H.frontAuth)))) return c.text("front authentication failed", 401);
    const assertion = c.req.header(H.caller);
    const caller = assertion ? await verifyAssertion(await deps.assertionKey, assertion, Date.now()) : null;
    if (!caller) return c.text("caller assertion missing or expired", 403);
    return queueOf(deps, caller.identityKey).fetch(c.req.raw);
  });

  app.post("/rpc/:method{[0-9]{1,5}}", async (c) => {
    // No legitimate front sends more than one frame's payload; refuse before reading it.
    if (Number(c.req.header("content-length") ?? 0) > MAX_PAYLOAD) return c.text("payload too large", 413);
    // Read the body before anything else: workerd drops keep-alive connections whose request
    // body was left unread, and the front's pool depends on them.
    const body = new Uint8Array(await c.req.arrayBuffer());
    if (!(await frontIsAuthentic(deps, c.req.header(H.frontAuth)))) {
      return c.text("front authentication failed", 401);
    }
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
        console.error(JSON.stringify({ level: "error", msg: "handler failed", method: methodId,
          requestId: ctx.requestId, error: err instanceof Error ? err.message : String(err) }));
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
