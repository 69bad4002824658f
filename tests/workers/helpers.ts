// Shared helpers for the workers tests: call the edge exactly as the QUIC front does
// (POST /rpc/:method with the relay headers), mint caller assertions, make identities.
import { env, exports } from "cloudflare:workers";
import { RelayHeader as H, decodeError, Status } from "../../proto/index.ts";
import { importAssertionKey, mintAssertion } from "../../edge/lib/caller-assertion.ts";
import { toHex } from "../../proto/util/hex.ts";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";

export { env };

export function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** A fresh 32-byte identity key (the edge never checks it is a curve point). */
export function randomKey(): Uint8Array {
  return randomBytes(32);
}

/** A well-formed hybrid public key: a random X25519 u-coordinate || a real ML-KEM-768 encapsulation key. */
export function hybridPublicKey(): Uint8Array {
  const key = new Uint8Array(32 + 1184);
  key.set(randomBytes(32));
  key.set(ml_kem768.keygen().publicKey, 32);
  return key;
}

/** Hex of bytes; absent protobuf fields (null/undefined) read as "". */
export function hex(bytes: Uint8Array | null | undefined): string {
  return bytes ? toHex(bytes) : "";
}

const NO_DEVICE = new Uint8Array(0);

/** A caller assertion as the front would present it, valid for a minute unless told otherwise. */
export async function assertionFor(
  identityKey: Uint8Array,
  opts: { deviceId?: Uint8Array; expiresAtMs?: number; secret?: string } = {},
): Promise<string> {
  const key = await importAssertionKey(opts.secret ?? env.FRONT_SECRET);
  return mintAssertion(
    key,
    { identityKey, deviceId: opts.deviceId ?? NO_DEVICE },
    opts.expiresAtMs ?? Date.now() + 60_000,
  );
}

const withAccounts = new Set<string>();

/**
 * The edge serves only callers whose account exists with the asserted device (the default
 * device here), as registration leaves them. The first call of a key as a caller creates that
 * account directly in D1 (username "t-<hex>"); later calls leave it alone, so a test that
 * revokes the device or deletes the account sees the edge's refusal. Pass an assertion string
 * to call without this.
 */
export async function ensureAccount(identityKey: Uint8Array): Promise<void> {
  const id = toHex(identityKey);
  if (withAccounts.has(id)) return;
  withAccounts.add(id);
  await env.DB.batch([
    env.DB.prepare(
      "INSERT OR IGNORE INTO users (username, identity_key, opaque_record, created_at) VALUES (?, ?, x'', 0)",
    ).bind(`t-${id.slice(0, 40)}`, identityKey),
    env.DB.prepare(
      "INSERT OR IGNORE INTO devices (identity_key, device_id, name, created_at, last_seen_at) VALUES (?, x'', 'default', 0, 0)",
    ).bind(identityKey),
  ]);
}

export interface RpcOptions {
  /** Identity key (an assertion is minted for it) or a ready-made assertion header value. */
  caller?: Uint8Array | string;
  /** x-qpq-connection; defaults to a fixed test connection id. */
  connection?: string;
  /** Front secret to present; null omits the header. Defaults to the real one. */
  frontSecret?: string | null;
  /** x-qpq-client-addr: the client's address as the front saw it. */
  clientAddr?: string;
}

export interface RpcResult {
  /** HTTP status of the edge response (200 for every answered RPC). */
  http: number;
  /** Wire status from x-qpq-status (NaN when absent). */
  status: number;
  body: Uint8Array;
  headers: Headers;
}

export async function rpc(methodId: number, request: Uint8Array, opts: RpcOptions = {}): Promise<RpcResult> {
  const headers: Record<string, string> = {
    "content-type": "application/x-protobuf",
    [H.connection]: opts.connection ?? "test-connection",
    [H.requestId]: "1",
  };
  const secret = opts.frontSecret === undefined ? env.FRONT_SECRET : opts.frontSecret;
  if (secret !== null) headers[H.frontAuth] = secret;
  if (opts.clientAddr !== undefined) headers[H.clientAddr] = opts.clientAddr;
  if (opts.caller !== undefined) {
    if (typeof opts.caller !== "string") await ensureAccount(opts.caller);
    headers[H.caller] = typeof opts.caller === "string" ? opts.caller : await assertionFor(opts.caller);
  }
  const res = await exports.default.fetch(`https://edge/rpc/${methodId}`, { method: "POST", headers, body: request });
  const body = new Uint8Array(await res.arrayBuffer());
  return { http: res.status, status: Number(res.headers.get(H.status) ?? NaN), body, headers: res.headers };
}

/** Decodes the ErrorResponse of a failed RPC. */
export function errorOf(res: RpcResult): { message: string; retryAfterMs: number } {
  if (res.status === Status.Ok) throw new Error("expected an error response, got Ok");
  return decodeError(res.body);
}

/** Asserts an RPC succeeded and decodes its response; on failure shows the server's message. */
export function ok<T>(res: RpcResult, codec: { decode(bytes: Uint8Array): T }): T {
  if (res.http !== 200 || res.status !== Status.Ok) {
    const detail = res.http === 200 ? decodeError(res.body).message : `HTTP ${res.http}`;
    throw new Error(`expected Ok, got status ${res.status} (${detail})`);
  }
  return codec.decode(res.body);
}

/** The recipient's RecipientQueue stub, addressed exactly as the edge addresses it. */
export function queueStub(recipient: Uint8Array) {
  return env.RECIPIENT_QUEUE.get(env.RECIPIENT_QUEUE.idFromName(toHex(recipient)));
}

export function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

export function textOf(bytes: Uint8Array | null | undefined): string {
  return bytes ? new TextDecoder().decode(bytes) : "";
}

/**
 * A fresh identity whose queue accepts messages, as OpaqueRegisterFinish leaves it (queues of
 * unregistered identities answer NotFound), without the OPAQUE round trips.
 */
export async function registeredKey(): Promise<Uint8Array> {
  const key = randomKey();
  await queueStub(key).markRegistered();
  return key;
}
