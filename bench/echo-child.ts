// The floor: a bare @matrixai/quic server that reads one request frame per stream and answers a
// fixed Ok frame. Same process shape as front-child.ts, so CPU per RPC is comparable.
import { createHmac, randomBytes } from "node:crypto";
import { QUICServer, events, type QUICStream } from "@matrixai/quic";
import QuicLogger, { LogLevel } from "@matrixai/logger";
import { RequestAssembler, FrameError, encodeResponse } from "../proto/index.ts";
import { loadTls } from "../quic-front/cert.ts";
import { settingsFromEnv } from "../quic-front/config.ts";

// The front's settings (stack trace limit, data directory), so the floor is comparable.
const settings = settingsFromEnv(process.env);
Error.stackTraceLimit = settings.stackTraceLimit;
const tls = await loadTls({ dataDir: settings.dataDir });
const key = randomBytes(32);
const hmac = (k: ArrayBuffer, d: ArrayBuffer) => createHmac("sha256", Buffer.from(k)).update(Buffer.from(d)).digest();
const server = new QUICServer({
  crypto: {
    key: key.buffer.slice(key.byteOffset, key.byteOffset + 32) as ArrayBuffer,
    ops: {
      sign: async (k, d) => {
        const m = hmac(k, d);
        return m.buffer.slice(m.byteOffset, m.byteOffset + m.length) as ArrayBuffer;
      },
      verify: async (k, d, s) => hmac(k, d).equals(Buffer.from(s)),
    },
  },
  config: {
    key: tls.keyPem,
    cert: tls.certPem,
    applicationProtos: ["qpq"],
    verifyPeer: false,
    initialMaxStreamsBidi: 1000,
  },
  logger: new QuicLogger("echo", LogLevel.ERROR),
});
const ok = new Uint8Array(0);
async function serve(stream: QUICStream) {
  const a = new RequestAssembler();
  for await (const chunk of stream.readable) if (a.push(chunk)) break;
  const f = a.finish();
  const w = stream.writable.getWriter();
  await w.write(encodeResponse(0, f instanceof FrameError ? 0 : f.requestId, ok));
  await w.close();
}
server.addEventListener(events.EventQUICServerConnection.name, (evt: Event) => {
  const conn = (evt as events.EventQUICServerConnection).detail;
  conn.addEventListener(events.EventQUICConnectionStream.name, (e: Event) => {
    void serve((e as events.EventQUICConnectionStream).detail).catch(() => {});
  });
});
await server.start({ host: "127.0.0.1", port: 0 });
process.send?.({ port: server.port });
process.on("message", async (msg) => {
  if (msg === "cpu") process.send?.({ cpu: process.cpuUsage() });
  if (msg === "stop") {
    await server.stop({ force: true });
    process.exit(0);
  }
});
