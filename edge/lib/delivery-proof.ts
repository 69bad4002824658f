// Delivery proofs: the server's Ed25519 signature that it accepted a message.
// proof = 0x01 || server_time_ms (u64 BE) || signature (64 bytes), where the signature covers
// "qpq-delivery-v1" || recipient (32) || len(channel) (u8) || channel || seq (u64 BE)
//   || SHA-256(payload) (32) || server_time_ms (u64 BE).
import { concatBytes, sha256, base64ToBytes } from "./crypto.ts";
import { encodeUtf8 } from "../../proto/util/text.ts";

const TAG = encodeUtf8("qpq-delivery-v1");

function u64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

export async function importSigningKey(pkcs8Base64: string): Promise<{ privateKey: CryptoKey; publicKey: Uint8Array }> {
  const pkcs8 = base64ToBytes(pkcs8Base64);
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
  // The public key is the last 32 bytes of the JWK "x"; derive it without storing it separately.
  const jwk = (await crypto.subtle.exportKey("jwk", privateKey)) as JsonWebKey;
  if (!jwk.x) throw new Error("DELIVERY_SIGNING_KEY is not an Ed25519 private key");
  return { privateKey, publicKey: base64ToBytes(jwk.x) };
}

export async function provenMessage(
  recipient: Uint8Array,
  channel: Uint8Array,
  seq: number,
  payload: Uint8Array,
  timeMs: number,
): Promise<Uint8Array> {
  return provenDigest(recipient, channel, seq, await sha256(payload), timeMs);
}

/** The signed bytes, given SHA-256(payload): queues keep the digest, not always the payload. */
export function provenDigest(
  recipient: Uint8Array,
  channel: Uint8Array,
  seq: number,
  payloadHash: Uint8Array,
  timeMs: number,
): Uint8Array {
  return concatBytes(TAG, recipient, Uint8Array.of(channel.length), channel, u64(seq), payloadHash, u64(timeMs));
}

export async function signDelivery(
  key: CryptoKey,
  recipient: Uint8Array,
  channel: Uint8Array,
  seq: number,
  payloadHash: Uint8Array,
  timeMs: number,
): Promise<Uint8Array> {
  const message = provenDigest(recipient, channel, seq, payloadHash, timeMs);
  const sig = new Uint8Array(await crypto.subtle.sign("Ed25519", key, message));
  return concatBytes(Uint8Array.of(1), u64(timeMs), sig);
}
