// The edge worker on this machine: workerd through Miniflare (embedded, no dev proxy in front),
// with D1 and Durable Objects persisted under the data directory and the D1 migrations of
// schema/migrations applied first (tracked in `d1_migrations`, the table wrangler uses).
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { unstable_readConfig } from "wrangler";
import { bundleEdge } from "./edge-bundle.ts";
import { loadOrCreateSecrets, type EdgeSecrets } from "./secrets.ts";
import type { Logger } from "../proto/util/log.ts";

const root = resolve(new URL("..", import.meta.url).pathname);

export interface LocalEdge {
  url: string;
  secrets: EdgeSecrets;
  miniflare: Miniflare;
  stop(): Promise<void>;
}

export interface EdgeOptions {
  dataDir: string;
  /** 0 picks a free port. */
  port?: number;
  logger: Logger;
  /** Overrides of wrangler.toml [vars] (limits in tests). */
  vars?: Record<string, string>;
}

interface D1 {
  exec(sql: string): Promise<unknown>;
  prepare(sql: string): { bind(...v: unknown[]): { run(): Promise<unknown> }; all<T>(): Promise<{ results: T[] }> };
  batch(statements: unknown[]): Promise<unknown>;
}

/** Applies pending numbered migrations in order, each with its bookkeeping row in one batch. */
export async function applyMigrations(db: D1, dir = join(root, "schema/migrations")): Promise<string[]> {
  await db.exec(
    "CREATE TABLE IF NOT EXISTS d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)",
  );
  const applied = new Set(
    (await db.prepare("SELECT name FROM d1_migrations").all<{ name: string }>()).results.map((r) => r.name),
  );
  const pending = readdirSync(dir)
    .filter((f) => /^\d+_.*\.sql$/.test(f) && !applied.has(f))
    .sort();
  for (const file of pending) {
    const statements = readFileSync(join(dir, file), "utf8")
      .split("--> statement-breakpoint")
      .map((s) => s.trim())
      .filter(Boolean);
    await db.batch([
      ...statements.map((sql) => db.prepare(sql)),
      db.prepare("INSERT INTO d1_migrations (name) VALUES (?)").bind(file),
    ]);
  }
  return pending;
}

export async function startEdge(opts: EdgeOptions): Promise<LocalEdge> {
  const dataDir = resolve(opts.dataDir);
  const persist = join(dataDir, "edge");
  mkdirSync(persist, { recursive: true });
  const secrets = await loadOrCreateSecrets(dataDir);
  const config = unstable_readConfig({ config: join(root, "wrangler.toml") }, { hideWarnings: true });
  const vars = Object.fromEntries(Object.entries(config.vars ?? {}).map(([k, v]) => [k, String(v)]));
  const bundle = await bundleEdge();

  const miniflare = new Miniflare(
    convertV4MiniflareOptions({
      modules: [
        { type: "ESModule", path: "/edge/worker.js", contents: bundle.main },
        ...[...bundle.wasm].map(([name, contents]) => ({
          type: "CompiledWasm" as const,
          path: `/edge/${name}`,
          contents,
        })),
      ],
      modulesRoot: "/edge",
      compatibilityDate: config.compatibility_date,
      compatibilityFlags: config.compatibility_flags,
      d1Databases: Object.fromEntries(
        config.d1_databases.map((d: { binding: string; database_id?: string }) => [
          d.binding,
          d.database_id ?? d.binding,
        ]),
      ),
      durableObjects: Object.fromEntries(
        config.durable_objects.bindings.map((b: { name: string; class_name: string }) => [
          b.name,
          { className: b.class_name, useSQLite: true },
        ]),
      ),
      r2Buckets: config.r2_buckets.map((b: { binding: string }) => b.binding),
      bindings: { ...vars, ...secrets, ...opts.vars },
      resourcePersistencePath: persist,
      host: "127.0.0.1",
      port: opts.port ?? 0,
      cf: false,
    } as unknown as Parameters<typeof convertV4MiniflareOptions>[0]),
  );
  try {
    const url = await miniflare.ready;
    const db = await miniflare.getD1Database("DB");
    const applied = await applyMigrations(db as unknown as D1);
    if (applied.length) opts.logger.info("D1 migrations applied", { migrations: applied });
    return { url: url.origin, secrets, miniflare, stop: () => miniflare.dispose() };
  } catch (err) {
    await miniflare.dispose().catch(() => {});
    throw err;
  }
}
