// Blobs, recovery and P2P endpoints through the WebSocket bridge (same frames as QUIC): a
// multi-chunk blob round-trips, a recovery bundle is fetched before login, an endpoint resolves.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { randomFillSync } from "node:crypto";
import { BLOB_CHUNK_BYTES } from "../../proto/wire/limits.ts";
import { QpqClient } from "../../sdk/client.ts";
import { bytesSource } from "../../sdk/blob.ts";
import { newRecoveryToken } from "../../sdk/recovery.ts";
import { randomIdentity, startTestSystem, uniqueName, type TestSystem } from "../support/system.ts";

describe("blobs, recovery and endpoints over the WebSocket bridge", () => {
  let sys: TestSystem;
  let url: string;
  const clients: QpqClient[] = [];

  beforeAll(async () => {
    sys = await startTestSystem({ env: { QPQ_WS_LISTEN: "127.0.0.1:0" } });
    url = sys.system.front.wsUrl as string;
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await sys?.stop();
  });

  async function connect() {
    const c = await QpqClient.connectWebSocket(url);
    clients.push(c);
    return c;
  }

  it("does all three", async () => {
    const alice = await connect();
    const key = randomIdentity();
    const name = uniqueName("wsstore");
    await alice.register(name, "pw", key);
    await alice.login(name, "pw", key);

    const data = randomFillSync(new Uint8Array(2 * BLOB_CHUNK_BYTES + 5));
    const { hash } = await alice.blobs.put(bytesSource(data));
    expect(Buffer.compare(await alice.blobs.getBytes(hash), data)).toBe(0);

    const token = newRecoveryToken();
    await alice.recovery.store(token, new TextEncoder().encode("keys"));
    const stranger = await connect();
    expect(new TextDecoder().decode(await stranger.recovery.fetch(token))).toBe("keys");

    await alice.p2p.publish(new TextEncoder().encode("udp://198.51.100.1:1"), 60);
    expect(new TextDecoder().decode((await alice.p2p.resolve(key)).address)).toBe("udp://198.51.100.1:1");
  });
});
