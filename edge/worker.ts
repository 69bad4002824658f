// Worker entry: turns bindings into dependencies and exports the app and the Durable Objects.
import type { Hono } from "hono";
import { createApp } from "./app.ts";
import { depsFromEnv } from "./deps.ts";
import type { AppEnv } from "./env.ts";
import { sweepStorage } from "./lib/storage-sweep.ts";

/** Rows (and their R2 objects) one cron run deletes at most per kind; the next run continues. */
const SCHEDULED_SWEEP_BATCH = 500;

export { RecipientQueue } from "./durable/recipient-queue.ts";
export { KeyTransparency } from "./durable/key-transparency.ts";
export { FederationOutbox } from "./durable/federation-outbox.ts";

// One app per isolate; bindings do not change within an isolate.
let app: Hono | undefined;

export default {
  fetch(request, env, ctx) {
    app ??= createApp(depsFromEnv(env));
    return app.fetch(request, env, ctx);
  },
  // The cron trigger of wrangler.toml: abandoned blob uploads, expired blobs and endpoints.
  scheduled(_controller, env, ctx) {
    const deps = depsFromEnv(env);
    ctx.waitUntil(sweepStorage(deps, Date.now(), SCHEDULED_SWEEP_BATCH).then(() => undefined));
  },
} satisfies ExportedHandler<AppEnv>;
