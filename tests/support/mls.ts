// Minimal typed wrapper over ts-mls (RFC 9420) for end-to-end tests: a real
// two-party MLS conversation whose wire bytes are carried by our server.
// Cipher suite 1 (X25519 / AES-128-GCM / SHA-256 / Ed25519) needs only @hpke/core
// plus WebCrypto Ed25519 (Node >= 20); the post-quantum suite (MLS_PQ_CIPHER_SUITE) also needs the
// optional peer @hpke/ml-kem (a devDependency).
// Deliberately NOT `from "ts-mls"`: the package index statically re-exports
// nobleCryptoProvider, which imports @noble/hashes -- a package ts-mls@1.6.4 does not
// declare (not even as an optional peer) and that is not installed here. The
// "./*.js" subpath export reaches the same modules without loading that provider.
import { createGroup, joinGroup, type ClientState } from "ts-mls/clientState.js";
import { createCommit } from "ts-mls/createCommit.js";
import { createApplicationMessage } from "ts-mls/createMessage.js";
import type { Credential } from "ts-mls/credential.js";
import { getCiphersuiteFromName, type CiphersuiteImpl } from "ts-mls/crypto/ciphersuite.js";
import { getCiphersuiteImpl } from "ts-mls/crypto/getCiphersuiteImpl.js";
import { defaultCapabilities } from "ts-mls/defaultCapabilities.js";
import {
  generateKeyPackageWithKey,
  makeKeyPackageRef, // not re-exported from the index at all
  type KeyPackage,
  type PrivateKeyPackage,
} from "ts-mls/keyPackage.js";
import { defaultLifetime } from "ts-mls/lifetime.js";
import { decodeMlsMessage, encodeMlsMessage, type MLSMessage } from "ts-mls/message.js";
import { processPrivateMessage } from "ts-mls/processMessages.js";
import { emptyPskIndex } from "ts-mls/pskIndex.js";
import { zeroOutUint8Array } from "ts-mls/util/byteArray.js";

export const MLS_CIPHER_SUITE = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";
/**
 * Post-quantum suite 79: ML-KEM-768 for HPKE (ts-mls loads the optional peer @hpke/ml-kem for it),
 * AES-256-GCM, SHA-384, Ed25519 signatures (WebCrypto).
 */
export const MLS_PQ_CIPHER_SUITE = "MLS_256_MLKEM768_AES256GCM_SHA384_Ed25519";
export type MlsSuiteName = typeof MLS_CIPHER_SUITE | typeof MLS_PQ_CIPHER_SUITE;

const suites = new Map<MlsSuiteName, Promise<CiphersuiteImpl>>();
function suite(name: MlsSuiteName): Promise<CiphersuiteImpl> {
  let impl = suites.get(name);
  if (!impl) suites.set(name, (impl = getCiphersuiteImpl(getCiphersuiteFromName(name))));
  return impl;
}

/** Decodes one complete MLSMessage; rejects truncated input and trailing bytes. */
export function decodeMessage(bytes: Uint8Array): MLSMessage {
  const decoded = decodeMlsMessage(bytes, 0);
  if (decoded === undefined) throw new Error("mls: cannot decode MLSMessage");
  const [message, length] = decoded;
  if (length !== bytes.length) throw new Error(`mls: ${bytes.length - length} trailing bytes after MLSMessage`);
  return message;
}

const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

interface PendingKeyPackage {
  publicPackage: KeyPackage;
  privatePackage: PrivateKeyPackage;
}

export class MlsMember {
  readonly name: string;
  readonly #cs: CiphersuiteImpl;
  readonly #credential: Credential;
  readonly #signatureKeys: { signKey: Uint8Array; publicKey: Uint8Array };
  /** Unused key packages, by hex KeyPackageRef. */
  readonly #pending = new Map<string, PendingKeyPackage>();
  #state: ClientState | undefined;

  constructor(name: string, cs: CiphersuiteImpl, signatureKeys: { signKey: Uint8Array; publicKey: Uint8Array }) {
    this.name = name;
    this.#cs = cs;
    this.#credential = { credentialType: "basic", identity: new TextEncoder().encode(name) };
    this.#signatureKeys = signatureKeys;
  }

