// Lower-case hex for ids and keys (identity keys, channel ids, queue names, log fields). Pure:
// used by the edge (workerd), the front, the SDK and the plugin host alike.

const DIGITS = "0123456789abcdef";

export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += DIGITS[bytes[i] >> 4] + DIGITS[bytes[i] & 15];
  return s;
}

/** The bytes of a lower-case hex string; null for anything else (odd length, other characters). */
export function fromHex(hex: string): Uint8Array | null {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}
