// The QUIC front: terminates QUIC (ALPN qpq), turns each bidirectional stream into one RPC via
// the pure frame codec, applies per-connection session and limits, and relays to the edge.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ReadableStreamReadResult } from "node:stream/web";
import { QUICServer, events, type QUICConnection, type QUICStream } from "@matrixai/quic";
import QuicLogger, { LogLevel } from "@matrixai/logger";
import {
  FrameError, RequestAssembler, Method, Status, encodeResponse, isUnauthenticated, methodName,
  statusName, type RequestFrame,
} from "../proto/index.ts";
import type { FrontConfig } from "./config.ts";
import type { TlsMaterial } from "./cert.ts";
import { EdgeRelay, errorResponse, type RelayResponse } from "./relay.ts";
import { ConnectionSession } from "./session.ts";
import { PushHub, type PushTarget } from "./push.ts";
import { FrontMetrics } from "./metrics.ts";
import { KeyedLimiter, TokenBucket } from "./rate-limit.ts";
import type { Logger } from "./log.ts";

/** How long a complete request waits for its FIN before it is served anyway. */
const FIN_GRACE_MS = 1000;

async function finWithin<T>(read: Promise<ReadableStreamReadResult<T>>, ms: number): Promise<ReadableStreamReadResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<ReadableStreamReadResult<T>>((resolve) => {
    timer = setTimeout(() => resolve({ done: true, value: undefined }), ms);
  });
  try {
    return await Promise.race([read, late]);
  } finally {
    clearTimeout(timer);
  }
}

const AUTH_METHODS = new Set<number>([
  Method.OpaqueRegisterStart, Method.OpaqueRegisterFinish, Method.OpaqueLoginStart, Method.OpaqueLoginFinish, Method.SessionResume,
]);

/** One accepted client connection. */
export interface ClientConnection extends PushTarget {
  readonly id: string;
  readonly quic: QUICConnection;
  readonly remoteAddr: string;
  readonly openedAt: number;
  session: ConnectionSession | undefined;
  readonly bucket: TokenBucket;
}

export interface FrontOptions {
  config: FrontConfig;
  tls: TlsMaterial;
  logger: Logger;
  metrics?: FrontMetrics;
  relay?: EdgeRelay;
}

export class QpqFront {
  readonly metrics: FrontMetrics;
  readonly relay: EdgeRelay;
  readonly push: PushHub;
  private readonly config: FrontConfig;
  private readonly logger: Logger;
  private readonly server: QUICServer;
  private readonly connections = new Map<string, ClientConnection>();
  private readonly authLimiter: KeyedLimiter;
  private nextConnection = 0;
  private inflight = 0;
  private draining = false;
  private drained: (() => void) | undefined;

  constructor(opts: FrontOptions) {
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
    const retryKey = randomBytes(32);
    this.server = new QUICServer({
      crypto: {
        key: retryKey.buffer.slice(retryKey.byteOffset, retryKey.byteOffset + 32) as ArrayBuffer,
        ops: {
          // HMAC for stateless retry tokens.
          sign: async (key, data) => {
            const mac = createHmac("sha256", Buffer.from(key)).update(Buffer.from(data)).digest();
            return mac.buffer.slice(mac.byteOffset, mac.byteOffset + mac.length) as ArrayBuffer;
          },
          verify: async (key, data, sig) => {
            const mac = createHmac("sha256", Buffer.from(key)).update(Buffer.from(data)).digest();
            const given = Buffer.from(sig);
            return given.length === mac.length && timingSafeEqual(mac, given);
          },
        },
      },
      config: {
        key: opts.tls.keyPem,
        cert: opts.tls.certPem,
        applicationProtos: ["qpq"],
        verifyPeer: false,
        initialMaxStreamsBidi: opts.config.maxStreamsPerConnection,
        initialMaxStreamsUni: 100,
        maxIdleTimeout: 120_000,
      },
      logger: new QuicLogger("quic", LogLevel.ERROR),
    });
    this.server.addEventListener(events.EventQUICServerConnection.name, (evt: Event) => {
      this.accept((evt as events.EventQUICServerConnection).detail);
    });
  }

