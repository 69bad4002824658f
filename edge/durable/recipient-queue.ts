// RecipientQueue: one Durable Object per recipient identity. Holds that identity's messages on
// every channel, per-device ack cursors, the idempotency index, and the FetchWait waiters.
// Enqueue, Fetch and Ack are each one synchronous SQLite transaction inside the object, so a
// crash never leaves half a message, and nothing leaves the queue except by Ack or expiry.
import { DurableObject } from "cloudflare:workers";
import type { AppEnv } from "../env.ts";
import { limitsFrom, type QueueLimits } from "../lib/limits.ts";
import { QpqError, forbidden, rateLimited, toErrorReply, pb, type ErrorReply } from "../../proto/index.ts";

/** Push events carry the message itself only when it is small; larger ones are fetched. */
const PUSH_INLINE_MAX = 4096;

export interface EnqueueInput {
  /** The queue's own identity key, for push events. */
  recipient: Uint8Array;
  channel: Uint8Array;
  payload: Uint8Array;
  ttlSecs: number;
  messageId: Uint8Array;
}
export interface EnqueueResult {
  seq: number;
  duplicate: boolean;
  /** Pending messages in this queue afterwards (sampled into delivery_queue_depth). */
  depth: number;
}
export interface ReadInput {
  channel: Uint8Array;
  device: Uint8Array;
  limit: number;
}
export interface Envelope {
  seq: number;
  data: Uint8Array;
}
/**
 * RPC across a Durable Object boundary loses error classes, so refusals come back as values
 * and the worker rethrows them (see lib/queue.ts).
 */
export type Refusable<T> = { ok: true; value: T } | { ok: false; error: ErrorReply };

async function refusable<T>(fn: () => T | Promise<T>): Promise<Refusable<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    if (err instanceof QpqError) return { ok: false, error: toErrorReply(err) };
    throw err;
  }
}

export interface QueueStats {
  messages: number;
  bytes: number;
  devices: number;
}

/** Append-only list of schema steps; index + 1 is the schema version. */
const MIGRATIONS: string[] = [
  `CREATE TABLE messages (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     channel BLOB NOT NULL,
     payload BLOB NOT NULL,
     size INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   );
   CREATE INDEX messages_channel ON messages (channel, seq);
   CREATE INDEX messages_expiry ON messages (expires_at);
   CREATE TABLE idempotency (
     message_id BLOB PRIMARY KEY,
     seq INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   );
   CREATE INDEX idempotency_expiry ON idempotency (expires_at);
   CREATE TABLE devices (device BLOB PRIMARY KEY, added_at INTEGER NOT NULL);
   CREATE TABLE cursors (
     device BLOB NOT NULL,
     channel BLOB NOT NULL,
     acked INTEGER NOT NULL,
     PRIMARY KEY (device, channel)
   );`,
];

interface Waiter {
  channelHex: string;
  wake: () => void;
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

export class RecipientQueue extends DurableObject<AppEnv> {
  private readonly sql: SqlStorage;
  private readonly limits: QueueLimits;
  private readonly waiters = new Set<Waiter>();
  private messageCount = 0;
  /** Cached alarm time: undefined until read, null when none is set. */
  private alarmAt: number | null | undefined;
  private byteCount = 0;

