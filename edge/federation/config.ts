// This deployment's federation identity, from its bindings: the domain, the Ed25519 key that
// signs edge-to-edge requests, and the outbox objects. Null when FEDERATION_DOMAIN is empty.
import type { AppEnv } from "../env.ts";
import { importSigningKey } from "../lib/delivery-proof.ts";
import { ConfigError } from "../../proto/util/config-error.ts";
import { isDomain } from "./domain.ts";

export interface FederationDeps {
  domain: string;
  /** Base URL published in /.well-known/qpq; undefined: the origin the document was asked on. */
  url: string | undefined;
  signing: Promise<{ privateKey: CryptoKey; publicKey: Uint8Array }>;
  outboxes: AppEnv["FEDERATION_OUTBOX"];
}

export function federationFromEnv(env: AppEnv): FederationDeps | null {
  const domain = (env.FEDERATION_DOMAIN ?? "").trim().toLowerCase();
  if (!domain) return null;
  if (!isDomain(domain)) throw new ConfigError(`FEDERATION_DOMAIN ${JSON.stringify(domain)} is not a domain name`);
  if (!env.FEDERATION_SIGNING_KEY) throw new ConfigError("secret FEDERATION_SIGNING_KEY is not set");
  const signing = importSigningKey(env.FEDERATION_SIGNING_KEY);
  signing.catch(() => {});
  return { domain, url: env.FEDERATION_URL || undefined, signing, outboxes: env.FEDERATION_OUTBOX };
}

/** The object relaying to `domain` ("out:") or checking requests from it ("in:"). */
export function outboxOf(fed: Pick<FederationDeps, "outboxes">, role: "out" | "in", domain: string) {
  return fed.outboxes.get(fed.outboxes.idFromName(`${role}:${domain}`));
}
