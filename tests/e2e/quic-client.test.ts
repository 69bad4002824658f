// The lean QUIC client (quic-front/quic/client.ts) against the front on the lean driver: RPCs
// with their FIN on the last bytes, many at once, the SDK's client logic over it, CA pinning.
import { afterEach, describe, expect, it } from "vitest";
import { Method, Status, pb } from "../../proto/index.ts";
import { generateDevCa } from "../../quic-front/cert.ts";
import { LeanQuicClient } from "../../quic-front/quic/client.ts";
import { QpqClient } from "../../sdk/client.ts";
import { startTestFront, type TestFront } from "../support/quic-front.ts";

let front: TestFront | undefined;
const clients: LeanQuicClient[] = [];
afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  await front?.stop();
  front = undefined;
});

describe("lean QUIC client", () => {
  it("runs 500 RPCs at once on one connection, each with its own answer", { timeout: 120_000 }, async () => {
    front = await startTestFront({ edge: (call) => ({ payload: call.body }) });
    const c = await LeanQuicClient.connect({ host: "127.0.0.1", port: front.port, ca: front.certPem });
    clients.push(c);
    const answers = await Promise.all(
      Array.from({ length: 500 }, (_, i) => c.request(Method.Health, Uint8Array.of(i >> 8, i & 255))),
    );
    answers.forEach((a, i) => {
      expect(a.status).toBe(Status.Ok);
      expect([...a.payload]).toEqual([i >> 8, i & 255]);
    });
  });

  it("carries the SDK's client", { timeout: 60_000 }, async () => {
    const health = pb.HealthResponse.encode({ status: "ok" }).finish();
    front = await startTestFront({ edge: (call) => (call.methodId === Method.Health ? { payload: health } : {}) });
    const c = await LeanQuicClient.connect({ host: "127.0.0.1", port: front.port, ca: front.certPem });
    clients.push(c);
    expect((await new QpqClient(c).health()).status).toBe("ok");
  });

  it("refuses a server whose certificate the pinned CA did not sign", { timeout: 60_000 }, async () => {
    front = await startTestFront();
    const other = await generateDevCa();
    await expect(
      LeanQuicClient.connect({ host: "127.0.0.1", port: front.port, ca: other.caPem, connectTimeoutMs: 20_000 }),
    ).rejects.toThrow();
    expect(front.gateway.openConnections).toBe(0);
  });
});
