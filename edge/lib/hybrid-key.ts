// Hybrid public keys: X25519 (32 bytes) || ML-KEM-768 encapsulation key (1184 bytes). Pure checks,
// no I/O: a key that passes can be used by any client to encapsulate to, so a malformed upload is
// refused here instead of failing (or silently weakening) every sender later.
import { badRequest } from "../../proto/index.ts";
import { LIMITS } from "./limits.ts";

export const X25519_PUBLIC_KEY_BYTES = 32;
export const ML_KEM_768_PUBLIC_KEY_BYTES = 1184;
export const HYBRID_PUBLIC_KEY_BYTES = LIMITS.hybridKey;

const hex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));

/**
 * u-coordinates of the points of small order on Curve25519 and their non-canonical encodings
 * (libsodium's blocklist, cf. RFC 7748 §7): a Diffie-Hellman with any of them gives a result that
 * does not depend on the private key (all zero for the usual implementations). Compared with the
 * top bit cleared, as RFC 7748 §5 decodes u-coordinates.
 */
export const X25519_LOW_ORDER_POINTS: readonly Uint8Array[] = [
  // 0 (order 4)
  hex("0000000000000000000000000000000000000000000000000000000000000000"),
  // 1 (order 1)
  hex("0100000000000000000000000000000000000000000000000000000000000000"),
  // order 8
  hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
  // order 8
  hex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
  // p - 1 (order 2)
  hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
  // p, non-canonical 0
  hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
  // p + 1, non-canonical 1
  hex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
];

/** Whether a 32-byte X25519 public key is one of the low-order points (top bit ignored). */
export function isLowOrderX25519(key: Uint8Array): boolean {
  return X25519_LOW_ORDER_POINTS.some((point) => {
    for (let i = 0; i < 32; i++) {
      const b = i === 31 ? key[i] & 0x7f : key[i];
      if (b !== point[i]) return false;
    }
    return true;
  });
}

const ML_KEM_Q = 3329;
/** ByteEncode12 of k = 3 polynomials of 256 coefficients: the t-hat part of the key, before rho. */
const ML_KEM_768_T_BYTES = 3 * 384;

/**
 * FIPS 203 §7.2 encapsulation-key check: the right length, and ByteEncode12(ByteDecode12(ek)) = ek,
 * i.e. every 12-bit coefficient of the first 1152 bytes is below q = 3329 (ByteDecode12 reduces
 * mod q, so a coefficient of q or more would not survive the round trip). Done here rather than by
 * @noble/post-quantum 0.5.2, whose encapsulate() runs this round trip without the reduction and so
 * accepts any 1184 bytes. Two coefficients fill three bytes, little-endian.
 */
export function isValidMlKem768PublicKey(key: Uint8Array): boolean {
  if (key.length !== ML_KEM_768_PUBLIC_KEY_BYTES) return false;
  for (let i = 0; i < ML_KEM_768_T_BYTES; i += 3) {
    const b0 = key[i];
    const b1 = key[i + 1];
    const b2 = key[i + 2];
    if ((b0 | ((b1 & 0x0f) << 8)) >= ML_KEM_Q) return false;
    if (((b1 >> 4) | (b2 << 4)) >= ML_KEM_Q) return false;
  }
  return true;
}

/** Validates an uploaded hybrid key; BadRequest names the part that failed. */
export function hybridPublicKey(value: Uint8Array): Uint8Array {
  if (value.length !== HYBRID_PUBLIC_KEY_BYTES) {
    throw badRequest(
      `hybrid_public_key must be ${HYBRID_PUBLIC_KEY_BYTES} bytes (X25519 32 + ML-KEM-768 1184), got ${value.length}`,
    );
  }
  if (isLowOrderX25519(value.subarray(0, X25519_PUBLIC_KEY_BYTES))) {
    throw badRequest("hybrid_public_key: the X25519 part is a low-order point (all zero or another small-order u)");
  }
  if (!isValidMlKem768PublicKey(value.subarray(X25519_PUBLIC_KEY_BYTES))) {
    throw badRequest(
      "hybrid_public_key: the ML-KEM-768 part fails the FIPS 203 encapsulation-key check (a coefficient is not below 3329)",
    );
  }
  return value;
}
