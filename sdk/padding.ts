// Length padding to Padmé buckets (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files
// and Communication with PURBs", PETS 2019), so a ciphertext's size says little more than its
// order of magnitude: a padded length leaks O(log log L) bits, and the padding costs at most ~12 %
// (less for larger messages). The scheme (docs/protocol.md, "Padding"):
//
//   padded = message || 0x80 || 0x00 * k,  with len(padded) = padme(len(message) + 1)
//
// so the padding is removed without a length field: strip trailing zeros, then one 0x80
// (ISO/IEC 7816-4). Pad before encrypting, unpad after decrypting; the padding is inside the AEAD,
// so nobody can change it unnoticed.

export class PaddingError extends Error {}

/** Padmé: L rounded up so that only its top ~log2(log2 L) + 1 bits can be non-zero. */
export function padme(length: number): number {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length must be a safe non-negative integer`);
  if (length < 2) return length;
  const e = Math.floor(Math.log2(length)); // exponent of the highest set bit
  // Math.log2 is exact for powers of two; guard the rounding anyway.
  const exponent = 2 ** e > length ? e - 1 : 2 ** (e + 1) <= length ? e + 1 : e;
  const s = Math.floor(Math.log2(exponent)) + 1; // bits to represent the exponent
  const lastBits = exponent - s; // low bits that must be zero
  const unit = 2 ** Math.max(0, lastBits);
  return Math.ceil(length / unit) * unit;
}

/** The padded length of a message of `length` bytes (marker included). */
export function paddedLength(length: number): number {
  return padme(length + 1);
}

export function pad(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(paddedLength(message.length));
  out.set(message);
  out[message.length] = 0x80;
  return out;
}

/** Removes the padding; PaddingError when there is no 0x80 marker after the trailing zeros. */
export function unpad(padded: Uint8Array): Uint8Array {
  let end = padded.length;
  while (end > 0 && padded[end - 1] === 0) end--;
  if (end === 0 || padded[end - 1] !== 0x80) throw new PaddingError("padding marker missing");
  // Only the bucket pad() produces is accepted, so one plaintext has one padded form.
  if (padded.length !== paddedLength(end - 1)) throw new PaddingError("padded length is not the message's bucket");
  return padded.subarray(0, end - 1);
}
