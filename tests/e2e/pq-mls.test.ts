// MLS groups through the server on a post-quantum cipher suite (ML-KEM-768, ts-mls suite 79) and,
// alongside, on the classical suite 1: KeyPackages uploaded and fetched through the server
// (single use), the Welcome and application messages both ways carried as ordinary deliveries,
// over real QUIC against the real edge.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import type { QpqClient } from "../../sdk/client.ts";
import type { QuicTransport } from "../../sdk/transport.ts";
import { ed25519Identity, startTestSystem, uniqueName, type TestSystem } from "../support/system.ts";
import {
  MLS_CIPHER_SUITE,
  MLS_PQ_CIPHER_SUITE,
  createMlsMember,
  decodeMessage,
  type MlsSuiteName,
} from "../support/mls.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** The HPKE init key length each suite's KeyPackages must carry: ML-KEM-768 1184, X25519 32. */
const INIT_KEY_BYTES: Record<MlsSuiteName, number> = { [MLS_PQ_CIPHER_SUITE]: 1184, [MLS_CIPHER_SUITE]: 32 };

describe("MLS groups through the server", () => {
  let sys: TestSystem;
  let alice: QpqClient<QuicTransport>;
  let bob: QpqClient<QuicTransport>;
  const aliceName = uniqueName("alice");
  const bobName = uniqueName("bob");
  const aliceKey = ed25519Identity();
  const bobKey = ed25519Identity();

  beforeAll(async () => {
    sys = await startTestSystem();
    alice = await sys.connect();
    expect(await alice.register(aliceName, "alice pw", aliceKey)).toBe(true);
    expect((await alice.login(aliceName, "alice pw", aliceKey)).length).toBe(32);
    bob = await sys.connect();
    expect(await bob.register(bobName, "bob pw", bobKey)).toBe(true);
    expect((await bob.login(bobName, "bob pw", bobKey)).length).toBe(32);
  });

  afterAll(async () => {
    await sys?.stop();
  });

  for (const suiteName of [MLS_PQ_CIPHER_SUITE, MLS_CIPHER_SUITE] as const) {
    it(`runs a group on ${suiteName}: KeyPackage, Welcome, messages both ways`, { timeout: 120_000 }, async () => {
      const mlsAlice = await createMlsMember(aliceName, suiteName);
      const mlsBob = await createMlsMember(bobName, suiteName);
      const channel = crypto.getRandomValues(new Uint8Array(16));

      // Bob publishes two KeyPackages; each fetch pops one (single use).
      await bob.uploadKeyPackage(await mlsBob.keyPackage());
      await bob.uploadKeyPackage(await mlsBob.keyPackage());
      const kp = await alice.fetchKeyPackage(bobKey);
      const second = await alice.fetchKeyPackage(bobKey);
      expect(Buffer.from(kp).equals(Buffer.from(second))).toBe(false);
      expect(await alice.fetchKeyPackage(bobKey)).toHaveLength(0);
      const decoded = decodeMessage(kp);
      if (decoded.wireformat !== "mls_key_package") throw new Error(`expected a KeyPackage, got ${decoded.wireformat}`);
      expect(decoded.keyPackage.cipherSuite).toBe(suiteName);
      expect(decoded.keyPackage.initKey.length).toBe(INIT_KEY_BYTES[suiteName]);

      // The Welcome reaches bob's waiting FetchWait through the server.
      const bobWaits = bob.fetchWait({ timeoutMs: 30_000, channelId: channel });
      await mlsAlice.createGroup(channel);
      const { welcome } = await mlsAlice.addMember(kp);
      await alice.enqueue({ recipientKey: bobKey, channelId: channel, payload: welcome });
      const [got] = await bobWaits;
      expect(Buffer.from(got.data).equals(Buffer.from(welcome))).toBe(true);
      await mlsBob.joinFromWelcome(got.data);
      await bob.ack(got.seq, { channelId: channel });
      expect(mlsBob.epoch()).toBe(mlsAlice.epoch());
      expect(mlsBob.cipherSuite()).toBe(suiteName);

      // Application messages both ways.
      for (let i = 0; i < 3; i++) {
        await alice.enqueue({
          recipientKey: bobKey,
          channelId: channel,
          payload: await mlsAlice.encrypt(text(`to bob ${i}`)),
        });
      }
      const toBob = await bob.fetch({ channelId: channel });
      expect(await Promise.all(toBob.map(async (e) => str(await mlsBob.decrypt(e.data))))).toEqual([
        "to bob 0",
        "to bob 1",
        "to bob 2",
      ]);
      await bob.ack(toBob[toBob.length - 1].seq, { channelId: channel });
      await bob.enqueue({
        recipientKey: aliceKey,
        channelId: channel,
        payload: await mlsBob.encrypt(text("to alice")),
      });
      const [toAlice] = await alice.fetch({ channelId: channel });
      expect(str(await mlsAlice.decrypt(toAlice.data))).toBe("to alice");
      await alice.ack(toAlice.seq, { channelId: channel });
    });
  }
});
