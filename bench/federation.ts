// The federated phase of `npm run bench`: two regions on this machine (each its own Miniflare
// edge and QUIC front, wired as `npm run start:regions` wires them). The same Enqueue load runs
// once between users of region a and once from region a to users of region b; it prints both,
// their ratio, and how fast region a's outbox then hands the relayed messages to region b.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startLocalSystem, type LocalSystem } from "../local/system.ts";
import { loadOrCreateSecrets } from "../local/secrets.ts";
import { publicKeyOf } from "../local/federation.ts";
import { QpqClient } from "../sdk/client.ts";
import { createLogger } from "../proto/util/log.ts";
import { RelayHeader } from "../proto/index.ts";
import { drive, fmt, type Summary } from "./stats.ts";

const RPCS = Number(process.env.BENCH_FED_RPCS ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const USERS = 4;
/** Lifted for the load: the bench measures the link, not the per-sender limits. */
const EDGE_VARS = {
  MAX_QUEUE_MESSAGES: "100000",
  MAX_SENDER_QUEUE_MESSAGES: "100000",
  SENDER_ENQUEUE_BURST: "1000000",
  SENDER_ENQUEUE_PER_MINUTE: "1000000",
};
const FRONT_ENV = { QPQ_RPC_PER_SECOND: "1000000", QPQ_RPC_BURST: "1000000", QPQ_AUTH_PER_MINUTE: "100000" };

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Pending relays in region a's outbox to `peer`, from its /federation/metrics. */
async function outboxDepth(system: LocalSystem, frontSecret: string, peer: string): Promise<number> {
  const res = await fetch(`${system.edgeUrl}/federation/metrics`, {
    headers: { [RelayHeader.frontAuth]: frontSecret },
  });
  const line = (await res.text()).split("\n").find((l) => l.startsWith(`federation_outbox_depth{peer="${peer}"}`));
  return line ? Number(line.split(" ").pop()) : 0;
}

export async function benchFederation(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), "qpq-bench-fed-"));
  const logger = createLogger("warn");
  const regions = [
    { domain: "a.bench", dir: join(base, "a"), port: await freePort() },
    { domain: "b.bench", dir: join(base, "b"), port: await freePort() },
  ];
  const systems: LocalSystem[] = [];
  const clients: QpqClient[] = [];
  try {
    const keys: string[] = [];
    for (const r of regions) {
      mkdirSync(r.dir, { recursive: true });
      keys.push(publicKeyOf((await loadOrCreateSecrets(r.dir)).FEDERATION_SIGNING_KEY));
    }
    for (const [i, r] of regions.entries()) {
      const peer = regions[1 - i];
      const peersFile = join(r.dir, "peers.json");
      writeFileSync(
        peersFile,
        JSON.stringify([{ domain: peer.domain, url: `http://127.0.0.1:${peer.port}`, publicKey: keys[1 - i] }]),
      );
      systems.push(
        await startLocalSystem({
          dataDir: r.dir,
          env: {
            QPQ_LISTEN: "127.0.0.1:0",
            QPQ_DATA_DIR: r.dir,
            QPQ_LOG_LEVEL: "warn",
            QPQ_FEDERATION_DOMAIN: r.domain,
            QPQ_EDGE_LISTEN: `127.0.0.1:${r.port}`,
            QPQ_FEDERATION_PEERS: peersFile,
            ...FRONT_ENV,
          },
          edgeVars: EDGE_VARS,
          logger,
        }),
      );
    }
    const [a, b] = systems;
    const connect = async (s: LocalSystem) => {
      const c = await QpqClient.connect({ host: "127.0.0.1", port: s.quicPort, ca: s.certPem });
      clients.push(c);
      return c;
    };
    const user = async (s: LocalSystem, name: string) => {
      const c = await connect(s);
      const key = crypto.getRandomValues(new Uint8Array(32));
      if (!(await c.register(name, "pw", key))) throw new Error(`register ${name} failed`);
      await c.login(name, "pw", key);
      return { c, key, name };
    };
    const senders = await Promise.all(Array.from({ length: USERS }, (_, u) => user(a, `sender-${u}`)));
    const localPeers = await Promise.all(Array.from({ length: USERS }, (_, u) => user(a, `local-${u}`)));
    const remotePeers = await Promise.all(Array.from({ length: USERS }, (_, u) => user(b, `remote-${u}`)));
    // Region a learns where the remote users live (ResolveUser of name@b.bench).
    for (const p of remotePeers) await senders[0].c.resolveUser(`${p.name}@b.bench`);

    const payload = new Uint8Array(256).fill(7);
    const enqueueTo = (peers: { key: Uint8Array }[]) => async (i: number) => {
      const s = senders[i % USERS];
      await s.c.enqueue({
        recipientKey: peers[(i + 1) % USERS].key,
        payload,
        messageId: crypto.getRandomValues(new Uint8Array(16)),
      });
    };
    // Warm up both paths.
    await drive(100, CONCURRENCY, enqueueTo(localPeers));
    await drive(100, CONCURRENCY, enqueueTo(remotePeers));
    const frontSecretA = (await loadOrCreateSecrets(regions[0].dir)).FRONT_SECRET;
    while ((await outboxDepth(a, frontSecretA, "b.bench")) > 0) await sleep(100);

    console.log(`\nfederation: ${RPCS} Enqueues at concurrency ${CONCURRENCY}, 256-byte payloads, ${USERS} senders`);
    const phase = async (name: string, op: (i: number) => Promise<void>): Promise<Summary> => {
      const s = await drive(RPCS, CONCURRENCY, op);
      console.log(`${name.padEnd(28)} ${fmt(s)}`);
      return s;
    };
    const local = await phase("Enqueue within region a", enqueueTo(localPeers));
    const t0 = performance.now();
    const federated = await phase("Enqueue a → b (outbox)", enqueueTo(remotePeers));
    while ((await outboxDepth(a, frontSecretA, "b.bench")) > 0) await sleep(50);
    const relaySeconds = (performance.now() - t0) / 1000;
    console.log(
      `relayed to region b           ${(federated.ops / relaySeconds).toFixed(0).padStart(6)} msg/s   (all ${federated.ops} stored in region b ${relaySeconds.toFixed(2)} s after the first send)`,
    );
    console.log(
      `enqueue throughput a→b / within a:    ${(federated.perSecond / local.perSecond).toFixed(2)}  (p50 ${federated.p50ms.toFixed(2)} vs ${local.p50ms.toFixed(2)} ms, p99 ${federated.p99ms.toFixed(2)} vs ${local.p99ms.toFixed(2)} ms)`,
    );
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled(systems.map((s) => s.stop()));
    rmSync(base, { recursive: true, force: true });
  }
}
