import { afterAll, beforeAll, expect, test } from "vitest";
import { fileURLToPath } from "node:url";
import { PluginHost } from "../host/index.ts";
import { HOST_TEST_TIMEOUT_MS, memoryLogger, sampleEvent } from "../host/test-support.ts";

let host: PluginHost;
beforeAll(async () => {
  host = await PluginHost.start({
    files: [fileURLToPath(new URL("./sender-rate-limit.js", import.meta.url))],
    logger: memoryLogger(),
  });
}, HOST_TEST_TIMEOUT_MS);
afterAll(() => host?.stop());

const T0 = 1_700_000_000_000;
const ALICE = "aa".repeat(32);
const BOB = "bb".repeat(32);
const send = (over: Parameters<typeof sampleEvent<"on_message_send">>[1]) =>
  host.call("on_message_send", sampleEvent("on_message_send", over));

test(
  "30 messages per sender per 10 s sliding window; state is kept in the plugin",
  async () => {
    for (let i = 0; i < 30; i++)
      expect(await send({ senderIdentity: ALICE, time: T0 + i * 100 })).toEqual({ allow: true });
    expect(await send({ senderIdentity: ALICE, time: T0 + 3_000 })).toEqual({
      allow: false,
      plugin: "sender-rate-limit",
      reason: "rate limit: at most 30 messages per 10 s; retry in 7 s",
    });
    // another sender is not affected
    expect(await send({ senderIdentity: BOB, time: T0 + 3_000 })).toEqual({ allow: true });
    // the window slides: the first message (T0) leaves it at T0 + 10 s, the second at T0 + 10.1 s
    expect(await send({ senderIdentity: ALICE, time: T0 + 10_000 })).toEqual({ allow: true });
    expect(await send({ senderIdentity: ALICE, time: T0 + 10_050 })).toMatchObject({ allow: false });
    expect(await send({ senderIdentity: ALICE, time: T0 + 10_100 })).toEqual({ allow: true });
    // rejected messages do not count
    expect(await send({ senderIdentity: ALICE, time: T0 + 20_100 })).toEqual({ allow: true });
  },
  HOST_TEST_TIMEOUT_MS,
);

test(
  "sealed sender: limited per client IP, whatever the port",
  async () => {
    const t = T0 + 100_000;
    for (let i = 0; i < 30; i++)
      expect(await send({ senderIdentity: undefined, clientAddress: `203.0.113.9:${1000 + i}`, time: t })).toEqual({
        allow: true,
      });
    expect(await send({ senderIdentity: undefined, clientAddress: "203.0.113.9:2000", time: t })).toMatchObject({
      allow: false,
    });
    expect(await send({ senderIdentity: undefined, clientAddress: "[2001:db8::9]:2000", time: t })).toEqual({
      allow: true,
    });
    expect(await send({ senderIdentity: undefined, clientAddress: "203.0.113.10:2000", time: t })).toEqual({
      allow: true,
    });
  },
  HOST_TEST_TIMEOUT_MS,
);
