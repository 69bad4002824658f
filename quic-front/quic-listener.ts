// QUIC driver of the gateway: ALPN qpq, one RPC per client-initiated bidirectional stream, push
// frames on server-initiated unidirectional streams.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ReadableStreamReadResult } from "node:stream/web";
import { QUICServer, events, type QUICConnection, type QUICStream } from "@matrixai/quic";
import QuicLogger, { LogLevel } from "@matrixai/logger";
import { ALPN, FrameError, REQUEST_HEADER, RequestAssembler, type RequestFrame } from "../proto/index.ts";
import { ByteBudget } from "./byte-budget.ts";
import type { TlsMaterial } from "./cert.ts";
import type { ClientConnection, Gateway } from "./gateway.ts";
import type { Logger } from "../proto/util/log.ts";
import { binding, listenAddress } from "./listen-error.ts";
import { requestLimits, type RequestLimits } from "./request-limits.ts";

/** How long a complete request waits for its FIN before it is served anyway. */
const FIN_GRACE_MS = 1000;

async function finWithin<T>(
  read: Promise<ReadableStreamReadResult<T>>,
  ms: number,
): Promise<ReadableStreamReadResult<T>> {
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

/** Request buffering and answer ordering state of one connection. */
interface ConnectionBuffers {
  readonly budget: ByteBudget;
  readonly assemblers: Set<RequestAssembler>;
  /** The last answer in line to be written; see `writeAnswer`. */
  writeTurn: Promise<void>;
}

const hmac = (key: ArrayBuffer, data: ArrayBuffer) =>
  createHmac("sha256", Buffer.from(key)).update(Buffer.from(data)).digest();

export class QuicListener {
  private readonly server: QUICServer;
  private readonly gateway: Gateway;
  private readonly logger: Logger;
  private readonly limits: RequestLimits;
  private readonly buffers = new Set<ConnectionBuffers>();
  /** Streams ended by a transfer deadline: requests that did not arrive, answers not taken. */
  readonly timeouts = { requests: 0, answers: 0 };

  constructor(gateway: Gateway, tls: TlsMaterial, logger: Logger, limits: Partial<RequestLimits> = {}) {
    this.gateway = gateway;
    this.logger = logger;
    this.limits = requestLimits(limits);
    const retryKey = randomBytes(32);
    this.server = new QUICServer({
      crypto: {
        key: retryKey.buffer.slice(retryKey.byteOffset, retryKey.byteOffset + 32) as ArrayBuffer,
        ops: {
          // HMAC for stateless retry tokens.
          sign: async (key, data) => {
            const mac = hmac(key, data);
            return mac.buffer.slice(mac.byteOffset, mac.byteOffset + mac.length) as ArrayBuffer;
          },
          verify: async (key, data, sig) => {
            const mac = hmac(key, data);
            const given = Buffer.from(sig);
            return given.length === mac.length && timingSafeEqual(mac, given);
          },
        },
      },
      config: {
        key: tls.keyPem,
        cert: tls.certPem,
        applicationProtos: [ALPN],
        verifyPeer: false,
        initialMaxStreamsBidi: gateway.config.maxStreamsPerConnection,
        initialMaxStreamsUni: 100,
        maxIdleTimeout: this.limits.idleTimeoutMs,
      },
      logger: new QuicLogger("quic", LogLevel.ERROR),
    });
    this.server.addEventListener(events.EventQUICServerConnection.name, (evt: Event) => {
      void this.accept((evt as events.EventQUICServerConnection).detail);
    });
  }

  /** Request bytes held right now across all connections: buffers allocated, and reserved. */
  get requestBuffers(): { allocated: number; reserved: number; waiting: number } {
    let allocated = 0;
    let reserved = 0;
    let waiting = 0;
    for (const b of this.buffers) {
      reserved += b.budget.used;
      waiting += b.budget.waiting;
      for (const a of b.assemblers) allocated += a.allocated;
    }
    return { allocated, reserved, waiting };
  }

  get port(): number {
    return this.server.port;
  }

  get host(): string {
    return this.server.host;
  }

  async start(host: string, port: number): Promise<void> {
    await binding("QUIC listener", listenAddress("udp", host, port), () => this.server.start({ host, port }));
  }

  async stop(): Promise<void> {
    await this.server.stop({ isApp: true, errorCode: 0, force: true });
  }

  private async accept(quic: QUICConnection): Promise<void> {
    // Streams may arrive while the gateway decides; hold them until then.
    const early: QUICStream[] = [];
    let conn: ClientConnection | undefined;
    let decided = false;
    const buffers: ConnectionBuffers = {
      budget: new ByteBudget(this.limits.connectionBufferBytes),
      assemblers: new Set(),
      writeTurn: Promise.resolve(),
    };
    this.buffers.add(buffers);
    quic.addEventListener(events.EventQUICConnectionStream.name, (evt: Event) => {
      const stream = (evt as events.EventQUICConnectionStream).detail;
      if (!decided) early.push(stream);
      else if (conn) void this.serveStream(conn, stream, buffers);
      else refuse(stream);
    });
    quic.addEventListener(
      events.EventQUICConnectionStopped.name,
      () => {
        decided = true;
        this.buffers.delete(buffers);
        if (conn) this.gateway.close(conn, "closed");
      },
      { once: true },
    );
    conn = await this.gateway.open({
      transport: "quic",
      remoteAddr: `${quic.remoteHost.includes(":") ? `[${quic.remoteHost}]` : quic.remoteHost}:${quic.remotePort}`,
      sendPush: (frame) => this.sendPush(quic, frame),
      close: () => void quic.stop({ isApp: true, errorCode: 1, force: true }).catch(() => {}),
    });
    // Stopped while the gateway decided (the handler above had no conn to close): close it now.
    if (conn && decided) {
      this.gateway.close(conn, "closed");
      conn = undefined;
    }
    decided = true;
    if (!conn) this.buffers.delete(buffers);
    for (const stream of early.splice(0)) {
      if (conn) void this.serveStream(conn, stream, buffers);
      else refuse(stream);
    }
  }

  /** One RPC: read one frame, answer one frame, finish. Never throws. */
  private async serveStream(conn: ClientConnection, stream: QUICStream, buffers: ConnectionBuffers): Promise<void> {
    if (stream.type !== "bidi") {
      refuse(stream);
      return;
    }
    try {
      const frame = await this.readFrame(stream, buffers);
      if (frame === undefined) return; // the client reset its side: nothing to answer
      // Written inside serve(), so a drain also waits for the answer to go out.
      await this.gateway.serve(conn, frame, (answer) => this.writeAnswer(stream, answer, buffers));
    } catch (err) {
      this.logger.error("stream failed", { conn: conn.id, error: err instanceof Error ? err.message : String(err) });
      refuse(stream);
    }
  }

  /** Writes one push frame on a new unidirectional stream; rejects when it cannot be delivered. */
  private async sendPush(quic: QUICConnection, frame: Uint8Array): Promise<void> {
    // Past the client's stream limit @matrixai/quic throws, and then refuses every later stream
    // of the connection ("We should never repeat streamIds"). A push that finds no stream is
    // dropped instead: pushes are hints, the client fetches anyway.
    if ((streamCredit(quic, "uni") ?? 1) < 1) throw new Error("the client grants no stream for a push now");
    const stream = quic.newStream("uni");
    // A client that does not read its push streams must not keep them (and their bytes) open.
    const timer = setTimeout(() => refuse(stream), this.deadlineMs(frame.length));
    const writer = stream.writable.getWriter();
    void writer.closed.catch(() => {});
    try {
      await writer.write(frame);
      await writer.close();
    } finally {
      clearTimeout(timer);
      writer.releaseLock();
    }
  }

  /**
   * Writes the answer and finishes the stream, one stream of the connection at a time: streams
   * writing at once through @matrixai/quic crawl (see `inWriteTurn` in sdk/transport.ts). An
   * answer the client does not take by the deadline gets the stream reset, which frees the turn
   * and the answer's bytes. The deadline counts from the answer's turn: time spent behind other
   * answers (each bounded by its own deadline) is the server's delay, not the client's, and on a
   * busy process it would otherwise reset answers nobody was slow to take. Never throws.
   */
  private async writeAnswer(stream: QUICStream, answer: Uint8Array, buffers: ConnectionBuffers): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const writer = stream.writable.getWriter();
    void writer.closed.catch(() => {});
    const run = buffers.writeTurn.then(async () => {
      timer = setTimeout(() => {
        this.timeouts.answers++;
        refuse(stream);
      }, this.deadlineMs(answer.length));
      await writer.write(answer);
      await writer.close();
    });
    buffers.writeTurn = run.catch(() => {});
    try {
      await run;
    } catch {
      // The client went away or did not read in time; nothing else to do for this stream.
    } finally {
      clearTimeout(timer);
      writer.releaseLock();
    }
  }

  /**
   * Reads one request frame. Oversized frames are refused from the header alone. Once the header
   * is in, the announced payload length is reserved from the connection's budget before the
   * payload is read. The whole request must arrive by its deadline, or it is answered BadRequest
   * (echoing the request id when the header arrived) and the rest is refused with STOP_SENDING.
   * Once the frame is complete the FIN is awaited only briefly: @matrixai/quic occasionally fails
   * to surface a bare FIN under load (MatrixAI/js-quic#20), and a lost FIN must not hang the RPC.
   */
  private async readFrame(
    stream: QUICStream,
    buffers: ConnectionBuffers,
  ): Promise<RequestFrame | FrameError | undefined> {
    const assembler = new RequestAssembler();
    const reader = stream.readable.getReader();
    const openedAt = performance.now();
    const expiry = new AbortController();
    const expired = new Promise<"expired">((resolve) =>
      expiry.signal.addEventListener("abort", () => resolve("expired"), { once: true }),
    );
    let timer = setTimeout(() => expiry.abort(), this.limits.transferTimeoutMs);
    let reserved = 0;
    buffers.assemblers.add(assembler);
    const refuseRest = (err: FrameError): FrameError => {
      // Stop the peer from sending the rest; the answer still goes out on our side.
      void reader.cancel(err.code).catch(() => {});
      return err;
    };
    const tooSlow = () => {
      this.timeouts.requests++;
      return refuseRest(
        assembler.fail(
          "timeout",
          `the request did not arrive completely within ${Math.round(performance.now() - openedAt)} ms`,
        ),
      );
    };
    try {
      for (;;) {
        const next = reader.read();
        const got = await Promise.race([assembler.complete ? finWithin(next, FIN_GRACE_MS) : next, expired]);
        if (got === "expired") return assembler.complete ? assembler.finish() : tooSlow();
        if (got.done) return assembler.finish();
        let chunk = got.value;
        const head = assembler.headerRemaining;
        if (head > 0) {
          const err = assembler.push(chunk.subarray(0, head));
          if (err) return refuseRest(err);
          chunk = chunk.subarray(head);
          const announced = assembler.headerRemaining === 0 ? assembler.payloadLength : undefined;
          if (announced !== undefined) {
            if (announced > buffers.budget.limit) {
              return refuseRest(
                assembler.fail(
                  "over-budget",
                  `a request of ${announced} bytes exceeds this connection's buffer of ${buffers.budget.limit} bytes`,
                ),
              );
            }
            clearTimeout(timer);
            timer = setTimeout(
              () => expiry.abort(),
              openedAt + this.deadlineMs(REQUEST_HEADER + announced) - performance.now(),
            );
            if (announced > 0) {
              if (!(await buffers.budget.acquire(announced, expiry.signal))) return tooSlow();
              reserved = announced;
            }
          }
        }
        if (chunk.length > 0) {
          const err = assembler.push(chunk);
          if (err) return refuseRest(err);
        }
      }
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
      buffers.budget.release(reserved);
      buffers.assemblers.delete(assembler);
      reader.releaseLock();
    }
  }

  /** Time a frame of `bytes` may take to cross the connection. */
  private deadlineMs(bytes: number): number {
    return this.limits.transferTimeoutMs + Math.ceil((bytes * 1000) / this.limits.minTransferBytesPerSecond);
  }
}

/**
 * Streams of `type` the client still grants, from quiche (@matrixai/quic keeps its handle off
 * its typings, so read it defensively; undefined: unknown).
 */
function streamCredit(quic: QUICConnection, type: "bidi" | "uni"): number | undefined {
  const conn = (quic as unknown as { conn?: { peerStreamsLeftBidi?: () => number; peerStreamsLeftUni?: () => number } })
    .conn;
  const left = type === "uni" ? conn?.peerStreamsLeftUni : conn?.peerStreamsLeftBidi;
  return typeof left === "function" ? left.call(conn) : undefined;
}

/** Resets a stream in both directions unless it is already closed; never throws. */
function refuse(stream: QUICStream): void {
  if (stream.closed) return;
  try {
    stream.cancel(new Error("refused"));
  } catch {
    /* already closed */
  }
}
