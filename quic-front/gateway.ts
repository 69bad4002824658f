// The transport-neutral gateway: connection registry, per-connection session and limits
// (connections per address, the deadline to authenticate, rate limits, FetchWait caps), the RPC
// dispatch to the edge, FetchWait served from the push subscription, metrics and draining. The
// QUIC and WebSocket listeners only turn their transport into `open`/`serve`/`close` calls;
// none of those three ever throws.
import {
  FETCH_WAIT_MAX_MS,
  FrameError,
  MAX_PAYLOAD,
  Method,
  Status,
  encodeError,
  encodeResponse,
  isUnauthenticated,
  methodName,
  pb,
  statusName,
  type RequestFrame,
  type SessionSignal,
} from "../proto/index.ts";
import type { FrontConfig } from "./config.ts";
import { EdgeRelay, errorResponse, type Relay, type RelayResponse } from "./relay.ts";
import { ConnectionSession } from "./session.ts";
import { PushHub, type PushTarget } from "./push.ts";
import { FrontMetrics } from "./metrics.ts";
import { KeyedLimiter, TokenBucket } from "../proto/util/token-bucket.ts";
import type { Logger } from "../proto/util/log.ts";
import { GatewayHooks, type HookConnection, type HookRunner } from "./hooks.ts";
import { systemClock, type Clock, type Timer } from "./clock.ts";
import { FetchWaits, Waiter } from "./fetch-wait.ts";
import { addressKey } from "../proto/util/client-address.ts";
import { FRONT_VERSION, withFrontHealth } from "./health.ts";
import { toHex } from "../proto/util/hex.ts";
import { SealedSenderTags } from "./sealed-sender.ts";

const AUTH_METHODS = new Set<number>([
  Method.OpaqueRegisterStart,
  Method.OpaqueRegisterFinish,
  Method.OpaqueLoginStart,
  Method.OpaqueLoginFinish,
  Method.SessionResume,
  // Callable without a session, and every call writes the edge's D1 buckets: bounded per address
  // here before it reaches the edge (which limits per address and token on its own).
  Method.FetchRecoveryBundle,
]);

/**
 * Typing and presence (1001, 1002): each fans out to up to 256 members' connections, so a
 * connection may send a few per second (burst 20, 5/s) within its RPC rate.
 */
const SIGNALS_PER_SECOND = 5;
const SIGNAL_BURST = 20;

export type Transport = "quic" | "websocket";

/** What a listener provides for one accepted client connection. */
export interface TransportLink {
  readonly transport: Transport;
  readonly remoteAddr: string;
  /** Delivers one push frame (1000–1003) to the client. */
  sendPush(frame: Uint8Array): Promise<void>;
  /** Closes the client connection (refusal or shutdown). */
  close(reason: string): void;
}

/** One accepted client connection. */
export interface ClientConnection extends PushTarget, HookConnection {
  readonly id: string;
  readonly link: TransportLink;
  readonly remoteAddr: string;
  readonly openedAt: number;
  session: ConnectionSession | undefined;
  readonly bucket: TokenBucket;
}

export interface GatewayOptions {
  config: FrontConfig;
  logger: Logger;
  metrics?: FrontMetrics;
  /** Where RPCs go; default: an EdgeRelay to config.edgeUrl. */
  relay?: Relay;
  /** The plugin host; without one, no hook runs. */
  hooks?: HookRunner;
  /** Time for the gateway's own deadlines; tests pass one they can drive. */
  clock?: Clock;
}

/** How long stop() waits for the relay's last requests before it lets go of them. */
const STOP_GRACE_MS = 2_000;

