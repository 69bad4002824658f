// Worker entry: turns bindings into dependencies and exports the app and the Durable Objects.
import type { Hono } from "hono";
import { createApp } from "./app.ts";
import { depsFromEnv } from "./deps.ts";
import type { AppEnv } from "./env.ts";

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
} satisfies ExportedHandler<AppEnv>;
