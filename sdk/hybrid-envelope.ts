// Hybrid post-quantum envelopes: a payload encrypted to a recipient's hybrid public key
// (X25519 32 bytes || ML-KEM-768 encapsulation key 1184 bytes, the key UploadHybridKey stores), so
// it stays confidential unless both X25519 and ML-KEM-768 are broken. Anonymous: the envelope
// names no sender (authenticate inside, e.g. with MLS). Byte layout, version 1 (docs/protocol.md,
// "Hybrid envelope"):
//
//   header     = "QPQE" (4) || version 0x01 || suite 0x01 || ephemeral X25519 public key (32)
//                || ML-KEM-768 ciphertext (1088)                                   = 1126 bytes
//   ss_x       = X25519(ephemeral private key, recipient X25519 key)               (32, not all zero)
//   ss_k       = ML-KEM-768 shared secret                                          (32)
//   key||nonce = HKDF-SHA256(ikm = ss_k || ss_x, salt = SHA-256(recipient hybrid public key),
//                            info = "qpq-hybrid-envelope-v1" || SHA-256(header), 44 bytes)
//   envelope   = header || AES-256-GCM(key, nonce, aad = header, pad(plaintext))  (+16-byte tag)
//
// Both ciphertexts (the ephemeral key is X25519's) and the recipient's whole public key are bound
// into the key derivation, and the header is also the AEAD's associated data, so changing any byte
// makes opening fail. Every key is used once, so the derived nonce never repeats. The plaintext is
// always padded to its Padmé bucket (padding.ts) inside the AEAD.
import type { webcrypto } from "node:crypto";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { MAX_DELIVERY_PAYLOAD } from "../proto/index.ts";
import { pad, paddedLength, unpad, PaddingError } from "./padding.ts";
import { concatBytes } from "../proto/util/bytes.ts";

export const X25519_BYTES = 32;
export const ML_KEM_768_PUBLIC_BYTES = 1184;
export const ML_KEM_768_SECRET_BYTES = 2400;
export const ML_KEM_768_CIPHERTEXT_BYTES = 1088;
export const HYBRID_PUBLIC_KEY_BYTES = X25519_BYTES + ML_KEM_768_PUBLIC_BYTES;
export const HYBRID_SECRET_KEY_BYTES = X25519_BYTES + ML_KEM_768_SECRET_BYTES;

const MAGIC = new Uint8Array([0x51, 0x50, 0x51, 0x45]); // "QPQE"
export const ENVELOPE_VERSION = 1;
/** X25519 + ML-KEM-768, HKDF-SHA256, AES-256-GCM. */
export const SUITE_X25519_MLKEM768_AES256GCM = 1;
export const HEADER_BYTES = MAGIC.length + 2 + X25519_BYTES + ML_KEM_768_CIPHERTEXT_BYTES;
const TAG_BYTES = 16;
/** Bytes an envelope adds to the padded plaintext. */
export const ENVELOPE_OVERHEAD = HEADER_BYTES + TAG_BYTES;
const INFO_LABEL = new TextEncoder().encode("qpq-hybrid-envelope-v1");

export class EnvelopeError extends Error {}

export interface HybridKeyPair {
  /** X25519 public key (32) || ML-KEM-768 encapsulation key (1184): what UploadHybridKey takes. */
  publicKey: Uint8Array;
  /** X25519 private key (32) || ML-KEM-768 decapsulation key (2400). Keep it secret. */
  secretKey: Uint8Array;
}

type CryptoKey = webcrypto.CryptoKey;
const subtle = globalThis.crypto.subtle;
const b64u = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");

async function x25519KeyPair(): Promise<{ publicKey: Uint8Array; privateKey: Uint8Array; key: CryptoKey }> {
  const pair = (await subtle.generateKey({ name: "X25519" }, true, [
    "deriveBits",
  ])) as unknown as webcrypto.CryptoKeyPair;
  const jwk = await subtle.exportKey("jwk", pair.privateKey);
  if (!jwk.d || !jwk.x) throw new Error("X25519 key export has no d or x");
  return {
    publicKey: new Uint8Array(Buffer.from(jwk.x, "base64url")),
    privateKey: new Uint8Array(Buffer.from(jwk.d, "base64url")),
    key: pair.privateKey,
  };
}

/** X25519(private, public): refuses a low-order public key (an all-zero result). */
async function x25519(privateKey: CryptoKey, publicKey: Uint8Array): Promise<Uint8Array> {
  let shared: Uint8Array;
  try {
    const peer = await subtle.importKey("raw", publicKey, { name: "X25519" }, false, []);
    shared = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: peer }, privateKey, 256));
  } catch {
    throw new EnvelopeError("the X25519 key is not usable (a low-order point?)");
  }
  if (shared.every((b) => b === 0)) throw new EnvelopeError("the X25519 key is a low-order point");
  return shared;
}

