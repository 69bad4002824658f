// QUIC transport for qpq clients: one bidirectional stream per RPC, push frames on
// server-initiated unidirectional streams. Pins the server's certificate authority.
import { webcrypto } from "node:crypto";
import { QUICClient, events, type QUICStream } from "@matrixai/quic";
import QuicLogger, { LogLevel } from "@matrixai/logger";
import {
  PushAssembler, ResponseAssembler, FrameError, encodeRequest, type PushFrame, type ResponseFrame,
} from "../proto/index.ts";

export interface ConnectOptions {
  host: string;
  port: number;
  /** PEM of the CA (or self-signed certificate) to trust; nothing else is accepted. */
  ca: string;
  serverName?: string;
  connectTimeoutMs?: number;
  /** Deadline of one RPC, including a 60 s FetchWait (default 120 s). */
  requestTimeoutMs?: number;
}

export class QuicTransport {
  private readonly client: QUICClient;
  private nextRequestId = 1;
  private readonly pushHandlers = new Set<(frame: PushFrame) => void>();

  private readonly requestTimeoutMs: number;

  private constructor(client: QUICClient, requestTimeoutMs: number) {
    this.client = client;
    this.requestTimeoutMs = requestTimeoutMs;
    client.connection.addEventListener(events.EventQUICConnectionStream.name, (evt: Event) => {
      void this.readPush((evt as events.EventQUICConnectionStream).detail);
    });
  }

  static async connect(opts: ConnectOptions): Promise<QuicTransport> {
    const client = await QUICClient.createQUICClient({
      host: opts.host,
      port: opts.port,
      serverName: opts.serverName ?? "localhost",
      crypto: { ops: { randomBytes: async (buf: ArrayBuffer) => void webcrypto.getRandomValues(new Uint8Array(buf)) } },
      config: {
        verifyPeer: true,
        ca: opts.ca,
        applicationProtos: ["qpq"],
        keepAliveIntervalTime: 10_000,
        maxIdleTimeout: 120_000,
        initialMaxStreamsUni: 1000,
      },
      logger: new QuicLogger("qpq-client", LogLevel.ERROR),
    }, { timer: opts.connectTimeoutMs ?? 10_000 });
    return new QuicTransport(client, opts.requestTimeoutMs ?? 120_000);
  }

  /** Sends one request frame on its own stream and returns the response frame. */
  async request(methodId: number, payload: Uint8Array, requestId = this.nextRequestId++ >>> 0): Promise<ResponseFrame> {
    const stream = this.client.connection.newStream("bidi");
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        stream.cancel(new Error("request timed out"));
        reject(new Error(`no answer to method ${methodId} within ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
    });
    try {
      return await Promise.race([this.exchange(stream, encodeRequest(methodId, requestId, payload)), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes arbitrary bytes as a request (for protocol tests) and reads the answer. */
  async rawExchange(bytes: Uint8Array[], opts: { fin?: boolean } = {}): Promise<ResponseFrame> {
    const stream = this.client.connection.newStream("bidi");
    const writer = stream.writable.getWriter();
    for (const b of bytes) await writer.write(b);
    if (opts.fin !== false) await writer.close();
    else writer.releaseLock();
    return this.readResponse(stream);
  }

  private async exchange(stream: QUICStream, frame: Uint8Array): Promise<ResponseFrame> {
    const writer = stream.writable.getWriter();
    await writer.write(frame);
    await writer.close();
    return this.readResponse(stream);
  }

  /**
   * Frames are self-delimiting, so the answer is complete once header and payload are in; the
   * client does not wait for FIN, which @matrixai/quic occasionally fails to surface under
   * load (MatrixAI/js-quic#20).
   */
  private async readResponse(stream: QUICStream): Promise<ResponseFrame> {
    const assembler = new ResponseAssembler();
    const reader = stream.readable.getReader();
    try {
      while (!assembler.complete) {
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
    if (res instanceof FrameError) throw res;
    return res;
  }

  private async readPush(stream: QUICStream): Promise<void> {
    const assembler = new PushAssembler();
    try {
      for await (const chunk of stream.readable) if (assembler.push(chunk)) return;
      const frame = assembler.finish();
      if (frame instanceof FrameError) return;
      for (const h of this.pushHandlers) h(frame);
    } catch { /* a broken push stream loses only that event */ }
  }

  onPush(handler: (frame: PushFrame) => void): () => void {
    this.pushHandlers.add(handler);
    return () => this.pushHandlers.delete(handler);
  }

  async close(): Promise<void> {
    await this.client.destroy({ isApp: true, errorCode: 0, force: true });
  }
}
