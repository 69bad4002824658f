// Two federated regions on this machine, each its own Miniflare edge, data directory and QUIC
// front, wired as `npm start` wires them (QPQ_FEDERATION_DOMAIN, QPQ_EDGE_LISTEN,
// QPQ_FEDERATION_PEERS): alice@a.test and bob@b.test find each other, set up MLS across regions
// and exchange messages; region b goes down while alice sends 100 messages and, once back on the
// same data directory, bob gets all of them exactly once and in order.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalSystem, type LocalSystem } from "../../local/system.ts";
import { loadOrCreateSecrets } from "../../local/secrets.ts";
import { publicKeyOf } from "../../local/federation.ts";
import { QpqCallError, QpqClient } from "../../sdk/client.ts";
import type { QuicTransport } from "../../sdk/transport.ts";
import { createLogger } from "../../proto/util/log.ts";
import { RelayHeader, Status } from "../../proto/index.ts";
import { ed25519Identity, uniqueName } from "../support/system.ts";
import { createMlsMember } from "../support/mls.ts";
import { generateHybridKeyPair } from "../../sdk/hybrid-envelope.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Region {
  domain: string;
  dir: string;
  edgePort: number;
  peersFile: string;
  system?: LocalSystem;
  /** Edge variables (limits) of this region. */
  edgeVars?: Record<string, string>;
}

const logger = createLogger("warn");

async function start(r: Region): Promise<LocalSystem> {
  r.system = await startLocalSystem({
    dataDir: r.dir,
    env: {
      QPQ_LISTEN: "127.0.0.1:0",
      QPQ_METRICS_LISTEN: "127.0.0.1:0",
      QPQ_LOG_LEVEL: "warn",
      QPQ_DATA_DIR: r.dir,
      QPQ_FEDERATION_DOMAIN: r.domain,
      QPQ_EDGE_LISTEN: `127.0.0.1:${r.edgePort}`,
      QPQ_FEDERATION_PEERS: r.peersFile,
    },
    edgeVars: r.edgeVars,
    logger,
  });
  return r.system;
}

/** Data directories, free edge ports, and each region's peers file naming the other. */
async function wire(x: Region, y: Region): Promise<void> {
  for (const r of [x, y]) {
    mkdirSync(r.dir, { recursive: true });
    r.edgePort = await freePort();
  }
  const keys = new Map<Region, string>();
  for (const r of [x, y]) keys.set(r, publicKeyOf((await loadOrCreateSecrets(r.dir)).FEDERATION_SIGNING_KEY));
  for (const [r, peer] of [
    [x, y],
    [y, x],
  ] as const) {
    writeFileSync(
      r.peersFile,
      JSON.stringify([{ domain: peer.domain, url: `http://127.0.0.1:${peer.edgePort}`, publicKey: keys.get(peer) }]),
    );
  }
}

async function connect(r: Region): Promise<QpqClient<QuicTransport>> {
  const s = r.system!;
  return QpqClient.connect({ host: "127.0.0.1", port: s.quicPort, ca: s.certPem });
}

