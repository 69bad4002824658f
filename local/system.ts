// The whole system on one machine: workerd via `wrangler dev` (Miniflare, with D1, Durable
// Objects and R2 persisted under the data directory, migrations applied first) and the QUIC front.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { join, resolve } from "node:path";
import { loadOrCreateSecrets, type EdgeSecrets } from "./secrets.ts";
import { QpqFront } from "../quic-front/server.ts";
import { loadTls } from "../quic-front/cert.ts";
import { configFromEnv } from "../quic-front/config.ts";
import { createLogger, type Logger } from "../quic-front/log.ts";

const root = resolve(new URL("..", import.meta.url).pathname);
const wranglerBin = join(root, "node_modules/wrangler/bin/wrangler.js");

export interface LocalSystemOptions {
  dataDir: string;
  /** QUIC listen address, default 127.0.0.1:5001 (QPQ_LISTEN overrides when started by npm start). */
  env?: NodeJS.ProcessEnv;
  /** Port for the local edge (0 = pick a free one). */
  edgePort?: number;
  logger?: Logger;
  /** Extra edge variables (limits) for tests. */
  edgeVars?: Record<string, string>;
}

export interface LocalSystem {
  front: QpqFront;
  quicPort: number;
  edgeUrl: string;
  certPem: string;
  metricsUrl?: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createNetServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as { port: number }).port;
  srv.close();
  return port;
}

function wrangler(args: string[], logger: Logger, inherit = false): ChildProcess {
  const child = spawn(process.execPath, [wranglerBin, ...args], {
    cwd: root,
    // No network here or in CI: no telemetry, no Request.cf download.
    env: {
      ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true",
      NO_COLOR: "1", FORCE_COLOR: "0",
    },
    stdio: ["ignore", inherit ? "inherit" : "pipe", inherit ? "inherit" : "pipe"],
  });
  if (!inherit) {
    const tail: string[] = [];
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) if (line.trim()) tail.push(line);
      while (tail.length > 40) tail.shift();
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    child.once("exit", (code, signal) => {
      if (code && code !== 0 && !child.killed) logger.error("wrangler exited", { args: args[0], code, signal, output: tail.join("\n") });
    });
  }
  return child;
}

async function run(args: string[], logger: Logger): Promise<void> {
  const child = wrangler(args, logger);
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0) throw new Error(`wrangler ${args.join(" ")} failed with code ${code}`);
}

async function waitForEdge(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error("the edge (wrangler dev) exited during start-up");
    try {
      const res = await fetch(`${url}/health`);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the edge did not start within ${timeoutMs} ms`);
}

export interface LocalEdge {
  url: string;
  secrets: EdgeSecrets;
  stop(): Promise<void>;
}

/** Applies D1 migrations, then runs the edge worker in workerd (wrangler dev, local mode). */
export async function startEdge(opts: { dataDir: string; port?: number; logger: Logger; vars?: Record<string, string> }): Promise<LocalEdge> {
  const { logger } = opts;
  const dataDir = resolve(opts.dataDir);
  const persist = join(dataDir, "edge");
  mkdirSync(persist, { recursive: true });
  const secrets = await loadOrCreateSecrets(dataDir);
  const envFile = join(dataDir, "edge.env");
  const vars = { ...secrets, ...opts.vars };
  writeFileSync(envFile, Object.entries(vars).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join("\n") + "\n", { mode: 0o600 });

  await run(["d1", "migrations", "apply", "DB", "--local", "--persist-to", persist], logger);
  const edgePort = opts.port || (await freePort());
  const inspectorPort = await freePort();
  const edge = wrangler([
    "dev", "--local", "--persist-to", persist, "--ip", "127.0.0.1", "--port", String(edgePort),
    "--inspector-port", String(inspectorPort), "--env-file", envFile, "--show-interactive-dev-session=false",
    "--log-level", "warn",
  ], logger);
  const url = `http://127.0.0.1:${edgePort}`;
  const stop = async () => {
    if (edge.exitCode !== null || edge.signalCode !== null) return;
    edge.kill("SIGTERM");
    const timer = setTimeout(() => edge.kill("SIGKILL"), 5000);
    await once(edge, "exit");
    clearTimeout(timer);
  };
  try {
    await waitForEdge(url, edge, 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, secrets, stop };
}

export async function startLocalSystem(opts: LocalSystemOptions): Promise<LocalSystem> {
  const env = opts.env ?? process.env;
  const logger = opts.logger ?? createLogger((env.QPQ_LOG_LEVEL as "info") ?? "info");
  const dataDir = resolve(opts.dataDir);
  const edgeProc = await startEdge({ dataDir, port: opts.edgePort, logger, vars: opts.edgeVars });
  const { secrets } = edgeProc;
  const edgeUrl = edgeProc.url;
  const stopEdge = edgeProc.stop;

  const config = configFromEnv({ QPQ_LISTEN: "127.0.0.1:5001", ...env }, {
    edgeUrl, frontSecret: secrets.FRONT_SECRET, dataDir,
  });
  const tls = await loadTls({ certFile: config.tlsCertFile, keyFile: config.tlsKeyFile, dataDir });
  const front = new QpqFront({ config, tls, logger });
  try {
    await front.start();
  } catch (err) {
    await stopEdge();
    throw err;
  }

  let metricsServer: Server | undefined;
  let metricsUrl: string | undefined;
  if (config.metricsListen) {
    metricsServer = createServer((req, res) => {
      if (req.url === "/metrics") {
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(front.metrics.render());
      } else res.writeHead(404).end();
    });
    metricsServer.listen(config.metricsListen.port, config.metricsListen.host);
    await once(metricsServer, "listening");
    const addr = metricsServer.address() as { port: number };
    metricsUrl = `http://${config.metricsListen.host}:${addr.port}/metrics`;
  }

  return {
    front,
    quicPort: front.port,
    edgeUrl,
    certPem: tls.certPem,
    metricsUrl,
    async stop() {
      await front.stop();
      metricsServer?.close();
      await stopEdge();
    },
  };
}