  constructor(ctx: DurableObjectState, env: AppEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.limits = limitsFrom(env);
    ctx.blockConcurrencyWhile(async () => {
      this.migrate();
      const row = this.sql.exec<{ n: number; b: number | null }>(
        "SELECT COUNT(*) AS n, SUM(size) AS b FROM messages").one();
      this.messageCount = row.n;
      this.byteCount = row.b ?? 0;
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

  async enqueue(input: EnqueueInput): Promise<Refusable<EnqueueResult>> {
    return refusable(() => this.append(input));
  }

  private async append(input: EnqueueInput): Promise<EnqueueResult> {
    const now = Date.now();
    const ttl = input.ttlSecs > 0 ? Math.min(input.ttlSecs, this.limits.maxTtlSecs) : this.limits.defaultTtlSecs;
    const expiresAt = now + ttl * 1000;
    const result = this.ctx.storage.transactionSync((): Omit<EnqueueResult, "depth"> => {
      if (input.messageId.length > 0) {
        const prior = this.sql.exec<{ seq: number }>(
          "SELECT seq FROM idempotency WHERE message_id = ? AND expires_at > ?", input.messageId, now).toArray()[0];
        if (prior) return { seq: prior.seq, duplicate: true };
      }
      if (this.messageCount + 1 > this.limits.maxQueueMessages ||
          this.byteCount + input.payload.length > this.limits.maxQueueBytes) {
        throw rateLimited(
          `recipient queue is full (${this.limits.maxQueueMessages} messages / ${this.limits.maxQueueBytes} bytes)`,
          60_000);
      }
      const seq = this.sql.exec<{ seq: number }>(
        "INSERT INTO messages (channel, payload, size, expires_at) VALUES (?, ?, ?, ?) RETURNING seq",
        input.channel, input.payload, input.payload.length, expiresAt).one().seq;
      if (input.messageId.length > 0) {
        this.sql.exec("INSERT OR REPLACE INTO idempotency (message_id, seq, expires_at) VALUES (?, ?, ?)",
          input.messageId, seq, expiresAt);
      }
      return { seq, duplicate: false };
    });
    if (!result.duplicate) {
      this.messageCount += 1;
      this.byteCount += input.payload.length;
      await this.scheduleSweep(expiresAt);
      this.wake(hex(input.channel));
      this.push(input, result.seq);
    }
    return { ...result, depth: this.messageCount };
  }

  /**
   * Push subscribers are the QUIC fronts holding connections of this identity: one hibernatable
   * WebSocket each (idle ones cost nothing). The front opens it through the edge's /push route.
   */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade", { status: 426 });
    }
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(): Promise<void> {
    // Subscribers only listen.
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "closed");
    } catch { /* already closed */ }
  }

  private push(input: EnqueueInput, seq: number): void {
    const sockets = this.ctx.getWebSockets();
    if (sockets.length === 0) return;
    const event = pb.PushNewMessage.encode({
      recipientKey: input.recipient,
      channelId: input.channel,
      seq,
      size: input.payload.length,
      payload: input.payload.length <= PUSH_INLINE_MAX ? input.payload : new Uint8Array(0),
    }).finish();
    for (const ws of sockets) {
      try {
        ws.send(event);
      } catch { /* a closing socket misses this hint; Fetch stays authoritative */ }
    }
  }

  /** Pending envelopes above the device's cursor, oldest first. Non-destructive. */
  async fetchPending(input: ReadInput): Promise<Refusable<Envelope[]>> {
    return refusable(() => this.read(input));
  }

  /**
   * As fetch; when nothing is pending, waits until an enqueue on this channel wakes it or the
   * timeout passes. No polling: enqueue resolves the waiter directly.
   */
  async fetchWait(input: ReadInput & { timeoutMs: number }): Promise<Refusable<Envelope[]>> {
    return refusable(() => this.readOrWait(input));
  }

  private async readOrWait(input: ReadInput & { timeoutMs: number }): Promise<Envelope[]> {
    const first = this.read(input);
    if (first.length > 0 || input.timeoutMs <= 0) return first;
    await new Promise<void>((resolve) => {
      const waiter: Waiter = { channelHex: hex(input.channel), wake: () => done() };
      const timer = setTimeout(() => done(), input.timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve();
      };
      this.waiters.add(waiter);
    });
    return this.read(input);
  }

  /** Acknowledges (for one device) every message up to seqUpTo; deletes what all devices acked. */
  async ack(input: { channel: Uint8Array; device: Uint8Array; seqUpTo: number }): Promise<Refusable<null>> {
    return refusable(() => this.advance(input));
  }

