// Types for the workers test project: the `cloudflare:test` module and the bindings that
// vitest.config.ts adds on top of wrangler.toml (generated secrets and test migrations).
/// <reference types="@cloudflare/vitest-pool-workers/types" />

declare namespace Cloudflare {
  interface Env {
    FRONT_SECRET: string;
    OPAQUE_SERVER_SETUP: string;
    DELIVERY_SIGNING_KEY: string;
    KT_SIGNING_KEY: string;
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
  }
}
