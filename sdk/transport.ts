// QUIC transport for qpq clients: one bidirectional stream per RPC, push frames on
// server-initiated unidirectional streams. Pins the server's certificate authority. Runs on the
// lean client over the quiche binding (quic/client.ts): one flush per event-loop turn and no
// per-packet JavaScript layers, about a sixth of the CPU per RPC of @matrixai/quic's client.
import { LeanQuicClient, type LeanStream } from "../quic/client.ts";
import { ResponseAssembler, FrameError, encodeRequest, type PushFrame, type ResponseFrame } from "../proto/index.ts";
import { RequestSlots, TransportError } from "./request-slots.ts";

export { TransportError } from "./request-slots.ts";

export interface ConnectOptions {
  host: string;
  port: number;
  /** PEM of the CA (or self-signed certificate) to trust; nothing else is accepted. */
  ca: string;
  /** The name the certificate must carry: by default the host when it is a name, else "localhost". */
  serverName?: string;
  connectTimeoutMs?: number;
  /** Deadline of one RPC, including time queued for a stream and a 60 s FetchWait (default 120 s). */
  requestTimeoutMs?: number;
  /**
   * Requests on the wire at once (default 100). Never more than the server grants streams: the
   * rest wait for a stream in order.
   */
  maxConcurrentRequests?: number;
  /** Requests waiting for a stream (default 10,000); beyond that a request fails at once. */
  maxQueuedRequests?: number;
}

export const DEFAULT_MAX_CONCURRENT_REQUESTS = 100;
export const DEFAULT_MAX_QUEUED_REQUESTS = 10_000;

const describe = (err: unknown) => (err instanceof Error ? err.message || err.name : String(err));
const asTransportError = (err: unknown, what: string) =>
  err instanceof TransportError ? err : new TransportError(`${what}: ${describe(err)}`, { cause: err });

export class QuicTransport {
  private readonly client: LeanQuicClient;
  private nextRequestId = 1;
  private readonly requestTimeoutMs: number;
  private readonly slots: RequestSlots;
  /** One read buffer for every stream: reads copy out what they return. */
  private readonly buf = new Uint8Array(64 * 1024);

  private constructor(client: LeanQuicClient, opts: ConnectOptions) {
    this.client = client;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 120_000;
    this.slots = new RequestSlots({
      maxInFlight: opts.maxConcurrentRequests ?? DEFAULT_MAX_CONCURRENT_REQUESTS,
      maxQueued: opts.maxQueuedRequests ?? DEFAULT_MAX_QUEUED_REQUESTS,
      // Never more streams than the server grants: past its grant a stream cannot be opened.
      canStart: () => client.streamCredit > 0,
    });
    client.onClose((err) => this.slots.close(new TransportError(describe(err), { cause: err })));
  }

  static async connect(opts: ConnectOptions): Promise<QuicTransport> {
    let client: LeanQuicClient;
    try {
      client = await LeanQuicClient.connect({
        host: opts.host,
        port: opts.port,
        ca: opts.ca,
        serverName: opts.serverName,
        connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
        keepAliveMs: 10_000,
      });
    } catch (err) {
      throw asTransportError(err, `cannot connect to ${opts.host}:${opts.port}`);
    }
    return new QuicTransport(client, opts);
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
      // A write refused by the server (STOP_SENDING) usually comes with an answer that says why.
      let writeError: unknown;
      stream.write(frame, true).catch((err: unknown) => {
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
   * the chunks pauses writing until it settles; `readAfter` delays reading the answer.
   */
  rawExchange(
    chunks: (Uint8Array | Promise<unknown>)[],
    opts: { fin?: boolean; readAfter?: Promise<unknown> } = {},
  ): Promise<ResponseFrame> {
    return this.onStream("raw exchange", async (stream, signal) => {
      const fin = opts.fin !== false;
      const written = (async () => {
        for (const [i, c] of chunks.entries()) {
          // FIN rides on the last bytes when they come last.
          if (c instanceof Uint8Array) await stream.write(c, fin && i === chunks.length - 1);
          else await c;
        }
        if (fin && !(chunks.at(-1) instanceof Uint8Array)) await stream.write(new Uint8Array(0), true);
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
   * Runs one exchange on a new stream: waits for a slot, opens the stream, and enforces the
   * deadline (which counts from the call, queueing included) by resetting the stream.
   */
  private async onStream<R>(
    what: string,
    exchange: (stream: LeanStream, signal: AbortSignal) => Promise<R>,
  ): Promise<R> {
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new TransportError(`no answer to ${what} within ${this.requestTimeoutMs} ms`)),
      this.requestTimeoutMs,
    );
    let slot: { value: LeanStream; release(): void } | undefined;
    const onAbort = () => slot?.value.cancel(deadline.signal.reason as Error);
    deadline.signal.addEventListener("abort", onAbort, { once: true });
    try {
      slot = await this.slots.acquire(() => {
        try {
          return this.client.openStream();
        } catch (err) {
          throw new TransportError(`cannot open a stream for ${what}: ${describe(err)}`, { cause: err });
        }
      }, deadline.signal);
      return await exchange(slot.value, deadline.signal);
    } catch (err) {
      if (deadline.signal.aborted) throw deadline.signal.reason;
      slot?.value.cancel(err instanceof Error ? err : new Error(String(err)));
      throw asTransportError(err, `${what} failed`);
    } finally {
      clearTimeout(timer);
      deadline.signal.removeEventListener("abort", onAbort);
      slot?.value.release();
      slot?.release();
    }
  }

  /** Frames are self-delimiting, so the answer is complete once header and payload are in. */
  private async readResponse(stream: LeanStream, signal: AbortSignal): Promise<ResponseFrame> {
    const assembler = new ResponseAssembler();
    while (!assembler.complete) {
      if (signal.aborted) throw signal.reason;
      const chunk = await stream.read(this.buf);
      if (chunk === null) break;
      const err = assembler.push(chunk);
      if (err) throw err;
    }
    const res = assembler.finish();
    if (res instanceof FrameError) throw new TransportError(`malformed response: ${res.message}`, { cause: res });
    return res;
  }

  onPush(handler: (frame: PushFrame) => void): () => void {
    return this.client.onPush(handler);
  }

  async close(): Promise<void> {
    this.slots.close(new TransportError("the transport is closed"));
    await this.client.close();
  }
}
