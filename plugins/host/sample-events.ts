// A valid event for each hook, with overridable fields: for plugin tests (through
// test-support.ts), the generated plugin tests and the hook benchmark.
import type { HookEvent, HookName } from "../api/index.ts";

const KEY_A = "a1".repeat(32);
const KEY_B = "b2".repeat(32);
const CHANNEL = "c3".repeat(16);

/** A valid sample event for each hook; override fields as needed. */
export function sampleEvent<H extends HookName>(hook: H, over: Partial<HookEvent<H>> = {}): HookEvent<H> {
  const time = Date.now();
  const base: { [K in HookName]: HookEvent<K> } = {
    on_connect: { connectionId: "conn-1", clientAddress: "127.0.0.1:50000", alpn: "qpq", transport: "quic", time },
    on_disconnect: {
      connectionId: "conn-1",
      clientAddress: "127.0.0.1:50000",
      transport: "quic",
      time,
      durationMs: 1234,
      reason: "client closed",
    },
    on_message_send: {
      connectionId: "conn-1",
      clientAddress: "127.0.0.1:50000",
      senderIdentity: KEY_A,
      recipients: [KEY_B],
      channelId: CHANNEL,
      payloadSize: 100,
      ttlSecs: 3600,
      messageId: "0f".repeat(16),
      batch: false,
      time,
    },
    on_message_receive: {
      connectionId: "conn-1",
      recipient: KEY_B,
      deviceId: "d4".repeat(16),
      channelId: CHANNEL,
      count: 2,
      sizes: [100, 200],
      wait: false,
      time,
    },
    on_group_join: { channelId: CHANNEL, member: KEY_B, actor: KEY_A, time },
    on_group_leave: { channelId: CHANNEL, member: KEY_B, actor: KEY_A, time },
  };
  return { ...base[hook], ...over };
}
