// Starts the whole local system (the same code `npm start` runs) on free ports in a temporary
// data directory, and connects SDK clients to it over real QUIC.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalSystem, type LocalSystem } from "../../local/system.ts";
import { QpqClient } from "../../sdk/client.ts";
import type { QuicTransport } from "../../sdk/transport.ts";
import { createLogger, type Logger } from "../../proto/util/log.ts";
import { loadOrCreateSecrets } from "../../local/secrets.ts";
import { settingsFromEnv, withEdge } from "../../quic-front/config.ts";
import { startFront } from "../../quic-front/run.ts";

export interface TestSystem {
  system: LocalSystem;
  dataDir: string;
  connect(): Promise<QpqClient<QuicTransport>>;
  restart(): Promise<void>;
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

export async function startTestSystem(
  opts: { dataDir?: string; env?: Record<string, string>; edgeVars?: Record<string, string>; logger?: Logger } = {},
): Promise<TestSystem> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "qpq-e2e-"));
  const env = { QPQ_LISTEN: "127.0.0.1:0", QPQ_LOG_LEVEL: "warn", ...opts.env };
  const logger = opts.logger ?? createLogger("warn");
  const start = () => startLocalSystem({ dataDir, env, edgeVars: opts.edgeVars, logger });
  const clients: QpqClient<QuicTransport>[] = [];
  const t: TestSystem = {
    system: await start(),
    dataDir,
    async connect() {
      const c = await QpqClient.connect({ host: "127.0.0.1", port: t.system.quicPort, ca: t.system.certPem });
      clients.push(c);
      return c;
    },
    async restart() {
      await closeClients();
      await t.system.stop();
      t.system = await start();
    },
    async stop(stopOpts) {
      await closeClients();
      await t.system.stop();
      if (!stopOpts?.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  async function closeClients() {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  }
  return t;
}

export function randomIdentity(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

/** A real Ed25519 public key (32 bytes), for tests whose identity must also sign MLS credentials. */
export function ed25519Identity(): Uint8Array {
  const { publicKey } = generateKeyPairSync("ed25519");
  return new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(-32));
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** A logger that keeps every entry, for tests that assert on what was logged. */
export function recordingLogger(): Logger & {
  entries: { level: string; msg: string; fields: Record<string, unknown> }[];
} {
  const entries: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}) =>
      void entries.push({ level, msg, fields });
  return { entries, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/**
 * A second front over the same edge (as in a deployment with several fronts): its own QUIC port,
 * rate limits and connections, the system's data directory (so the same development CA).
 */
export async function startExtraFront(
  t: TestSystem,
  env: Record<string, string> = {},
): Promise<{ port: number; connect(): Promise<QpqClient<QuicTransport>>; stop(): Promise<void> }> {
  const secrets = await loadOrCreateSecrets(t.dataDir);
  const settings = settingsFromEnv({
    QPQ_LISTEN: "127.0.0.1:0",
    QPQ_LOG_LEVEL: "warn",
    QPQ_FRONT_ID: "front-extra",
    ...env,
  });
  const config = withEdge(
    { ...settings, dataDir: t.dataDir },
    { edgeUrl: t.system.edgeUrl, frontSecret: secrets.FRONT_SECRET },
  );
  const running = await startFront(config, createLogger("warn"));
  const clients: QpqClient<QuicTransport>[] = [];
  return {
    port: running.front.port,
    async connect() {
      const c = await QpqClient.connect({ host: "127.0.0.1", port: running.front.port, ca: t.system.certPem });
      clients.push(c);
      return c;
    },
    async stop() {
      await Promise.allSettled(clients.splice(0).map((c) => c.close()));
      await running.stop();
    },
  };
}
