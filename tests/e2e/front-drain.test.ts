// Stopping the front (SIGTERM's path) while clients hold 60 s FetchWaits: the waits are answered
// at once with nothing, and the whole stop takes far less than the drain timeout.
import { describe, it, expect } from "vitest";
import { rmSync } from "node:fs";
import { QpqClient } from "../../sdk/client.ts";
import { startTestSystem, randomIdentity, uniqueName } from "../support/system.ts";

describe("front drain", () => {
  it("answers waiting FetchWaits (QUIC and WebSocket) with Ok and no envelopes, and stops within the drain timeout", async () => {
    const sys = await startTestSystem({ env: { QPQ_WS_LISTEN: "127.0.0.1:0", QPQ_DRAIN_TIMEOUT: "20s" } });
    const quic = await sys.connect();
    const ws = await QpqClient.connectWebSocket(sys.system.front.wsUrl as string);
    try {
      const name = uniqueName("drain");
      const key = randomIdentity();
      expect(await quic.register(name, "pw-drain", key)).toBe(true);
      const token = await quic.login(name, "pw-drain", key);
      await ws.resume(token);

      const waits = [quic.fetchWait({ timeoutMs: 60_000 }), ws.fetchWait({ timeoutMs: 60_000 })];
      const front = sys.system.front;
      while (front.gateway.waitingFetches < 2) await new Promise((r) => setTimeout(r, 10));

      const started = Date.now();
      await sys.system.stop();
      const elapsed = Date.now() - started;

      expect(await Promise.all(waits)).toEqual([[], []]);
      // Without the drain answering them, the stop would wait the full 20 s drain timeout.
      expect(elapsed).toBeLessThan(20_000);
    } finally {
      await Promise.allSettled([quic.close(), ws.close()]);
      rmSync(sys.dataDir, { recursive: true, force: true });
    }
  });
});
