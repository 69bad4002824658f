// Client-side verification of a ResolveUser answer: the tree head is signed by the pinned log
// key, the logged entry is a binding of the asked-for name to the returned key, the inclusion
// proof leads from that entry to the signed root, and the signed tree extends the last one the
// client verified. Pure (WebCrypto only), so SDKs in Node and browsers share it.
import { canonicalUsername, decodeEntry, EntryFormatError, type LogEntry } from "./entry.ts";
import { HASH_BYTES, equalHash, leafHash, verifyConsistency, verifyInclusion } from "./merkle.ts";
import { verifyTreeHead, type SignedTreeHead, type TreeHead } from "./tree-head.ts";

export type KtFailure =
  | "unsigned-head" // missing tree head or bad signature
  | "malformed" // missing or malformed proof fields
  | "wrong-entry" // the logged entry is not this name's binding to this key
  | "inclusion" // the inclusion proof does not lead to the signed root
  | "inconsistent"; // the signed tree does not extend the last verified one

export class KtVerificationError extends Error {
  readonly failure: KtFailure;
  constructor(failure: KtFailure, message: string) {
    super(`key transparency: ${message}`);
    this.name = "KtVerificationError";
    this.failure = failure;
  }
}

/** A ResolveUserResponse as decoded by protobufjs (absent fields may be null or undefined). */
export interface ResolutionMessage {
  identityKey?: Uint8Array | null;
  proof?: {
    leafIndex?: number | null;
    treeSize?: number | null;
    path?: Uint8Array[] | null;
    root?: Uint8Array | null;
    entry?: Uint8Array | null;
  } | null;
  treeHead?: {
    treeSize?: number | null;
    root?: Uint8Array | null;
    timestampMs?: number | null;
    signature?: Uint8Array | null;
  } | null;
  consistencyPath?: Uint8Array[] | null;
}

export interface VerifiedResolution {
  identityKey: Uint8Array;
  entry: LogEntry;
  leafIndex: number;
  head: SignedTreeHead;
}

export function headOf(message: ResolutionMessage["treeHead"]): SignedTreeHead | null {
  if (!message) return null;
  return {
    treeSize: message.treeSize ?? 0,
    root: message.root ?? new Uint8Array(0),
    timestampMs: message.timestampMs ?? 0,
    signature: message.signature ?? new Uint8Array(0),
  };
}

/** Checks that `head` is signed by the log and extends `last` (when given) by `consistency`. */
export async function verifyHead(
  publicKey: Uint8Array,
  head: SignedTreeHead | null,
  last: TreeHead | undefined,
  consistency: readonly Uint8Array[],
): Promise<SignedTreeHead> {
  if (!head || !(await verifyTreeHead(publicKey, head))) {
    throw new KtVerificationError("unsigned-head", "the tree head is missing or not signed by the pinned log key");
  }
  if (last) {
    if (head.treeSize < last.treeSize) {
      throw new KtVerificationError("inconsistent", `the log shrank from ${last.treeSize} to ${head.treeSize} entries`);
    }
    if (!verifyConsistency(last.treeSize, head.treeSize, last.root, head.root, consistency)) {
      throw new KtVerificationError(
        "inconsistent",
        `the tree of ${head.treeSize} entries does not extend the verified tree of ${last.treeSize}`,
      );
    }
  }
  return head;
}

/**
 * Verifies a ResolveUser answer for `username` (as the user typed it). `last` is the newest
 * tree head this client verified before; pass the returned head next time.
 */
export async function verifyResolution(
  username: string,
  res: ResolutionMessage,
  publicKey: Uint8Array,
  last?: TreeHead,
): Promise<VerifiedResolution> {
  const head = await verifyHead(publicKey, headOf(res.treeHead), last, res.consistencyPath ?? []);
  const proof = res.proof;
  const identityKey = res.identityKey ?? new Uint8Array(0);
  if (!proof?.entry || identityKey.length !== 32)
    throw new KtVerificationError("malformed", "the answer carries no logged entry or no key");
  if ((proof.treeSize ?? 0) !== head.treeSize || (proof.root?.length && !equalHash(proof.root, head.root))) {
    throw new KtVerificationError("malformed", "the inclusion proof is for another tree than the signed head");
  }
  let entry: LogEntry;
  try {
    entry = decodeEntry(proof.entry);
  } catch (err) {
    if (err instanceof EntryFormatError)
      throw new KtVerificationError("malformed", `the logged entry is malformed (${err.message})`);
    throw err;
  }
  if (
    entry.kind !== "binding" ||
    entry.username !== canonicalUsername(username) ||
    !equalHash(entry.identityKey, identityKey)
  ) {
    throw new KtVerificationError(
      "wrong-entry",
      `the logged entry is not the binding of ${JSON.stringify(username)} to the returned key`,
    );
  }
  const leafIndex = proof.leafIndex ?? 0;
  const path = proof.path ?? [];
  if (
    path.some((h) => h.length !== HASH_BYTES) ||
    !verifyInclusion(leafIndex, head.treeSize, leafHash(proof.entry), path, head.root)
  ) {
    throw new KtVerificationError(
      "inclusion",
      `the inclusion proof of leaf ${leafIndex} does not lead to the signed root`,
    );
  }
  return { identityKey, entry, leafIndex, head };
}
