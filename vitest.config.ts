// Three tiers: pure modules under Node (unit), the edge inside workerd (workers), and the whole
// system over real QUIC (e2e).
import { defineConfig } from "vitest/config";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { generateSecrets } from "./local/secrets.ts";

export default defineConfig({
  test: {
    projects: [
      {
        test: { name: "unit", include: ["tests/unit/**/*.test.ts", "plugins/**/*.test.ts"], environment: "node" },
      },
      {
        plugins: [
          cloudflareTest(async () => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ...(await generateSecrets()),
                TEST_MIGRATIONS: await readD1Migrations("./schema/migrations"),
                MAX_QUEUE_MESSAGES: "50",
                // Room for one 4 MiB payload per sender (the default share is 25%).
                MAX_QUEUE_BYTES: String(16 * 1024 * 1024),
                // A slow refill, so rate tests do not depend on how fast the machine is.
                SENDER_ENQUEUE_BURST: "10",
                SENDER_ENQUEUE_PER_MINUTE: "1",
                // Small enough for the quota test to reach (tests/workers/blob.test.ts).
                BLOB_QUOTA_BYTES: String(16 * 1024 * 1024),
                // Federation on, as region b.test; a small outbox so the bound is reachable.
                FEDERATION_DOMAIN: "b.test",
                FEDERATION_OUTBOX_MAX_MESSAGES: "5",
                // The moderation tests' administrator (tests/workers/moderation.test.ts).
                QPQ_ADMIN_IDENTITIES: "ad".repeat(32),
              },
            },
          })),
        ],
        test: {
          name: "workers",
          include: ["tests/workers/**/*.test.ts"],
          setupFiles: ["tests/workers/setup.ts"],
          // OPAQUE registration and login are CPU heavy (Argon2 key stretching); on a loaded
          // machine a test doing a few of them outlives vitest's 5 s default. A hang still fails.
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["tests/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