  get port(): number {
    return this.server.port;
  }

  get listenHost(): string {
    return this.server.host;
  }

  get openConnections(): number {
    return this.connections.size;
  }

  async start(): Promise<void> {
    await this.server.start({ host: this.config.host, port: this.config.port });
  }

  /** Graceful stop: refuse new RPCs, let in-flight ones finish up to the drain timeout, close. */
  async stop(): Promise<void> {
    this.draining = true;
    if (this.inflight > 0) {
      await Promise.race([
        new Promise<void>((r) => (this.drained = r)),
        new Promise<void>((r) => setTimeout(r, this.config.drainTimeoutMs).unref()),
      ]);
    }
    this.push.close();
    await this.server.stop({ isApp: true, errorCode: 0, force: true });
    await this.relay.close();
  }

  private accept(quic: QUICConnection): void {
    const remoteAddr = `${quic.remoteHost}:${quic.remotePort}`;
    if (this.draining || this.connections.size >= this.config.maxConnections) {
      this.logger.warn("connection refused", { remote: remoteAddr, reason: this.draining ? "draining" : "connection limit" });
      void quic.stop({ isApp: true, errorCode: 1, force: true }).catch(() => {});
      return;
    }
    const now = Date.now();
    const conn: ClientConnection = {
      id: `${this.config.frontId}:${++this.nextConnection}`,
      quic,
      remoteAddr,
      openedAt: now,
      session: undefined,
      bucket: new TokenBucket(this.config.rpcPerSecond, this.config.rpcBurst, now),
      async sendPush(frame) {
        const stream = quic.newStream("uni");
        const writer = stream.writable.getWriter();
        await writer.write(frame);
        await writer.close();
      },
    };
    this.connections.set(conn.id, conn);
    this.metrics.connections.set(this.connections.size);
    this.logger.debug("connection open", { conn: conn.id, remote: remoteAddr });
    quic.addEventListener(events.EventQUICConnectionStream.name, (evt: Event) => {
      void this.serveStream(conn, (evt as events.EventQUICConnectionStream).detail);
    });
    quic.addEventListener(events.EventQUICConnectionStopped.name, () => {
      if (conn.session) this.push.unsubscribe(conn.session.identityKeyHex, conn.id);
      this.connections.delete(conn.id);
      this.metrics.connections.set(this.connections.size);
      this.logger.debug("connection closed", { conn: conn.id, ms: Date.now() - conn.openedAt });
    }, { once: true });
  }

  /** One RPC: read one frame to FIN, answer one frame, finish. Never throws. */
  private async serveStream(conn: ClientConnection, stream: QUICStream): Promise<void> {
    if (stream.type !== "bidi") {
      stream.cancel(new Error("clients may not open unidirectional streams"));
      return;
    }
    this.inflight++;
    this.metrics.inflight.set(this.inflight);
    try {
      const frame = await this.readFrame(stream);
      if (frame instanceof FrameError) {
        this.metrics.frameErrors.inc({ kind: frame.code });
        await this.reply(stream, frame.requestId ?? 0, errorResponse(Status.BadRequest, frame.message));
        return;
      }
      if (frame === undefined) return; // the client reset its side: nothing to answer
      const started = performance.now();
      const res = await this.dispatch(conn, frame);
      await this.reply(stream, frame.requestId, res);
      this.account(frame, res, performance.now() - started);
    } catch (err) {
      this.logger.error("stream failed", { conn: conn.id, error: err instanceof Error ? err.message : String(err) });
      try {
        stream.cancel(err);
      } catch { /* already gone */ }
    } finally {
      this.inflight--;
      this.metrics.inflight.set(this.inflight);
      if (this.draining && this.inflight === 0) this.drained?.();
    }
  }

