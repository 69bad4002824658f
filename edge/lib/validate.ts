// Input rules that apply to every method (methods.md, "Validation that applies everywhere").
// Each failure is a BadRequest whose message names the field and what was seen.
import { MAX_DELIVERY_PAYLOAD, badRequest } from "../../proto/index.ts";
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

/**
 * Delivery payloads: non-empty and at most MAX_DELIVERY_PAYLOAD, the largest payload a Fetch
 * reply can still carry in one frame. Larger ones could be stored but never delivered.
 */
export function payload(value: Uint8Array, field = "payload"): Uint8Array {
  payloadSize(value.length, field);
  return value;
}

export function payloadSize(length: number, field = "payload"): number {
  if (length === 0) throw badRequest(`${field} must not be empty`);
  if (length > MAX_DELIVERY_PAYLOAD) {
    throw badRequest(
      `${field} must be at most ${MAX_DELIVERY_PAYLOAD} bytes (what one response frame can deliver), got ${length}`,
    );
  }
  return length;
}

export function keyPackage(value: Uint8Array): Uint8Array {
  if (value.length === 0 || value.length > LIMITS.keyPackageMax) {
    throw badRequest(`package must be 1-${LIMITS.keyPackageMax} bytes, got ${value.length}`);
  }
  return value;
}

// The username profile, based on RFC 8265 UsernameCaseMapped (docs/protocol.md, "Usernames"):
// fullwidth/halfwidth forms mapped to their plain forms, lowercased, NFC; then 1-64 characters and
// none of the characters below. Each rule is checked on the mapped name, so "Alice", "ALICE" and
// "ａｌｉｃｅ" are one account and nothing invisible or direction-changing can make two names
// look alike. Unicode property escapes use the runtime's Unicode version.
const USERNAME_RULES: readonly (readonly [RegExp, string])[] = [
  [/\p{Cc}/u, "control characters"],
  [/\p{Cf}/u, "format characters (zero-width, bidi and other invisible controls)"],
  [/\p{Cs}/u, "unpaired surrogates"],
  [/\p{Co}/u, "private-use characters"],
  [/\p{Cn}/u, "unassigned code points"],
  [/\p{Z}/u, "spaces or separators"],
  [/\p{Default_Ignorable_Code_Point}/u, "invisible (default-ignorable) characters"],
  [/@/u, "'@' (reserved for name@domain)"],
];

// RFC 8265 §3.4.1 width mapping: characters with a <wide> or <narrow> decomposition (U+20A9,
// U+3000, U+FF01-U+FFEE) map to it; NFKC of one such character is exactly that.
const WIDTH_FORMS = /[\u20a9\u3000\uff01-\uffee]/gu;

function codePoint(char: string): string {
  return `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

/** The canonical form of a username (what is stored and compared), or BadRequest naming the rule. */
export function username(value: string): string {
  const name = value
    .replace(WIDTH_FORMS, (c) => c.normalize("NFKC"))
    .toLowerCase()
    .normalize("NFC");
  const chars = [...name].length;
  if (chars < 1 || chars > LIMITS.usernameMax) {
    throw badRequest(`username must be 1-${LIMITS.usernameMax} characters, got ${chars}`);
  }
  for (const [rule, what] of USERNAME_RULES) {
    const found = rule.exec(name);
    if (found)
      throw badRequest(
        `username must not contain ${what}: ${codePoint(found[0])} at character ${[...name.slice(0, found.index)].length + 1}`,
      );
  }
  return name;
}

/** 0 means the server default; anything else is capped. */
export function fetchLimit(value: number): number {
  if (value === 0) return LIMITS.fetchDefault;
  return Math.min(value, LIMITS.fetchMax);
}
