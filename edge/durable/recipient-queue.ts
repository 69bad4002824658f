// RecipientQueue: one Durable Object per recipient identity. Holds that identity's messages on
// every channel, per-device ack cursors, the idempotency index, and the FetchWait waiters.
// Enqueue, Fetch and Ack are each one synchronous SQLite transaction inside the object, so a
// crash never leaves half a message, and nothing leaves the queue except by Ack or expiry.
//
// Senders appear only as sender tags (lib/sender-tag.ts): idempotency is keyed on (tag,
// message_id) and each tag may hold a bounded share of the queue and enqueue at a bounded rate.
// A queue accepts messages only once it knows its identity is registered here.
//
// Devices: the queue holds messages for the account's registered devices only (the default
// device from the start, others from RegisterDevice on, via addDevice). A read or ack naming a
// device it does not hold is Unauthorized: that is how a revoked device's connection loses its
// session on its next delivery call without a D1 query. RevokeDevice drops the device and its
// cursors (revokeDevice), so the queue no longer waits for it. DeleteAccount empties it (purge).
import { DurableObject } from "cloudflare:workers";
import { drizzle } from "drizzle-orm/d1";
import { eq } from "drizzle-orm";
import type { AppEnv } from "../env.ts";
import { LIMITS, limitsFrom, type QueueLimits } from "../lib/limits.ts";
import { TokenBuckets } from "../../proto/util/token-bucket.ts";
import { Reservations } from "../lib/reservations.ts";
import { importSigningKey, signDelivery } from "../lib/delivery-proof.ts";
import { concatBytes, equalBytes, randomBytes, sha256 } from "../lib/crypto.ts";
import { toHex } from "../../proto/util/hex.ts";
import { refusable, type Refusable } from "./refusable.ts";
import * as v from "../lib/validate.ts";
import { ASSERTION_TTL_MS } from "../lib/caller-assertion.ts";
import { users } from "../../schema/tables.ts";
import { and, isNull } from "drizzle-orm";
import {
  MAX_PAYLOAD,
  QpqError,
  Status,
  badRequest,
  envelopeWireSize,
  forbidden,
  notFound,
  rateLimited,
  unauthorized,
  unavailable,
  pb,
  formatSessionSignal,
  formatQueueEvent,
  type SessionSignal,
} from "../../proto/index.ts";

/** Push events carry the message itself only when it is small; larger ones are fetched. */
const PUSH_INLINE_MAX = 4096;
/**
 * Durable Object SQLite refuses rows above about 2 MB, so payloads above this are stored as
 * parts of at most this size in message_parts and reassembled on read.
 */
const PART_BYTES = 1024 * 1024;
const EMPTY = new Uint8Array(0);

