// The edge's bindings, declared once. Generated platform types come from worker-configuration.d.ts
// (`npx wrangler types`); secrets are added here because wrangler.toml never names their values.
import type { RecipientQueue } from "./durable/recipient-queue.ts";
import type { KeyTransparency } from "./durable/key-transparency.ts";

export interface AppEnv {
  DB: D1Database;
  RECIPIENT_QUEUE: DurableObjectNamespace<RecipientQueue>;
  KEY_TRANSPARENCY: DurableObjectNamespace<KeyTransparency>;
  /** Shared with the QUIC fronts. */
  FRONT_SECRET: string;
  /** Serialized OPAQUE server setup. */
  OPAQUE_SERVER_SETUP: string;
  /** Base64 PKCS#8 Ed25519 private key for delivery proofs. */
  DELIVERY_SIGNING_KEY: string;
  /** Base64 PKCS#8 Ed25519 private key that signs key-transparency tree heads. */
  KT_SIGNING_KEY: string;
  QPQ_VERSION?: string;
  SESSION_TTL_SECS?: string;
  DEFAULT_MESSAGE_TTL_SECS?: string;
  MAX_QUEUE_MESSAGES?: string;
  MAX_QUEUE_BYTES?: string;
  /** Share of one recipient's queue one sender may hold (default 10% / 25% of the queue caps). */
  MAX_SENDER_QUEUE_MESSAGES?: string;
  MAX_SENDER_QUEUE_BYTES?: string;
  /** Per-sender enqueue rate into one recipient's queue (token bucket). */
  SENDER_ENQUEUE_BURST?: string;
  SENDER_ENQUEUE_PER_MINUTE?: string;
}