/** An empty FetchWaitResponse: nothing arrived (or the server is draining). */
const NOTHING_YET: RelayResponse = { status: Status.Ok, payload: new Uint8Array(0) };

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class Gateway {
  readonly metrics: FrontMetrics;
  readonly relay: Relay;
  readonly push: PushHub;
  readonly config: FrontConfig;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly connections = new Map<string, ClientConnection>();
  /** Open connections per client address key (proto/util/client-address.ts). */
  private readonly perAddress = new Map<string, number>();
  /** Deadline of each connection that has no session yet. */
  private readonly authTimers = new Map<string, Timer>();
  private readonly waits: FetchWaits;
  private readonly authLimiter: KeyedLimiter;
  /** Per-connection rate of typing and presence signals, made on a connection's first one. */
  private readonly signalBuckets = new WeakMap<ClientConnection, TokenBucket>();
  private readonly hooks: GatewayHooks;
  /** Sealed-sender mode: the tags that stand for senders at the edge (sealed-sender.ts). */
  private readonly sealedTags: SealedSenderTags | undefined;
  private nextConnection = 0;
  /** For Health: the front's own uptime, next to the edge's. */
  private readonly startedAt: number;
  private inflight = 0;
  private draining = false;
  /** Settles when the drain is over: nothing left in flight, or the drain timeout. */
  private drainOver: Promise<void> | undefined;
  /** Ends the drain early once the last request in flight is answered. */
  private lastAnswered: (() => void) | undefined;

  constructor(opts: GatewayOptions) {
    this.config = opts.config;
    this.logger = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.metrics = opts.metrics ?? new FrontMetrics();
    this.relay =
      opts.relay ??
      new EdgeRelay({
        edgeUrl: opts.config.edgeUrl,
        frontSecret: opts.config.frontSecret,
        rpcTimeoutMs: opts.config.rpcTimeoutMs,
        logger: opts.logger,
        onError: (kind) => this.metrics.relayErrors.inc({ kind }),
      });
    this.waits = new FetchWaits({
      perConnection: opts.config.fetchWaitPerConnection,
      perIdentity: opts.config.fetchWaitPerIdentity,
    });
    this.push = new PushHub({
      edgeUrl: opts.config.edgeUrl,
      frontSecret: opts.config.frontSecret,
      logger: opts.logger,
      onEvent: (identity, channel) => {
        this.metrics.pushEvents.inc();
        this.waits.notify(identity, channel);
      },
      // Events sent while the socket was down are lost: every waiter of the identity reads again.
      onOpen: (identity) => this.waits.notify(identity, undefined),
      onSignal: (identity, signal) => this.endSessions(identity, signal),
    });
    this.authLimiter = new KeyedLimiter(
      opts.config.authPerMinute / 60,
      Math.max(1, Math.ceil(opts.config.authPerMinute / 4)),
    );
    this.hooks = new GatewayHooks(opts.hooks, opts.logger, { sealedSender: opts.config.sealedSender });
    this.sealedTags = opts.config.sealedSender ? new SealedSenderTags() : undefined;
    this.metrics.fetchWaitWaiting.set(0);
    this.startedAt = this.clock.now();
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /** FetchWaits currently parked at the front. */
  get waitingFetches(): number {
    return this.waits.size;
  }

  /** Admits a new client connection, or refuses it (and closes the link). Never throws. */
  async open(link: TransportLink): Promise<ClientConnection | undefined> {
    const address = addressKey(link.remoteAddr);
    const refusal = this.admission(address);
    if (refusal) {
      this.metrics.connectionsRefused.inc({ reason: refusal.label });
      this.logger.warn("connection refused", {
        remote: link.remoteAddr,
        transport: link.transport,
        reason: refusal.reason,
      });
      closeQuietly(link, refusal.reason);
      return undefined;
    }
    const now = this.clock.now();
    const conn: ClientConnection = {
      id: `${this.config.frontId}:${++this.nextConnection}`,
      link,
      transport: link.transport,
      remoteAddr: link.remoteAddr,
      openedAt: now,
      session: undefined,
      bucket: new TokenBucket(this.config.rpcPerSecond, this.config.rpcBurst, now),
      sendPush: (frame) => link.sendPush(frame),
      identityHex() {
        return this.session?.identityKeyHex;
      },
    };
    this.connections.set(conn.id, conn);
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    this.metrics.connections.set(this.connections.size);
    this.armAuthDeadline(conn);
    let rejected: string | undefined;
    try {
      rejected = await this.hooks.connect(conn);
    } catch (err) {
      // The plugin host answers every call; if it fails anyway, do not admit unchecked.
      this.logger.error("on_connect failed", { conn: conn.id, error: messageOf(err) });
      rejected = "the connection could not be checked";
    }
    if (rejected !== undefined) {
      this.metrics.connectionsRefused.inc({ reason: "plugin" });
      this.logger.info("connection rejected by plugin", { conn: conn.id, remote: link.remoteAddr, reason: rejected });
      closeQuietly(link, rejected);
      this.close(conn, "rejected by plugin");
      return undefined;
    }
    // Closed while the plugins decided (deadline, stop): nothing to admit.
    if (!this.connections.has(conn.id)) return undefined;
    this.logger.debug("connection open", { conn: conn.id, remote: link.remoteAddr, transport: link.transport });
    return conn;
  }

  /** Forgets a connection that ended (either side). Idempotent. */
  close(conn: ClientConnection, reason: string): void {
    if (!this.connections.delete(conn.id)) return;
    const address = addressKey(conn.remoteAddr);
    const left = (this.perAddress.get(address) ?? 1) - 1;
    if (left > 0) this.perAddress.set(address, left);
    else this.perAddress.delete(address);
    this.authTimers.get(conn.id)?.cancel();
    this.authTimers.delete(conn.id);
    this.waits.cancelConnection(conn.id);
    if (conn.session) this.push.unsubscribe(conn.session.identityKeyHex, conn.id);
    this.metrics.connections.set(this.connections.size);
    try {
      this.hooks.disconnect(conn, reason);
    } catch (err) {
      // close() runs in transport event handlers, where a throw would end the process.
      this.logger.warn("on_disconnect failed", { conn: conn.id, error: messageOf(err) });
    }
    this.logger.debug("connection closed", { conn: conn.id, reason, ms: this.clock.now() - conn.openedAt });
  }

  /**
   * Serves one request (or answers one malformed frame) and returns the encoded response frame.
   * `respond`, when given, is awaited with the answer before the request stops counting as in
   * flight, so a drain also waits for answers to be written. Never throws: unexpected failures
   * become Internal and are logged.
   */
  async serve(
    conn: ClientConnection,
    frame: RequestFrame | FrameError,
    respond?: (answer: Uint8Array) => Promise<void> | void,
  ): Promise<Uint8Array> {
    this.inflight++;
    this.metrics.inflight.set(this.inflight);
    try {
      const answer = await this.answer(conn, frame);
      if (respond) {
        try {
          await respond(answer);
        } catch (err) {
          this.logger.debug("answer not delivered", { conn: conn.id, error: messageOf(err) });
        }
      }
      return answer;
    } finally {
      this.inflight--;
      this.metrics.inflight.set(this.inflight);
      if (this.draining && this.inflight === 0) this.lastAnswered?.();
    }
  }

  /** Refuses new RPCs, answers parked FetchWaits at once, and waits for the rest up to the drain timeout. Idempotent. */
  drain(): Promise<void> {
    this.draining = true;
    this.waits.cancelAll();
    this.drainOver ??=
      this.inflight === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const timer = this.clock.after(this.config.drainTimeoutMs, resolve);
            this.lastAnswered = () => {
              timer.cancel();
              resolve();
            };
          });
    return this.drainOver;
  }

  async stop(): Promise<void> {
    this.waits.cancelAll();
    this.push.close();
    for (const conn of [...this.connections.values()]) {
      closeQuietly(conn.link, "server stopping");
      this.close(conn, "server stopping");
    }
    // The pool waits for its requests; past the grace they finish (or time out) on their own.
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([
      this.relay.close().catch((err: unknown) => this.logger.warn("relay close failed", { error: messageOf(err) })),
      new Promise<void>((resolve) => (grace = setTimeout(resolve, STOP_GRACE_MS).unref())),
    ]);
    clearTimeout(grace);
  }

  /** Why a new connection from `address` is refused, if it is. */
  private admission(address: string): { reason: string; label: string } | undefined {
    if (this.draining) return { reason: "server is shutting down", label: "shutting_down" };
    if (this.connections.size >= this.config.maxConnections)
      return { reason: "connection limit reached", label: "connection_limit" };
    const limit = this.config.maxConnectionsPerAddress;
    if ((this.perAddress.get(address) ?? 0) >= limit) {
      return { reason: `too many connections from this address (limit ${limit})`, label: "address_limit" };
    }
    return undefined;
  }

  /** A connection without a session is closed once the authentication deadline passes, whatever it sends. */
  private armAuthDeadline(conn: ClientConnection): void {
    this.authTimers.get(conn.id)?.cancel();
    const ms = this.config.authTimeoutMs;
    this.authTimers.set(
      conn.id,
      this.clock.after(ms, () => {
        this.authTimers.delete(conn.id);
        if (conn.session || !this.connections.has(conn.id)) return;
        const reason = `not authenticated within ${Math.ceil(ms / 1000)} s`;
        this.metrics.authTimeouts.inc();
        this.logger.info("connection closed", { conn: conn.id, remote: conn.remoteAddr, reason });
        closeQuietly(conn.link, reason);
        this.close(conn, reason);
      }),
    );
  }

  private async answer(conn: ClientConnection, frame: RequestFrame | FrameError): Promise<Uint8Array> {
    const requestId = frame instanceof FrameError ? (frame.requestId ?? 0) : frame.requestId;
    try {
      if (frame instanceof FrameError) {
        this.metrics.frameErrors.inc({ kind: frame.code });
        const res = errorResponse(Status.BadRequest, frame.message);
        return encodeResponse(res.status, requestId, res.payload);
      }
      const started = performance.now();
      let res: RelayResponse;
      try {
        res = await this.dispatch(conn, frame);
      } catch (err) {
        this.logger.error("request failed", {
          conn: conn.id,
          method: frame.methodId,
          requestId,
          error: messageOf(err),
        });
        res = errorResponse(Status.Internal, "internal error");
      }
      if (res.payload.length > MAX_PAYLOAD) {
        // The edge bounds its replies; if one does not fit in a frame anyway, it is a bug there.
        this.logger.error("response does not fit in a frame", {
          conn: conn.id,
          method: frame.methodId,
          requestId,
          bytes: res.payload.length,
        });
        res = errorResponse(Status.Internal, "internal error");
      }
      this.account(frame, res, performance.now() - started);
      return encodeResponse(res.status, requestId, res.payload);
    } catch (err) {
      this.logger.error("request failed", { conn: conn.id, requestId, error: messageOf(err) });
      return encodeResponse(Status.Internal, requestId, encodeError({ message: "internal error", retryAfterMs: 0 }));
    }
  }

  private async dispatch(conn: ClientConnection, frame: RequestFrame): Promise<RelayResponse> {
    const id = frame.methodId;
    if (!methodName(id)) return errorResponse(Status.UnknownMethod, `unknown method ${id}`);
    if (this.draining) return errorResponse(Status.Unavailable, "server is shutting down", 1000);
    // A request still arriving on a connection the gateway already closed (deadline, stop).
    if (!this.connections.has(conn.id)) return errorResponse(Status.Unavailable, "the connection is closed", 1000);
    const now = this.clock.now();
    const wait =
      conn.bucket.take(now) ||
      (AUTH_METHODS.has(id) ? this.authLimiter.take(addressKey(conn.remoteAddr), now) : 0) ||
      (id === Method.PushTyping || id === Method.PushPresence ? this.signalBucket(conn, now).take(now) : 0);
    if (wait > 0) {
      this.metrics.rateLimitHit.inc();
      return errorResponse(Status.RateLimited, "too many requests", wait);
    }
    let assertion: string | undefined;
    if (conn.session) {
      const a = await this.assertionOf(conn, conn.session);
      if (typeof a === "string") assertion = a;
      else if (!isUnauthenticated(id)) return a;
    }
    if (!assertion && !isUnauthenticated(id)) {
      return errorResponse(Status.Unauthorized, "this connection has no session: log in or resume first");
    }
    const refused = await this.hooks.gate(conn, frame);
    if (refused) return refused;
    const asserted = assertion !== undefined ? conn.session : undefined;
    const res =
      id === Method.FetchWait && assertion !== undefined
        ? await this.fetchWait(conn, frame, assertion)
        : await this.relay.call({
            ...this.relayBase(conn),
            methodId: id,
            requestId: frame.requestId,
            payload: frame.payload,
            assertion,
            sealedSenderTag:
              this.sealedTags && (id === Method.Enqueue || id === Method.BatchEnqueue)
                ? this.sealedTags.tagOf(conn.remoteAddr)
                : undefined,
          });
    // The edge refused an asserted caller (its device was revoked, its account deleted): the
    // session is over now, not at the next re-validation.
    if (asserted && res.status === Status.Unauthorized && !isUnauthenticated(id) && conn.session === asserted) {
      this.bind(conn, undefined);
    }
    if (res.status === Status.Ok && res.session) {
      const session = ConnectionSession.fromGrant(id, frame.payload, res.payload, res.session);
      if (session) this.bind(conn, session);
    }
    this.hooks.delivered(conn, frame, res);
    if (id === Method.Health) {
      return withFrontHealth(res, {
        uptimeSecs: Math.floor((this.clock.now() - this.startedAt) / 1000),
        version: FRONT_VERSION,
      });
    }
    return res;
  }

  private signalBucket(conn: ClientConnection, now: number): TokenBucket {
    let b = this.signalBuckets.get(conn);
    if (!b) this.signalBuckets.set(conn, (b = new TokenBucket(SIGNALS_PER_SECOND, SIGNAL_BURST, now)));
    return b;
  }

  private relayBase(conn: ClientConnection) {
    return { connectionId: conn.id, clientAddr: conn.remoteAddr };
  }

  /**
   * The session's current assertion (re-validated near expiry), or the answer for a request
   * that needs one: Unauthorized when the session ended (it is unbound), Unavailable when the
   * edge cannot re-validate it right now.
   */
  private async assertionOf(conn: ClientConnection, session: ConnectionSession): Promise<string | RelayResponse> {
    const a = await session.assertion(this.relay, this.relayBase(conn), this.clock.now());
    if (a.ok) return a.assertion;
    if (a.ended) {
      if (conn.session === session) this.bind(conn, undefined);
      return errorResponse(Status.Unauthorized, "the session ended: log in or resume again");
    }
    return errorResponse(Status.Unavailable, "the session cannot be re-validated right now", 1000);
  }

  /**
   * FetchWait, served here so no HTTP request to the edge is held open: a waiter is parked
   * before each read (so an event during the read is not lost), reads never wait at the edge
   * (timeout_ms 0), and a push event for the channel, a (re)opened push socket, or the
   * timeout trigger the next read. Drain and close answer at once with nothing.
   */
  private async fetchWait(conn: ClientConnection, frame: RequestFrame, assertion: string): Promise<RelayResponse> {
    const read = (payload: Uint8Array, caller: string) =>
      this.relay.call({
        ...this.relayBase(conn),
        methodId: Method.FetchWait,
        requestId: frame.requestId,
        payload,
        assertion: caller,
      });
    let req: ReturnType<typeof pb.FetchWaitRequest.decode>;
    try {
      req = pb.FetchWaitRequest.decode(frame.payload);
    } catch {
      return read(frame.payload, assertion); // the edge answers BadRequest
    }
    const timeoutMs = Math.min(req.timeoutMs, FETCH_WAIT_MAX_MS);
    req.timeoutMs = 0;
    const once = pb.FetchWaitRequest.encode(req).finish();
    const session = conn.session;
    if (!(timeoutMs > 0) || !session) return read(once, assertion);

    const waiter = this.waits.add(conn.id, session.identityKeyHex, toHex(req.channelId));
    if (!(waiter instanceof Waiter)) {
      this.metrics.rateLimitHit.inc();
      this.metrics.fetchWaitRefused.inc({ limit: waiter.refused });
      const scope = waiter.refused === "connection" ? "connection" : "identity";
      return errorResponse(
        Status.RateLimited,
        `too many concurrent FetchWaits on this ${scope} (limit ${waiter.limit}); let one finish first`,
        1000,
      );
    }
    this.metrics.fetchWaitWaiting.set(this.waits.size);
    try {
      const deadline = this.clock.now() + timeoutMs;
      let res = await read(once, assertion);
      for (;;) {
        // A non-empty FetchWaitResponse carries envelopes; an error ends the wait as it is.
        if (res.status !== Status.Ok || res.payload.length > 0) return res;
        if (this.draining || waiter.isCancelled) return NOTHING_YET;
        const left = deadline - this.clock.now();
        if (left <= 0) return res;
        const end = await waiter.next(this.clock, left);
        if (end === "cancelled" || this.draining) return NOTHING_YET;
        const caller = await this.assertionOf(conn, session);
        if (typeof caller !== "string") return caller;
        // At the timeout, one last read answers what is there (and covers a missed event).
        res = await read(once, caller);
        if (end === "timeout") return res;
      }
    } finally {
      this.waits.remove(waiter);
      this.metrics.fetchWaitWaiting.set(this.waits.size);
    }
  }

  /** Binds (or clears) the connection's session and its push subscription. */
  /**
   * A revoked device's sessions (or, for a deleted account, all of the identity's) end on this
   * front at once: no more pushes, and the next RPC is Unauthorized without asking the edge.
   */
  private endSessions(identityHex: string, signal: SessionSignal): void {
    for (const conn of [...this.connections.values()]) {
      const session = conn.session;
      if (!session || session.identityKeyHex !== identityHex) continue;
      if ("revokedDevice" in signal && session.deviceHex !== signal.revokedDevice) continue;
      this.logger.info("session ended by the edge", {
        conn: conn.id,
        reason: "revokedDevice" in signal ? "device revoked" : "banned" in signal ? "banned" : "account deleted",
      });
      this.bind(conn, undefined);
    }
  }

  private bind(conn: ClientConnection, session: ConnectionSession | undefined): void {
    if (conn.session) this.push.unsubscribe(conn.session.identityKeyHex, conn.id);
    conn.session = session;
    // A login that finished after its connection closed subscribes nothing.
    if (!this.connections.has(conn.id)) return;
    if (!session) {
      this.armAuthDeadline(conn);
      return;
    }
    this.authTimers.get(conn.id)?.cancel();
    this.authTimers.delete(conn.id);
    const target: PushTarget = {
      id: conn.id,
      sendPush: async (frame) => {
        if (conn.session !== session) return;
        const now = this.clock.now();
        // Checked on every event: an expired session gets no more pushes, RPC or not.
        if (session.ended(now)) {
          this.logger.debug("session expired: push stopped", { conn: conn.id });
          this.bind(conn, undefined);
          return;
        }
        if (session.refreshDue(now)) this.revalidate(conn, session);
        await conn.link.sendPush(frame);
      },
    };
    this.push.subscribe(session.identityKeyHex, target, async () => {
      const a = await session.assertion(this.relay, this.relayBase(conn), this.clock.now());
      return a.ok ? a.assertion : undefined;
    });
  }

  /** Re-validates a session in the background, so a revoked one stops receiving pushes too. */
  private revalidate(conn: ClientConnection, session: ConnectionSession): void {
    session
      .assertion(this.relay, this.relayBase(conn), this.clock.now())
      .then((a) => {
        if (!a.ok && a.ended && conn.session === session) this.bind(conn, undefined);
      })
      .catch((err: unknown) =>
        this.logger.warn("session re-validation failed", { conn: conn.id, error: messageOf(err) }),
      );
  }

  private account(frame: RequestFrame, res: RelayResponse, ms: number): void {
    const m = this.metrics;
    const method = methodName(frame.methodId) ?? "unknown";
    m.rpc.inc({ method, status: statusName(res.status) });
    m.latency.observe(ms, { method });
    if (res.status !== Status.Ok) {
      if (frame.methodId === Method.OpaqueLoginFinish) m.loginFailure.inc();
      return;
    }
    switch (frame.methodId) {
      case Method.Enqueue:
        m.enqueue.inc();
        m.enqueueBytes.inc(undefined, frame.payload.length);
        if (res.queueDepth !== undefined && Number.isFinite(res.queueDepth)) m.queueDepth.observe(res.queueDepth);
        break;
      case Method.BatchEnqueue:
        m.enqueueBytes.inc(undefined, frame.payload.length);
        break;
      case Method.Fetch:
        m.fetch.inc();
        break;
      case Method.Ack:
        m.ack.inc();
        break;
      case Method.FetchWait:
        m.fetchWait.inc();
        break;
      case Method.UploadKeyPackage:
        m.keyPackageUpload.inc();
        break;
      case Method.OpaqueLoginFinish:
        m.loginSuccess.inc();
        break;
    }
  }
}

function closeQuietly(link: TransportLink, reason: string): void {
  try {
    link.close(reason);
  } catch {
    /* already closed */
  }
}
