// Key-transparency log entries: a versioned binary encoding (docs/protocol.md, "Key
// transparency"). The leaf hash covers exactly these bytes, so the layout never changes for a
// version; a new layout gets a new version byte.
//
//   version   u8   = 1
//   kind      u8   1 binding, 2 revocation
//   reason    u8   0 for a binding; 1 compromised, 2 superseded, 3 user_revoked, 4 account_deleted
//   time_ms   u64  big-endian, server time the entry was appended
//   key       32   the Ed25519 identity key
//   name_len  u16  big-endian, 1-256
//   name      UTF-8 canonical username (the server's UsernameCaseMapped form)

import { encodeUtf8 } from "../util/text.ts";

export const ENTRY_VERSION = 1;
const HEADER = 1 + 1 + 1 + 8 + 32 + 2;
const KEY_BYTES = 32;
/** 64 characters of at most 4 UTF-8 bytes each. */
export const MAX_NAME_BYTES = 256;
export const MAX_ENTRY_BYTES = HEADER + MAX_NAME_BYTES;

export const REVOCATION_REASONS = ["compromised", "superseded", "user_revoked", "account_deleted"] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

export type LogEntry =
  | { kind: "binding"; username: string; identityKey: Uint8Array; timeMs: number }
  | { kind: "revocation"; username: string; identityKey: Uint8Array; timeMs: number; reason: RevocationReason };

export class EntryFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EntryFormatError";
  }
}

export function isRevocationReason(value: string): value is RevocationReason {
  return (REVOCATION_REASONS as readonly string[]).includes(value);
}

// ignoreBOM keeps a leading U+FEFF as a character: two byte strings never decode to one name.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function encodeEntry(entry: LogEntry): Uint8Array {
  const name = encodeUtf8(entry.username);
  if (name.length < 1 || name.length > MAX_NAME_BYTES)
    throw new EntryFormatError(`username must be 1-${MAX_NAME_BYTES} UTF-8 bytes`);
  if (entry.identityKey.length !== KEY_BYTES) throw new EntryFormatError(`identity key must be ${KEY_BYTES} bytes`);
  if (!Number.isSafeInteger(entry.timeMs) || entry.timeMs < 0)
    throw new EntryFormatError("time must be a non-negative integer");
  const out = new Uint8Array(HEADER + name.length);
  const view = new DataView(out.buffer);
  out[0] = ENTRY_VERSION;
  out[1] = entry.kind === "binding" ? 1 : 2;
  out[2] = entry.kind === "binding" ? 0 : REVOCATION_REASONS.indexOf(entry.reason) + 1;
  view.setBigUint64(3, BigInt(entry.timeMs));
  out.set(entry.identityKey, 11);
  view.setUint16(43, name.length);
  out.set(name, HEADER);
  return out;
}

/** Strict: any byte that is not exactly what encodeEntry would write is an EntryFormatError. */
export function decodeEntry(bytes: Uint8Array): LogEntry {
  if (bytes.length < HEADER + 1) throw new EntryFormatError(`entry too short (${bytes.length} bytes)`);
  if (bytes[0] !== ENTRY_VERSION) throw new EntryFormatError(`unknown entry version ${bytes[0]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const time = view.getBigUint64(3);
  if (time > BigInt(Number.MAX_SAFE_INTEGER)) throw new EntryFormatError("entry time out of range");
  const nameLength = view.getUint16(43);
  if (nameLength < 1 || nameLength > MAX_NAME_BYTES || bytes.length !== HEADER + nameLength) {
    throw new EntryFormatError("entry length does not match its username length");
  }
  let username: string;
  try {
    username = decoder.decode(bytes.subarray(HEADER));
  } catch {
    throw new EntryFormatError("entry username is not UTF-8");
  }
  const identityKey = bytes.slice(11, 11 + KEY_BYTES);
  const timeMs = Number(time);
  const [kind, reason] = [bytes[1], bytes[2]];
  if (kind === 1 && reason === 0) return { kind: "binding", username, identityKey, timeMs };
  if (kind === 2 && reason >= 1 && reason <= REVOCATION_REASONS.length) {
    return { kind: "revocation", username, identityKey, timeMs, reason: REVOCATION_REASONS[reason - 1] };
  }
  throw new EntryFormatError(`unknown entry kind ${kind} with reason ${reason}`);
}

// RFC 8265 §3.4.1 width mapping, case mapping and NFC: the part of the server's username
// profile (edge/lib/validate.ts) that makes two spellings one name, so a client can check that
// a logged binding is for the name it asked about.
const WIDTH_FORMS = /[\u20a9\u3000\uff01-\uffee]/gu;

export function canonicalUsername(name: string): string {
  return name
    .replace(WIDTH_FORMS, (c) => c.normalize("NFKC"))
    .toLowerCase()
    .normalize("NFC");
}