export interface EnqueueInput {
  /** The queue's own identity key, for push events and the registration check. */
  recipient: Uint8Array;
  /** Sender tag (16 bytes), never the sender's identity; in sealed-sender mode an address tag. */
  sender: Uint8Array;
  /** The sender identity's tag, for checks only (channel bans); never stored (lib/sealed-sender.ts). */
  identityTag?: Uint8Array;
  channel: Uint8Array;
  payload: Uint8Array;
  ttlSecs: number;
  messageId: Uint8Array;
}
export interface EnqueueResult {
  seq: number;
  duplicate: boolean;
  /** The delivery proof; for a duplicate, the one first issued for that message. */
  deliveryProof: Uint8Array;
  /** Pending messages in this queue afterwards (sampled into delivery_queue_depth). */
  depth: number;
}
/** BatchEnqueue, first phase: hold room for a message without storing it. */
export interface ReserveInput {
  recipient: Uint8Array;
  sender: Uint8Array;
  /** As in EnqueueInput: for checks only, never stored. */
  identityTag?: Uint8Array;
  channel: Uint8Array;
  size: number;
  payloadHash: Uint8Array;
  messageId: Uint8Array;
}
export type Reservation = { kind: "reserved"; id: string } | { kind: "duplicate"; seq: number };
/** BatchEnqueue, second phase: store the message in the room reserved for it. */
export interface CommitInput extends EnqueueInput {
  reservation: string;
}
export interface ReadInput {
  channel: Uint8Array;
  device: Uint8Array;
  limit: number;
  /**
   * The queue's own identity key. With it, a queue that stores nothing yet (an account that
   * never received anything, or one deleted) asks whether the account exists: reads of a
   * deleted account are Unauthorized, so a connection still holding its assertion loses it.
   */
  recipient?: Uint8Array;
}
export interface Envelope {
  seq: number;
  data: Uint8Array;
}
export interface QueueStats {
  messages: number;
  bytes: number;
  devices: number;
  /** BatchEnqueue reservations holding room right now. */
  reserved: number;
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
  // Payloads in parts; sender tags on messages (quotas); idempotency keyed on (sender tag,
  // message id) with what identifies the content and the proof first issued. The old index,
  // keyed on message id alone, answered other senders' messages as duplicates: dropped.
  `ALTER TABLE messages ADD COLUMN parts INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE messages ADD COLUMN sender BLOB;
   CREATE INDEX messages_sender ON messages (sender, size);
   CREATE TABLE message_parts (
     seq INTEGER NOT NULL,
     idx INTEGER NOT NULL,
     data BLOB NOT NULL,
     PRIMARY KEY (seq, idx)
   );
   DROP TABLE idempotency;
   CREATE TABLE sends (
     sender BLOB NOT NULL,
     message_id BLOB NOT NULL,
     seq INTEGER NOT NULL,
     channel BLOB NOT NULL,
     payload_hash BLOB NOT NULL,
     proof BLOB,
     expires_at INTEGER NOT NULL,
     PRIMARY KEY (sender, message_id)
   );
   CREATE INDEX sends_expiry ON sends (expires_at);
   CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);`,
  // Registered devices only. Before, any device id a Fetch or Ack named joined the queue; those
  // ids were never registered anywhere and could hold messages back for good, so only the
  // default device (the empty id, which every account has) is kept. A device sees messages
  // enqueued after it joined (from_seq). Revoked ids stay refused while an assertion naming them
  // may still live (revoked_devices, pruned after ASSERTION_TTL_MS).
  `ALTER TABLE devices ADD COLUMN from_seq INTEGER NOT NULL DEFAULT 0;
   DELETE FROM cursors WHERE device <> x'';
   DELETE FROM devices WHERE device <> x'';
   INSERT OR IGNORE INTO devices (device, added_at, from_seq) VALUES (x'', 0, 0);
   CREATE TABLE revoked_devices (device BLOB PRIMARY KEY, revoked_at INTEGER NOT NULL);`,
  // Group channel rules, set by the edge when a group changes (edge/methods/group.ts): the
  // channel's default TTL (disappearing messages), and sender tags banned from the channel.
  // Enqueue reads them here, so neither costs a D1 query.
  `CREATE TABLE channel_ttls (channel BLOB PRIMARY KEY, ttl_secs INTEGER NOT NULL);
   CREATE TABLE channel_bans (
     channel BLOB NOT NULL,
     sender BLOB NOT NULL,
     expires_at INTEGER NOT NULL,
     PRIMARY KEY (channel, sender)
   );`,
];

interface Waiter {
  channelHex: string;
  wake: () => void;
}

interface PriorSend {
  seq: number;
  proof: Uint8Array | null;
}

export class RecipientQueue extends DurableObject<AppEnv> {
  private readonly sql: SqlStorage;
  private readonly limits: QueueLimits;
  private readonly waiters = new Set<Waiter>();
  private readonly buckets: TokenBuckets;
  private readonly held = new Reservations();
  /** False until the schema exists: a queue nobody may write to stores nothing at all. */
  private hasSchema = false;
  /** true: registered; false: storage says not (yet); undefined: not read yet. */
  private registered: boolean | undefined;
  private notRegisteredUntil = 0;
  private registrationLookup: Promise<boolean> | null = null;
  private signingKey: Promise<CryptoKey> | undefined;
  private messageCount = 0;
  /** Set by purge: a registration look-up that was already under way must not revive the queue. */
  private purged = false;
  /** Cached alarm time: undefined until read, null when none is set. */
  private alarmAt: number | null | undefined;
  /** Whether any group channel rule is stored (undefined: not read yet); false skips the reads. */
  private hasChannelRules: boolean | undefined;
  private byteCount = 0;

  constructor(ctx: DurableObjectState, env: AppEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.limits = limitsFrom(env);
    this.buckets = new TokenBuckets({
      burst: this.limits.senderBurst,
      perMinute: this.limits.senderPerMinute,
      maxKeys: LIMITS.senderBucketsMax,
    });
    ctx.blockConcurrencyWhile(async () => {
      const exists =
        this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").toArray().length >
        0;
      if (!exists) return;
      this.ensureSchema();
      const row = this.sql
        .exec<{ n: number; b: number | null }>("SELECT COUNT(*) AS n, SUM(size) AS b FROM messages")
        .one();
      this.messageCount = row.n;
      this.byteCount = row.b ?? 0;
    });
  }

