// The transport-neutral gateway: connection registry, per-connection session and limits, the
// RPC dispatch to the edge, metrics, push subscriptions and draining. The QUIC and WebSocket
// listeners only turn their transport into `open`/`serve`/`close` calls.
import {
  FrameError, Method, Status, encodeResponse, isUnauthenticated, methodName, statusName, type RequestFrame,
} from "../proto/index.ts";
import type { FrontConfig } from "./config.ts";
import { EdgeRelay, errorResponse, type RelayResponse } from "./relay.ts";
import { ConnectionSession } from "./session.ts";
import { PushHub, type PushTarget } from "./push.ts";
import { FrontMetrics } from "./metrics.ts";
import { KeyedLimiter, TokenBucket } from "./rate-limit.ts";
import type { Logger } from "./log.ts";
import { GatewayHooks, type HookConnection, type HookRunner } from "./hooks.ts";

const AUTH_METHODS = new Set<number>([
  Method.OpaqueRegisterStart, Method.OpaqueRegisterFinish, Method.OpaqueLoginStart, Method.OpaqueLoginFinish, Method.SessionResume,
]);

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
  relay?: EdgeRelay;
  /** The plugin host; without one, no hook runs. */
  hooks?: HookRunner;
}

export class Gateway {
  readonly metrics: FrontMetrics;
  readonly relay: EdgeRelay;
  readonly push: PushHub;
  readonly config: FrontConfig;
  private readonly logger: Logger;
  private readonly connections = new Map<string, ClientConnection>();
  private readonly authLimiter: KeyedLimiter;
  private readonly hooks: GatewayHooks;
  private nextConnection = 0;
  private inflight = 0;
  private draining = false;
  private draining_: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  constructor(opts: GatewayOptions) {
    this.config = opts.config;
    this.logger = opts.logger;
    this.metrics = opts.metrics ?? new FrontMetrics();
    this.relay = opts.relay ?? new EdgeRelay({
      edgeUrl: opts.config.edgeUrl,
      frontSecret: opts.config.frontSecret,
      rpcTimeoutMs: opts.config.rpcTimeoutMs,
      logger: opts.logger,
      onError: (kind) => this.metrics.relayErrors.inc({ kind }),
    });
    this.push = new PushHub({
      edgeUrl: opts.config.edgeUrl, frontSecret: opts.config.frontSecret, logger: opts.logger,
      onEvent: () => this.metrics.pushEvents.inc(),
    });
    this.authLimiter = new KeyedLimiter(opts.config.authPerMinute / 60, Math.max(1, Math.ceil(opts.config.authPerMinute / 4)));
    this.hooks = new GatewayHooks(opts.hooks, opts.logger);
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /** Admits a new client connection, or refuses it (and closes the link). */
  async open(link: TransportLink): Promise<ClientConnection | undefined> {
    if (this.draining || this.connections.size >= this.config.maxConnections) {
      const reason = this.draining ? "server is shutting down" : "connection limit reached";
      this.logger.warn("connection refused", { remote: link.remoteAddr, transport: link.transport, reason });
      link.close(reason);
      return undefined;
    }
    const now = Date.now();
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
    this.metrics.connections.set(this.connections.size);
    const refusal = await this.hooks.connect(conn);
    if (refusal !== undefined) {
      this.logger.info("connection rejected by plugin", { conn: conn.id, remote: link.remoteAddr, reason: refusal });
      link.close(refusal);
      this.close(conn, "rejected by plugin");
      return undefined;
    }
    this.logger.debug("connection open", { conn: conn.id, remote: link.remoteAddr, transport: link.transport });
    return conn;
  }

  /** Forgets a connection that ended (either side). */
  close(conn: ClientConnection, reason: string): void {
    if (!this.connections.delete(conn.id)) return;
    if (conn.session) this.push.unsubscribe(conn.session.identityKeyHex, conn.id);
    this.metrics.connections.set(this.connections.size);
    this.hooks.disconnect(conn, reason);
    this.logger.debug("connection closed", { conn: conn.id, reason, ms: Date.now() - conn.openedAt });
  }

  /**
   * Serves one request (or answers one malformed frame) and returns the encoded response frame.
   * Never throws: unexpected failures become Internal.
   */
  async serve(conn: ClientConnection, frame: RequestFrame | FrameError): Promise<Uint8Array> {
    if (frame instanceof FrameError) {
      this.metrics.frameErrors.inc({ kind: frame.code });
      const res = errorResponse(Status.BadRequest, frame.message);
      return encodeResponse(res.status, frame.requestId ?? 0, res.payload);
    }
    this.inflight++;
    this.metrics.inflight.set(this.inflight);
    const started = performance.now();
    let res: RelayResponse;
    try {
      res = await this.dispatch(conn, frame);
    } catch (err) {
      this.logger.error("request failed", { conn: conn.id, method: frame.methodId, requestId: frame.requestId, error: err instanceof Error ? err.message : String(err) });
      res = errorResponse(Status.Internal, "internal error");
    } finally {
      this.inflight--;
      this.metrics.inflight.set(this.inflight);
      if (this.draining && this.inflight === 0) this.drained?.();
    }
    this.account(frame, res, performance.now() - started);
    return encodeResponse(res.status, frame.requestId, res.payload);
  }

  /** Refuses new RPCs and waits for in-flight ones, up to the drain timeout. Idempotent. */
  drain(): Promise<void> {
    this.draining = true;
    this.draining_ ??= this.inflight === 0 ? Promise.resolve() : new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.config.drainTimeoutMs);
      timer.unref();
      this.drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    return this.draining_;
  }

