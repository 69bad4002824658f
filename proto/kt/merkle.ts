// RFC 9162 §2.1 Merkle tree math, pure: leaf and node hashing, the tree head (MTH), inclusion
// paths (PATH), consistency proofs (PROOF) and their verification (§2.1.3.2, §2.1.4.2).
// Proof generation reads hashes of perfect subtrees from a NodeSource, so the log's Durable
// Object serves proofs in O(log n) reads of stored nodes and MemoryTree serves them in memory.
// Tree sizes and indices are plain numbers: exact below 2^53, far beyond any log here.
import { sha256Sync } from "./sha256.ts";

export const HASH_BYTES = 32;
/** Deepest a path or consistency proof can be for sizes below 2^64. */
export const MAX_PROOF_HASHES = 64;

const LEAF_PREFIX = Uint8Array.of(0);
const NODE_PREFIX = Uint8Array.of(1);

/** MTH({}) = SHA-256() */
export const EMPTY_ROOT: Uint8Array = sha256Sync();

/** MTH({d}) = SHA-256(0x00 || d) */
export function leafHash(entry: Uint8Array): Uint8Array {
  return sha256Sync(LEAF_PREFIX, entry);
}

/** SHA-256(0x01 || left || right) */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256Sync(NODE_PREFIX, left, right);
}

/** The largest power of two strictly smaller than n (n >= 2): RFC 9162's split point k. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  return n >= 1 && splitPoint(n * 2) === n;
}

function log2(n: number): number {
  let level = 0;
  for (let k = 1; k < n; k *= 2) level++;
  return level;
}

/** MTH(D[n]) by the RFC's recursion over leaf hashes: the reference the faster paths must match. */
export function rootOf(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return EMPTY_ROOT;
  if (leaves.length === 1) return leaves[0];
  const k = splitPoint(leaves.length);
  return nodeHash(rootOf(leaves.slice(0, k)), rootOf(leaves.slice(k)));
}

/**
 * Hashes of perfect subtrees: node(level, index) covers leaves [index·2^level, (index+1)·2^level)
 * and is asked for only when all those leaves exist. node(0, i) is leaf i's hash.
 */
export interface NodeSource {
  node(level: number, index: number): Uint8Array;
}

/**
 * MTH(D[start:end]). Every range RFC 9162's recursion visits starts at a multiple of its split
 * point, so its left part is one stored perfect subtree: O(log n) node reads.
 */
export function rangeHash(src: NodeSource, start: number, end: number): Uint8Array {
  const n = end - start;
  if (n <= 0) return EMPTY_ROOT;
  if (isPowerOfTwo(n) && start % n === 0) return src.node(log2(n), start / n);
  const k = splitPoint(n);
  return nodeHash(rangeHash(src, start, start + k), rangeHash(src, start + k, end));
}

/** PATH(m, D[n]): sibling hashes from the leaf up. Requires 0 <= index < size. */
export function inclusionPath(src: NodeSource, index: number, size: number): Uint8Array[] {
  if (!(index >= 0 && index < size)) throw new RangeError(`leaf ${index} is not in a tree of size ${size}`);
  const out: Uint8Array[] = [];
  const walk = (m: number, start: number, end: number): void => {
    const n = end - start;
    if (n === 1) return;
    const k = splitPoint(n);
    if (m < k) {
      walk(m, start, start + k);
      out.push(rangeHash(src, start + k, end));
    } else {
      walk(m - k, start + k, end);
      out.push(rangeHash(src, start, start + k));
    }
  };
  walk(index, 0, size);
  return out;
}

/** PROOF(m, D[n]) for 0 <= m <= n; empty when m is 0 or n (nothing to prove). */
export function consistencyProof(src: NodeSource, first: number, second: number): Uint8Array[] {
  if (!(first >= 0 && first <= second)) throw new RangeError(`no consistency proof from size ${first} to ${second}`);
  if (first === 0 || first === second) return [];
  const out: Uint8Array[] = [];
  const sub = (m: number, start: number, end: number, whole: boolean): void => {
    const n = end - start;
    if (m === n) {
      if (!whole) out.push(rangeHash(src, start, end));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      sub(m, start, start + k, whole);
      out.push(rangeHash(src, start + k, end));
    } else {
      sub(m - k, start + k, end, false);
      out.push(rangeHash(src, start, start + k));
    }
  };
  sub(first, 0, second, true);
  return out;
}

export function equalHash(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function wellFormed(hashes: readonly Uint8Array[]): boolean {
  return hashes.length <= MAX_PROOF_HASHES && hashes.every((h) => h.length === HASH_BYTES);
}

const odd = (n: number) => n % 2 === 1;
const half = (n: number) => Math.floor(n / 2);

/** RFC 9162 §2.1.3.2: does `path` prove leaf `index` (hash `leaf`) is in the tree of `size` with `root`? */
export function verifyInclusion(
  index: number,
  size: number,
  leaf: Uint8Array,
  path: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (!wellFormed(path) || leaf.length !== HASH_BYTES || root.length !== HASH_BYTES) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equalHash(r, root);
}

/**
 * RFC 9162 §2.1.4.2: is the tree of `second` leaves (root `secondRoot`) an append-only extension
 * of the tree of `first` leaves (root `firstRoot`)? Equal sizes need equal roots and no proof;
 * the empty tree is a prefix of every tree.
 */
export function verifyConsistency(
  first: number,
  second: number,
  firstRoot: Uint8Array,
  secondRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 0 || first > second) return false;
  if (!wellFormed(proof) || firstRoot.length !== HASH_BYTES || secondRoot.length !== HASH_BYTES) return false;
  if (first === second) return proof.length === 0 && equalHash(firstRoot, secondRoot);
  if (first === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equalHash(fr, firstRoot) && equalHash(sr, secondRoot);
}

/**
 * An in-memory log: appends in O(log n) (perfect subtrees completed by each leaf are stored),
 * proofs through NodeSource. Used by tests and by anything that mirrors a log from its leaves.
 */
export class MemoryTree implements NodeSource {
  /** levels[l][i] = node(l, i) */
  private readonly levels: Uint8Array[][] = [[]];

  get size(): number {
    return this.levels[0].length;
  }

  appendLeafHash(hash: Uint8Array): number {
    const index = this.size;
    let level = 0;
    let at = index;
    let h = hash;
    this.levels[0].push(h);
    // A right child completes its parent: keep climbing while we are one.
    while (odd(at)) {
      h = nodeHash(this.levels[level][at - 1], h);
      level++;
      at = half(at);
      (this.levels[level] ??= []).push(h);
    }
    return index;
  }

  append(entry: Uint8Array): number {
    return this.appendLeafHash(leafHash(entry));
  }

  node(level: number, index: number): Uint8Array {
    const h = this.levels[level]?.[index];
    if (!h) throw new RangeError(`no node at level ${level}, index ${index}`);
    return h;
  }

  root(size = this.size): Uint8Array {
    return rangeHash(this, 0, size);
  }

  inclusionPath(index: number, size = this.size): Uint8Array[] {
    return inclusionPath(this, index, size);
  }

  consistencyProof(first: number, second = this.size): Uint8Array[] {
    return consistencyProof(this, first, second);
  }
}
