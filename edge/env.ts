// The edge's bindings, declared once. `Env` (bindings and [vars] of wrangler.toml) is generated
// into worker-configuration.d.ts by `npm run types:edge`: run it after changing wrangler.toml.
// AppEnv adds what wrangler.toml does not name: the secrets, and the optional limit variables
// (their defaults are in lib/limits.ts).
export interface AppEnv extends Env {
  /** Shared with the QUIC fronts. */
  FRONT_SECRET: string;
  /** Serialized OPAQUE server setup. */
  OPAQUE_SERVER_SETUP: string;
  /** Base64 PKCS#8 Ed25519 private key for delivery proofs. */
  DELIVERY_SIGNING_KEY: string;
  /** Base64 PKCS#8 Ed25519 private key that signs key-transparency tree heads. */
  KT_SIGNING_KEY: string;
  /** Base64 PKCS#8 Ed25519 private key that signs edge-to-edge federation requests. */
  FEDERATION_SIGNING_KEY?: string;
  /** Base URL peers reach this edge at, published in /.well-known/qpq (default: the request's origin). */
  FEDERATION_URL?: string;
  /** Relays one peer's outbox holds before it answers RateLimited (default in federation/limits.ts). */
  FEDERATION_OUTBOX_MAX_MESSAGES?: string;
  /** Share of one recipient's queue one sender may hold (default 10% / 25% of the queue caps). */
  MAX_SENDER_QUEUE_MESSAGES?: string;
  MAX_SENDER_QUEUE_BYTES?: string;
  /** Per-sender enqueue rate into one recipient's queue (token bucket). */
  SENDER_ENQUEUE_BURST?: string;
  SENDER_ENQUEUE_PER_MINUTE?: string;
  /** Blob storage per identity in bytes (default 1 GiB) and how long a blob stays (default 30 days). */
  BLOB_QUOTA_BYTES?: string;
  BLOB_TTL_SECS?: string;
}
