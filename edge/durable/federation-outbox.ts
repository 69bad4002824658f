// FederationOutbox: one Durable Object per peer and direction.
//
// "out:<domain>" is the durable, ordered queue of relays to that peer. Enqueue and BatchEnqueue
// to an identity homed there answer Ok once the relay is stored here (one SQLite transaction).
// The alarm is the only sender: it relays the oldest pending entries one after the other (at most
// one batch in flight per peer, in order), deletes each once the peer stored it, and on a peer
// that is down or busy backs off exponentially with full jitter. Entries are deduplicated by
// their relay key (a client's retry with the same message_id), and the receiver deduplicates by
// (origin domain, sender, relay message id), so a retry after a lost answer stores nothing twice.
// A full outbox refuses (RateLimited with retry_after); it never drops. A relay the peer refuses
// for good (unknown recipient, malformed) moves to `rejected`, kept for inspection and counted.
//
// "in:<domain>" checks requests signed by that peer: it remembers each accepted signature until
// its created window ends (a replay is refused) and counts refusals for the metrics.
import { DurableObject } from "cloudflare:workers";
import { drizzle } from "drizzle-orm/d1";
import type { AppEnv } from "../env.ts";
import { Status, encode, pb, rateLimited } from "../../proto/index.ts";
import { refusable, type Refusable } from "./refusable.ts";
import { federationFromEnv, type FederationDeps } from "../federation/config.ts";
import { findPeer } from "../federation/peers.ts";
import { PERMANENT, callPeer } from "../federation/client.ts";
import { FEDERATION_LIMITS } from "../federation/limits.ts";
import * as tables from "../../schema/tables.ts";
import { fromHex, toHex } from "../../proto/util/hex.ts";

export interface OutboxEntry {
  /** 900 (RelayEnqueue) or 901 (RelayBatchEnqueue). */
  method: number;
  /** The encoded relay request, signed and sent as it is. */
  body: Uint8Array;
  /** Same key = same relay (a client retry): stored once. */
  dedupKey: Uint8Array;
  /** Payload bytes, for the byte bound. */
  size: number;
  /**
   * What the sender's share of the outbox is counted on: the tag the recipient queue would key the
   * sender on (never the identity), so no single sender fills the link for everyone.
   */
  sender: Uint8Array;
  /** The recipients the relay names: order is kept per recipient, and a busy one holds back only its own. */
  recipients: Uint8Array[];
}

export interface OutboxMetrics {
  peer: string;
  depth: number;
  bytes: number;
  oldestAgeMs: number;
  /** "idle" (nothing tried yet), "up" (the last attempt succeeded) or "down". */
  linkState: "idle" | "up" | "down";
  lastSuccessAt: number;
  lastAttemptAt: number;
  lastError: string;
  relayed: number;
  rejected: number;
  retries: number;
  /** Relays a busy recipient could not take yet (held back, retried; the link stays up). */
  deferred: number;
  /** Inbound: requests this peer signed that were refused, by reason. */
  refused: Record<string, number>;
  accepted: number;
}

const KEY_BYTES = 32;

/** Recipient keys as stored: concatenated 32-byte keys. */
function concatKeys(keys: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(keys.length * KEY_BYTES);
  keys.forEach((k, i) => out.set(k.subarray(0, KEY_BYTES), i * KEY_BYTES));
  return out;
}

