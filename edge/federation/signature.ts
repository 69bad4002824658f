// RFC 9421 HTTP Message Signatures for edge-to-edge requests, Ed25519 only, pure (WebCrypto, no
// I/O). Covered components, in this order: "@method", "@path", "content-digest" (RFC 9530,
// sha-256 of the body); parameters created, a random nonce (Ed25519 is deterministic: without
// it two identical requests in one second would carry one signature, and the second would be
// refused as a replay), keyid (the signer's federation domain) and alg="ed25519". One signature, labelled sig1. docs/protocol.md "Federation" has the wire form.
import { base64ToBytes, concatBytes, sha256, timingSafeEqual } from "../lib/crypto.ts";
import { encodeUtf8 } from "../../proto/util/text.ts";

/** WebCrypto's key type, spelled so both the workerd and the Node type environments accept it. */
type Key = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

export const SIGNATURE_LABEL = "sig1";
export const COVERED = ["@method", "@path", "content-digest"] as const;
/** A signature older than this is stale; the replay cache keeps each seen one this long. */
export const SIGNATURE_MAX_AGE_SECS = 300;
/** Clock skew tolerated for a created time in the future. */
export const SIGNATURE_MAX_FUTURE_SECS = 30;
/** Longest Signature-Input / Signature header accepted (a domain is at most 253 characters). */
const MAX_HEADER = 1024;

/** Why a signed request was refused: the metric label and the reason given to the caller. */
export type RefusalReason =
  "unsigned" | "malformed" | "digest-mismatch" | "unknown-peer" | "bad-signature" | "stale" | "future" | "replay";

export class SignatureRefusal extends Error {
  readonly reason: RefusalReason;
  constructor(reason: RefusalReason, message: string) {
    super(message);
    this.name = "SignatureRefusal";
    this.reason = reason;
  }
}

export function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** RFC 9530 Content-Digest value of a body: `sha-256=:<base64>:`. */
export async function contentDigest(body: Uint8Array): Promise<string> {
  return `sha-256=:${toBase64(await sha256(body))}:`;
}

/** The serialized signature parameters (the value of Signature-Input after `sig1=`). */
export function signatureParams(created: number, nonce: string, keyId: string): string {
  return `(${COVERED.map((c) => `"${c}"`).join(" ")});created=${created};nonce="${nonce}";keyid="${keyId}";alg="ed25519"`;
}

/** RFC 9421 §2.5 signature base: one line per covered component, then @signature-params. */
export function signatureBase(method: string, path: string, digest: string, params: string): Uint8Array {
  const lines = [
    `"@method": ${method.toUpperCase()}`,
    `"@path": ${path}`,
    `"content-digest": ${digest}`,
    `"@signature-params": ${params}`,
  ];
  return encodeUtf8(lines.join("\n"));
}

export interface SignedHeaders {
  "content-digest": string;
  "signature-input": string;
  signature: string;
}

/** Signs one request with the deployment's federation key; `created` is in seconds. */
export async function signRequest(opts: {
  method: string;
  path: string;
  body: Uint8Array;
  keyId: string;
  privateKey: Key;
  created: number;
}): Promise<SignedHeaders> {
  const digest = await contentDigest(opts.body);
  const nonce = toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
  const params = signatureParams(opts.created, nonce, opts.keyId);
  const base = signatureBase(opts.method, opts.path, digest, params);
  const sig = new Uint8Array(await crypto.subtle.sign("Ed25519", opts.privateKey, base));
  return {
    "content-digest": digest,
    "signature-input": `${SIGNATURE_LABEL}=${params}`,
    signature: `${SIGNATURE_LABEL}=:${toBase64(sig)}:`,
  };
}

export interface ParsedSignature {
  keyId: string;
  created: number;
  /** The raw parameters, exactly as received: they are part of the signed base. */
  params: string;
  signature: Uint8Array;
}

const INPUT_RE =
  /^sig1=(\("@method" "@path" "content-digest"\);created=(\d{1,12});nonce="[A-Za-z0-9_-]{16,64}";keyid="([a-z0-9.-]{1,253})";alg="ed25519")$/;
const SIGNATURE_RE = /^sig1=:([A-Za-z0-9+/]{86}==):$/;

/**
 * Reads the Signature-Input and Signature headers. Only the exact form this deployment sends is
 * accepted (the three components in order, then created, nonce, keyid, alg): anything else is
 * "malformed", so no parser ambiguity can change what was signed.
 */
export function parseSignature(
  input: string | null | undefined,
  signature: string | null | undefined,
): ParsedSignature {
  if (!input || !signature) throw new SignatureRefusal("unsigned", "the request carries no HTTP message signature");
  if (input.length > MAX_HEADER || signature.length > MAX_HEADER) {
    throw new SignatureRefusal("malformed", "signature headers are too long");
  }
  const m = INPUT_RE.exec(input.trim());
  if (!m) {
    throw new SignatureRefusal(
      "malformed",
      `Signature-Input must be sig1=("@method" "@path" "content-digest");created=<secs>;nonce="<base64url>";keyid="<domain>";alg="ed25519"`,
    );
  }
  const s = SIGNATURE_RE.exec(signature.trim());
  if (!s) throw new SignatureRefusal("malformed", "Signature must be sig1=:<base64 Ed25519 signature>:");
  return { params: m[1], created: Number(m[2]), keyId: m[3], signature: base64ToBytes(s[1]) };
}

/** Refuses a created time outside [now - max age, now + skew] (seconds). */
export function checkCreated(created: number, nowSecs: number): void {
  if (created < nowSecs - SIGNATURE_MAX_AGE_SECS) {
    throw new SignatureRefusal("stale", `the signature was created more than ${SIGNATURE_MAX_AGE_SECS} s ago`);
  }
  if (created > nowSecs + SIGNATURE_MAX_FUTURE_SECS) {
    throw new SignatureRefusal("future", "the signature's created time is in the future");
  }
}

/** Checks the body against Content-Digest (constant time; the digest header is the signed one). */
export async function checkDigest(header: string | null | undefined, body: Uint8Array): Promise<string> {
  if (!header) throw new SignatureRefusal("unsigned", "the request carries no Content-Digest");
  const expected = await contentDigest(body);
  if (!timingSafeEqual(await sha256(encodeUtf8(header.trim())), await sha256(encodeUtf8(expected)))) {
    throw new SignatureRefusal("digest-mismatch", "Content-Digest does not match the body");
  }
  return expected;
}

export async function importPeerKey(publicKey: Uint8Array): Promise<Key> {
  return crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
}

/** Verifies a parsed signature over the request; throws "bad-signature" when it does not hold. */
export async function verifySignature(
  parsed: ParsedSignature,
  req: { method: string; path: string; digest: string },
  publicKey: Key,
): Promise<void> {
  const base = signatureBase(req.method, req.path, req.digest, parsed.params);
  const ok = await crypto.subtle.verify("Ed25519", publicKey, parsed.signature, base).catch(() => false);
  if (!ok) throw new SignatureRefusal("bad-signature", "the signature does not verify under the peer's key");
}

/** What the replay cache stores: SHA-256 of the signature (the same request re-sent has the same one). */
export async function replayKey(parsed: ParsedSignature): Promise<Uint8Array> {
  return sha256(concatBytes(encodeUtf8(parsed.keyId), Uint8Array.of(0), parsed.signature));
}