  private ensureSchema(): void {
    if (this.hasSchema) return;
    this.sql.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    const current = this.sql.exec<{ version: number }>("SELECT version FROM schema_version").toArray()[0]?.version ?? 0;
    if (current < MIGRATIONS.length) {
      this.ctx.storage.transactionSync(() => {
        for (let v = current; v < MIGRATIONS.length; v++) this.sql.exec(MIGRATIONS[v]);
        this.sql.exec("DELETE FROM schema_version");
        this.sql.exec("INSERT INTO schema_version (version) VALUES (?)", MIGRATIONS.length);
      });
    }
    this.hasSchema = true;
  }

  // --- registration -------------------------------------------------------------------------

  /** Called once the identity's account exists (OpaqueRegisterFinish). */
  async markRegistered(): Promise<null> {
    this.purged = false;
    this.persistRegistered();
    return null;
  }

  private persistRegistered(): void {
    this.ensureSchema();
    this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('registered', 1)");
    this.registered = true;
  }

  /**
   * No D1 on the hot path: the flag lives in this object. Only a queue that has never seen its
   * flag (created before registrations set it, or never registered) asks D1, once; a positive
   * answer is kept for good, a negative one for a minute.
   */
  private async requireRegistered(identity: Uint8Array): Promise<void> {
    if (this.registered === undefined) {
      this.registered =
        this.hasSchema &&
        this.sql.exec("SELECT 1 FROM meta WHERE key = 'registered' AND value = 1").toArray().length > 0;
    }
    if (this.registered) return;
    if (Date.now() >= this.notRegisteredUntil) {
      this.registrationLookup ??= this.lookUpRegistration(identity).finally(() => {
        this.registrationLookup = null;
      });
      if ((await this.registrationLookup) && !this.purged) {
        if (!this.registered) this.persistRegistered();
        return;
      }
      this.notRegisteredUntil = Date.now() + LIMITS.unregisteredRecheckMs;
    }
    if (this.registered) return; // marked while this call waited
    throw notFound("recipient is not registered on this server");
  }

  private async lookUpRegistration(identity: Uint8Array): Promise<boolean> {
    try {
      // An account being deleted accepts no more messages.
      const row = await drizzle(this.env.DB)
        .select({ key: users.identityKey })
        .from(users)
        .where(and(eq(users.identityKey, identity), isNull(users.deletingAt)))
        .get();
      return row !== undefined;
    } catch {
      throw unavailable("cannot check the recipient's registration right now", 1_000);
    }
  }

  // --- enqueue ------------------------------------------------------------------------------

  async enqueue(input: EnqueueInput): Promise<Refusable<EnqueueResult>> {
    return refusable(() => this.append(input, null));
  }

  /**
   * BatchEnqueue, first phase: checks everything an enqueue checks (registration, idempotency,
   * rate, sender share, capacity) and holds the room, storing nothing. A message already stored
   * under this (sender, message_id) answers its seq instead.
   */
  async reserve(input: ReserveInput): Promise<Refusable<Reservation>> {
    return refusable(async (): Promise<Reservation> => {
      v.payloadSize(input.size);
      await this.requireRegistered(input.recipient);
      const now = Date.now();
      this.held.sweep(now);
      this.refuseChannelBan(input.channel, input.identityTag ?? input.sender, now);
      const prior = this.priorSend(input.sender, input.messageId, input.channel, input.payloadHash, now);
      if (prior) return { kind: "duplicate", seq: prior.seq };
      const senderHex = toHex(input.sender);
      this.admit(input.sender, senderHex, input.size, now, true);
      const id = toHex(randomBytes(16));
      this.held.hold(id, senderHex, input.size, now + LIMITS.reservationTtlMs);
      this.buckets.take(senderHex, now);
      return { kind: "reserved", id };
    });
  }

  /** BatchEnqueue, second phase: stores the message; its seq is assigned now, not at reserve. */
  async commit(input: CommitInput): Promise<Refusable<EnqueueResult>> {
    return refusable(() => this.append(input, input.reservation));
  }

  /** BatchEnqueue refused elsewhere: frees the room (and the rate token) at once. */
  async release(reservation: string): Promise<null> {
    const now = Date.now();
    const h = this.held.take(reservation, now);
    if (h) this.buckets.refund(h.sender, now);
    return null;
  }

