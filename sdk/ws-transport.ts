// WebSocket transport (browsers, or where UDP is blocked): the same frames over one WebSocket
// with subprotocol "qpq". Responses are matched to requests by request id. Uses the standard
// WebSocket global (browsers, Node >= 22), so it has no Node-only dependency.
import { FrameError, decodePush, decodeResponse, encodeRequest, type PushFrame, type ResponseFrame } from "../proto/index.ts";

const KIND_RESPONSE = 0;
const KIND_PUSH = 1;

export class WsTransport {
  private readonly socket: WebSocket;
  private nextRequestId = 1;
  private readonly pending = new Map<number, { resolve(f: ResponseFrame): void; reject(e: Error): void }>();
  private readonly pushHandlers = new Set<(frame: PushFrame) => void>();

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (evt) => this.receive(evt.data));
    socket.addEventListener("close", () => {
      for (const p of this.pending.values()) p.reject(new Error("WebSocket closed"));
      this.pending.clear();
    });
  }

  /** `url` like ws://127.0.0.1:5002/qpq (wss:// in production). */
  static async connect(url: string): Promise<WsTransport> {
    const socket = new WebSocket(url, "qpq");
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error(`cannot open ${url}`)), { once: true });
    });
    return new WsTransport(socket);
  }

  request(methodId: number, payload: Uint8Array): Promise<ResponseFrame> {
    const requestId = this.nextRequestId++ >>> 0;
    return this.send(requestId, encodeRequest(methodId, requestId, payload));
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
    return this.send(requestId, message);
  }

  onPush(handler: (frame: PushFrame) => void): () => void {
    this.pushHandlers.add(handler);
    return () => this.pushHandlers.delete(handler);
  }

  async close(): Promise<void> {
    this.socket.close(1000);
  }

  private send(requestId: number, message: Uint8Array): Promise<ResponseFrame> {
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject });
      this.socket.send(message);
    });
  }

  private receive(data: unknown): void {
    if (!(data instanceof ArrayBuffer) || data.byteLength < 1) return;
    const bytes = new Uint8Array(data);
    if (bytes[0] === KIND_PUSH) {
      const frame = decodePush(bytes.subarray(1));
      if (!(frame instanceof FrameError)) for (const h of this.pushHandlers) h(frame);
      return;
    }
    if (bytes[0] !== KIND_RESPONSE) return;
    const frame = decodeResponse(bytes.subarray(1));
    if (frame instanceof FrameError) return;
    const waiter = this.pending.get(frame.requestId);
    if (!waiter) return;
    this.pending.delete(frame.requestId);
    waiter.resolve(frame);
  }
}