  private advance(input: { channel: Uint8Array; device: Uint8Array; seqUpTo: number }): null {
    this.ctx.storage.transactionSync(() => {
      this.ensureDevice(input.device);
      // Never past the newest stored message of the channel: seqs only grow, so a cursor beyond
      // it would silently hide messages enqueued later, which nobody has acknowledged.
      const newest = this.sql.exec<{ s: number | null }>(
        "SELECT MAX(seq) AS s FROM messages WHERE channel = ?", input.channel).one().s ?? 0;
      this.sql.exec(
        `INSERT INTO cursors (device, channel, acked) VALUES (?, ?, ?)
         ON CONFLICT (device, channel) DO UPDATE SET acked = MAX(acked, excluded.acked)`,
        input.device, input.channel, Math.min(input.seqUpTo, newest));
      // A message goes only once every known device is past it.
      const floor = this.sql.exec<{ floor: number | null }>(
        `SELECT MIN(COALESCE(c.acked, 0)) AS floor FROM devices d
         LEFT JOIN cursors c ON c.device = d.device AND c.channel = ?`, input.channel).one().floor ?? 0;
      if (floor > 0) this.remove("channel = ? AND seq <= ?", input.channel, floor);
    });
    return null;
  }

  /** Sizes for the delivery_queue_depth gauge and for tests. */
  async stats(): Promise<QueueStats> {
    const devices = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM devices").one().n;
    return { messages: this.messageCount, bytes: this.byteCount, devices };
  }

  /** TTL sweep: drops expired messages and idempotency entries, then re-arms for the next one. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.alarmAt = null;
    this.ctx.storage.transactionSync(() => {
      this.remove("expires_at <= ?", now);
      this.sql.exec("DELETE FROM idempotency WHERE expires_at <= ?", now);
    });
    const next = this.sql.exec<{ t: number | null }>(
      "SELECT MIN(t) AS t FROM (SELECT MIN(expires_at) AS t FROM messages UNION ALL SELECT MIN(expires_at) FROM idempotency)").one().t;
    if (next !== null) {
      await this.ctx.storage.setAlarm(next);
      this.alarmAt = next;
    }
  }

  private read(input: ReadInput): Envelope[] {
    const now = Date.now();
    return this.ctx.storage.transactionSync(() => {
      this.ensureDevice(input.device);
      const cursor = this.sql.exec<{ acked: number }>(
        "SELECT acked FROM cursors WHERE device = ? AND channel = ?", input.device, input.channel).toArray()[0]?.acked ?? 0;
      return this.sql.exec<{ seq: number; payload: ArrayBuffer }>(
        `SELECT seq, payload FROM messages WHERE channel = ? AND seq > ? AND expires_at > ?
         ORDER BY seq LIMIT ?`, input.channel, cursor, now, input.limit)
        .toArray().map((r) => ({ seq: r.seq, data: new Uint8Array(r.payload) }));
    });
  }

  private ensureDevice(device: Uint8Array): void {
    const known = this.sql.exec("SELECT 1 FROM devices WHERE device = ?", device).toArray().length > 0;
    if (known) return;
    const count = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM devices").one().n;
    if (count >= this.limits.maxDevicesPerQueue) {
      throw forbidden(`device limit reached (${this.limits.maxDevicesPerQueue} devices per account)`);
    }
    this.sql.exec("INSERT INTO devices (device, added_at) VALUES (?, ?)", device, Date.now());
  }

  private remove(where: string, ...params: (Uint8Array | number)[]): void {
    const gone = this.sql.exec<{ size: number }>(`DELETE FROM messages WHERE ${where} RETURNING size`, ...params).toArray();
    this.messageCount -= gone.length;
    for (const g of gone) this.byteCount -= g.size;
  }

  /** Arms the TTL alarm for the earliest expiry; the known alarm time is cached per instance. */
  private async scheduleSweep(expiresAt: number): Promise<void> {
    if (this.alarmAt === undefined) this.alarmAt = await this.ctx.storage.getAlarm();
    if (this.alarmAt !== null && this.alarmAt <= expiresAt) return;
    await this.ctx.storage.setAlarm(expiresAt);
    this.alarmAt = expiresAt;
  }

  private wake(channelHex: string): void {
    for (const w of this.waiters) if (w.channelHex === channelHex) w.wake();
  }
}
