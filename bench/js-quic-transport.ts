// The SDK's former QUIC transport over @matrixai/quic's QUICClient, kept only so the benchmark
// can show what that client costs next to the lean one (BENCH_CLIENT=js-quic, and the
// "js-quic client" phase). Same behaviour and options as sdk/transport.ts.
import { webcrypto } from "node:crypto";
import { QUICClient, events, type QUICConnection, type QUICStream } from "@matrixai/quic";
import QuicLogger, { LogLevel } from "@matrixai/logger";
import {
  ALPN,
  PushAssembler,
  ResponseAssembler,
  FrameError,
  encodeRequest,
  type PushFrame,
  type ResponseFrame,
} from "../proto/index.ts";
import { RequestSlots, TransportError } from "../sdk/request-slots.ts";
import type { ConnectOptions } from "../sdk/transport.ts";

const DEFAULT_MAX_CONCURRENT_REQUESTS = 100;
const DEFAULT_MAX_QUEUED_REQUESTS = 10_000;

/**
 * Bidirectional streams the server still grants. @matrixai/quic does not check this before
 * opening a stream: past the limit `newStream` throws and every later call fails with "We
 * should never repeat streamIds", which breaks the connection. quiche knows the credit; the
 * library keeps its handle off its typings, so read it defensively (undefined: unknown).
 */
function bidiCredit(connection: QUICConnection): number | undefined {
  const conn = (connection as unknown as { conn?: { peerStreamsLeftBidi?: () => number } }).conn;
  return typeof conn?.peerStreamsLeftBidi === "function" ? conn.peerStreamsLeftBidi() : undefined;
}

const describe = (err: unknown) => (err instanceof Error ? err.message || err.name : String(err));

/** Resets a stream in both directions unless it is already closed; never throws. */
function cancelQuietly(stream: QUICStream, reason: unknown): void {
  if (stream.closed) return;
  try {
    stream.cancel(reason);
  } catch {
    /* already gone */
  }
}

export class JsQuicTransport {
  private readonly client: QUICClient;
  private nextRequestId = 1;
  private readonly pushHandlers = new Set<(frame: PushFrame) => void>();
  private readonly requestTimeoutMs: number;
  private readonly slots: RequestSlots;
  /** The last write in line; see `inWriteTurn`. */
  private writeTurn: Promise<void> = Promise.resolve();

  private constructor(client: QUICClient, opts: ConnectOptions) {
    this.client = client;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 120_000;
    const connection = client.connection;
    this.slots = new RequestSlots({
      maxInFlight: opts.maxConcurrentRequests ?? DEFAULT_MAX_CONCURRENT_REQUESTS,
      maxQueued: opts.maxQueuedRequests ?? DEFAULT_MAX_QUEUED_REQUESTS,
      canStart: () => (bidiCredit(connection) ?? 1) > 0,
    });
    connection.addEventListener(events.EventQUICConnectionStream.name, (evt: Event) => {
      void this.readPush((evt as events.EventQUICConnectionStream).detail);
    });
    const closed = () => this.slots.close(new TransportError("the connection is closed"));
    connection.addEventListener(events.EventQUICConnectionStop.name, closed, { once: true });
    connection.addEventListener(events.EventQUICConnectionStopped.name, closed, { once: true });
  }

  static async connect(opts: ConnectOptions): Promise<JsQuicTransport> {
    const client = await QUICClient.createQUICClient(
      {
        host: opts.host,
        port: opts.port,
        serverName: opts.serverName ?? "localhost",
        crypto: {
          ops: { randomBytes: async (buf: ArrayBuffer) => void webcrypto.getRandomValues(new Uint8Array(buf)) },
        },
        config: {
          verifyPeer: true,
          ca: opts.ca,
          applicationProtos: [ALPN],
          keepAliveIntervalTime: 10_000,
          maxIdleTimeout: 120_000,
          initialMaxStreamsUni: 1000,
        },
        logger: new QuicLogger("qpq-client", LogLevel.ERROR),
        // What a reader or writer rejects with when the server resets its side of a stream.
        codeToReason: (type: "read" | "write", code: number) =>
          new TransportError(
            type === "read"
              ? `the server reset the stream (code ${code})`
              : `the server stopped reading the stream (code ${code})`,
          ),
      },
      { timer: opts.connectTimeoutMs ?? 10_000 },
    );
    return new JsQuicTransport(client, opts);
  }

  /** Requests on the wire now, and waiting for a stream. */
  get requests(): { inFlight: number; queued: number } {
    return { inFlight: this.slots.inFlight, queued: this.slots.queued };
  }

  /**
   * Sends one request frame on its own stream and returns the response frame. Every failure
   * (deadline, stream reset, closed connection, full queue) rejects with a TransportError.
   */
  async request(methodId: number, payload: Uint8Array, requestId = this.nextRequestId++ >>> 0): Promise<ResponseFrame> {
    const frame = encodeRequest(methodId, requestId, payload);
    return this.onStream(`method ${methodId}`, async (stream, signal) => {
      const writer = stream.writable.getWriter();
      void writer.closed.catch(() => {});
      // A write refused by the server (STOP_SENDING) usually comes with an answer that says why.
      let writeError: unknown;
      this.inWriteTurn(async () => {
        await writer.write(frame);
        await writer.close();
      }).catch((err: unknown) => {
        writeError = err;
      });
      try {
        return await this.readResponse(stream, signal);
      } catch (err) {
        throw writeError !== undefined && !signal.aborted ? writeError : err;
      }
    });
  }