  /**
   * Reads one request frame. Oversized frames are refused from the header alone. Once the frame
   * is complete the FIN is awaited only briefly: @matrixai/quic occasionally fails to surface a
   * bare FIN under load (MatrixAI/js-quic#20), and a lost FIN must not hang the RPC.
   */
  private async readFrame(stream: QUICStream): Promise<RequestFrame | FrameError | undefined> {
    const assembler = new RequestAssembler();
    const reader = stream.readable.getReader();
    try {
      for (;;) {
        const next = reader.read();
        const { value, done } = assembler.complete ? await finWithin(next, FIN_GRACE_MS) : await next;
        if (done) return assembler.finish();
        const err = assembler.push(value);
        if (err) {
          // Stop the peer from sending the rest; the answer still goes out on our side.
          void reader.cancel(err.code).catch(() => {});
          return err;
        }
      }
    } catch {
      return undefined;
    } finally {
      reader.releaseLock();
    }
  }

  private async reply(stream: QUICStream, requestId: number, res: RelayResponse): Promise<void> {
    const writer = stream.writable.getWriter();
    try {
      await writer.write(encodeResponse(res.status, requestId, res.payload));
      await writer.close();
    } catch {
      // The client went away; nothing else to do for this stream.
    } finally {
      writer.releaseLock();
    }
  }

  private async dispatch(conn: ClientConnection, frame: RequestFrame): Promise<RelayResponse> {
    const id = frame.methodId;
    if (!methodName(id)) return errorResponse(Status.UnknownMethod, `unknown method ${id}`);
    if (this.draining) return errorResponse(Status.Unavailable, "server is shutting down", 1000);
    const now = Date.now();
    const wait = conn.bucket.take(now) || (AUTH_METHODS.has(id) ? this.authLimiter.take(conn.remoteAddr.replace(/:\d+$/, ""), now) : 0);
    if (wait > 0) {
      this.metrics.rateLimitHit.inc();
      return errorResponse(Status.RateLimited, "too many requests", wait);
    }
    const base = { connectionId: conn.id, clientAddr: conn.remoteAddr };
    let assertion: string | undefined;
    if (conn.session) {
      assertion = await conn.session.assertion(this.relay, base, now);
      if (!assertion) this.bind(conn, undefined);
    }
    if (!assertion && !isUnauthenticated(id)) {
      return errorResponse(Status.Unauthorized, "this connection has no session: log in or resume first");
    }
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
    return res;
  }

  /** Binds (or clears) the connection's session and its push subscription. */
  private bind(conn: ClientConnection, session: ConnectionSession | undefined): void {
    if (conn.session) this.push.unsubscribe(conn.session.identityKeyHex, conn.id);
    conn.session = session;
    if (!session) return;
    const base = { connectionId: conn.id, clientAddr: conn.remoteAddr };
    this.push.subscribe(session.identityKeyHex, conn, () => session.assertion(this.relay, base, Date.now()));
  }

  private account(frame: RequestFrame, res: RelayResponse, ms: number): void {
    const m = this.metrics;
    const method = methodName(frame.methodId) ?? String(frame.methodId);
    m.rpc.inc({ method, status: statusName(res.status) });
    m.latency.observe(ms, { method });
    const ok = res.status === Status.Ok;
    switch (frame.methodId) {
      case Method.Enqueue:
        if (ok) {
          m.enqueue.inc();
          m.enqueueBytes.inc(undefined, frame.payload.length);
          if (res.queueDepth !== undefined && Number.isFinite(res.queueDepth)) m.queueDepth.set(res.queueDepth);
        }
        break;
      case Method.BatchEnqueue:
        if (ok) m.enqueueBytes.inc(undefined, frame.payload.length);
        break;
      case Method.Fetch:
        if (ok) m.fetch.inc();
        break;
      case Method.FetchWait:
        if (ok) m.fetchWait.inc();
        break;
      case Method.UploadKeyPackage:
        if (ok) m.keyPackageUpload.inc();
        break;
      case Method.OpaqueLoginFinish:
        (ok ? m.loginSuccess : m.loginFailure).inc();
        break;
    }
  }
}