function splitKeys(stored: ArrayBuffer | null): string[] {
  if (!stored) return [];
  const bytes = new Uint8Array(stored);
  const out: string[] = [];
  for (let at = 0; at + KEY_BYTES <= bytes.length; at += KEY_BYTES) out.push(toHex(bytes.subarray(at, at + KEY_BYTES)));
  return out;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    method INTEGER NOT NULL,
    body BLOB NOT NULL,
    size INTEGER NOT NULL,
    dedup BLOB NOT NULL UNIQUE,
    enqueued_at INTEGER NOT NULL,
    sender BLOB,
    recipients BLOB
  );
  CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    method INTEGER NOT NULL,
    body BLOB NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    rejected_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS seen (sig BLOB PRIMARY KEY, expires_at INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS seen_expiry ON seen (expires_at);
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS senders (sender BLOB PRIMARY KEY, pending INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS held (recipient BLOB PRIMARY KEY, until INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
`;

export class FederationOutbox extends DurableObject<AppEnv> {
  private readonly sql: SqlStorage;
  private depth = 0;
  private bytes = 0;
  private seenCount = 0;
  /** Consecutive failed attempts: the back-off exponent. */
  private failures = 0;
  private readonly maxMessages: number;
  /** This region's federation identity (its signing key imported once per object). */
  private fed: FederationDeps | null | undefined;
  private sending = false;

  constructor(ctx: DurableObjectState, env: AppEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    const max = Number(env.FEDERATION_OUTBOX_MAX_MESSAGES);
    this.maxMessages = Number.isSafeInteger(max) && max > 0 ? max : FEDERATION_LIMITS.outboxMaxMessages;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(SCHEMA);
      // Outboxes created before per-sender shares lack the column (their entries count for nobody).
      const columns = this.sql.exec<{ name: string }>("PRAGMA table_info(outbox)").toArray();
      if (!columns.some((c) => c.name === "sender")) this.sql.exec("ALTER TABLE outbox ADD COLUMN sender BLOB");
      if (!columns.some((c) => c.name === "recipients")) this.sql.exec("ALTER TABLE outbox ADD COLUMN recipients BLOB");
      const row = this.sql
        .exec<{ n: number; b: number | null }>("SELECT COUNT(*) AS n, SUM(size) AS b FROM outbox")
        .one();
      this.depth = row.n;
      this.bytes = row.b ?? 0;
      this.seenCount = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM seen").one().n;
      this.failures = Number(this.meta("failures") ?? 0);
    });
  }

  // --- outbound -----------------------------------------------------------------------------

  /**
   * Stores relays for `peer`, all or none, in order. Answers per entry whether it was already
   * pending (a retry). Full: RateLimited, with a retry_after of the current back-off.
   */
  async enqueue(input: { peer: string; entries: OutboxEntry[] }): Promise<Refusable<{ duplicate: boolean }[]>> {
    return refusable(async () => {
      this.setMeta("peer", input.peer);
      const now = Date.now();
      const fresh = input.entries.filter((e) => !this.pending(e.dedupKey));
      const size = fresh.reduce((n, e) => n + e.size, 0);
      const share = Math.max(1, Math.floor(this.maxMessages * FEDERATION_LIMITS.outboxSenderShare));
      for (const e of fresh) {
        const held = this.sql
          .exec<{ pending: number }>("SELECT pending FROM senders WHERE sender = ?", e.sender)
          .toArray();
        if ((held[0]?.pending ?? 0) + fresh.filter((f) => f.sender === e.sender).length > share) {
          this.count("outbox_sender_share");
          throw rateLimited(
            `this sender already holds its share of the outbox to ${input.peer} (${share} messages); retry once the peer has taken some`,
            Math.max(5_000, this.backoffMs()),
          );
        }
      }
      if (this.depth + fresh.length > this.maxMessages || this.bytes + size > FEDERATION_LIMITS.outboxMaxBytes) {
        this.count("outbox_full");
        throw rateLimited(
          `the outbox to ${input.peer} is full (${this.maxMessages} messages / ${FEDERATION_LIMITS.outboxMaxBytes} bytes): the peer is not taking relays`,
          Math.max(5_000, this.backoffMs()),
        );
      }
      const duplicate = this.ctx.storage.transactionSync(() =>
        input.entries.map((e) => {
          const stored = this.sql
            .exec<{ seq: number }>(
              `INSERT INTO outbox (method, body, size, dedup, enqueued_at, sender, recipients)
               VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup) DO NOTHING RETURNING seq`,
              e.method,
              e.body,
              e.size,
              e.dedupKey,
              now,
              e.sender,
              concatKeys(e.recipients),
            )
            .toArray();
          if (stored.length > 0) {
            this.sql.exec(
              "INSERT INTO senders (sender, pending) VALUES (?, 1) ON CONFLICT (sender) DO UPDATE SET pending = pending + 1",
              e.sender,
            );
          }
          return stored.length === 0;
        }),
      );
      input.entries.forEach((e, i) => {
        if (duplicate[i]) return;
        this.depth += 1;
        this.bytes += e.size;
      });
      // Nothing pending was waiting on a back-off: send now; otherwise the scheduled alarm stands.
      if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now);
      return duplicate.map((d) => ({ duplicate: d }));
    });
  }

  private pending(dedup: Uint8Array): boolean {
    return this.sql.exec("SELECT 1 FROM outbox WHERE dedup = ?", dedup).toArray().length > 0;
  }

  /**
   * At most one bundle in flight: an alarm that fires while one is being sent (an enqueue set it)
   * leaves the work to the running one, which schedules the next run before it ends.
   */
  override async alarm(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      await this.sendBundle();
    } finally {
      this.sending = false;
    }
  }

  private async sendBundle(): Promise<void> {
    const peerDomain = this.meta("peer");
    if (!peerDomain || this.depth === 0) return;
    this.fed ??= federationFromEnv(this.env);
    const fed = this.fed;
    const peer = fed ? await findPeer(drizzle(this.env.DB, { schema: tables }), peerDomain) : null;
    if (!fed || !peer) {
      this.attempted(`peer ${peerDomain} is not configured`);
      return this.retryLater();
    }
    // One bundle: the oldest relays, in order, within one request's body, skipping those to
    // recipients held back (their earlier relay could not be stored yet) and every later one to
    // the same recipients, so each recipient still gets its relays in order.
    const now = Date.now();
    this.sql.exec("DELETE FROM held WHERE until <= ?", now);
    const blocked = new Set(
      this.sql
        .exec<{ recipient: ArrayBuffer }>("SELECT recipient FROM held")
        .toArray()
        .map((r) => toHex(new Uint8Array(r.recipient))),
    );
    const rows = this.sql
      .exec<{ seq: number; method: number; body: ArrayBuffer; size: number; recipients: ArrayBuffer | null }>(
        "SELECT seq, method, body, size, recipients FROM outbox ORDER BY seq LIMIT ?",
        FEDERATION_LIMITS.outboxScanWindow,
      )
      .toArray();
    const batch: ((typeof rows)[number] & { to: string[] })[] = [];
    let bytes = 0;
    for (const row of rows) {
      const to = splitKeys(row.recipients);
      if (to.some((r) => blocked.has(r))) {
        to.forEach((r) => blocked.add(r));
        continue;
      }
      if (batch.length >= FEDERATION_LIMITS.outboxBatch) break;
      if (batch.length > 0 && bytes + row.body.byteLength > FEDERATION_LIMITS.bundleMaxBytes) break;
      batch.push({ ...row, to });
      bytes += row.body.byteLength;
    }
    if (batch.length === 0) {
      // Everything in reach waits for held recipients: come back when the first hold ends.
      const next = this.sql.exec<{ t: number | null }>("SELECT MIN(until) AS t FROM held").one().t;
      await this.ctx.storage.setAlarm(next ?? now + FEDERATION_LIMITS.backoffBaseMs);
      return;
    }
    const bundle = encode(pb.RelayBundleRequest, {
      items: batch.map((r) => ({ method: r.method, request: new Uint8Array(r.body) })),
    });
    let results: ReturnType<typeof pb.RelayBundleResponse.decode>["results"];
    try {
      const answer = await callPeer(fed, peer, "relay-bundle", bundle);
      if (answer.status !== Status.Ok) {
        this.attempted(`peer answered status ${answer.status}: ${answer.message}`);
        return this.retryLater(answer.retryAfterMs);
      }
      results = pb.RelayBundleResponse.decode(answer.body).results;
    } catch (err) {
      this.attempted(err instanceof Error ? err.message : String(err));
      return this.retryLater();
    }
    // The peer answered: the link is up, whatever each relay's fate.
    this.succeeded();
    for (const [i, row] of batch.entries()) {
      const r = results[i];
      if (!r || r.notAttempted) continue;
      const status = r.status ?? Status.Ok;
      if (status === Status.Ok) {
        this.remove(row.seq, row.size);
        this.count("relayed");
        continue;
      }
      const message = r.message ?? "";
      if (PERMANENT.has(status)) {
        this.ctx.storage.transactionSync(() => {
          this.sql.exec(
            "INSERT OR REPLACE INTO rejected (seq, method, body, status, reason, rejected_at) VALUES (?, ?, ?, ?, ?, ?)",
            row.seq,
            row.method,
            new Uint8Array(row.body),
            status,
            message.slice(0, 512),
            Date.now(),
          );
          this.sql.exec(
            "DELETE FROM rejected WHERE seq NOT IN (SELECT seq FROM rejected ORDER BY seq DESC LIMIT ?)",
            FEDERATION_LIMITS.rejectedKept,
          );
        });
        this.remove(row.seq, row.size);
        this.count("rejected");
        continue;
      }
      // This recipient cannot take it yet (its queue is full, its sender's rate is spent...):
      // hold its relays back for the peer's retry_after, the others go on.
      const until =
        Date.now() +
        Math.min(FEDERATION_LIMITS.backoffMaxMs, Math.max(r.retryAfterMs ?? 0, FEDERATION_LIMITS.backoffBaseMs));
      for (const k of row.to) {
        this.sql.exec("INSERT OR REPLACE INTO held (recipient, until) VALUES (?, ?)", fromHex(k), until);
      }
      this.count("deferred");
      this.setMeta("last_error", `a recipient's relay was deferred: status ${status}: ${message}`.slice(0, 512));
    }
    if (this.depth > 0) await this.ctx.storage.setAlarm(Date.now());
  }

  private remove(seq: number, size: number): void {
    const row = this.sql
      .exec<{ sender: ArrayBuffer | null }>("SELECT sender FROM outbox WHERE seq = ?", seq)
      .toArray()[0];
    if (row?.sender) {
      this.sql.exec("UPDATE senders SET pending = pending - 1 WHERE sender = ?", row.sender);
      this.sql.exec("DELETE FROM senders WHERE sender = ? AND pending <= 0", row.sender);
    }
    this.sql.exec("DELETE FROM outbox WHERE seq = ?", seq);
    this.depth -= 1;
    this.bytes -= size;
  }

  private succeeded(): void {
    const now = String(Date.now());
    this.failures = 0;
    this.setMeta("failures", "0");
    this.setMeta("last_success", now);
    this.setMeta("last_attempt", now);
    this.setMeta("link", "up");
  }

  private attempted(error: string): void {
    this.failures += 1;
    this.setMeta("failures", String(this.failures));
    this.setMeta("last_attempt", String(Date.now()));
    this.setMeta("last_error", error.slice(0, 512));
    this.setMeta("link", "down");
    this.count("retries");
  }

  /** Exponential from backoffBaseMs, capped at backoffMaxMs, for the current failure count. */
  private backoffMs(): number {
    if (this.failures === 0) return 0;
    const exp = Math.min(this.failures - 1, 20);
    return Math.min(FEDERATION_LIMITS.backoffMaxMs, FEDERATION_LIMITS.backoffBaseMs * 2 ** exp);
  }

  /** Full jitter: a random delay in [backoff/2, backoff], at least the peer's retry_after. */
  private async retryLater(retryAfterMs = 0): Promise<void> {
    const cap = this.backoffMs();
    const delay = Math.max(retryAfterMs, cap / 2 + Math.random() * (cap / 2));
    await this.ctx.storage.setAlarm(Date.now() + Math.ceil(delay));
  }

  // --- inbound ------------------------------------------------------------------------------

  /**
   * Remembers an accepted signature until `expiresAt`; one seen before is a replay. A full cache
   * refuses rather than forgets (forgetting would let a replay through).
   */
  async checkReplay(input: { key: Uint8Array; expiresAt: number }): Promise<"fresh" | "replay" | "full"> {
    const now = Date.now();
    const swept = this.sql.exec("DELETE FROM seen WHERE expires_at <= ?", now).rowsWritten;
    this.seenCount -= swept;
    if (this.sql.exec("SELECT 1 FROM seen WHERE sig = ?", input.key).toArray().length > 0) return "replay";
    if (this.seenCount >= FEDERATION_LIMITS.replayCacheMax) return "full";
    this.sql.exec("INSERT INTO seen (sig, expires_at) VALUES (?, ?)", input.key, input.expiresAt);
    this.seenCount += 1;
    this.count("accepted");
    return "fresh";
  }

  /** Counts one refused inbound request (by reason) for the metrics. */
  async countRefusal(input: { peer: string; reason: string }): Promise<null> {
    this.setMeta("peer", input.peer);
    this.count(`refused_${input.reason}`);
    return null;
  }

  // --- metrics ------------------------------------------------------------------------------

  async metrics(): Promise<OutboxMetrics> {
    const counters = Object.fromEntries(
      this.sql
        .exec<{ name: string; value: number }>("SELECT name, value FROM counters")
        .toArray()
        .map((r) => [r.name, r.value]),
    );
    const oldest = this.sql.exec<{ t: number | null }>("SELECT MIN(enqueued_at) AS t FROM outbox").one().t;
    const refused: Record<string, number> = {};
    for (const [name, value] of Object.entries(counters)) {
      if (name.startsWith("refused_")) refused[name.slice("refused_".length)] = value;
    }
    return {
      peer: this.meta("peer") ?? "",
      depth: this.depth,
      bytes: this.bytes,
      oldestAgeMs: oldest === null ? 0 : Date.now() - oldest,
      linkState: (this.meta("link") as OutboxMetrics["linkState"] | undefined) ?? "idle",
      lastSuccessAt: Number(this.meta("last_success") ?? 0),
      lastAttemptAt: Number(this.meta("last_attempt") ?? 0),
      lastError: this.meta("last_error") ?? "",
      relayed: counters.relayed ?? 0,
      rejected: counters.rejected ?? 0,
      retries: counters.retries ?? 0,
      deferred: counters.deferred ?? 0,
      refused,
      accepted: counters.accepted ?? 0,
    };
  }

  /** Relays the peer refused for good, newest first (operator inspection). */
  async rejected(limit = 100): Promise<{ seq: number; status: number; reason: string; rejectedAt: number }[]> {
    return this.sql
      .exec<{ seq: number; status: number; reason: string; rejected_at: number }>(
        "SELECT seq, status, reason, rejected_at FROM rejected ORDER BY seq DESC LIMIT ?",
        Math.min(Math.max(1, limit), FEDERATION_LIMITS.rejectedKept),
      )
      .toArray()
      .map((r) => ({ seq: r.seq, status: r.status, reason: r.reason, rejectedAt: r.rejected_at }));
  }

  private meta(key: string): string | undefined {
    return this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value;
  }

  private setMeta(key: string, value: string): void {
    this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, value);
  }

  private count(name: string, by = 1): void {
    this.sql.exec(
      "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + ?",
      name,
      by,
      by,
    );
  }
}
