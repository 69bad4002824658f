// `npm run bench`: enqueue/fetch through the QUIC front vs. straight to the edge over HTTP, and
// the front's CPU time per relayed RPC vs. a bare @matrixai/quic echo server's, in one run.
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { Method, Status, pb, RelayHeader } from "../proto/index.ts";
import { startEdge } from "../local/edge.ts";
import { createLogger } from "../proto/util/log.ts";
import { QpqClient } from "../sdk/client.ts";
import { JsQuicTransport } from "./js-quic-transport.ts";
import { LeanQuicClient } from "../quic/client.ts";
import { importAssertionKey, mintAssertion } from "../edge/lib/caller-assertion.ts";
import { drive, fmt, type Summary } from "./stats.ts";
import { benchFederation } from "./federation.ts";
import { EXAMPLE_FILES, benchHookCalls } from "../plugins/bench.ts";
import { basename } from "node:path";

const RPCS = Number(process.env.BENCH_RPCS ?? 3000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const USERS = 8;
/**
 * The load generator's QUIC client: "lean" (quic/client.ts, straight over quiche) by
 * default, so the client does not take most of the shared cores; "js-quic" is @matrixai/quic's
 * client (the SDK's former transport, bench/js-quic-transport.ts).
 */
const CLIENT = process.env.BENCH_CLIENT ?? "lean";
const connectQuic = async (port: number, ca: string) =>
  CLIENT === "js-quic"
    ? await JsQuicTransport.connect({ host: "127.0.0.1", port, ca })
    : await LeanQuicClient.connect({ host: "127.0.0.1", port, ca });
const here = new URL(".", import.meta.url).pathname;
const dataDir = mkdtempSync(join(tmpdir(), "qpq-bench-"));
const logger = createLogger("warn");

interface Child {
  proc: ChildProcess;
  port: number;
  cpuMicros(): Promise<number>;
  stop(): Promise<void>;
}

async function child(script: string, env: Record<string, string>): Promise<Child> {
  // BENCH_PROFILE=dir writes a V8 CPU profile of each child into dir (open in Chrome DevTools).
  const execArgv = process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const proc = fork(join(here, script), [], {
    env: { ...process.env, ...env },
    execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [first] = (await once(proc, "message")) as [{ port: number }];
  return {
    proc,
    port: first.port,
    async cpuMicros() {
      proc.send("cpu");
      const [m] = (await once(proc, "message")) as [{ cpu: NodeJS.CpuUsage }];
      return m.cpu.user + m.cpu.system;
    },
    async stop() {
      proc.send("stop");
      await once(proc, "exit");
    },
  };
}

const payload = new Uint8Array(256).fill(7);
/** Clients send a message id, as they should: it makes a retried Enqueue safe. */
const newId = () => crypto.getRandomValues(new Uint8Array(16));

async function main() {
  console.log(`qpq-edge benchmark — ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), Node ${process.version}`);
  console.log(
    `${RPCS} RPCs per phase at concurrency ${CONCURRENCY}, ${USERS} users, 256-byte payloads with message ids, mix: 1/2 Enqueue, 1/2 Fetch; load generator's QUIC client: ${CLIENT}\n`,
  );
  // Every user sends only to the next one: lift the per-sender rate and share for the load.
  const edge = await startEdge({
    dataDir,
    logger,
    vars: {
      MAX_QUEUE_MESSAGES: "100000",
      MAX_SENDER_QUEUE_MESSAGES: "100000",
      SENDER_ENQUEUE_BURST: "1000000",
      SENDER_ENQUEUE_PER_MINUTE: "1000000",
    },
  });
  const front = await child("front-child.ts", {
    QPQ_EDGE_URL: edge.url,
    QPQ_FRONT_SECRET: edge.secrets.FRONT_SECRET,
    QPQ_LISTEN: "127.0.0.1:0",
    QPQ_DATA_DIR: dataDir,
    QPQ_RPC_PER_SECOND: "1000000",
    QPQ_RPC_BURST: "1000000",
    QPQ_AUTH_PER_MINUTE: "100000",
  });
  const echo = await child("echo-child.ts", { QPQ_DATA_DIR: dataDir });
  const leanEcho = await child("lean-echo-child.ts", { QPQ_DATA_DIR: dataDir });
  // The four example plugins as an operator would install them, with the sender rate limit
  // raised so the load generator is measured, not refused.
  const pluginDir = join(dataDir, "plugins");
  mkdirSync(pluginDir);
  for (const f of EXAMPLE_FILES) copyFileSync(f, join(pluginDir, basename(f)));
  const limiter = join(pluginDir, "sender-rate-limit.js");
  const raised = readFileSync(limiter, "utf8").replace("const MAX_MESSAGES = 30;", "const MAX_MESSAGES = 100_000;");
  if (!raised.includes("MAX_MESSAGES = 100_000")) throw new Error("sender-rate-limit.js changed: update the benchmark");
  writeFileSync(limiter, raised);
  const pluginFront = await child("front-child.ts", {
    QPQ_EDGE_URL: edge.url,
    QPQ_FRONT_SECRET: edge.secrets.FRONT_SECRET,
    QPQ_LISTEN: "127.0.0.1:0",
    QPQ_DATA_DIR: dataDir,
    QPQ_RPC_PER_SECOND: "1000000",
    QPQ_RPC_BURST: "1000000",
    QPQ_AUTH_PER_MINUTE: "100000",
    QPQ_PLUGIN_DIR: pluginDir,
    QPQ_FRONT_ID: "front-plugins",
  });
  const ca = readFileSync(join(dataDir, "dev-ca.pem"), "utf8");
  try {
    // Users with real OPAQUE registration and login through the front.
    const users: { client: QpqClient; pluginClient: QpqClient; key: Uint8Array }[] = [];
    for (let u = 0; u < USERS; u++) {
      const client = new QpqClient(await connectQuic(front.port, ca));
      const pluginClient = new QpqClient(await connectQuic(pluginFront.port, ca));
      const key = crypto.getRandomValues(new Uint8Array(32));
      const username = `bench-${u}`;
      if (!(await client.register(username, "pw", key))) throw new Error("register failed");
      await client.login(username, "pw", key);
      await pluginClient.login(username, "pw", key);
      users.push({ client, pluginClient, key });
    }

    const opFront = async (i: number) => {
      const u = users[i % USERS];
      if (i % 2 === 0)
        await u.client.enqueue({ recipientKey: users[(i + 1) % USERS].key, payload, messageId: newId() });
      else await u.client.fetch({ limit: 1 });
    };

    // Straight to the edge: same requests, the relay contract spoken by hand.
    const pool = new Pool(edge.url, { connections: CONCURRENCY, pipelining: 1 });
    const akey = await importAssertionKey(edge.secrets.FRONT_SECRET);
    const assertions = await Promise.all(
      users.map((u) => mintAssertion(akey, { identityKey: u.key, deviceId: new Uint8Array(0) }, Date.now() + 600_000)),
    );
    const direct = async (u: number, methodId: number, body: Uint8Array) => {
      const res = await pool.request({
        path: `/rpc/${methodId}`,
        method: "POST",
        body,
        headers: {
          [RelayHeader.frontAuth]: edge.secrets.FRONT_SECRET,
          [RelayHeader.caller]: assertions[u],
          [RelayHeader.connection]: `bench:${u}`,
        },
      });
      await res.body.arrayBuffer();
      if (res.headers[RelayHeader.status] !== String(Status.Ok))
        throw new Error(`direct call failed: ${res.headers[RelayHeader.status]}`);
    };
    const enqueueBody = (to: number) =>
      pb.EnqueueRequest.encode({ recipientKey: users[to].key, payload, messageId: newId() }).finish();
    const fetchBody = (u: number) => pb.FetchRequest.encode({ recipientKey: users[u].key, limit: 1 }).finish();
    const opDirect = async (i: number) => {
      const u = i % USERS;
      if (i % 2 === 0) await direct(u, Method.Enqueue, enqueueBody((i + 1) % USERS));
      else await direct(u, Method.Fetch, fetchBody(u));
    };

    const echoClients = await Promise.all(users.map(() => connectQuic(echo.port, ca)));
    const healthBody = pb.HealthRequest.encode({}).finish();
    const opEcho = async (i: number) => {
      await echoClients[i % USERS].request(Method.Health, healthBody);
    };
    const leanEchoClients = await Promise.all(users.map(() => connectQuic(leanEcho.port, ca)));
    const opLeanEcho = async (i: number) => {
      await leanEchoClients[i % USERS].request(Method.Health, healthBody);
    };
    // @matrixai/quic's client against the same server: what that client costs.
    const sdkEchoClients = await Promise.all(
      users.map(() => JsQuicTransport.connect({ host: "127.0.0.1", port: leanEcho.port, ca })),
    );
    const opSdkEcho = async (i: number) => {
      await sdkEchoClients[i % USERS].request(Method.Health, healthBody);
    };

    const enqueueVia = (which: "client" | "pluginClient") => async (i: number) => {
      const u = users[i % USERS];
      await u[which].enqueue({ recipientKey: users[(i + 1) % USERS].key, payload, messageId: newId() });
    };

    // Warm up every path (JIT, pools, Durable Objects, plugin isolates).
    await drive(400, CONCURRENCY, opFront);
    await drive(400, CONCURRENCY, opDirect);
    await drive(400, CONCURRENCY, opEcho);
    await drive(400, CONCURRENCY, opLeanEcho);
    await drive(400, CONCURRENCY, opSdkEcho);
    await drive(400, CONCURRENCY, enqueueVia("pluginClient"));

    const phase = async (name: string, c: Child | undefined, op: (i: number) => Promise<void>) => {
      const before = c ? await c.cpuMicros() : 0;
      // The load generator's own CPU (its QUIC or HTTP client), to see whether it is the bottleneck.
      const clientBefore = process.cpuUsage();
      const s = await drive(RPCS, CONCURRENCY, op);
      const clientUsed = process.cpuUsage(clientBefore);
      const clientCpu = (clientUsed.user + clientUsed.system) / s.ops;
      const cpu = c ? ((await c.cpuMicros()) - before) / s.ops : undefined;
      console.log(
        `${name.padEnd(28)} ${fmt(s)}${cpu !== undefined ? `   CPU ${cpu.toFixed(0)} µs/RPC` : ""}   client CPU ${clientCpu.toFixed(0)} µs/RPC`,
      );
      return { s, cpu, clientCpu };
    };
    const viaFront = await phase("QUIC front → edge", front, opFront);
    const viaHttp = await phase("HTTP straight to edge", undefined, opDirect);
    const viaEcho = await phase("bare QUIC echo (floor)", echo, opEcho);
    const viaLeanEcho = await phase("bare echo, lean driver", leanEcho, opLeanEcho);
    const viaSdkEcho = await phase("same, js-quic client", leanEcho, opSdkEcho);

    console.log("");
    const bare = await phase("Enqueue, no plugins", front, enqueueVia("client"));
    const withPlugins = await phase("Enqueue, 4 example plugins", pluginFront, enqueueVia("pluginClient"));

    const ratio = (a: Summary, b: Summary) => (a.perSecond / b.perSecond).toFixed(2);
    console.log("");
    console.log(
      `throughput ratio front/direct:        ${ratio(viaFront.s, viaHttp.s)}  (1.00 = the front costs nothing)`,
    );
    console.log(`p50 latency added by the front:       ${(viaFront.s.p50ms - viaHttp.s.p50ms).toFixed(2)} ms`);
    console.log(`front CPU per relayed RPC:            ${viaFront.cpu?.toFixed(0)} µs`);
    console.log(`bare QUIC echo CPU per RPC:           ${viaEcho.cpu?.toFixed(0)} µs`);
    console.log(
      `front CPU / echo CPU:                 ${((viaFront.cpu ?? 0) / (viaEcho.cpu ?? 1)).toFixed(2)}  (the front's work on top of the QUIC stack)`,
    );
    console.log(
      `lean driver echo: ${viaLeanEcho.cpu?.toFixed(0)} µs/RPC, ${viaLeanEcho.s.perSecond.toFixed(0)} RPC/s; js-quic echo: ${viaEcho.cpu?.toFixed(0)} µs/RPC, ${viaEcho.s.perSecond.toFixed(0)} RPC/s`,
    );
    console.log(
      `lean/js-quic echo CPU per RPC:        ${((viaLeanEcho.cpu ?? 0) / (viaEcho.cpu ?? 1)).toFixed(2)}   throughput ${ratio(viaLeanEcho.s, viaEcho.s)}`,
    );
    console.log(
      `load generator CPU per RPC against the lean echo: ${CLIENT} client ${viaLeanEcho.clientCpu.toFixed(0)} µs, js-quic client ${viaSdkEcho.clientCpu.toFixed(0)} µs (${viaSdkEcho.s.perSecond.toFixed(0)} RPC/s)`,
    );
    console.log(`enqueue throughput with/without plugins: ${ratio(withPlugins.s, bare.s)}  (target ≥ 0.90)`);
    console.log(
      `front CPU per enqueue with/without plugins: ${withPlugins.cpu?.toFixed(0)} / ${bare.cpu?.toFixed(0)} µs (front process only; the plugin child process is extra)`,
    );

    console.log("\nplugin hook call cost (on_message_send, in-process host, 20,000 calls):");
    for (const r of await benchHookCalls(20_000)) {
      console.log(
        `  ${r.scenario.padEnd(14)} sequential ${r.sequentialUs.toFixed(1)} µs (p50 ${r.p50Us.toFixed(1)}, p99 ${r.p99Us.toFixed(1)})   pipelined ${r.pipelinedUs.toFixed(1)} µs/call   front CPU ${r.frontCpuUs.toFixed(1)} µs/call`,
      );
    }

    await pool.close();
    await Promise.allSettled([
      ...users.flatMap((u) => [u.client.close(), u.pluginClient.close()]),
      ...echoClients.map((c) => c.close()),
      ...leanEchoClients.map((c) => c.close()),
      ...sdkEchoClients.map((c) => c.close()),
    ]);
  } finally {
    await Promise.allSettled([front.stop(), echo.stop(), leanEcho.stop(), pluginFront.stop()]);
    await edge.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
// Two federated regions: Enqueue a → b beside the same load within one region (bench/federation.ts).
if (process.env.BENCH_FEDERATION !== "0") await benchFederation();
