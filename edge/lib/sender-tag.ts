// Sender tags: a recipient's queue keys idempotency and per-sender quotas on a keyed hash of the
// sender's identity, never on the identity itself, so its storage does not say who wrote to it
// (and a sealed-sender mode can supply tags without naming the sender). The key is derived from
// the delivery signing key with HKDF under its own label, so no new secret is needed.
import { base64ToBytes } from "./crypto.ts";
import { encodeUtf8 } from "../../proto/util/text.ts";

export const SENDER_TAG_BYTES = 16;
const INFO = encodeUtf8("qpq-sender-tag-v1");

export async function importSenderTagKey(deliverySigningKeyBase64: string): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey("raw", base64ToBytes(deliverySigningKeyBase64), "HKDF", false, [
    "deriveKey",
  ]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: INFO },
    base,
    { name: "HMAC", hash: "SHA-256", length: 256 },
    false,
    ["sign"],
  );
}

/** HMAC-SHA256(key, identity key), truncated to 16 bytes. */
export async function senderTag(key: CryptoKey, identityKey: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, identityKey)).slice(0, SENDER_TAG_BYTES);
}
