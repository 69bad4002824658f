// 1:1 channel ids are derived, not allocated, so both peers (and the front's hooks) compute the
// same id: the first 16 bytes of SHA-256("qpq-direct-channel-v1" || lower key || higher key),
// keys ordered bytewise.
import { encodeUtf8 } from "../util/text.ts";

const DIRECT_TAG = encodeUtf8("qpq-direct-channel-v1");

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export async function directChannelId(a: Uint8Array, b: Uint8Array): Promise<Uint8Array> {
  const [lo, hi] = compareBytes(a, b) <= 0 ? [a, b] : [b, a];
  const input = new Uint8Array(DIRECT_TAG.length + lo.length + hi.length);
  input.set(DIRECT_TAG, 0);
  input.set(lo, DIRECT_TAG.length);
  input.set(hi, DIRECT_TAG.length + lo.length);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", input)).slice(0, 16);
}
