import { afterAll, beforeAll, expect, test } from "vitest";
import { fileURLToPath } from "node:url";
import { PluginHost } from "../host/index.ts";
import { HOST_TEST_TIMEOUT_MS, memoryLogger, sampleEvent } from "../host/test-support.ts";

let host: PluginHost;
const log = memoryLogger();
beforeAll(async () => {
  host = await PluginHost.start({
    files: [fileURLToPath(new URL("./membership-audit.js", import.meta.url))],
    logger: log,
  });
}, HOST_TEST_TIMEOUT_MS);
afterAll(() => host?.stop());

const CH = "c3".repeat(16);
const ALICE = "aa".repeat(32);
const BOB = "bb".repeat(32);

test(
  "one audit line per join and leave; never refuses; fail-open",
  async () => {
    expect(host.plugins[0]).toMatchObject({ name: "membership-audit", hooks: ["on_group_join", "on_group_leave"] });
    expect(host.plugins[0].failPolicy).toMatchObject({ on_group_join: "open", on_group_leave: "open" });
    const time = Date.UTC(2026, 0, 2, 3, 4, 5);
    expect(
      await host.call(
        "on_group_join",
        sampleEvent("on_group_join", { channelId: CH, member: BOB, actor: ALICE, time }),
      ),
    ).toEqual({ allow: true });
    expect(
      await host.call(
        "on_group_leave",
        sampleEvent("on_group_leave", { channelId: CH, member: BOB, actor: BOB, time: time + 1000 }),
      ),
    ).toEqual({ allow: true });
    expect(log.find("plugin log").map((r) => r.fields)).toEqual([
      {
        plugin: "membership-audit",
        line: `group-join channel=${CH} member=${BOB} actor=${ALICE} at=2026-01-02T03:04:05.000Z`,
      },
      {
        plugin: "membership-audit",
        line: `group-leave channel=${CH} member=${BOB} actor=${BOB} at=2026-01-02T03:04:06.000Z`,
      },
    ]);
  },
  HOST_TEST_TIMEOUT_MS,
);
