// QUIC driver of the gateway: ALPN qpq, one RPC per client-initiated bidirectional stream, push
// frames on server-initiated unidirectional streams.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ReadableStreamReadResult } from "node:stream/web";
import { QUICServer, events, type QUICConnection, type QUICStream } from "@matrixai/quic";
import QuicLogger, { LogLevel } from "@matrixai/logger";
import { FrameError, RequestAssembler, type RequestFrame } from "../proto/index.ts";
import type { TlsMaterial } from "./cert.ts";
import type { ClientConnection, Gateway } from "./gateway.ts";
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

const hmac = (key: ArrayBuffer, data: ArrayBuffer) => createHmac("sha256", Buffer.from(key)).update(Buffer.from(data)).digest();

export class QuicListener {
  private readonly server: QUICServer;
  private readonly gateway: Gateway;
  private readonly logger: Logger;

  constructor(gateway: Gateway, tls: TlsMaterial, logger: Logger) {
    this.gateway = gateway;
    this.logger = logger;
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
        applicationProtos: ["qpq"],
        verifyPeer: false,
        initialMaxStreamsBidi: gateway.config.maxStreamsPerConnection,
        initialMaxStreamsUni: 100,
        maxIdleTimeout: 120_000,
      },
      logger: new QuicLogger("quic", LogLevel.ERROR),
    });
    this.server.addEventListener(events.EventQUICServerConnection.name, (evt: Event) => {
      void this.accept((evt as events.EventQUICServerConnection).detail);
    });
  }

  get port(): number {
    return this.server.port;
  }

  get host(): string {
    return this.server.host;
  }

  async start(host: string, port: number): Promise<void> {
    await this.server.start({ host, port });
  }

  async stop(): Promise<void> {
    await this.server.stop({ isApp: true, errorCode: 0, force: true });
  }

  private async accept(quic: QUICConnection): Promise<void> {
    // Streams may arrive while the gateway decides; hold them until then.
    const early: QUICStream[] = [];
    let conn: ClientConnection | undefined;
    let decided = false;
    quic.addEventListener(events.EventQUICConnectionStream.name, (evt: Event) => {
      const stream = (evt as events.EventQUICConnectionStream).detail;
      if (!decided) early.push(stream);
      else if (conn) void this.serveStream(conn, stream);
      else stream.cancel(new Error("connection refused"));
    });
    quic.addEventListener(events.EventQUICConnectionStopped.name, () => {
      decided = true;
      if (conn) this.gateway.close(conn, "closed");
    }, { once: true });
    conn = await this.gateway.open({
      transport: "quic",
      remoteAddr: `${quic.remoteHost.includes(":") ? `[${quic.remoteHost}]` : quic.remoteHost}:${quic.remotePort}`,
      async sendPush(frame) {
        const stream = quic.newStream("uni");
        const writer = stream.writable.getWriter();
        await writer.write(frame);
        await writer.close();
      },
      close: () => void quic.stop({ isApp: true, errorCode: 1, force: true }).catch(() => {}),
    });
    // Stopped while the gateway decided (the handler above had no conn to close): close it now.
    if (conn && decided) {
      this.gateway.close(conn, "closed");
      conn = undefined;
    }
    decided = true;
    for (const stream of early.splice(0)) {
      if (conn) void this.serveStream(conn, stream);
      else stream.cancel(new Error("connection refused"));
    }
  }

  /** One RPC: read one frame, answer one frame, finish. Never throws. */
  private async serveStream(conn: ClientConnection, stream: QUICStream): Promise<void> {
    if (stream.type !== "bidi") {
      stream.cancel(new Error("clients may not open unidirectional streams"));
      return;
    }
    try {
      const frame = await this.readFrame(stream);
      if (frame === undefined) return; // the client reset its side: nothing to answer
      // Written inside serve(), so a drain also waits for the answer to go out.
      await this.gateway.serve(conn, frame, async (answer) => {
        const writer = stream.writable.getWriter();
        try {
          await writer.write(answer);
          await writer.close();
        } catch {
          // The client went away; nothing else to do for this stream.
        } finally {
          writer.releaseLock();
        }
      });
    } catch (err) {
      this.logger.error("stream failed", { conn: conn.id, error: err instanceof Error ? err.message : String(err) });
      try {
        stream.cancel(err);
      } catch { /* already gone */ }
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
}
