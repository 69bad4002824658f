// The RPC engine: typed unary handlers, the per-request context, and the method table type.
import { decode, encode, unauthorized } from "../proto/index.ts";
import type { EdgeDeps } from "./deps.ts";
import type { Caller } from "./lib/caller-assertion.ts";

export interface SessionBinding {
  identityKey: Uint8Array;
  deviceId: Uint8Array;
  sessionExpiresAt: number;
}

export interface RpcContext {
  deps: EdgeDeps;
  /** Identity asserted by the front for this connection; null before login. */
  caller: Caller | null;
  clientAddr: string;
  /** Stable id of the client connection, as reported by the front. */
  connectionId: string;
  requestId: number;
  /** Login and resume bind the connection to a session; the front learns it from the response. */
  session?: SessionBinding;
  /** Enqueue reports the recipient's pending-message count for the front's sampled gauge. */
  queueDepth?: number;
  /** Sealed-sender mode: the front's tag of the sending address (lib/sealed-sender.ts). */
  sealedSenderTag?: string;
}

export interface MethodSpec {
  /** "none": callable before login. "user": needs an asserted caller. */
  auth: "none" | "user";
  /**
   * How a "user" method makes sure the caller's device is still registered (an assertion of a
   * revoked device lives on up to ASSERTION_TTL_MS): "account" (the default) reads D1 before the
   * handler (lib/live-device.ts); "queue": the caller's own RecipientQueue refuses devices it does
   * not hold (Fetch, FetchWait, Peek, Ack: no D1 on the hot path); "none": Enqueue and
   * BatchEnqueue, which only write into other identities' queues (docs/protocol.md, "Devices");
   * "handler": the method checks itself (DeleteAccount).
   */
  deviceCheck?: "account" | "queue" | "none" | "handler";
  handle(ctx: RpcContext, payload: Uint8Array): Promise<Uint8Array>;
}

export type MethodTable = Record<number, MethodSpec>;

interface Decoder<T> {
  decode(reader: Uint8Array): T;
}
interface Encoder<T> {
  encode(message: T): { finish(): Uint8Array };
}

/** Declares a method: decode request, run, encode response. Decoding failures are BadRequest. */
export function unary<Req, Res>(
  auth: MethodSpec["auth"],
  request: Decoder<Req>,
  response: Encoder<Res>,
  fn: (ctx: RpcContext, req: Req) => Promise<Res>,
): MethodSpec {
  const what = (request as { name?: string }).name ?? "request";
  return {
    auth,
    async handle(ctx, payload) {
      return encode(response, await fn(ctx, decode(request, payload, what)));
    },
  };
}

export function requireCaller(ctx: RpcContext): Caller {
  if (!ctx.caller) throw unauthorized();
  return ctx.caller;
}