  #newKeyPackage(): Promise<PendingKeyPackage> {
    return generateKeyPackageWithKey(
      this.#credential,
      defaultCapabilities(),
      defaultLifetime,
      [],
      this.#signatureKeys,
      this.#cs,
    );
  }

  #group(): ClientState {
    if (this.#state === undefined) throw new Error(`mls: ${this.name} is not in a group`);
    return this.#state;
  }

  /** Fresh KeyPackage as wire-encoded MLSMessage (wireformat mls_key_package); private part is kept. */
  async keyPackage(): Promise<Uint8Array> {
    const kp = await this.#newKeyPackage();
    this.#pending.set(toHex(await makeKeyPackageRef(kp.publicPackage, this.#cs.hash)), kp);
    return encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp.publicPackage });
  }

  async createGroup(groupId: Uint8Array): Promise<void> {
    const kp = await this.#newKeyPackage();
    this.#state = await createGroup(groupId, kp.publicPackage, kp.privatePackage, [], this.#cs);
  }

  /** Commits an Add for the peer's key package and applies it locally. */
  async addMember(keyPackageBytes: Uint8Array): Promise<{ welcome: Uint8Array; commit: Uint8Array }> {
    const message = decodeMessage(keyPackageBytes);
    if (message.wireformat !== "mls_key_package")
      throw new Error(`mls: expected key package, got ${message.wireformat}`);
    const result = await createCommit(
      { state: this.#group(), cipherSuite: this.#cs },
      // ratchetTreeExtension: the Welcome carries the tree, so joiners need nothing else.
      {
        extraProposals: [{ proposalType: "add", add: { keyPackage: message.keyPackage } }],
        ratchetTreeExtension: true,
      },
    );
    if (result.welcome === undefined) throw new Error("mls: commit produced no Welcome");
    this.#state = result.newState;
    result.consumed.forEach(zeroOutUint8Array);
    return {
      welcome: encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: result.welcome }),
      commit: encodeMlsMessage(result.commit),
    };
  }

  /** Joins using whichever remembered key package the Welcome is addressed to (then forgets it). */
  async joinFromWelcome(welcomeBytes: Uint8Array): Promise<void> {
    const message = decodeMessage(welcomeBytes);
    if (message.wireformat !== "mls_welcome") throw new Error(`mls: expected welcome, got ${message.wireformat}`);
    const ref = message.welcome.secrets.map((s) => toHex(s.newMember)).find((r) => this.#pending.has(r));
    const kp = ref === undefined ? undefined : this.#pending.get(ref);
    if (ref === undefined || kp === undefined)
      throw new Error(`mls: welcome is not for any key package of ${this.name}`);
    this.#state = await joinGroup(message.welcome, kp.publicPackage, kp.privatePackage, emptyPskIndex, this.#cs);
    this.#pending.delete(ref);
  }

  /** Application message as wire-encoded MLSMessage (wireformat mls_private_message). */
  async encrypt(plaintext: Uint8Array): Promise<Uint8Array> {
    const result = await createApplicationMessage(this.#group(), plaintext, this.#cs);
    this.#state = result.newState;
    result.consumed.forEach(zeroOutUint8Array);
    return encodeMlsMessage({
      version: "mls10",
      wireformat: "mls_private_message",
      privateMessage: result.privateMessage,
    });
  }

  /** Decrypts an application message; throws (state unchanged) on anything else or on failure. */
  async decrypt(messageBytes: Uint8Array): Promise<Uint8Array> {
    const message = decodeMessage(messageBytes);
    if (message.wireformat !== "mls_private_message")
      throw new Error(`mls: expected private message, got ${message.wireformat}`);
    const result = await processPrivateMessage(this.#group(), message.privateMessage, emptyPskIndex, this.#cs);
    if (result.kind !== "applicationMessage") throw new Error("mls: not an application message");
    this.#state = result.newState;
    result.consumed.forEach(zeroOutUint8Array);
    return result.message;
  }

  /** The group's cipher suite name (as ts-mls spells it). */
  cipherSuite(): string {
    return this.#cs.name;
  }

  epoch(): bigint {
    return this.#group().groupContext.epoch;
  }

  groupId(): Uint8Array {
    return this.#group().groupContext.groupId;
  }
}

/** Basic credential (identity = UTF-8 name) with one Ed25519 signature key reused across key packages. */
export async function createMlsMember(name: string, suiteName: MlsSuiteName = MLS_CIPHER_SUITE): Promise<MlsMember> {
  const cs = await suite(suiteName);
  return new MlsMember(name, cs, await cs.signature.keygen());
}