async function deriveKeyAndNonce(ssK: Uint8Array, ssX: Uint8Array, recipientPublicKey: Uint8Array, header: Uint8Array) {
  const salt = new Uint8Array(await subtle.digest("SHA-256", recipientPublicKey));
  const ikm = await subtle.importKey("raw", concatBytes(ssK, ssX), "HKDF", false, ["deriveBits"]);
  // HKDF info is bounded (1 KiB in WebCrypto), so the header goes in as its digest.
  const info = concatBytes(INFO_LABEL, new Uint8Array(await subtle.digest("SHA-256", header)));
  const okm = new Uint8Array(await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, ikm, 44 * 8));
  const key = await subtle.importKey("raw", okm.subarray(0, 32), { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  return { key, nonce: okm.slice(32, 44) };
}

export async function generateHybridKeyPair(): Promise<HybridKeyPair> {
  const x = await x25519KeyPair();
  const k = ml_kem768.keygen();
  return { publicKey: concatBytes(x.publicKey, k.publicKey), secretKey: concatBytes(x.privateKey, k.secretKey) };
}

/** Whether `bytes` starts like an envelope (magic), whatever its version. */
export function isEnvelope(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

/** The size of the envelope for a plaintext of `length` bytes (padding included). */
export function envelopeLength(length: number): number {
  return ENVELOPE_OVERHEAD + paddedLength(length);
}

/** Encrypts `plaintext` (padded first) to the recipient's hybrid public key. */
export async function sealEnvelope(recipientPublicKey: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
  if (recipientPublicKey.length !== HYBRID_PUBLIC_KEY_BYTES) {
    throw new EnvelopeError(
      `a hybrid public key is ${HYBRID_PUBLIC_KEY_BYTES} bytes, got ${recipientPublicKey.length}`,
    );
  }
  const total = envelopeLength(plaintext.length);
  if (total > MAX_DELIVERY_PAYLOAD) {
    throw new EnvelopeError(
      `the envelope would be ${total} bytes, more than a message may hold (${MAX_DELIVERY_PAYLOAD})`,
    );
  }
  const recipientX = recipientPublicKey.subarray(0, X25519_BYTES);
  const recipientK = recipientPublicKey.subarray(X25519_BYTES);
  const eph = await x25519KeyPair();
  const ssX = await x25519(eph.key, recipientX);
  let kem: { cipherText: Uint8Array; sharedSecret: Uint8Array };
  try {
    kem = ml_kem768.encapsulate(recipientK);
  } catch (err) {
    throw new EnvelopeError(`the ML-KEM-768 key is not usable: ${err instanceof Error ? err.message : String(err)}`);
  }
  const header = concatBytes(
    MAGIC,
    Uint8Array.of(ENVELOPE_VERSION, SUITE_X25519_MLKEM768_AES256GCM),
    eph.publicKey,
    kem.cipherText,
  );
  const { key, nonce } = await deriveKeyAndNonce(kem.sharedSecret, ssX, recipientPublicKey, header);
  const sealed = new Uint8Array(
    await subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: header }, key, pad(plaintext)),
  );
  kem.sharedSecret.fill(0);
  ssX.fill(0);
  return concatBytes(header, sealed);
}

/** The key pair's X25519 private key; a secret half that does not match its public half is refused. */
async function importOwnX25519(keyPair: HybridKeyPair): Promise<CryptoKey> {
  try {
    return await subtle.importKey(
      "jwk",
      {
        kty: "OKP",
        crv: "X25519",
        d: b64u(keyPair.secretKey.subarray(0, X25519_BYTES)),
        x: b64u(keyPair.publicKey.subarray(0, X25519_BYTES)),
      },
      { name: "X25519" },
      false,
      ["deriveBits"],
    );
  } catch {
    throw new EnvelopeError("not a hybrid key pair (its X25519 halves do not match)");
  }
}

/** Decrypts an envelope with the recipient's key pair and removes the padding. EnvelopeError on any failure. */
export async function openEnvelope(keyPair: HybridKeyPair, envelope: Uint8Array): Promise<Uint8Array> {
  if (!isEnvelope(envelope)) throw new EnvelopeError("not a hybrid envelope (no QPQE magic)");
  if (envelope.length < MAGIC.length + 2) throw new EnvelopeError("envelope truncated");
  const version = envelope[MAGIC.length];
  const suite = envelope[MAGIC.length + 1];
  if (version !== ENVELOPE_VERSION) throw new EnvelopeError(`unsupported envelope version ${version}`);
  if (suite !== SUITE_X25519_MLKEM768_AES256GCM) throw new EnvelopeError(`unsupported envelope suite ${suite}`);
  if (envelope.length < ENVELOPE_OVERHEAD + 1) throw new EnvelopeError("envelope truncated");
  if (keyPair.publicKey.length !== HYBRID_PUBLIC_KEY_BYTES || keyPair.secretKey.length !== HYBRID_SECRET_KEY_BYTES) {
    throw new EnvelopeError("not a hybrid key pair");
  }
  const header = envelope.subarray(0, HEADER_BYTES);
  const ephemeral = header.subarray(MAGIC.length + 2, MAGIC.length + 2 + X25519_BYTES);
  const kemCiphertext = header.subarray(MAGIC.length + 2 + X25519_BYTES);
  const own = await importOwnX25519(keyPair);

  const ssX = await x25519(own, ephemeral);
  // ML-KEM rejects implicitly: a wrong key or ciphertext yields another secret, so the AEAD fails.
  const ssK = ml_kem768.decapsulate(kemCiphertext, keyPair.secretKey.subarray(X25519_BYTES));
  const { key, nonce } = await deriveKeyAndNonce(ssK, ssX, keyPair.publicKey, header);
  ssK.fill(0);
  ssX.fill(0);
  let padded: Uint8Array;
  try {
    padded = new Uint8Array(
      await subtle.decrypt(
        { name: "AES-GCM", iv: nonce, additionalData: header },
        key,
        envelope.subarray(HEADER_BYTES),
      ),
    );
  } catch {
    throw new EnvelopeError("the envelope does not open with this key (wrong key, or altered)");
  }
  try {
    return unpad(padded);
  } catch (err) {
    if (err instanceof PaddingError) throw new EnvelopeError(`bad padding inside the envelope: ${err.message}`);
    throw err;
  }
}