  private async append(input: EnqueueInput, reservation: string | null): Promise<EnqueueResult> {
    v.payload(input.payload);
    await this.requireRegistered(input.recipient);
    const payloadHash = await sha256(input.payload);
    const now = Date.now();
    this.held.sweep(now);
    // A live reservation already passed the rate check and holds this message's room.
    const held = reservation !== null ? this.held.take(reservation, now) : undefined;
    const senderHex = toHex(input.sender);
    this.refuseChannelBan(input.channel, input.identityTag ?? input.sender, now);
    const ttl = Math.min(input.ttlSecs > 0 ? input.ttlSecs : this.channelTtl(input.channel), this.limits.maxTtlSecs);
    const expiresAt = now + ttl * 1000;
    const size = input.payload.length;
    const result = this.ctx.storage.transactionSync((): PriorSend & { duplicate: boolean } => {
      const prior = this.priorSend(input.sender, input.messageId, input.channel, payloadHash, now);
      if (prior) return { ...prior, duplicate: true };
      this.admit(input.sender, senderHex, size, now, held === undefined);
      const parts = size > PART_BYTES ? Math.ceil(size / PART_BYTES) : 0;
      const seq = this.sql
        .exec<{ seq: number }>(
          `INSERT INTO messages (channel, payload, size, parts, sender, expires_at) VALUES (?, ?, ?, ?, ?, ?)
         RETURNING seq`,
          input.channel,
          parts > 0 ? EMPTY : input.payload,
          size,
          parts,
          input.sender,
          expiresAt,
        )
        .one().seq;
      for (let i = 0; i < parts; i++) {
        this.sql.exec(
          "INSERT INTO message_parts (seq, idx, data) VALUES (?, ?, ?)",
          seq,
          i,
          input.payload.slice(i * PART_BYTES, (i + 1) * PART_BYTES),
        );
      }
      if (input.messageId.length > 0) {
        // REPLACE: an expired entry for this id may still await the sweep.
        this.sql.exec(
          `INSERT OR REPLACE INTO sends (sender, message_id, seq, channel, payload_hash, proof, expires_at)
           VALUES (?, ?, ?, ?, ?, NULL, ?)`,
          input.sender,
          input.messageId,
          seq,
          input.channel,
          payloadHash,
          expiresAt,
        );
      }
      return { seq, proof: null, duplicate: false };
    });
    if (!result.duplicate) {
      this.messageCount += 1;
      this.byteCount += size;
      if (held === undefined) this.buckets.take(senderHex, now);
      await this.scheduleSweep(expiresAt);
      this.wake(toHex(input.channel));
      this.push(input, result.seq);
    }
    // Batch commits answer no proof; a later single-enqueue retry signs (and keeps) it then.
    const deliveryProof =
      result.proof ?? (reservation !== null ? EMPTY : await this.prove(input, result.seq, payloadHash));
    return { seq: result.seq, duplicate: result.duplicate, deliveryProof, depth: this.messageCount };
  }

  /**
   * The message stored earlier under (sender, message_id), if any. The same id with another
   * channel or payload is the client's error: answering it as a duplicate would prove a
   * message that was never stored.
   */
  private priorSend(
    sender: Uint8Array,
    messageId: Uint8Array,
    channel: Uint8Array,
    payloadHash: Uint8Array,
    now: number,
  ): PriorSend | null {
    if (messageId.length === 0 || !this.hasSchema) return null;
    const row = this.sql
      .exec<{ seq: number; channel: ArrayBuffer; payload_hash: ArrayBuffer; proof: ArrayBuffer | null }>(
        "SELECT seq, channel, payload_hash, proof FROM sends WHERE sender = ? AND message_id = ? AND expires_at > ?",
        sender,
        messageId,
        now,
      )
      .toArray()[0];
    if (!row) return null;
    if (
      !equalBytes(new Uint8Array(row.channel), channel) ||
      !equalBytes(new Uint8Array(row.payload_hash), payloadHash)
    ) {
      throw badRequest("message_id was already used by this sender for a different message (other channel or payload)");
    }
    return { seq: row.seq, proof: row.proof ? new Uint8Array(row.proof) : null };
  }

  /** Rate, sender share and queue capacity, counting reserved room as taken. Throws RateLimited. */
  private admit(sender: Uint8Array, senderHex: string, size: number, now: number, chargeRate: boolean): void {
    const l = this.limits;
    if (chargeRate) {
      const wait = this.buckets.waitMs(senderHex, now);
      if (wait > 0) {
        throw rateLimited(
          `this sender is enqueueing to this recipient too fast (${l.senderPerMinute} messages per minute, bursts of ${l.senderBurst})`,
          wait,
        );
      }
    }
    const mine = this.sql
      .exec<{ n: number; b: number | null }>(
        "SELECT COUNT(*) AS n, SUM(size) AS b FROM messages WHERE sender = ?",
        sender,
      )
      .one();
    const reserved = this.held.heldBy(senderHex);
    if (mine.n + reserved.count + 1 > l.maxSenderMessages || (mine.b ?? 0) + reserved.bytes + size > l.maxSenderBytes) {
      throw rateLimited(
        `this sender already holds its share of the recipient's queue (${l.maxSenderMessages} messages / ${l.maxSenderBytes} bytes); retry once the recipient has acknowledged some`,
        60_000,
      );
    }
    if (
      this.messageCount + this.held.count + 1 > l.maxQueueMessages ||
      this.byteCount + this.held.bytes + size > l.maxQueueBytes
    ) {
      throw rateLimited(`recipient queue is full (${l.maxQueueMessages} messages / ${l.maxQueueBytes} bytes)`, 60_000);
    }
  }

