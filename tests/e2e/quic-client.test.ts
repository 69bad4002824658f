// The lean QUIC client (quic/client.ts) against the front on the lean driver: RPCs
// with their FIN on the last bytes, many at once, the SDK's client logic over it, CA pinning.
import { afterEach, describe, expect, it, vi } from "vitest";
import { Method, PushEvent, Status, encodePush, pb, type PushFrame } from "../../proto/index.ts";
import type { ClientConnection } from "../../quic-front/gateway.ts";
import { LeanQuicListener } from "../../quic-front/quic/listener.ts";
import { generateDevCa } from "../../quic-front/cert.ts";
import { LeanQuicClient } from "../../quic/client.ts";
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
  it(
    "receives pushes; pushes of one event-loop turn leave the server in one send pass",
    { timeout: 60_000 },
    async () => {
      front = await startTestFront();
      const listener = front.listener as LeanQuicListener;
      const c = await LeanQuicClient.connect({ host: "127.0.0.1", port: front.port, ca: front.certPem });
      clients.push(c);
      const got: PushFrame[] = [];
      c.onPush((f) => got.push(f));
      // The gateway's one connection (private to it: this test reaches in to push directly).
      const conns = (front.gateway as unknown as { connections: Map<string, ClientConnection> }).connections;
      await vi.waitFor(() => expect(conns.size).toBe(1), { timeout: 30_000 });
      const conn = [...conns.values()][0];
      await vi.waitFor(() => expect(listener.stats.datagramsIn).toBeGreaterThan(0));
      // Quiet first: nothing else in flight between the two counts.
      await new Promise((r) => setTimeout(r, 200));
      const before = { ...listener.stats };
      await Promise.all(
        Array.from({ length: 5 }, (_, i) => conn.sendPush(encodePush(PushEvent.NewMessage, Uint8Array.of(i)))),
      );
      await vi.waitFor(() => expect(got).toHaveLength(5), { timeout: 30_000 });
      expect(got.map((f) => f.payload[0]).sort()).toEqual([0, 1, 2, 3, 4]);
      // One send pass for all five (quiche puts one stream frame in a packet: one datagram each).
      expect(listener.stats.sends - before.sends).toBe(1);
      expect(listener.stats.datagramsOut - before.datagramsOut).toBe(5);
    },
  );
});
