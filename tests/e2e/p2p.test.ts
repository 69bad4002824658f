// P2P endpoints over QUIC: a peer resolves a published endpoint, and once its lifetime is over
// the endpoint is no longer resolved (the server's clock, not a cleanup run, decides).
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { startTestSystem, type TestSystem } from "../support/system.ts";
import { registerAndLogin } from "../support/users.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

describe("P2P endpoints over QUIC", () => {
  let sys: TestSystem;

  beforeAll(async () => {
    sys = await startTestSystem();
  });

  afterAll(async () => {
    await sys?.stop();
  });

  const user = async (prefix: string) => registerAndLogin(await sys.connect(), prefix);

  it("resolves a published endpoint until it expires, then never again", async () => {
    const [alice, bob] = [await user("p2pa"), await user("p2pb")];
    const { expiresAtMs } = await alice.client.p2p.publish(bytes("quic://192.0.2.10:7000"), 1);
    const seen = await bob.client.p2p.resolve(alice.key);
    expect(text(seen.address)).toBe("quic://192.0.2.10:7000");
    expect(seen.expiresAtMs).toBe(expiresAtMs);

    // Wait until the expiry has passed (by this machine's clock, which the edge shares here).
    while (Date.now() <= expiresAtMs + 50) await new Promise((r) => setTimeout(r, 100));
    const after = await bob.client.p2p.resolve(alice.key);
    expect(after.address.length).toBe(0);
    expect(after.endpoints).toEqual([]);

    // Publishing again makes it resolvable again; withdrawing removes it at once.
    await alice.client.p2p.publish(bytes("quic://192.0.2.10:7001"), 600);
    expect(text((await bob.client.p2p.resolve(alice.key)).address)).toBe("quic://192.0.2.10:7001");
    await alice.client.p2p.withdraw();
    expect((await bob.client.p2p.resolve(alice.key)).address.length).toBe(0);
  });
});
