// WebSocket transport (browsers, or where UDP is blocked): the same frames over one WebSocket
// (proto/wire/transport.ts). Responses are matched to requests by request id. Uses the standard
// WebSocket global (browsers, Node >= 22), so it has no Node-only dependency.
import {
  FrameError,
  WS_SUBPROTOCOL,
  WsKind,
  decodePush,
  decodeResponse,
  encodeRequest,
  type PushFrame,
  type ResponseFrame,
} from "../proto/index.ts";
import { RequestSlots, TransportError } from "./request-slots.ts";

export interface WsConnectOptions {
  /** Deadline of one RPC, including time queued and a 60 s FetchWait (default 120 s). */
  requestTimeoutMs?: number;
  /** Requests awaiting their answer at once (default 100); the rest wait in order. */
  maxConcurrentRequests?: number;
  /** Requests waiting to be sent (default 10,000); beyond that a request fails at once. */
  maxQueuedRequests?: number;
}

interface Pending {
  resolve(frame: ResponseFrame): void;
  reject(err: Error): void;
}

export class WsTransport {
  private readonly socket: WebSocket;
  private nextRequestId = 1;
  /** Requests sent and not yet answered, by request id; at most maxConcurrentRequests. */
  private readonly pending = new Map<number, Pending>();
  private readonly pushHandlers = new Set<(frame: PushFrame) => void>();
  private readonly slots: RequestSlots;
  private readonly requestTimeoutMs: number;

  private constructor(socket: WebSocket, opts: WsConnectOptions) {
    this.socket = socket;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 120_000;
    this.slots = new RequestSlots({
      maxInFlight: opts.maxConcurrentRequests ?? 100,
      maxQueued: opts.maxQueuedRequests ?? 10_000,
    });
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (evt) => this.receive(evt.data));
    socket.addEventListener("close", (evt) =>
      this.fail(new TransportError(`WebSocket closed (${evt.code}${evt.reason ? `: ${evt.reason}` : ""})`)),
    );
    socket.addEventListener("error", () => this.fail(new TransportError("WebSocket failed")));
  }

  /** `url` like ws://127.0.0.1:5002/qpq (wss:// in production). */
  static async connect(url: string, opts: WsConnectOptions = {}): Promise<WsTransport> {
    const socket = new WebSocket(url, WS_SUBPROTOCOL);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new TransportError(`cannot open ${url}`)), { once: true });
    });
    return new WsTransport(socket, opts);
  }

  /** Requests awaiting an answer now, and waiting to be sent. */
  get requests(): { inFlight: number; queued: number } {
    return { inFlight: this.slots.inFlight, queued: this.slots.queued };
  }

  request(methodId: number, payload: Uint8Array): Promise<ResponseFrame> {
    let requestId = this.nextRequestId++ >>> 0;
    // Ids wrap after 2^32 requests; skip one still awaiting its answer.
    while (this.pending.has(requestId)) requestId = this.nextRequestId++ >>> 0;
    let frame: Uint8Array;
    try {
      frame = encodeRequest(methodId, requestId, payload);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.send(requestId, frame, `method ${methodId}`);
  }

  /** Sends arbitrary bytes as one request message (protocol tests); answers are matched by `requestId`. */
  rawExchange(bytes: Uint8Array[], requestId = 0): Promise<ResponseFrame> {
    const total = bytes.reduce((n, b) => n + b.length, 0);
    const message = new Uint8Array(total);
    let at = 0;
    for (const b of bytes) {
      message.set(b, at);
      at += b.length;
    }
    return this.send(requestId >>> 0, message, "raw exchange");
  }

  onPush(handler: (frame: PushFrame) => void): () => void {
    this.pushHandlers.add(handler);
    return () => this.pushHandlers.delete(handler);
  }

  async close(): Promise<void> {
    this.fail(new TransportError("the transport is closed"));
    this.socket.close(1000);
  }

  /** Sends once a slot is free and waits for the answer with the same id, up to the deadline. */
  private async send(requestId: number, message: Uint8Array, what: string): Promise<ResponseFrame> {
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new TransportError(`no answer to ${what} within ${this.requestTimeoutMs} ms`)),
      this.requestTimeoutMs,
    );
    let slot: { release(): void } | undefined;
    try {
      slot = await this.slots.acquire(() => undefined, deadline.signal);
      if (this.pending.has(requestId))
        throw new TransportError(`request id ${requestId} is already awaiting an answer`);
      if (this.socket.readyState !== WebSocket.OPEN) throw new TransportError("the WebSocket is not open");
      return await new Promise<ResponseFrame>((resolve, reject) => {
        const entry: Pending = { resolve, reject };
        this.pending.set(requestId, entry);
        deadline.signal.addEventListener(
          "abort",
          () => {
            if (this.pending.get(requestId) === entry) this.pending.delete(requestId);
            reject(deadline.signal.reason);
          },
          { once: true },
        );
        try {
          this.socket.send(message);
        } catch (err) {
          this.pending.delete(requestId);
          reject(
            new TransportError(`cannot send ${what}: ${err instanceof Error ? err.message : String(err)}`, {
              cause: err,
            }),
          );
        }
      });
    } finally {
      clearTimeout(timer);
      slot?.release();
    }
  }

  /** Rejects every request, sent or queued: the socket is gone. */
  private fail(err: TransportError): void {
    this.slots.close(err);
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) p.reject(err);
  }

  private receive(data: unknown): void {
    if (!(data instanceof ArrayBuffer) || data.byteLength < 1) return;
    const bytes = new Uint8Array(data);
    if (bytes[0] === WsKind.Push) {
      const frame = decodePush(bytes.subarray(1));
      if (frame instanceof FrameError) return;
      for (const h of this.pushHandlers) {
        try {
          h(frame);
        } catch {
          /* a failing handler must not break the socket */
        }
      }
      return;
    }
    if (bytes[0] !== WsKind.Response) return;
    const frame = decodeResponse(bytes.subarray(1));
    if (frame instanceof FrameError) return;
    const waiter = this.pending.get(frame.requestId);
    if (!waiter) return;
    this.pending.delete(frame.requestId);
    waiter.resolve(frame);
  }
}
