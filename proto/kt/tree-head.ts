// Signed tree heads: the log's Ed25519 signature over (size, time, root). Uses WebCrypto only,
// available in workerd, Node and browsers alike.
//
//   signed bytes = "qpq-kt-sth-v1" || tree_size (u64 BE) || timestamp_ms (u64 BE) || root (32)

import { HASH_BYTES } from "./merkle.ts";
import { encodeUtf8 } from "../util/text.ts";

const TAG = encodeUtf8("qpq-kt-sth-v1");
export const SIGNATURE_BYTES = 64;
export const PUBLIC_KEY_BYTES = 32;

export interface TreeHead {
  treeSize: number;
  root: Uint8Array;
  timestampMs: number;
}
export interface SignedTreeHead extends TreeHead {
  signature: Uint8Array;
}

export function treeHeadMessage(head: TreeHead): Uint8Array {
  const out = new Uint8Array(TAG.length + 16 + HASH_BYTES);
  out.set(TAG, 0);
  const view = new DataView(out.buffer);
  view.setBigUint64(TAG.length, BigInt(head.treeSize));
  view.setBigUint64(TAG.length + 8, BigInt(head.timestampMs));
  out.set(head.root, TAG.length + 16);
  return out;
}

/** WebCrypto's key type, named the same way under the Node and the workerd typings. */
type SigningKey = Parameters<typeof crypto.subtle.sign>[1];

export async function signTreeHead(privateKey: SigningKey, head: TreeHead): Promise<SignedTreeHead> {
  if (head.root.length !== HASH_BYTES) throw new RangeError("tree head root must be 32 bytes");
  const signature = new Uint8Array(await crypto.subtle.sign("Ed25519", privateKey, treeHeadMessage(head)));
  return { ...head, signature };
}

/** False for a malformed head or key as well as a wrong signature: never throws on input. */
export async function verifyTreeHead(publicKey: Uint8Array, head: SignedTreeHead): Promise<boolean> {
  if (
    publicKey.length !== PUBLIC_KEY_BYTES ||
    head.signature.length !== SIGNATURE_BYTES ||
    head.root.length !== HASH_BYTES
  )
    return false;
  if (
    !Number.isSafeInteger(head.treeSize) ||
    head.treeSize < 0 ||
    !Number.isSafeInteger(head.timestampMs) ||
    head.timestampMs < 0
  )
    return false;
  try {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify("Ed25519", key, head.signature, treeHeadMessage(head));
  } catch {
    return false;
  }
}
