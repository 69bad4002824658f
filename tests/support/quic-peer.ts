// A bare QUIC server speaking ALPN qpq whose per-stream behaviour each test scripts: it can
// answer, reset, stop reading or hang, so tests see how the SDK copes with a misbehaving server.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { QUICServer, events, type QUICConnection, type QUICStream } from "@matrixai/quic";
import QuicLogger, { LogLevel } from "@matrixai/logger";
import { RequestAssembler, FrameError, encodeResponse, type RequestFrame } from "../../proto/index.ts";
import { generateDevCertificate } from "../../quic-front/cert.ts";

/** What the peer does with one request stream, given the request (or undefined if it never completed). */
export type StreamScript = (stream: QUICStream, frame: RequestFrame, conn: QUICConnection) => Promise<void> | void;

export interface QuicPeer {
  port: number;
  /** The development CA the peer's certificate is signed by: what clients pin. */
  certPem: string;
  connections: QUICConnection[];
  stop(): Promise<void>;
}

/** Answers the request with `status` and an empty payload, then finishes the stream. */
export async function answer(stream: QUICStream, frame: RequestFrame, status = 0): Promise<void> {
  const writer = stream.writable.getWriter();
  await writer.write(encodeResponse(status, frame.requestId, new Uint8Array(0)));
  await writer.close();
}

const hmac = (key: ArrayBuffer, data: ArrayBuffer) =>
  createHmac("sha256", Buffer.from(key)).update(Buffer.from(data)).digest();
const toArrayBuffer = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;

export async function startQuicPeer(script: StreamScript, opts: { maxStreamsBidi?: number } = {}): Promise<QuicPeer> {
  const { caPem, certPem, keyPem } = await generateDevCertificate();
  const key = randomBytes(32);
  const server = new QUICServer({
    crypto: {
      key: toArrayBuffer(key),
      // The server derives connection ids and retry tokens from these: they must be a real MAC.
      ops: {
        sign: async (k, data) => toArrayBuffer(hmac(k, data)),
        verify: async (k, data, sig) => {
          const mac = hmac(k, data);
          return sig.byteLength === mac.length && timingSafeEqual(mac, Buffer.from(sig));
        },
      },
    },
    config: {
      key: keyPem,
      cert: certPem,
      applicationProtos: ["qpq"],
      verifyPeer: false,
      initialMaxStreamsBidi: opts.maxStreamsBidi ?? 100,
    },
    logger: new QuicLogger("peer", LogLevel.SILENT),
  });
  const connections: QUICConnection[] = [];
  server.addEventListener(events.EventQUICServerConnection.name, (evt: Event) => {
    const conn = (evt as events.EventQUICServerConnection).detail;
    connections.push(conn);
    conn.addEventListener(events.EventQUICConnectionStream.name, (e: Event) => {
      const stream = (e as events.EventQUICConnectionStream).detail;
      void (async () => {
        const frame = await readRequest(stream);
        if (frame) await script(stream, frame, conn);
      })().catch(() => {});
    });
  });
  await server.start({ host: "127.0.0.1", port: 0 });
  return {
    port: server.port,
    certPem: caPem,
    connections,
    stop: () => server.stop({ isApp: true, errorCode: 0, force: true }),
  };
}

/** Reads one complete request frame (not waiting for FIN); undefined if the stream failed. */
async function readRequest(stream: QUICStream): Promise<RequestFrame | undefined> {
  const a = new RequestAssembler();
  const reader = stream.readable.getReader();
  try {
    while (!a.complete) {
      const { value, done } = await reader.read();
      if (done || a.push(value)) break;
    }
  } catch {
    reader.releaseLock();
    return undefined;
  }
  // Read the FIN in the background, so the stream can complete and its credit return.
  void (async () => {
    try {
      while (!(await reader.read()).done);
    } catch {
      /* reset */
    }
  })();
  const frame = a.complete ? a.finish() : undefined;
  return frame instanceof FrameError ? undefined : frame;
}
