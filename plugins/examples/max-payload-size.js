// max-payload-size: refuses messages whose ciphertext is larger than MAX_PAYLOAD_BYTES.
//
// The front already enforces the protocol's hard frame limit; this plugin lets an operator set a
// lower ceiling (for example to keep queues and push notifications small). The client gets
// Forbidden with the reason below and nothing is stored.
//
// Configure: edit MAX_PAYLOAD_BYTES, save; with a watched plugin directory the next message sees
// the new value.

const MAX_PAYLOAD_BYTES = 64 * 1024;

export const manifest = {
  name: "max-payload-size",
  version: "1.0.0",
  hooks: ["on_message_send"],
};

export function on_message_send(event) {
  if (event.payloadSize > MAX_PAYLOAD_BYTES) {
    return { reject: `message of ${event.payloadSize} bytes exceeds the limit of ${MAX_PAYLOAD_BYTES} bytes` };
  }
}