  /**
   * Writes arbitrary bytes as a request and reads the answer, for protocol tests. A promise among
   * the chunks pauses writing until it settles; `readAfter` delays reading the answer. These
   * writes do not wait for their turn (see `inWriteTurn`), so paused streams can interleave.
   */
  rawExchange(
    chunks: (Uint8Array | Promise<unknown>)[],
    opts: { fin?: boolean; readAfter?: Promise<unknown> } = {},
  ): Promise<ResponseFrame> {
    return this.onStream("raw exchange", async (stream, signal) => {
      const writer = stream.writable.getWriter();
      void writer.closed.catch(() => {});
      const written = (async () => {
        for (const c of chunks) {
          if (c instanceof Uint8Array) await writer.write(c);
          else await c;
        }
        if (opts.fin !== false) await writer.close();
        else writer.releaseLock();
      })();
      const read = (async () => {
        await opts.readAfter;
        return this.readResponse(stream, signal);
      })();
      const [, res] = await Promise.all([written.catch(() => {}), read]);
      return res;
    });
  }

  /**
   * Runs `write` once every earlier request's frame is in the QUIC send buffer. Streams writing
   * at once through @matrixai/quic crawl: a stream held back by the connection's send capacity
   * is woken late (measured on loopback: 50 concurrent 20 KB requests took 12 s written
   * together, 2 s one after another). A write that cannot proceed ends at its request's
   * deadline, which resets the stream and so frees the turn.
   */
  private inWriteTurn(write: () => Promise<void>): Promise<void> {
    const run = this.writeTurn.then(write);
    this.writeTurn = run.catch(() => {});
    return run;
  }

  /**
   * Runs one exchange on a new stream: waits for a slot, opens the stream, and enforces the
   * deadline (which counts from the call, queueing included) by resetting the stream.
   */
  private async onStream<R>(
    what: string,
    exchange: (stream: QUICStream, signal: AbortSignal) => Promise<R>,
  ): Promise<R> {
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new TransportError(`no answer to ${what} within ${this.requestTimeoutMs} ms`)),
      this.requestTimeoutMs,
    );
    let slot: { value: QUICStream; release(): void } | undefined;
    const onAbort = () => {
      if (slot) cancelQuietly(slot.value, deadline.signal.reason);
    };
    deadline.signal.addEventListener("abort", onAbort, { once: true });
    try {
      slot = await this.slots.acquire(() => {
        try {
          return this.client.connection.newStream("bidi");
        } catch (err) {
          throw new TransportError(`cannot open a stream for ${what}: ${describe(err)}`, { cause: err });
        }
      }, deadline.signal);
      return await exchange(slot.value, deadline.signal);
    } catch (err) {
      if (deadline.signal.aborted) throw deadline.signal.reason;
      if (err instanceof TransportError) throw err;
      if (slot) cancelQuietly(slot.value, err);
      throw new TransportError(`${what} failed: ${describe(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
      deadline.signal.removeEventListener("abort", onAbort);
      slot?.release();
    }
  }

  /**
   * Frames are self-delimiting, so the answer is complete once header and payload are in; the
   * client does not wait for FIN, which @matrixai/quic occasionally fails to surface under
   * load (MatrixAI/js-quic#20).
   */
  private async readResponse(stream: QUICStream, signal: AbortSignal): Promise<ResponseFrame> {
    const assembler = new ResponseAssembler();
    const reader = stream.readable.getReader();
    void reader.closed.catch(() => {});
    try {
      while (!assembler.complete) {
        if (signal.aborted) throw signal.reason;
        const { value, done } = await reader.read();
        if (done) break;
        const err = assembler.push(value);
        if (err) throw err;
      }
    } finally {
      if (assembler.complete) void reader.cancel().catch(() => {});
      reader.releaseLock();
    }
    const res = assembler.finish();
    if (res instanceof FrameError) throw new TransportError(`malformed response: ${res.message}`, { cause: res });
    return res;
  }

  private async readPush(stream: QUICStream): Promise<void> {
    const assembler = new PushAssembler();
    try {
      for await (const chunk of stream.readable) if (assembler.push(chunk)) return;
      const frame = assembler.finish();
      if (frame instanceof FrameError) return;
      for (const h of this.pushHandlers) h(frame);
    } catch {
      /* a broken push stream loses only that event */
    }
  }

  onPush(handler: (frame: PushFrame) => void): () => void {
    this.pushHandlers.add(handler);
    return () => this.pushHandlers.delete(handler);
  }

  async close(): Promise<void> {
    this.slots.close(new TransportError("the transport is closed"));
    await this.client.destroy({ isApp: true, errorCode: 0, force: true });
  }
}