describe("federation between two regions over QUIC", () => {
  const base = mkdtempSync(join(tmpdir(), "qpq-fed-"));
  const a: Region = { domain: "a.test", dir: join(base, "a"), edgePort: 0, peersFile: join(base, "a/peers.json") };
  const b: Region = { domain: "b.test", dir: join(base, "b"), edgePort: 0, peersFile: join(base, "b/peers.json") };
  const aliceName = uniqueName("alice");
  const bobName = uniqueName("bob");
  const aliceKey = ed25519Identity();
  const bobKey = ed25519Identity();
  const clients: QpqClient<QuicTransport>[] = [];
  let alice: QpqClient<QuicTransport>;
  let bob: QpqClient<QuicTransport>;

  async function loginBob(): Promise<QpqClient<QuicTransport>> {
    const c = await connect(b);
    clients.push(c);
    await c.login(bobName, "battery staple bob", bobKey);
    return c;
  }

  beforeAll(async () => {
    await wire(a, b);
    await start(a);
    await start(b);
    alice = await connect(a);
    clients.push(alice);
    expect(await alice.register(aliceName, "correct horse alice", aliceKey)).toBe(true);
    await alice.login(aliceName, "correct horse alice", aliceKey);
    const bobFirst = await connect(b);
    clients.push(bobFirst);
    expect(await bobFirst.register(bobName, "battery staple bob", bobKey)).toBe(true);
    await bobFirst.login(bobName, "battery staple bob", bobKey);
    bob = bobFirst;
  }, 240_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled([a.system?.stop(), b.system?.stop()]);
    rmSync(base, { recursive: true, force: true });
  });

  it("alice@a resolves bob@b, adds him to an MLS group through her region, and they talk both ways", async () => {
    const mlsAlice = await createMlsMember(aliceName);
    const mlsBob = await createMlsMember(bobName);
    await bob.uploadKeyPackage(await mlsBob.keyPackage());

    // Through region a: the name, verified against region b's log, then bob's KeyPackage.
    const resolved = await alice.resolveUserVerified(`${bobName}@${b.domain}`);
    expect(Buffer.from(resolved.identityKey).equals(Buffer.from(bobKey))).toBe(true);
    const kp = await alice.fetchKeyPackage(bobKey);
    expect(kp.length).toBeGreaterThan(0);
    // His hybrid (X25519 + ML-KEM-768) key, through region a too.
    const hybrid = await generateHybridKeyPair();
    await bob.uploadHybridKey(hybrid.publicKey);
    expect(Buffer.from(await alice.fetchHybridKey(bobKey)).equals(Buffer.from(hybrid.publicKey))).toBe(true);

    await mlsAlice.createGroup(text("fed-group"));
    const { welcome } = await mlsAlice.addMember(kp);
    // Bob is already waiting in region b when the Welcome is sent from region a.
    const waiting = bob.fetchWait({ timeoutMs: 60_000 });
    const sent = await alice.enqueue({
      recipientKey: bobKey,
      payload: welcome,
      messageId: crypto.getRandomValues(new Uint8Array(16)),
    });
    expect(Number(sent.seq)).toBe(0); // accepted by region a's outbox; region b assigns the seq
    const [got] = await waiting;
    await mlsBob.joinFromWelcome(got.data);
    await bob.ack(got.seq);

    await alice.enqueue({ recipientKey: bobKey, payload: await mlsAlice.encrypt(text("hello bob, from a")) });
    const [m1] = await bob.fetchWait({ timeoutMs: 60_000 });
    expect(str(await mlsBob.decrypt(m1.data))).toBe("hello bob, from a");
    await bob.ack(m1.seq);

    // Back from b to a: region b learned alice's home from the relays it received.
    const aliceWait = alice.fetchWait({ timeoutMs: 60_000 });
    await bob.enqueue({ recipientKey: aliceKey, payload: await mlsBob.encrypt(text("hi alice, from b")) });
    const [m2] = await aliceWait;
    expect(str(await mlsAlice.decrypt(m2.data))).toBe("hi alice, from b");
    await alice.ack(m2.seq);
    // And bob can name her too.
    expect(Buffer.from(await bob.resolveUser(`${aliceName}@${a.domain}`)).equals(Buffer.from(aliceKey))).toBe(true);
  }, 240_000);

  it("region b down: 100 messages wait in region a's outbox and arrive exactly once, in order", async () => {
    await bob.close();
    await b.system!.stop();
    // Look-ups answered by region b fail clearly while it is down; sends are accepted all the same.
    const lookup = await alice.resolveUser(`${bobName}@${b.domain}`).then(
      () => Status.Ok,
      (err: unknown) => (err instanceof QpqCallError ? err.status : -1),
    );
    expect(lookup).toBe(Status.Unavailable);
    for (let i = 0; i < 100; i++) {
      const r = await alice.enqueue({
        recipientKey: bobKey,
        payload: text(`offline ${i}`),
        messageId: crypto.getRandomValues(new Uint8Array(16)),
      });
      expect(r.duplicate).toBe(false);
    }
    await start(b);
    bob = await loginBob();
    const seen: string[] = [];
    const deadline = Date.now() + 200_000;
    while (seen.length < 100 && Date.now() < deadline) {
      const batch = await bob.fetchWait({ timeoutMs: 20_000, limit: 100 });
      for (const e of batch) seen.push(str(e.data));
      if (batch.length > 0) await bob.ack(Math.max(...batch.map((e) => e.seq)));
    }
    expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => `offline ${i}`));
    // Nothing more arrives: no duplicates from retries.
    expect(await bob.fetch({ limit: 10 })).toEqual([]);
  }, 300_000);

  it("reports the peer healthy (905), and picks up a changed peers file without a restart", async () => {
    const { FRONT_SECRET } = await loadOrCreateSecrets(a.dir);
    const health = await fetch(`${a.system!.edgeUrl}/federation/peers`, {
      headers: { [RelayHeader.frontAuth]: FRONT_SECRET },
    });
    const doc = (await health.json()) as { peers: { domain: string; ok: boolean; answeredAs?: string }[] };
    expect(doc.peers).toEqual([expect.objectContaining({ domain: b.domain, ok: true, answeredAs: b.domain })]);

    const peers = JSON.parse(readFileSync(a.peersFile, "utf8")) as unknown[];
    const c = { domain: "c.test", url: "http://127.0.0.1:9", publicKey: Buffer.alloc(32, 3).toString("base64url") };
    writeFileSync(a.peersFile, JSON.stringify([...peers, c]));
    const deadline = Date.now() + 60_000;
    let listed = false;
    while (!listed && Date.now() < deadline) {
      const res = await fetch(`${a.system!.edgeUrl}/federation/metrics`, {
        headers: { [RelayHeader.frontAuth]: FRONT_SECRET },
      });
      listed = (await res.text()).includes('federation_outbox_depth{peer="c.test"}');
      if (!listed) await sleep(250);
    }
    expect(listed).toBe(true);

    // Operators scrape one place: the front's /metrics carries the edge's federation metrics.
    const scraped = await (await fetch(a.system!.metricsUrl!)).text();
    expect(scraped).toContain(`federation_outbox_depth{peer="${b.domain}"}`);
    expect(scraped).toMatch(/^federation_metrics_up 1$/m);
    expect(scraped).toContain("# TYPE enqueue_total counter");
  }, 120_000);
});

