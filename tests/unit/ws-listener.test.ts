// The WebSocket bridge in front of a real Gateway and the test edge: requests in flight per
// socket are bounded like QUIC streams (the socket is not read beyond the limit), and answers
// still arrive once the edge catches up.
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { Method, Status, decodeResponse, encodeRequest, type ResponseFrame } from "../../proto/index.ts";
import { silentLogger } from "../../proto/util/log.ts";
import type { Gateway } from "../../quic-front/gateway.ts";
import { WsListener } from "../../quic-front/ws-listener.ts";
import { WsKind } from "../../proto/index.ts";
import { gate } from "./support/test-edge.ts";
import { onCleanup, runCleanups, start } from "./support/gateway-harness.ts";

afterEach(runCleanups);

async function bridge(gw: Gateway) {
  const listener = new WsListener(gw, silentLogger);
  await listener.start("127.0.0.1", 0);
  onCleanup(() => listener.stop());
  const ws = new WebSocket(`ws://127.0.0.1:${listener.port}/qpq`, "qpq");
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  onCleanup(async () => ws.terminate());
  const answers: ResponseFrame[] = [];
  ws.on("message", (data: Buffer) => {
    if (data[0] !== WsKind.Response) return;
    const res = decodeResponse(new Uint8Array(data.subarray(1)));
    if (!(res instanceof Error)) answers.push(res);
  });
  return { ws, answers };
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}

describe("WebSocket bridge", () => {
  it("has at most maxStreamsPerConnection requests of one socket in flight, and answers the rest later", async () => {
    const release = gate<void>();
    onCleanup(async () => release.open());
    const { gw, edge } = await start({
      config: { maxStreamsPerConnection: 2 },
      edge: async () => {
        await release.promise;
        return {};
      },
    });
    const { ws, answers } = await bridge(gw);
    for (let id = 1; id <= 2; id++) ws.send(encodeRequest(Method.Health, id, new Uint8Array(0)));
    await edge.received(Method.Health, 2);
    // At the limit the socket is not read: these stay in the kernel's buffers.
    for (let id = 3; id <= 6; id++) ws.send(encodeRequest(Method.Health, id, new Uint8Array(0)));
    await new Promise((r) => setTimeout(r, 100));
    expect(edge.callsTo(Method.Health)).toHaveLength(2);

    release.open();
    await until(() => answers.length === 6);
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(Status.Ok));
    expect(answers.map((a) => a.requestId).sort()).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
