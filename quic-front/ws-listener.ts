// WebSocket bridge for browsers and environments without QUIC: the same frames over one
// WebSocket (subprotocol "qpq"). Each binary client message is one request frame; requests are
// served concurrently. Server messages start with one kind byte — 0x00 response frame,
// 0x01 push frame — because a response's status byte and a push's event type are ambiguous.
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { once } from "node:events";
import { WebSocketServer, type WebSocket } from "ws";
import { MAX_PAYLOAD, REQUEST_HEADER, decodeRequest } from "../proto/index.ts";
import type { Gateway } from "./gateway.ts";
import type { Logger } from "./log.ts";

export const WS_PATH = "/qpq";
export const WS_SUBPROTOCOL = "qpq";
export const WsKind = { Response: 0, Push: 1 } as const;

function tagged(kind: number, frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(frame.length + 1);
  out[0] = kind;
  out.set(frame, 1);
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
    this.http.on("request", (_req, res) => res.writeHead(426, { "content-type": "text/plain" }).end("qpq WebSocket endpoint\n"));
    this.wss = new WebSocketServer({
      server: this.http,
      path: WS_PATH,
      // A frame larger than this is refused by closing the socket (1009); a header that merely
      // announces more is answered BadRequest like on QUIC.
      maxPayload: MAX_PAYLOAD + REQUEST_HEADER,
      handleProtocols: (protocols) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
    });
    this.wss.on("connection", (ws, req) => void this.accept(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`));
  }

  get port(): number {
    return (this.http.address() as { port: number }).port;
  }

  async start(host: string, port: number): Promise<void> {
    this.http.listen(port, host);
    await once(this.http, "listening");
  }

  async stop(): Promise<void> {
    for (const ws of this.wss.clients) ws.close(1001, "server stopping");
    this.wss.close();
    this.http.close();
    this.http.closeAllConnections();
  }

  private async accept(ws: WebSocket, remoteAddr: string): Promise<void> {
    if (ws.protocol !== WS_SUBPROTOCOL) {
      ws.close(1002, `subprotocol ${WS_SUBPROTOCOL} required`);
      return;
    }
    const pending: Buffer[] = [];
    const early = (data: Buffer) => pending.push(data);
    ws.on("message", early);
    const conn = await this.gateway.open({
      transport: "websocket",
      remoteAddr,
      async sendPush(frame) {
        ws.send(tagged(WsKind.Push, frame));
      },
      close: (reason) => ws.close(1008, reason.slice(0, 100)),
    });
    ws.off("message", early);
    if (!conn) return;
    const serve = async (data: Buffer) => {
      const answer = await this.gateway.serve(conn, decodeRequest(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
      if (ws.readyState === ws.OPEN) ws.send(tagged(WsKind.Response, answer));
    };
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        ws.close(1003, "binary frames only");
        return;
      }
      void serve(data);
    });
    ws.on("close", () => this.gateway.close(conn, "closed"));
    ws.on("error", (err) => this.logger.debug("websocket error", { conn: conn.id, error: err.message }));
    for (const data of pending.splice(0)) void serve(data);
  }
}
