// The front ⇄ edge relay contract (docs/protocol.md): one HTTP POST /rpc/<method id> per RPC,
// the raw protobuf payload as body, the wire status in a header. Shared by quic-front and edge.
export const RelayHeader = {
  /** The front secret; the edge compares digests in constant time. */
  frontAuth: "x-qpq-front-auth",
  requestId: "x-qpq-request-id",
  /** Client address as seen by the front (trusted because the front authenticated itself). */
  clientAddr: "x-qpq-client-addr",
  /** Stable id of the client connection; scopes pending OPAQUE logins. */
  connection: "x-qpq-connection",
  /** Caller assertion minted by the edge at login/resume. */
  caller: "x-qpq-caller",
  status: "x-qpq-status",
  retryAfter: "x-qpq-retry-after-ms",
  /** Set on a successful login/resume: see SessionGrant. */
  session: "x-qpq-session",
  /**
   * Sealed-sender mode only, on Enqueue/BatchEnqueue: the front's tag for the sending client
   * address (32 hex), which the recipient's queue keys quotas and idempotency on instead of the
   * sender's identity (docs/protocol.md, "Sealed sender"). An edge refuses a mismatch either way.
   */
  sealedSender: "x-qpq-sealed-sender",
  /** Set on Enqueue: the recipient's pending messages afterwards (metrics only). */
  queueDepth: "x-qpq-queue-depth",
} as const;

/** What the edge tells the front when a login or resume bound a session to the connection. */
export interface SessionGrant {
  assertion: string;
  identityKeyHex: string;
  sessionExpiresAt: number;
  assertionExpiresAt: number;
}

export function formatSessionGrant(g: SessionGrant): string {
  return `${g.assertion};${g.identityKeyHex};${g.sessionExpiresAt};${g.assertionExpiresAt}`;
}

export function parseSessionGrant(header: string | undefined): SessionGrant | undefined {
  if (typeof header !== "string") return undefined;
  const [assertion, identityKeyHex, sessionExp, assertionExp] = header.split(";");
  const sessionExpiresAt = Number(sessionExp);
  const assertionExpiresAt = Number(assertionExp);
  if (
    !assertion ||
    !identityKeyHex ||
    !Number.isSafeInteger(sessionExpiresAt) ||
    !Number.isSafeInteger(assertionExpiresAt)
  ) {
    return undefined;
  }
  return { assertion, identityKeyHex, sessionExpiresAt, assertionExpiresAt };
}

/**
 * The device a caller assertion names (`v1.<identity hex>.<device hex>.<expiry>.<mac>`, minted
 * by the edge), or undefined when it is not in that shape. The front reads it only to match
 * revocation signals; the edge alone verifies assertions.
 */
export function assertionDeviceHex(assertion: string): string | undefined {
  const parts = assertion.split(".");
  return parts.length === 5 && parts[0] === "v1" && /^(?:[0-9a-f]{2})*$/.test(parts[2]) ? parts[2] : undefined;
}

/**
 * Session signals a RecipientQueue sends its push subscribers (the fronts) as WebSocket text
 * frames, beside the binary PushNewMessage events: a device was revoked, or the account was
 * deleted. A front then unbinds the matching sessions at once instead of at their next call.
 */
export type SessionSignal = { revokedDevice: string } | { accountDeleted: true } | { banned: true };

export function formatSessionSignal(s: SessionSignal): string {
  return JSON.stringify(s);
}

/** Parses a signal; anything else (unknown kinds, malformed JSON) is undefined and ignored. */
export function parseSessionSignal(text: string): SessionSignal | undefined {
  if (text.length > 512) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.revokedDevice === "string" && /^(?:[0-9a-f]{2}){0,64}$/.test(v.revokedDevice)) {
    return { revokedDevice: v.revokedDevice };
  }
  if (v.accountDeleted === true) return { accountDeleted: true };
  if (v.banned === true) return { banned: true };
  return undefined;
}

/**
 * Binary frames on the push subscription: a bare PushNewMessage (protobuf, whose first byte is a
 * field tag and never 0), or a non-stored event (typing, presence, membership) framed as
 * [0x00][u16 event id, big-endian][protobuf].
 */
export function formatQueueEvent(eventId: number, event: Uint8Array): Uint8Array {
  const out = new Uint8Array(3 + event.length);
  out[0] = 0;
  out[1] = eventId >> 8;
  out[2] = eventId & 0xff;
  out.set(event, 3);
  return out;
}

/** A framed event's id and body, or undefined for a bare PushNewMessage. */
export function parseQueueEvent(frame: Uint8Array): { eventId: number; event: Uint8Array } | undefined {
  if (frame.length < 3 || frame[0] !== 0) return undefined;
  return { eventId: (frame[1] << 8) | frame[2], event: frame.subarray(3) };
}
