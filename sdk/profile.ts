// Local CLI profiles: one JSON file per username holding the Ed25519 identity key pair and the
// session token, plus a `current` pointer. Everything is written 0600 (the directory 0700),
// atomically, because the files hold a private key and a bearer token.
import { generateKeyPairSync } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Profile {
  version: 1;
  username: string;
  /** Raw 32-byte Ed25519 public key, base64url: the identity key the server knows. */
  identityKey: string;
  /** PKCS#8 PEM of the Ed25519 private key. */
  privateKey: string;
  /** Session token from the last login, base64url. */
  sessionToken?: string;
  /** Device of the saved session, hex (empty: the account's default device). */
  deviceId?: string;
  /** Server the profile was registered on / last logged in to (informational). */
  server?: string;
  /**
   * Key transparency: the log key pinned on first use and the newest tree head verified
   * (base64url), so every later resolution must come with a head that extends it.
   */
  kt?: { publicKey: string; treeSize: number; root: string; timestampMs: number };
  /**
   * Hybrid (X25519 + ML-KEM-768) key pair, base64url (sdk/hybrid-envelope.ts): the public half is
   * uploaded at login, so senders wrap messages to it; the secret half opens them.
   */
  hybrid?: { publicKey: string; secretKey: string };
}

/** Usernames the CLI keeps profiles for: they become file names, so no separators or dot files. */
const SAFE_NAME = /^[\p{L}\p{N}_-][\p{L}\p{N}._-]{0,63}$/u;

export class ProfileError extends Error {}

export function checkProfileName(username: string): string {
  const name = username.normalize("NFC");
  if (!SAFE_NAME.test(name)) {
    throw new ProfileError(
      `username "${username}" must be 1-64 letters, digits, '.', '_' or '-' (not starting with '.')`,
    );
  }
  return name;
}

export function newIdentity(): { identityKey: Uint8Array; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const x = publicKey.export({ format: "jwk" }).x;
  if (!x) throw new Error("Ed25519 public key export has no x");
  return {
    identityKey: new Uint8Array(Buffer.from(x, "base64url")),
    privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
  };
}

export const b64u = {
  encode: (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url"),
  decode: (text: string) => new Uint8Array(Buffer.from(text, "base64url")),
};

export class ProfileStore {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  pathOf(username: string): string {
    return join(this.dir, `${checkProfileName(username)}.json`);
  }

  /** The profile for `username`, or undefined if there is none. */
  find(username: string): Profile | undefined {
    const path = this.pathOf(username);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    let profile: Profile;
    try {
      profile = JSON.parse(text) as Profile;
    } catch {
      throw new ProfileError(`profile ${path} is not valid JSON`);
    }
    if (profile.version !== 1 || typeof profile.identityKey !== "string" || typeof profile.privateKey !== "string") {
      throw new ProfileError(`profile ${path} is not a qpq profile`);
    }
    return profile;
  }

  /** The profile for `username`, or for the `current` pointer when no name is given. */
  load(username?: string): Profile {
    const name = username ?? this.current();
    if (name === undefined) {
      throw new ProfileError(
        `no current profile in ${this.dir}; run "qpq register <username>" or "qpq login <username>", or pass --as`,
      );
    }
    const profile = this.find(name);
    if (!profile) {
      throw new ProfileError(
        `no profile for ${name} in ${this.dir}: this machine has no identity key for ${name} (run "qpq login ${name}" to see how to get one here)`,
      );
    }
    return profile;
  }

  save(profile: Profile): string {
    const path = this.pathOf(profile.username);
    this.writePrivate(path, `${JSON.stringify(profile, null, 2)}\n`);
    return path;
  }

  /** Deletes `username`'s profile (and the current pointer if it names it). */
  remove(username: string): void {
    rmSync(this.pathOf(username), { force: true });
    if (this.current() === checkProfileName(username)) rmSync(join(this.dir, "current"), { force: true });
  }

  current(): string | undefined {
    try {
      return readFileSync(join(this.dir, "current"), "utf8").trim() || undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  setCurrent(username: string): void {
    this.writePrivate(join(this.dir, "current"), `${checkProfileName(username)}\n`);
  }

  /** Write-then-rename so a crash never leaves a truncated profile; 0600 from the first byte. */
  private writePrivate(path: string, text: string): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, text, { mode: 0o600 });
    chmodSync(tmp, 0o600); // in case a stale temp file existed with other bits
    renameSync(tmp, path);
  }
}