  /** Signs the delivery proof; with a message id, the first proof kept is what every retry gets. */
  private async prove(input: EnqueueInput, seq: number, payloadHash: Uint8Array): Promise<Uint8Array> {
    this.signingKey ??= importSigningKey(this.env.DELIVERY_SIGNING_KEY).then((k) => k.privateKey);
    const proof = await signDelivery(
      await this.signingKey,
      input.recipient,
      input.channel,
      seq,
      payloadHash,
      Date.now(),
    );
    if (input.messageId.length === 0) return proof;
    return this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        "UPDATE sends SET proof = ? WHERE sender = ? AND message_id = ? AND seq = ? AND proof IS NULL",
        proof,
        input.sender,
        input.messageId,
        seq,
      );
      const kept = this.sql
        .exec<{ proof: ArrayBuffer | null }>(
          "SELECT proof FROM sends WHERE sender = ? AND message_id = ? AND seq = ?",
          input.sender,
          input.messageId,
          seq,
        )
        .toArray()[0];
      return kept?.proof ? new Uint8Array(kept.proof) : proof;
    });
  }

  // --- group channel rules --------------------------------------------------------------------

  /** Most queues hold no channel rule: one cached flag spares their enqueues both reads. */
  private channelRulesStored(): boolean {
    this.hasChannelRules ??=
      this.sql
        .exec<{
          n: number;
        }>("SELECT EXISTS (SELECT 1 FROM channel_ttls) OR EXISTS (SELECT 1 FROM channel_bans) AS n")
        .one().n === 1;
    return this.hasChannelRules;
  }

  /** The channel's default TTL (a group's disappearing-messages setting), else the server's. */
  private channelTtl(channel: Uint8Array): number {
    if (!this.channelRulesStored()) return this.limits.defaultTtlSecs;
    const row = this.sql
      .exec<{ ttl_secs: number }>("SELECT ttl_secs FROM channel_ttls WHERE channel = ?", channel)
      .toArray()[0];
    return row && row.ttl_secs > 0 ? row.ttl_secs : this.limits.defaultTtlSecs;
  }

  /** Forbidden when the sender tag is banned from this channel (a per-channel ban). */
  private refuseChannelBan(channel: Uint8Array, sender: Uint8Array, now: number): void {
    if (!this.channelRulesStored()) return;
    const row = this.sql
      .exec<{
        expires_at: number;
      }>("SELECT expires_at FROM channel_bans WHERE channel = ? AND sender = ?", channel, sender)
      .toArray()[0];
    if (row && (row.expires_at === 0 || row.expires_at > now))
      throw forbidden("the sender is banned from this channel");
  }

  /**
   * Sets this identity's view of a group channel: its default TTL (0 = server default), sender
   * tags banned from it and tags no longer banned; `forget` drops the channel's rules (the
   * identity left it). Only a registered identity's queue stores them (a queue that does not
   * exist yet is not created for them).
   */
  async setChannelRules(input: {
    recipient: Uint8Array;
    channel: Uint8Array;
    ttlSecs?: number;
    ban?: { sender: Uint8Array; expiresAt: number }[];
    unban?: Uint8Array[];
    forget?: boolean;
  }): Promise<Refusable<null>> {
    return refusable(async () => {
      if (!this.hasSchema) {
        try {
          await this.requireRegistered(input.recipient);
        } catch (err) {
          if (err instanceof QpqError && err.status === Status.NotFound) return null;
          throw err;
        }
      }
      this.ctx.storage.transactionSync(() => {
        if (input.forget) {
          this.sql.exec("DELETE FROM channel_ttls WHERE channel = ?", input.channel);
          this.sql.exec("DELETE FROM channel_bans WHERE channel = ?", input.channel);
        }
        if (input.ttlSecs !== undefined) {
          if (input.ttlSecs > 0) {
            this.sql.exec(
              "INSERT OR REPLACE INTO channel_ttls (channel, ttl_secs) VALUES (?, ?)",
              input.channel,
              input.ttlSecs,
            );
          } else this.sql.exec("DELETE FROM channel_ttls WHERE channel = ?", input.channel);
        }
        for (const b of input.ban ?? []) {
          this.sql.exec(
            "INSERT OR REPLACE INTO channel_bans (channel, sender, expires_at) VALUES (?, ?, ?)",
            input.channel,
            b.sender,
            b.expiresAt,
          );
        }
        for (const u of input.unban ?? [])
          this.sql.exec("DELETE FROM channel_bans WHERE channel = ? AND sender = ?", input.channel, u);
      });
      this.hasChannelRules = undefined;
      return null;
    });
  }

  // --- push ---------------------------------------------------------------------------------

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
    // A front that missed the ban's signal (its socket was down) hears it on resubscribing.
    if (this.bannedNow()) server.send(formatSessionSignal({ banned: true }));
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(): Promise<void> {
    // Subscribers only listen.
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "closed");
    } catch {
      /* already closed */
    }
  }

  /**
   * A non-stored event (PushTyping, PushPresence, PushMembership) for every front subscribed to
   * this identity; nothing is kept, so an identity with no connection misses them. Answers how
   * many fronts they were handed to.
   */
  async announce(events: { eventId: number; event: Uint8Array }[]): Promise<number> {
    const sockets = this.ctx.getWebSockets();
    const frames = events.map((e) => formatQueueEvent(e.eventId, e.event));
    let sent = 0;
    for (const ws of sockets) {
      try {
        for (const frame of frames) ws.send(frame);
        sent++;
      } catch {
        /* a closing socket misses these events */
      }
    }
    return sent;
  }

  /**
   * A server-wide ban (until `expiresAt` ms, 0: until lifted): every front holding this
   * identity's connections ends their sessions, now and whenever one subscribes again meanwhile.
   */
  async endSessions(expiresAt = 0): Promise<null> {
    this.ensureSchema();
    this.sql.exec(
      "INSERT OR REPLACE INTO meta (key, value) VALUES ('banned_until', ?)",
      expiresAt === 0 ? Number.MAX_SAFE_INTEGER : expiresAt,
    );
    this.signal({ banned: true });
    return null;
  }

  /** The server-wide ban was lifted. */
  async liftBan(): Promise<null> {
    if (this.hasSchema) this.sql.exec("DELETE FROM meta WHERE key = 'banned_until'");
    return null;
  }

  private bannedNow(): boolean {
    if (!this.hasSchema) return false;
    const row = this.sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'banned_until'").toArray()[0];
    return row !== undefined && row.value > Date.now();
  }

  private push(input: EnqueueInput, seq: number): void {
    const sockets = this.ctx.getWebSockets();
    if (sockets.length === 0) return;
    const event = pb.PushNewMessage.encode({
      recipientKey: input.recipient,
      channelId: input.channel,
      seq,
      size: input.payload.length,
      payload: input.payload.length <= PUSH_INLINE_MAX ? input.payload : EMPTY,
    }).finish();
    for (const ws of sockets) {
      try {
        ws.send(event);
      } catch {
        /* a closing socket misses this hint; Fetch stays authoritative */
      }
    }
  }

  // --- read and acknowledge -----------------------------------------------------------------

  /** Pending envelopes above the device's cursor, oldest first. Non-destructive. */
  async fetchPending(input: ReadInput): Promise<Refusable<Envelope[]>> {
    return refusable(async () => {
      await this.requireAccount(input.recipient);
      return this.read(input);
    });
  }

  /** Without a schema, only a registered account's reads go on (creating it); others are refused. */
  private async requireAccount(recipient: Uint8Array | undefined): Promise<void> {
    if (this.hasSchema || !recipient) return;
    try {
      await this.requireRegistered(recipient);
    } catch (err) {
      if (err instanceof QpqError && err.status === Status.NotFound)
        throw unauthorized("this account no longer exists");
      throw err;
    }
  }

  /**
   * As fetch; when nothing is pending, waits until an enqueue on this channel wakes it or the
   * timeout passes. No polling: enqueue resolves the waiter directly.
   */
  async fetchWait(input: ReadInput & { timeoutMs: number }): Promise<Refusable<Envelope[]>> {
    return refusable(() => this.readOrWait(input));
  }

  private async readOrWait(input: ReadInput & { timeoutMs: number }): Promise<Envelope[]> {
    await this.requireAccount(input.recipient);
    const first = this.read(input);
    if (first.length > 0 || input.timeoutMs <= 0) return first;
    await new Promise<void>((resolve) => {
      const waiter: Waiter = { channelHex: toHex(input.channel), wake: () => done() };
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
  async ack(input: {
    channel: Uint8Array;
    device: Uint8Array;
    seqUpTo: number;
    recipient?: Uint8Array;
  }): Promise<Refusable<null>> {
    return refusable(async () => {
      await this.requireAccount(input.recipient);
      return this.advance(input);
    });
  }

  private advance(input: { channel: Uint8Array; device: Uint8Array; seqUpTo: number }): null {
    // A queue that never stored anything (or was purged) has nothing to acknowledge.
    if (!this.hasSchema) return null;
    this.ctx.storage.transactionSync(() => {
      const fromSeq = this.requireDevice(input.device);
      // Never past the newest stored message of the channel: seqs only grow, so a cursor beyond
      // it would silently hide messages enqueued later, which nobody has acknowledged.
      const newest =
        this.sql.exec<{ s: number | null }>("SELECT MAX(seq) AS s FROM messages WHERE channel = ?", input.channel).one()
          .s ?? 0;
      this.sql.exec(
        `INSERT INTO cursors (device, channel, acked) VALUES (?, ?, ?)
         ON CONFLICT (device, channel) DO UPDATE SET acked = MAX(acked, excluded.acked)`,
        input.device,
        input.channel,
        Math.max(fromSeq, Math.min(input.seqUpTo, newest)),
      );
      this.removeAcked(input.channel);
    });
    return null;
  }

  /** A message goes only once every registered device is past it (a device starts at from_seq). */
  private removeAcked(channel: Uint8Array): void {
    const floor =
      this.sql
        .exec<{ floor: number | null }>(
          `SELECT MIN(COALESCE(c.acked, d.from_seq)) AS floor FROM devices d
       LEFT JOIN cursors c ON c.device = d.device AND c.channel = ?`,
          channel,
        )
        .one().floor ?? 0;
    if (floor > 0) this.remove("channel = ? AND seq <= ?", channel, floor);
  }

  // --- devices --------------------------------------------------------------------------------

  /**
   * RegisterDevice: from now on the queue holds every new message for this device until it acks.
   * Idempotent. Refuses a device id revoked so recently that an assertion naming it may live on.
   */
  async addDevice(device: Uint8Array): Promise<Refusable<{ added: boolean }>> {
    return refusable(() => {
      this.ensureSchema();
      const now = Date.now();
      return this.ctx.storage.transactionSync(() => {
        this.sql.exec("DELETE FROM revoked_devices WHERE revoked_at <= ?", now - ASSERTION_TTL_MS);
        if (this.sql.exec("SELECT 1 FROM devices WHERE device = ?", device).toArray().length > 0)
          return { added: false };
        if (this.sql.exec("SELECT 1 FROM revoked_devices WHERE device = ?", device).toArray().length > 0) {
          throw forbidden(
            `this device id was revoked less than ${ASSERTION_TTL_MS / 60_000} minutes ago; choose another id`,
          );
        }
        const count = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM devices").one().n;
        if (count >= this.limits.maxDevicesPerQueue) {
          throw forbidden(
            `device limit reached: an account has at most ${this.limits.maxDevicesPerQueue} devices; revoke one first`,
          );
        }
        const newest = this.sql.exec<{ s: number | null }>("SELECT MAX(seq) AS s FROM messages").one().s ?? 0;
        this.sql.exec("INSERT INTO devices (device, added_at, from_seq) VALUES (?, ?, ?)", device, now, newest);
        return { added: true };
      });
    });
  }

  /**
   * RevokeDevice: the device's reads and acks are refused from now on, its cursors are dropped,
   * and every message all remaining devices acknowledged is deleted at once. Idempotent.
   */
  async revokeDevice(device: Uint8Array): Promise<null> {
    this.ensureSchema();
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("DELETE FROM devices WHERE device = ?", device);
      this.sql.exec("DELETE FROM cursors WHERE device = ?", device);
      this.sql.exec("DELETE FROM revoked_devices WHERE revoked_at <= ?", now - ASSERTION_TTL_MS);
      this.sql.exec("INSERT OR REPLACE INTO revoked_devices (device, revoked_at) VALUES (?, ?)", device, now);
      const channels = this.sql.exec<{ channel: ArrayBuffer }>("SELECT DISTINCT channel FROM messages").toArray();
      for (const c of channels) this.removeAcked(new Uint8Array(c.channel));
    });
    this.signal({ revokedDevice: toHex(device) });
    return null;
  }

  /** Tells every front holding this identity's connections that sessions ended (text frame). */
  private signal(signal: SessionSignal): void {
    const text = formatSessionSignal(signal);
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.send(text);
      } catch {
        /* a closing socket's front re-validates within minutes anyway */
      }
    }
  }

  /**
   * DeleteAccount: drops everything this object stores (messages, cursors, devices, the
   * registered flag, the TTL alarm) and closes push subscriptions. Enqueues are NotFound from now
   * on (the account is marked deleting in D1 first); reads find nothing. Idempotent.
   */
  async purge(): Promise<null> {
    this.purged = true;
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.hasSchema = false;
    this.registered = undefined;
    this.notRegisteredUntil = 0;
    this.messageCount = 0;
    this.byteCount = 0;
    this.alarmAt = null;
    this.hasChannelRules = undefined;
    for (const w of this.waiters) w.wake();
    this.signal({ accountDeleted: true });
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.close(1000, "account deleted");
      } catch {
        /* already closed */
      }
    }
    return null;
  }

  /** Sizes for the delivery_queue_depth gauge and for tests. */
  async stats(): Promise<QueueStats> {
    const devices = this.hasSchema ? this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM devices").one().n : 0;
    this.held.sweep(Date.now());
    return { messages: this.messageCount, bytes: this.byteCount, devices, reserved: this.held.count };
  }

  /** TTL sweep: drops expired messages and idempotency entries, then re-arms for the next one. */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    if (!this.hasSchema) return;
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.remove("expires_at <= ?", now);
      this.sql.exec("DELETE FROM sends WHERE expires_at <= ?", now);
    });
    const next = this.sql
      .exec<{ t: number | null }>(
        "SELECT MIN(t) AS t FROM (SELECT MIN(expires_at) AS t FROM messages UNION ALL SELECT MIN(expires_at) FROM sends)",
      )
      .one().t;
    if (next !== null) {
      await this.ctx.storage.setAlarm(next);
      this.alarmAt = next;
    }
  }

  /**
   * Oldest first, at most `limit` envelopes and never more than one response frame: the first
   * pending envelope always goes (every stored payload fits a frame on its own), the client
   * pages through the rest.
   */
  private read(input: ReadInput): Envelope[] {
    // A queue that never stored anything (or was purged) has nothing to read and stays empty.
    if (!this.hasSchema) return [];
    const now = Date.now();
    return this.ctx.storage.transactionSync(() => {
      const fromSeq = this.requireDevice(input.device);
      const cursor =
        this.sql
          .exec<{ acked: number }>(
            "SELECT acked FROM cursors WHERE device = ? AND channel = ?",
            input.device,
            input.channel,
          )
          .toArray()[0]?.acked ?? fromSeq;
      const pending = this.sql
        .exec<{ seq: number; size: number; parts: number }>(
          `SELECT seq, size, parts FROM messages WHERE channel = ? AND seq > ? AND expires_at > ?
         ORDER BY seq LIMIT ?`,
          input.channel,
          cursor,
          now,
          input.limit,
        )
        .toArray();
      let bytes = 0;
      let take = 0;
      for (const m of pending) {
        const size = envelopeWireSize(m.seq, m.size);
        if (take > 0 && bytes + size > MAX_PAYLOAD) break;
        bytes += size;
        take++;
      }
      return pending.slice(0, take).map((m) => ({ seq: m.seq, data: this.payloadOf(m.seq, m.parts) }));
    });
  }

  private payloadOf(seq: number, parts: number): Uint8Array {
    if (parts === 0) {
      return new Uint8Array(
        this.sql.exec<{ payload: ArrayBuffer }>("SELECT payload FROM messages WHERE seq = ?", seq).one().payload,
      );
    }
    const chunks = this.sql
      .exec<{ data: ArrayBuffer }>("SELECT data FROM message_parts WHERE seq = ? ORDER BY idx", seq)
      .toArray()
      .map((r) => new Uint8Array(r.data));
    return concatBytes(...chunks);
  }

  /** The device's starting seq; Unauthorized when the device is not (or no longer) registered. */
  private requireDevice(device: Uint8Array): number {
    const row = this.sql
      .exec<{ from_seq: number }>("SELECT from_seq FROM devices WHERE device = ?", device)
      .toArray()[0];
    if (!row) throw unauthorized("this device is not registered for the account (or was revoked): log in again");
    return row.from_seq;
  }

  private remove(where: string, ...params: (Uint8Array | number)[]): void {
    const gone = this.sql
      .exec<{ seq: number; size: number; parts: number }>(
        `DELETE FROM messages WHERE ${where} RETURNING seq, size, parts`,
        ...params,
      )
      .toArray();
    this.messageCount -= gone.length;
    for (const g of gone) {
      this.byteCount -= g.size;
      if (g.parts > 0) this.sql.exec("DELETE FROM message_parts WHERE seq = ?", g.seq);
    }
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
