// WebSocket bridge for browsers and environments without QUIC: the same frames over one
// WebSocket (path, subprotocol and kind bytes: proto/wire/transport.ts). Each binary client
// message is one request frame; requests are served concurrently.
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { once } from "node:events";
import { WebSocketServer, type WebSocket } from "ws";
import { MAX_PAYLOAD, REQUEST_HEADER, WS_PATH, WS_SUBPROTOCOL, WsKind, decodeRequest } from "../proto/index.ts";
import type { Gateway } from "./gateway.ts";
import type { Logger } from "../proto/util/log.ts";
import { binding, listenAddress } from "./listen-error.ts";

/** Request bytes one socket may have in flight before it stops being read (as QUIC's budget). */
export const WS_BUFFER_BYTES = 16 * 1024 * 1024;

function tagged(kind: number, frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(frame.length + 1);
  out[0] = kind;
  out.set(frame, 1);
  return out;
}

/** A close reason fits in 123 bytes of UTF-8 (ws throws otherwise); cut at a character boundary. */
export function closeReason(reason: string): string {
  let out = "";
  let bytes = 0;
  for (const ch of reason) {
    bytes += Buffer.byteLength(ch);
    if (bytes > 123) break;
    out += ch;
  }
  return out;
}

export class WsListener {
  private readonly gateway: Gateway;
  private readonly logger: Logger;
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  readonly secure: boolean;

  constructor(gateway: Gateway, logger: Logger, tls?: { certPem: string; keyPem: string }) {
    this.gateway = gateway;
    this.logger = logger;
    this.secure = tls !== undefined;
    this.http = tls ? createHttpsServer({ cert: tls.certPem, key: tls.keyPem }) : createHttpServer();
    this.http.on("request", (_req, res) =>
      res.writeHead(426, { "content-type": "text/plain" }).end("qpq WebSocket endpoint\n"),
    );
    this.wss = new WebSocketServer({
      server: this.http,
      path: WS_PATH,
      // A frame larger than this is refused by closing the socket (1009); a header that merely
      // announces more is answered BadRequest like on QUIC.
      maxPayload: MAX_PAYLOAD + REQUEST_HEADER,
      handleProtocols: (protocols) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
    });
    // ws re-emits the HTTP server's errors; a failed bind is reported by start(), so this only logs.
    this.wss.on("error", (err) => this.logger.debug("websocket server error", { error: err.message }));
    this.wss.on("connection", (ws, req) => {
      const host = req.socket.remoteAddress ?? "unknown";
      const remote = `${host.includes(":") ? `[${host}]` : host}:${req.socket.remotePort ?? 0}`;
      this.accept(ws, remote).catch((err: unknown) => {
        this.logger.error("websocket accept failed", {
          remote,
          error: err instanceof Error ? err.message : String(err),
        });
        ws.terminate();
      });
    });
  }

  get port(): number {
    return (this.http.address() as { port: number }).port;
  }

  async start(host: string, port: number): Promise<void> {
    await binding("WebSocket bridge", listenAddress("tcp", host, port), async () => {
      this.http.listen(port, host);
      await once(this.http, "listening");
    });
  }

  async stop(): Promise<void> {
    for (const ws of this.wss.clients) ws.close(1001, "server stopping");
    this.wss.close();
    this.http.close();
    this.http.closeAllConnections();
  }

  /** One accepted socket. Never throws: a failure closes this socket only. */
  private async accept(ws: WebSocket, remoteAddr: string): Promise<void> {
    if (ws.protocol !== WS_SUBPROTOCOL) {
      ws.close(1002, `subprotocol ${WS_SUBPROTOCOL} required`);
      return;
    }
    // While the gateway decides, the socket is not read; the few messages ws had already
    // parsed wait here, bounded like requests in flight.
    ws.pause();
    const limit = this.gateway.config.maxStreamsPerConnection;
    const pending: Buffer[] = [];
    const early = (data: Buffer, isBinary: boolean) => {
      if (!isBinary) ws.close(1003, "binary frames only");
      else if (pending.length >= limit) ws.close(1008, "too many requests before the connection was admitted");
      else pending.push(data);
    };
    ws.on("message", early);
    ws.on("error", (err) => this.logger.debug("websocket error", { remote: remoteAddr, error: err.message }));
    const conn = await this.gateway.open({
      transport: "websocket",
      remoteAddr,
      async sendPush(frame) {
        if (ws.readyState === ws.OPEN) ws.send(tagged(WsKind.Push, frame));
      },
      close: (reason) => {
        ws.close(1008, closeReason(reason));
        ws.resume(); // read the peer's close frame, so the handshake completes
      },
    });
    ws.off("message", early);
    if (!conn) return;
    if (ws.readyState !== ws.OPEN) {
      // The client left while it was being admitted.
      this.gateway.close(conn, "closed");
      return;
    }
    // Like QUIC's stream limit and buffer budget: at most `limit` requests and about
    // WS_BUFFER_BYTES of request bytes in flight per socket; beyond that the socket is not
    // read (TCP pushes back), so a client cannot make the front buffer without bound.
    let inflight = 0;
    let inflightBytes = 0;
    const full = () => inflight >= limit || inflightBytes >= WS_BUFFER_BYTES;
    // Answers being written; all settle when the socket closes, flushed or not.
    const writing = new Set<() => void>();
    const respond = (answer: Uint8Array) =>
      new Promise<void>((resolve) => {
        if (ws.readyState !== ws.OPEN) return resolve();
        const done = () => {
          writing.delete(done);
          resolve();
        };
        writing.add(done);
        ws.send(tagged(WsKind.Response, answer), done);
      });
    const serve = async (data: Buffer) => {
      inflight++;
      inflightBytes += data.length;
      if (full()) ws.pause();
      try {
        const frame = decodeRequest(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        await this.gateway.serve(conn, frame, respond);
      } finally {
        inflight--;
        inflightBytes -= data.length;
        if (ws.isPaused && !full() && ws.readyState === ws.OPEN) ws.resume();
      }
    };
    const serveLogged = (data: Buffer) => {
      serve(data).catch((err: unknown) => {
        this.logger.error("websocket request failed", {
          conn: conn.id,
          error: err instanceof Error ? err.message : String(err),
        });
      });
    };
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        ws.close(1003, "binary frames only");
        return;
      }
      serveLogged(data);
    });
    ws.on("close", () => {
      for (const done of [...writing]) done();
      this.gateway.close(conn, "closed");
    });
    for (const data of pending.splice(0)) serveLogged(data);
    if (!full()) ws.resume();
  }
}