  async stop(): Promise<void> {
    this.push.close();
    for (const conn of [...this.connections.values()]) {
      conn.link.close("server stopping");
      this.close(conn, "server stopping");
    }
    await this.relay.close();
  }

  private async dispatch(conn: ClientConnection, frame: RequestFrame): Promise<RelayResponse> {
    const id = frame.methodId;
    if (!methodName(id)) return errorResponse(Status.UnknownMethod, `unknown method ${id}`);
    if (this.draining) return errorResponse(Status.Unavailable, "server is shutting down", 1000);
    const now = Date.now();
    const wait = conn.bucket.take(now) || (AUTH_METHODS.has(id) ? this.authLimiter.take(hostOf(conn.remoteAddr), now) : 0);
    if (wait > 0) {
      this.metrics.rateLimitHit.inc();
      return errorResponse(Status.RateLimited, "too many requests", wait);
    }
    const base = { connectionId: conn.id, clientAddr: conn.remoteAddr };
    let assertion: string | undefined;
    if (conn.session) {
      const a = await conn.session.assertion(this.relay, base, now);
      if (a.ok) assertion = a.assertion;
      else if (a.ended) this.bind(conn, undefined);
      else if (!isUnauthenticated(id)) {
        return errorResponse(Status.Unavailable, "the session cannot be re-validated right now", 1000);
      }
    }
    if (!assertion && !isUnauthenticated(id)) {
      return errorResponse(Status.Unauthorized, "this connection has no session: log in or resume first");
    }
    const refused = await this.hooks.gate(conn, frame);
    if (refused) return refused;
    const res = await this.relay.call({
      ...base,
      methodId: id,
      requestId: frame.requestId,
      payload: frame.payload,
      assertion,
      extraTimeoutMs: id === Method.FetchWait ? 60_000 : 0,
    });
    if (res.status === Status.Ok && res.session) {
      const session = ConnectionSession.fromGrant(id, frame.payload, res.payload, res.session);
      if (session) this.bind(conn, session);
    }
    this.hooks.delivered(conn, frame, res);
    return res;
  }

  /** Binds (or clears) the connection's session and its push subscription. */
  private bind(conn: ClientConnection, session: ConnectionSession | undefined): void {
    if (conn.session) this.push.unsubscribe(conn.session.identityKeyHex, conn.id);
    conn.session = session;
    if (!session) return;
    const base = { connectionId: conn.id, clientAddr: conn.remoteAddr };
    this.push.subscribe(session.identityKeyHex, conn, async () => {
      const a = await session.assertion(this.relay, base, Date.now());
      return a.ok ? a.assertion : undefined;
    });
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
        if (res.queueDepth !== undefined && Number.isFinite(res.queueDepth)) m.queueDepth.set(res.queueDepth);
        break;
      case Method.BatchEnqueue:
        m.enqueueBytes.inc(undefined, frame.payload.length);
        break;
      case Method.Fetch:
        m.fetch.inc();
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

/** Client host without the port ("[::1]:5" → "::1"), the key of per-address limits. */
export function hostOf(addr: string): string {
  return addr.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
}
