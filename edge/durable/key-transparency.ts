// KeyTransparency: the deployment's single append-only Merkle log (RFC 9162 hashing) of
// (username, identity key) bindings and revocations, one writer assigning leaf indices.
//
// Write path: every append is one synchronous SQLite transaction with no await inside, so calls
// never interleave and none waits on another's I/O: the entry, its leaf hash and the perfect
// subtrees it completes (O(log n) rows) are written, and the frontier (the perfect subtrees
// that make up the current tree) is updated in memory. Nothing is signed on append.
// Read path: proofs are computed from stored perfect subtrees (O(log² n) point reads at worst)
// and the tree head is signed lazily: at most once per tree size while the object is in memory.
import { DurableObject } from "cloudflare:workers";
import type { AppEnv } from "../env.ts";
import { refusable as refusableQpq, type Refusable } from "./refusable.ts";
import { badRequest } from "../../proto/index.ts";
import {
  EMPTY_ROOT,
  consistencyProof,
  inclusionPath,
  leafHash,
  nodeHash,
  rangeHash,
  type NodeSource,
} from "../../proto/kt/merkle.ts";
import { EntryFormatError, encodeEntry, type LogEntry, type RevocationReason } from "../../proto/kt/entry.ts";
import { signTreeHead, type SignedTreeHead } from "../../proto/kt/tree-head.ts";
import { importSigningKey } from "../lib/delivery-proof.ts";

/** Most entries one AuditKeyTransparency answers (each ≤ 345 bytes with its hash: far below a frame). */
export const AUDIT_MAX_ENTRIES = 1000;

export interface Appended {
  leafIndex: number;
  /** False when the log already held this binding or revocation (nothing was appended). */
  appended: boolean;
}
export interface BindingInput {
  username: string;
  identityKey: Uint8Array;
}
export interface RevocationInput extends BindingInput {
  reason: RevocationReason;
}
export interface RevocationStatus {
  revoked: boolean;
  reason: string;
  timeMs: number;
  leafIndex: number;
}
export interface Resolution {
  entry: Uint8Array;
  leafIndex: number;
  path: Uint8Array[];
  head: SignedTreeHead;
  /** PROOF(knownTreeSize, head.treeSize). */
  consistency: Uint8Array[];
}
export interface AuditInput {
  start: number;
  /** Exclusive; 0 = to the end. */
  end: number;
  firstSize: number;
}
export interface Audit {
  entries: { index: number; leafHash: Uint8Array; entry: Uint8Array }[];
  head: SignedTreeHead;
  consistency: Uint8Array[];
}

/** Append-only list of schema steps; index + 1 is the schema version. */
const MIGRATIONS: string[] = [
  `CREATE TABLE entries (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
   CREATE TABLE nodes (
     level INTEGER NOT NULL,
     idx INTEGER NOT NULL,
     hash BLOB NOT NULL,
     PRIMARY KEY (level, idx)
   ) WITHOUT ROWID;
   CREATE TABLE bindings (username TEXT PRIMARY KEY, identity_key BLOB NOT NULL, leaf INTEGER NOT NULL);
   CREATE TABLE keys (
     identity_key BLOB PRIMARY KEY,
     binding_leaf INTEGER,
     revocation_leaf INTEGER,
     reason TEXT,
     revoked_at INTEGER
   );`,
];

/** refusable(), with a malformed log entry refused as BadRequest. */
function refusable<T>(fn: () => T | Promise<T>): Promise<Refusable<T>> {
  return refusableQpq(async () => {
    try {
      return await fn();
    } catch (err) {
      throw err instanceof EntryFormatError ? badRequest(err.message) : err;
    }
  });
}

function bytes(value: ArrayBuffer): Uint8Array {
  return new Uint8Array(value);
}

function count(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw badRequest(`${field} must be a non-negative integer`);
  return value;
}

export class KeyTransparency extends DurableObject<AppEnv> {
  private readonly sql: SqlStorage;
  private size = 0;
  /** frontier[level]: root of the perfect subtree of 2^level leaves in the current tree, if any. */
  private frontier: (Uint8Array | undefined)[] = [];
  private signingKey: Promise<CryptoKey> | undefined;
  /** The newest signed head and a signature in progress, so each size is signed once. */
  private signed: SignedTreeHead | undefined;
  private signing: { size: number; head: Promise<SignedTreeHead> } | undefined;

