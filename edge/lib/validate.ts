// Input rules that apply to every method (methods.md, "Validation that applies everywhere").
// Each failure is a BadRequest whose message names the field and what was seen.
import { badRequest } from "../../proto/index.ts";
import { LIMITS } from "./limits.ts";

export function identityKey(value: Uint8Array, field: string): Uint8Array {
  if (value.length !== LIMITS.identityKey) {
    throw badRequest(`${field} must be ${LIMITS.identityKey} bytes, got ${value.length}`);
  }
  return value;
}

export function channelId(value: Uint8Array, field = "channel_id"): Uint8Array {
  if (value.length > LIMITS.channelIdMax) {
    throw badRequest(`${field} must be empty or 1-${LIMITS.channelIdMax} bytes, got ${value.length}`);
  }
  return value;
}

export function messageId(value: Uint8Array): Uint8Array {
  if (value.length !== 0 && value.length !== LIMITS.messageId) {
    throw badRequest(`message_id must be empty or ${LIMITS.messageId} bytes, got ${value.length}`);
  }
  return value;
}

export function deviceId(value: Uint8Array, field = "device_id"): Uint8Array {
  if (value.length > LIMITS.deviceIdMax) {
    throw badRequest(`${field} must be empty or 1-${LIMITS.deviceIdMax} bytes, got ${value.length}`);
  }
  return value;
}

export function payload(value: Uint8Array, field = "payload"): Uint8Array {
  if (value.length === 0) throw badRequest(`${field} must not be empty`);
  return value; // the 4 MiB frame limit bounds it from above
}

export function keyPackage(value: Uint8Array): Uint8Array {
  if (value.length === 0 || value.length > LIMITS.keyPackageMax) {
    throw badRequest(`package must be 1-${LIMITS.keyPackageMax} bytes, got ${value.length}`);
  }
  return value;
}

export function hybridKey(value: Uint8Array): Uint8Array {
  if (value.length !== LIMITS.hybridKey) {
    throw badRequest(`hybrid_public_key must be ${LIMITS.hybridKey} bytes (X25519 32 + ML-KEM-768 1184), got ${value.length}`);
  }
  return value;
}

// Control characters (C0, DEL, C1) and the Unicode line/paragraph separators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;

/** NFC-normalised username of 1-64 characters without control characters. */
export function username(value: string): string {
  const name = value.normalize("NFC");
  const chars = [...name].length;
  if (chars < 1 || chars > LIMITS.usernameMax) {
    throw badRequest(`username must be 1-${LIMITS.usernameMax} characters, got ${chars}`);
  }
  if (CONTROL.test(name)) throw badRequest("username must not contain control characters");
  if (name.includes("@")) throw badRequest("username must not contain '@' (reserved for name@domain)");
  return name;
}

/** 0 means the server default; anything else is capped. */
export function fetchLimit(value: number): number {
  if (value === 0) return LIMITS.fetchDefault;
  return Math.min(value, LIMITS.fetchMax);
}
