// Account recovery (750-752) for the SDK. The client picks a random recovery token, keeps it
// offline (printed, in a password manager), and stores a bundle sealed under a key derived from
// the token; the server gets only SHA-256(token) and the sealed bytes. Fetching needs no session:
// a user who lost every device has no identity key to log in with. docs/protocol.md, "Recovery".
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import { Method, pb } from "../proto/index.ts";
import type { QpqClient } from "./client.ts";

const TOKEN_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** Largest sealed bundle the server stores (64 KiB): the plaintext is 28 bytes less. */
export const RECOVERY_BUNDLE_MAX = 64 * 1024;

export class RecoveryError extends Error {
  override name = "RecoveryError";
}

/** A fresh recovery token: 32 random bytes (guessing it is hopeless; the server limits tries anyway). */
export function newRecoveryToken(): Uint8Array {
  return new Uint8Array(randomBytes(TOKEN_BYTES));
}

/** What the server indexes the bundle by. */
export function recoveryTokenHash(token: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(token).digest());
}

function bundleKey(token: Uint8Array): Buffer {
  return Buffer.from(hkdfSync("sha256", token, new Uint8Array(0), "qpq recovery bundle v1", 32));
}

/** AES-256-GCM under a key derived from the token (not its hash): nonce ‖ ciphertext ‖ tag. */
export function sealBundle(token: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", bundleKey(token), nonce);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return new Uint8Array(Buffer.concat([nonce, body, cipher.getAuthTag()]));
}

export function openBundle(token: Uint8Array, sealed: Uint8Array): Uint8Array {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new RecoveryError("the recovery bundle is too short");
  const decipher = createDecipheriv("aes-256-gcm", bundleKey(token), sealed.subarray(0, NONCE_BYTES));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return new Uint8Array(
      Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]),
    );
  } catch {
    throw new RecoveryError("the recovery bundle does not open with this token");
  }
}

export class Recovery {
  readonly #client: QpqClient;

  constructor(client: QpqClient) {
    this.#client = client;
  }

  /** Seals `plaintext` under `token` and stores it as the account's bundle (replacing any other). */
  async store(token: Uint8Array, plaintext: Uint8Array): Promise<void> {
    const bundle = sealBundle(token, plaintext);
    if (bundle.length > RECOVERY_BUNDLE_MAX) {
      throw new RecoveryError(`a recovery bundle holds at most ${RECOVERY_BUNDLE_MAX - 28} bytes of plaintext`);
    }
    await this.#client.call(
      Method.StoreRecoveryBundle,
      pb.StoreRecoveryBundleRequest,
      { tokenHash: recoveryTokenHash(token), bundle },
      pb.StoreRecoveryBundleResponse,
    );
  }

  /** The sealed bundle stored under SHA-256(token), as the server holds it (no session needed). */
  async fetchSealed(tokenHash: Uint8Array): Promise<Uint8Array> {
    const res = await this.#client.call(
      Method.FetchRecoveryBundle,
      pb.FetchRecoveryBundleRequest,
      { tokenHash },
      pb.FetchRecoveryBundleResponse,
    );
    return res.bundle;
  }

  /** Fetches and opens the bundle of `token` (no session needed). */
  async fetch(token: Uint8Array): Promise<Uint8Array> {
    return openBundle(token, await this.fetchSealed(recoveryTokenHash(token)));
  }

  /** Deletes the account's bundle. */
  async delete(): Promise<void> {
    await this.#client.call(
      Method.DeleteRecoveryBundle,
      pb.DeleteRecoveryBundleRequest,
      { tokenHash: new Uint8Array(0) },
      pb.DeleteRecoveryBundleResponse,
    );
  }
}
