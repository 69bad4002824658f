// Development secrets: generated once per data directory and kept there (mode 0600). Production
// deployments set them with `wrangler secret put` and the front's environment instead.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as opaque from "@serenity-kit/opaque";

export interface EdgeSecrets {
  FRONT_SECRET: string;
  OPAQUE_SERVER_SETUP: string;
  DELIVERY_SIGNING_KEY: string;
  KT_SIGNING_KEY: string;
  FEDERATION_SIGNING_KEY: string;
}

export async function generateSecrets(): Promise<EdgeSecrets> {
  await opaque.ready;
  return {
    FRONT_SECRET: randomBytes(32).toString("base64url"),
    OPAQUE_SERVER_SETUP: opaque.server.createSetup(),
    DELIVERY_SIGNING_KEY: ed25519Pkcs8(),
    KT_SIGNING_KEY: ed25519Pkcs8(),
    FEDERATION_SIGNING_KEY: ed25519Pkcs8(),
  };
}

function ed25519Pkcs8(): string {
  const { privateKey } = generateKeyPairSync("ed25519");
  return privateKey.export({ format: "der", type: "pkcs8" }).toString("base64");
}

export async function loadOrCreateSecrets(dataDir: string): Promise<EdgeSecrets> {
  const file = join(dataDir, "secrets.json");
  const stored = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Partial<EdgeSecrets>) : undefined;
  // A data directory from an older release lacks the secrets added since: add them, keep the rest.
  const secrets = { ...(await generateSecrets()), ...stored };
  if (stored && Object.keys(secrets).every((k) => k in stored)) return secrets;
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}
