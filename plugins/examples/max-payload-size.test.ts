import { afterAll, beforeAll, expect, test } from "vitest";
import { fileURLToPath } from "node:url";
import { PluginHost } from "../host/index.ts";
import { HOST_TEST_TIMEOUT_MS, memoryLogger, sampleEvent } from "../host/test-support.ts";

let host: PluginHost;
const log = memoryLogger();
beforeAll(async () => {
  host = await PluginHost.start({
    files: [fileURLToPath(new URL("./max-payload-size.js", import.meta.url))],
    logger: log,
  });
}, HOST_TEST_TIMEOUT_MS);
afterAll(() => host?.stop());

test("loads with only on_message_send active", () => {
  expect(host.plugins).toMatchObject([{ name: "max-payload-size", version: "1.0.0", hooks: ["on_message_send"] }]);
  expect(host.has("on_message_send")).toBe(true);
  expect(host.has("on_connect")).toBe(false);
});

test(
  "allows up to 64 KiB, rejects above with the size in the reason",
  async () => {
    const send = (payloadSize: number) => host.call("on_message_send", sampleEvent("on_message_send", { payloadSize }));
    expect(await send(0)).toEqual({ allow: true });
    expect(await send(65_536)).toEqual({ allow: true });
    expect(await send(65_537)).toEqual({
      allow: false,
      plugin: "max-payload-size",
      reason: "message of 65537 bytes exceeds the limit of 65536 bytes",
    });
    expect(await send(4 * 1024 * 1024)).toMatchObject({ allow: false });
    expect(log.find("plugin rejected")).toHaveLength(2);
  },
  HOST_TEST_TIMEOUT_MS,
);