describe("federation: one busy recipient does not hold back the others", () => {
  const base = mkdtempSync(join(tmpdir(), "qpq-fed-hol-"));
  const c: Region = { domain: "c.test", dir: join(base, "c"), edgePort: 0, peersFile: join(base, "c/peers.json") };
  // One sender may hold 2 messages of a queue in region d.
  const d: Region = {
    domain: "d.test",
    dir: join(base, "d"),
    edgePort: 0,
    peersFile: join(base, "d/peers.json"),
    edgeVars: { MAX_SENDER_QUEUE_MESSAGES: "2" },
  };
  const clients: QpqClient<QuicTransport>[] = [];
  const user = async (r: Region, prefix: string) => {
    const client = await connect(r);
    clients.push(client);
    const name = uniqueName(prefix);
    const key = ed25519Identity();
    expect(await client.register(name, "pw", key)).toBe(true);
    await client.login(name, "pw", key);
    return { client, name, key };
  };

  beforeAll(async () => {
    await wire(c, d);
    await start(c);
    await start(d);
  }, 240_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((x) => x.close()));
    await Promise.allSettled([c.system?.stop(), d.system?.stop()]);
    rmSync(base, { recursive: true, force: true });
  });

  it("holds back only the full recipient's relays; a message to another recipient arrives at once", async () => {
    const alice = await user(c, "alice");
    const bob = await user(d, "bob");
    const carol = await user(d, "carol");
    await alice.client.resolveUser(`${bob.name}@${d.domain}`);
    await alice.client.resolveUser(`${carol.name}@${d.domain}`);
    // The third does not fit alice's share of bob's queue: region d refuses it for a minute.
    for (const i of [1, 2, 3]) {
      await alice.client.enqueue({
        recipientKey: bob.key,
        payload: text(`to bob ${i}`),
        messageId: crypto.getRandomValues(new Uint8Array(16)),
      });
    }
    const first = await bob.client.fetchWait({ timeoutMs: 30_000, limit: 10 });
    expect(first.length).toBeGreaterThan(0);
    // Carol's message, sent after bob's third, is not stuck behind it.
    await alice.client.enqueue({
      recipientKey: carol.key,
      payload: text("to carol"),
      messageId: crypto.getRandomValues(new Uint8Array(16)),
    });
    const got = await carol.client.fetchWait({ timeoutMs: 30_000 });
    expect(got.map((e) => str(e.data))).toEqual(["to carol"]);
    expect((await bob.client.fetch({ limit: 10 })).map((e) => str(e.data))).toEqual(["to bob 1", "to bob 2"]);
  }, 180_000);
});
