// sender-rate-limit: at most MAX_MESSAGES messages per sender in any WINDOW_MS window (sliding).
//
// The sender is the sender identity key; in sealed-sender mode (no identity on the message) it
// is the client's IP address. A BatchEnqueue (one payload for several recipients) counts as one
// message. The state lives in this
// plugin's isolate: it is lost when the plugin is reloaded, when a call fails (the isolate is
// rebuilt) or when the plugin host restarts — a rate limit, not an accounting system.
//
// Configure: edit the constants below.

const MAX_MESSAGES = 30;
const WINDOW_MS = 10_000;
/** Senders tracked at once; beyond this the least recently active ones are forgotten. */
const MAX_SENDERS = 20_000;

export const manifest = {
  name: "sender-rate-limit",
  version: "1.0.0",
  hooks: ["on_message_send"],
};

// sender key → timestamps (ms) of its recent accepted messages, oldest first (at most MAX_MESSAGES).
// Map order is "least recently active first": a sender is re-inserted on every message.
const windows = new Map();

function senderKey(event) {
  if (event.senderIdentity) return "id:" + event.senderIdentity;
  // "1.2.3.4:5678" → "1.2.3.4"; "[2001:db8::1]:5678" → "2001:db8::1"
  const a = event.clientAddress;
  const colon = a.lastIndexOf(":");
  const ip = a.startsWith("[")
    ? a.slice(1, a.indexOf("]"))
    : colon > 0 && a.indexOf(":") === colon
      ? a.slice(0, colon)
      : a;
  return "ip:" + ip;
}

export function on_message_send(event) {
  const now = event.time;
  const key = senderKey(event);
  const times = windows.get(key) ?? [];
  while (times.length > 0 && times[0] <= now - WINDOW_MS) times.shift();
  windows.delete(key);
  windows.set(key, times);
  if (windows.size > MAX_SENDERS) windows.delete(windows.keys().next().value);

  if (times.length >= MAX_MESSAGES) {
    const retryInS = Math.max(1, Math.ceil((times[0] + WINDOW_MS - now) / 1000));
    return { reject: `rate limit: at most ${MAX_MESSAGES} messages per ${WINDOW_MS / 1000} s; retry in ${retryInS} s` };
  }
  times.push(now);
}
