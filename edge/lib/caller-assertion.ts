// The front validates a session once per connection; afterwards the edge trusts a short-lived
// assertion of the caller's identity, MACed with the front secret, so the message hot path needs
// no D1 query. The edge mints assertions (at login/resume) and verifies them on every RPC.
import { fromHex, toHex } from "../../proto/util/hex.ts";
import { encodeUtf8 } from "../../proto/util/text.ts";

export interface Caller {
  identityKey: Uint8Array;
  deviceId: Uint8Array;
}

/** How long an assertion lives before the front must re-validate the session (SessionResume). */
export const ASSERTION_TTL_MS = 10 * 60 * 1000;

/** WebCrypto key type that resolves under both workerd and Node typings (the bench mints too). */
type MacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

export async function importAssertionKey(frontSecret: string): Promise<MacKey> {
  // Domain-separated so the raw front secret is never used as a MAC key for anything else.
  const base = await crypto.subtle.importKey("raw", encodeUtf8(frontSecret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const derived = await crypto.subtle.sign("HMAC", base, encodeUtf8("qpq-edge caller assertion v1"));
  return crypto.subtle.importKey("raw", derived, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

function body(caller: Caller, expiresAtMs: number): string {
  return `v1.${toHex(caller.identityKey)}.${toHex(caller.deviceId)}.${expiresAtMs}`;
}

export async function mintAssertion(key: MacKey, caller: Caller, expiresAtMs: number): Promise<string> {
  const text = body(caller, expiresAtMs);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encodeUtf8(text)));
  return `${text}.${toHex(mac)}`;
}

/** Returns the caller, or null when the assertion is malformed, forged or expired. */
export async function verifyAssertion(key: MacKey, header: string, nowMs: number): Promise<Caller | null> {
  const parts = header.split(".");
  if (parts.length !== 5 || parts[0] !== "v1") return null;
  const [, idHex, devHex, expText, macHex] = parts;
  const identityKey = fromHex(idHex);
  const deviceId = fromHex(devHex);
  const mac = fromHex(macHex);
  const expiresAt = Number(expText);
  if (!identityKey || !deviceId || !mac || !Number.isSafeInteger(expiresAt)) return null;
  const ok = await crypto.subtle.verify("HMAC", key, mac, encodeUtf8(`v1.${idHex}.${devHex}.${expText}`));
  if (!ok || expiresAt <= nowMs) return null;
  return { identityKey, deviceId };
}