  constructor(ctx: DurableObjectState, env: AppEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.migrate();
      this.load();
    });
  }

  private migrate(): void {
    this.sql.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    const current = this.sql.exec<{ version: number }>("SELECT version FROM schema_version").toArray()[0]?.version ?? 0;
    if (current >= MIGRATIONS.length) return;
    this.ctx.storage.transactionSync(() => {
      for (let v = current; v < MIGRATIONS.length; v++) this.sql.exec(MIGRATIONS[v]);
      this.sql.exec("DELETE FROM schema_version");
      this.sql.exec("INSERT INTO schema_version (version) VALUES (?)", MIGRATIONS.length);
    });
  }

  /** Size and frontier from storage: O(log n) reads. Also the rollback after a failed append. */
  private load(): void {
    const row = this.sql.exec<{ n: number | null }>("SELECT MAX(idx) + 1 AS n FROM entries").one();
    this.size = row.n ?? 0;
    this.frontier = [];
    for (let level = 0; 2 ** level <= this.size; level++) {
      if (Math.floor(this.size / 2 ** level) % 2 === 1) {
        this.frontier[level] = this.node(level, Math.floor(this.size / 2 ** level) - 1);
      }
    }
  }

  private node(level: number, index: number): Uint8Array {
    const row = this.sql
      .exec<{ hash: ArrayBuffer }>("SELECT hash FROM nodes WHERE level = ? AND idx = ?", level, index)
      .toArray()[0];
    if (!row) throw new Error(`key-transparency log is missing node (${level}, ${index})`);
    return bytes(row.hash);
  }

  /** Stored nodes, memoised for one proof computation. */
  private source(): NodeSource {
    const memo = new Map<string, Uint8Array>();
    return {
      node: (level, index) => {
        const key = `${level}/${index}`;
        let h = memo.get(key);
        if (!h) memo.set(key, (h = this.node(level, index)));
        return h;
      },
    };
  }

  private currentRoot(): Uint8Array {
    let root: Uint8Array | undefined;
    for (const h of this.frontier) if (h) root = root ? nodeHash(h, root) : h;
    return root ?? EMPTY_ROOT;
  }

  private rootAt(size: number): Uint8Array {
    return size === this.size ? this.currentRoot() : rangeHash(this.source(), 0, size);
  }

  /** Appends one entry and the perfect subtrees it completes. Call inside a transaction. */
  private appendEntry(entry: LogEntry): number {
    const bytes = encodeEntry(entry);
    const index = this.size;
    let h = leafHash(bytes);
    this.sql.exec("INSERT INTO entries (idx, entry) VALUES (?, ?)", index, bytes);
    this.sql.exec("INSERT INTO nodes (level, idx, hash) VALUES (0, ?, ?)", index, h);
    let level = 0;
    let at = index;
    // A right child completes its parent, whose left child is the frontier at this level.
    while (at % 2 === 1) {
      const left = this.frontier[level];
      if (!left) throw new Error("key-transparency frontier is inconsistent with the log size");
      this.frontier[level] = undefined;
      h = nodeHash(left, h);
      level++;
      at = Math.floor(at / 2);
      this.sql.exec("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", level, at, h);
    }
    this.frontier[level] = h;
    this.size = index + 1;
    return index;
  }

  /** Runs appends in one transaction; on failure storage rolls back and so does memory. */
  private transaction<T>(fn: () => T): T {
    try {
      return this.ctx.storage.transactionSync(fn);
    } catch (err) {
      this.load();
      throw err;
    }
  }

  /**
   * Appends the binding unless it is already `username`'s latest. A registration (`fresh`) also
   * appends it when the key was revoked since: the same key registered again after its account
   * was deleted. Resolution never does, so resolving cannot undo a revocation.
   */
  private bindSync(input: BindingInput, fresh: boolean): Appended {
    const current = this.sql
      .exec<{ key: ArrayBuffer; leaf: number; revoked: number | null }>(
        `SELECT b.identity_key AS key, b.leaf AS leaf, k.revocation_leaf AS revoked FROM bindings b
         LEFT JOIN keys k ON k.identity_key = b.identity_key
       WHERE b.username = ?`,
        input.username,
      )
      .toArray()[0];
    if (current && equal(bytes(current.key), input.identityKey) && !(fresh && current.revoked != null)) {
      return { leafIndex: current.leaf, appended: false };
    }
    return this.transaction(() => {
      const leafIndex = this.appendEntry({
        kind: "binding",
        username: input.username,
        identityKey: input.identityKey,
        timeMs: Date.now(),
      });
      this.sql.exec(
        "INSERT OR REPLACE INTO bindings (username, identity_key, leaf) VALUES (?, ?, ?)",
        input.username,
        input.identityKey,
        leafIndex,
      );
      // A key bound again (after its account was deleted) is no longer revoked.
      this.sql.exec(
        `INSERT INTO keys (identity_key, binding_leaf) VALUES (?, ?)
        ON CONFLICT (identity_key) DO UPDATE SET binding_leaf = excluded.binding_leaf,
          revocation_leaf = NULL, reason = NULL, revoked_at = NULL`,
        input.identityKey,
        leafIndex,
      );
      return { leafIndex, appended: true };
    });
  }

  // --- RPC ----------------------------------------------------------------------------------

  /** Registration: logs that `username` is now bound to `identityKey`. Idempotent. */
  async bind(input: BindingInput): Promise<Refusable<Appended>> {
    return refusable(() => this.bindSync(input, true));
  }

  /** Logs a revocation of `identityKey`; a key already revoked answers its first revocation. */
  async revoke(input: RevocationInput): Promise<Refusable<Appended>> {
    return refusable(() => {
      const prior = this.sql
        .exec<{ leaf: number | null }>(
          "SELECT revocation_leaf AS leaf FROM keys WHERE identity_key = ?",
          input.identityKey,
        )
        .toArray()[0];
      if (prior?.leaf != null) return { leafIndex: prior.leaf, appended: false };
      return this.transaction(() => {
        const now = Date.now();
        const leafIndex = this.appendEntry({
          kind: "revocation",
          username: input.username,
          identityKey: input.identityKey,
          timeMs: now,
          reason: input.reason,
        });
        this.sql.exec(
          `INSERT INTO keys (identity_key, revocation_leaf, reason, revoked_at) VALUES (?, ?, ?, ?)
          ON CONFLICT (identity_key) DO UPDATE SET revocation_leaf = excluded.revocation_leaf,
            reason = excluded.reason, revoked_at = excluded.revoked_at`,
          input.identityKey,
          leafIndex,
          input.reason,
          now,
        );
        return { leafIndex, appended: true };
      });
    });
  }

  async revocation(identityKey: Uint8Array): Promise<RevocationStatus> {
    const row = this.sql
      .exec<{ leaf: number | null; reason: string | null; at: number | null }>(
        "SELECT revocation_leaf AS leaf, reason, revoked_at AS at FROM keys WHERE identity_key = ?",
        identityKey,
      )
      .toArray()[0];
    if (row?.leaf == null) return { revoked: false, reason: "", timeMs: 0, leafIndex: 0 };
    return { revoked: true, reason: row.reason ?? "", timeMs: row.at ?? 0, leafIndex: row.leaf };
  }

  /**
   * The inclusion proof of `username`'s binding to `identityKey` (appended first if the log
   * lacks it: registration's append may have been lost), against a signed head, plus the
   * consistency proof from the tree size the client last verified.
   */
  async prove(input: BindingInput & { knownTreeSize: number }): Promise<Refusable<Resolution>> {
    return refusable(async () => {
      const known = count(input.knownTreeSize, "known_tree_size");
      const { leafIndex } = this.bindSync(input, false);
      const size = this.size;
      if (known > size) throw badRequest(`known_tree_size ${known} is beyond the log's size ${size}`);
      const src = this.source();
      const entry = this.entry(leafIndex);
      const path = inclusionPath(src, leafIndex, size);
      const consistency = consistencyProof(src, known, size);
      return { entry, leafIndex, path, consistency, head: await this.head(size) };
    });
  }

  /** Leaves [start, end) (at most AUDIT_MAX_ENTRIES), the signed head, PROOF(firstSize, size). */
  async audit(input: AuditInput): Promise<Refusable<Audit>> {
    return refusable(async () => {
      const start = count(input.start, "start");
      const endAsked = count(input.end, "end");
      const firstSize = count(input.firstSize, "first_size");
      const size = this.size;
      if (start > size) throw badRequest(`start ${start} is beyond the log's size ${size}`);
      if (endAsked !== 0 && endAsked < start) throw badRequest(`end ${endAsked} is before start ${start}`);
      if (firstSize > size) throw badRequest(`first_size ${firstSize} is beyond the log's size ${size}`);
      const end = Math.min(endAsked === 0 ? size : endAsked, size, start + AUDIT_MAX_ENTRIES);
      const rows = this.sql
        .exec<{ idx: number; entry: ArrayBuffer; hash: ArrayBuffer }>(
          `SELECT e.idx AS idx, e.entry AS entry, n.hash AS hash FROM entries e
           JOIN nodes n ON n.level = 0 AND n.idx = e.idx
         WHERE e.idx >= ? AND e.idx < ? ORDER BY e.idx`,
          start,
          end,
        )
        .toArray();
      const entries = rows.map((r) => ({ index: r.idx, leafHash: bytes(r.hash), entry: bytes(r.entry) }));
      const consistency = consistencyProof(this.source(), firstSize, size);
      return { entries, consistency, head: await this.head(size) };
    });
  }

  private entry(index: number): Uint8Array {
    const row = this.sql.exec<{ entry: ArrayBuffer }>("SELECT entry FROM entries WHERE idx = ?", index).toArray()[0];
    if (!row) throw new Error(`key-transparency log is missing entry ${index}`);
    return bytes(row.entry);
  }

  /** The signed head for `size` (the current size when called): signed once per size. */
  private head(size: number): Promise<SignedTreeHead> {
    if (this.signed?.treeSize === size) return Promise.resolve(this.signed);
    if (this.signing?.size === size) return this.signing.head;
    const root = this.rootAt(size);
    this.signingKey ??= importSigningKey(this.env.KT_SIGNING_KEY).then((k) => k.privateKey);
    const head = this.signingKey
      .then((key) => signTreeHead(key, { treeSize: size, root, timestampMs: Date.now() }))
      .then((signed) => {
        if (!this.signed || signed.treeSize >= this.signed.treeSize) this.signed = signed;
        return signed;
      })
      .finally(() => {
        if (this.signing?.head === head) this.signing = undefined;
      });
    this.signing = { size, head };
    return head;
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
