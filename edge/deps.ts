// Everything a handler needs, built once per isolate from the bindings (worker.ts) or from test
// fixtures. Handlers never read `env` directly.
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import type { AppEnv } from "./env.ts";
import { sessionTtlMs, storageLimitsFrom, type StorageLimits } from "./lib/limits.ts";
import { importAssertionKey } from "./lib/caller-assertion.ts";
import { importSigningKey } from "./lib/delivery-proof.ts";
import { importSenderTagKey } from "./lib/sender-tag.ts";
import { sealedSenderFromEnv } from "./lib/sealed-sender.ts";
import { sha256 } from "./lib/crypto.ts";
import { parseAdmins } from "./lib/admins.ts";
import * as tables from "../schema/tables.ts";
import { federationFromEnv, type FederationDeps } from "./federation/config.ts";
import { ConfigError } from "../proto/util/config-error.ts";
import { encodeUtf8 } from "../proto/util/text.ts";
import { createLogger, type Logger } from "../proto/util/log.ts";

export type Db = DrizzleD1Database<typeof tables>;

export interface EdgeDeps {
  db: Db;
  queues: AppEnv["RECIPIENT_QUEUE"];
  /** The key-transparency log (a single object). */
  ktLog: AppEnv["KEY_TRANSPARENCY"];
  opaqueSetup: string;
  /** JSON lines to the Workers log (console.error). */
  logger: Logger;
  sessionTtlMs: number;
  version: string;
  startedAt: number;
  /** SHA-256 of the front secret, compared in constant time with the presented one's digest. */
  frontSecretDigest: Promise<Uint8Array>;
  assertionKey: Promise<CryptoKey>;
  signing: Promise<{ privateKey: CryptoKey; publicKey: Uint8Array }>;
  /** Keys the sender tags that recipient queues see instead of sender identities. */
  senderTagKey: Promise<CryptoKey>;
  /** SEALED_SENDER: queues never learn who sent a message (lib/sealed-sender.ts). */
  sealedSender: boolean;
  /** Raw Ed25519 public key of KT_SIGNING_KEY: verifies the log's signed tree heads. */
  ktPublicKey: Promise<Uint8Array>;
  /** Blob chunks (R2); D1 says which blobs are visible. */
  blobs: AppEnv["BLOBS"];
  storage: StorageLimits;
  /** This deployment's federation domain, key and outboxes; null when FEDERATION_DOMAIN is empty. */
  federation: FederationDeps | null;
  /** Hex identity keys of the server's administrators (QPQ_ADMIN_IDENTITIES; moderation). */
  admins: ReadonlySet<string>;
}

export function depsFromEnv(env: AppEnv): EdgeDeps {
  for (const name of ["FRONT_SECRET", "OPAQUE_SERVER_SETUP", "DELIVERY_SIGNING_KEY", "KT_SIGNING_KEY"] as const) {
    if (!env[name]) throw new ConfigError(`secret ${name} is not set`);
  }
  const deps: EdgeDeps = {
    db: drizzle(env.DB, { schema: tables }),
    queues: env.RECIPIENT_QUEUE,
    ktLog: env.KEY_TRANSPARENCY,
    opaqueSetup: env.OPAQUE_SERVER_SETUP,
    logger: createLogger("info"),
    sessionTtlMs: sessionTtlMs(env),
    version: env.QPQ_VERSION ?? "0.0.0",
    startedAt: Date.now(),
    frontSecretDigest: sha256(encodeUtf8(env.FRONT_SECRET)),
    assertionKey: importAssertionKey(env.FRONT_SECRET),
    signing: importSigningKey(env.DELIVERY_SIGNING_KEY),
    senderTagKey: importSenderTagKey(env.DELIVERY_SIGNING_KEY),
    sealedSender: sealedSenderFromEnv(env.SEALED_SENDER),
    ktPublicKey: importSigningKey(env.KT_SIGNING_KEY).then((k) => k.publicKey),
    blobs: env.BLOBS,
    storage: storageLimitsFrom(env),
    federation: federationFromEnv(env),
    admins: parseAdmins(env.QPQ_ADMIN_IDENTITIES),
  };
  // Surface bad secrets on first use, not as unhandled rejections.
  for (const p of [deps.frontSecretDigest, deps.assertionKey, deps.signing, deps.senderTagKey, deps.ktPublicKey])
    p.catch(() => {});
  return deps;
}
