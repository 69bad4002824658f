// The edge engine: a Hono app built from explicit dependencies. worker.ts turns bindings into
// dependencies; tests may build it from fixtures.
import { Hono, type HonoRequest } from "hono";
import {
  MAX_PAYLOAD,
  Status,
  encodeError,
  toErrorReply,
  unknownMethod,
  unauthorized,
  formatSessionGrant,
  RelayHeader,
} from "../proto/index.ts";
import type { EdgeDeps } from "./deps.ts";
import type { RpcContext, SessionBinding } from "./rpc.ts";
import { methods } from "./methods/index.ts";
import { queueOf } from "./durable/recipient-queue-client.ts";
import { toHex } from "../proto/util/hex.ts";
import { ASSERTION_TTL_MS, mintAssertion, verifyAssertion } from "./lib/caller-assertion.ts";
import { requireLiveDevice } from "./lib/live-device.ts";
import { frontOnly } from "./middleware/front-auth.ts";
import { bodyLimit } from "./middleware/body-limit.ts";
import { federationRoutes, wellKnownFederation } from "./federation/routes.ts";

/** The context of one relayed RPC, from the relay headers (trusted: the front authenticated itself). */
function rpcContext(deps: EdgeDeps, req: HonoRequest): RpcContext {
  return {
    deps,
    caller: null,
    clientAddr: req.header(RelayHeader.clientAddr) ?? "",
    connectionId: req.header(RelayHeader.connection) ?? "",
    requestId: Number(req.header(RelayHeader.requestId) ?? 0),
    sealedSenderTag: req.header(RelayHeader.sealedSender),
  };
}

/**
 * Runs one method: looks it up, verifies the caller assertion the front attached, checks the
 * method's authorization, and returns the encoded response. Failures throw (see errorAnswer).
 */
async function dispatch(
  ctx: RpcContext,
  methodId: number,
  assertion: string | undefined,
  body: Uint8Array,
): Promise<Uint8Array> {
  const spec = methods[methodId];
  if (!spec) throw unknownMethod(methodId);
  if (assertion) ctx.caller = await verifyAssertion(await ctx.deps.assertionKey, assertion, Date.now());
  if (spec.auth === "user") {
    if (!ctx.caller) throw unauthorized();
    if ((spec.deviceCheck ?? "account") === "account") await requireLiveDevice(ctx.deps.db, ctx.caller);
  }
  return spec.handle(ctx, body);
}

/** The session grant header for a login or resume: a fresh caller assertion, at most until the session ends. */
async function grantHeader(deps: EdgeDeps, s: SessionBinding): Promise<string> {
  const expires = Math.min(s.sessionExpiresAt, Date.now() + ASSERTION_TTL_MS);
  const minted = await mintAssertion(await deps.assertionKey, s, expires);
  return formatSessionGrant({
    assertion: minted,
    identityKeyHex: toHex(s.identityKey),
    sessionExpiresAt: s.sessionExpiresAt,
    assertionExpiresAt: expires,
  });
}

/** Every relayed RPC is answered HTTP 200, its wire status in a header (docs/protocol.md). */
function answer(status: number, payload: Uint8Array, headers: Record<string, string> = {}): Response {
  return new Response(payload, {
    status: 200,
    headers: { ...headers, [RelayHeader.status]: String(status), "content-type": "application/x-protobuf" },
  });
}

/** A failed RPC: its error reply (unexpected errors become Internal, logged here, details withheld). */
function errorAnswer(ctx: RpcContext, methodId: number, err: unknown): Response {
  const reply = toErrorReply(err);
  if (reply.status === Status.Internal) {
    ctx.deps.logger.error("handler failed", {
      method: methodId,
      requestId: ctx.requestId,
      error: err instanceof Error ? err.message : String(err),
    });
  }
  return answer(
    reply.status,
    encodeError(reply),
    reply.retryAfterMs ? { [RelayHeader.retryAfter]: String(reply.retryAfterMs) } : {},
  );
}

export function createApp(deps: EdgeDeps): Hono {
  const app = new Hono();

  app.get("/health", (c) => c.json({ status: "ok", version: deps.version }));

  app.get("/.well-known/qpq", async (c) => {
    const { publicKey } = await deps.signing;
    return c.json({
      version: deps.version,
      delivery_proof_key: toHex(publicKey),
      kt_public_key: toHex(await deps.ktPublicKey),
      // Fronts compare it with their own QPQ_SEALED_SENDER at start (quic-front/sealed-sender.ts).
      sealed_sender: deps.sealedSender,
      ...(await wellKnownFederation(deps, c.req.url)),
    });
  });

  const front = frontOnly(deps);

  // Signed edge-to-edge requests of federation peers (never the front secret), and link metrics.
  app.route("/federation", federationRoutes(deps));

  // Push subscription of a front for one identity: a WebSocket into that identity's queue object.
  app.get("/push", front, async (c) => {
    const assertion = c.req.header(RelayHeader.caller);
    const caller = assertion ? await verifyAssertion(await deps.assertionKey, assertion, Date.now()) : null;
    if (!caller) return c.text("caller assertion missing or expired", 403);
    return queueOf(deps, caller.identityKey).fetch(c.req.raw);
  });

  // One relayed RPC: the front secret first (nobody else gets a body byte read), then the body
  // within one frame's payload, then the method.
  app.post("/rpc/:method{[0-9]{1,5}}", front, bodyLimit(MAX_PAYLOAD), async (c) => {
    const methodId = Number(c.req.param("method"));
    const ctx = rpcContext(deps, c.req);
    try {
      const payload = await dispatch(ctx, methodId, c.req.header(RelayHeader.caller), c.var.body);
      const headers: Record<string, string> = {};
      if (ctx.queueDepth !== undefined) headers[RelayHeader.queueDepth] = String(ctx.queueDepth);
      if (ctx.session) headers[RelayHeader.session] = await grantHeader(deps, ctx.session);
      return answer(Status.Ok, payload, headers);
    } catch (err) {
      return errorAnswer(ctx, methodId, err);
    }
  });

  app.notFound((c) => c.text("not found", 404));
  app.onError((_err, c) => c.text("internal error", 500));
  return app;
}
