// The floor of the lean driver: quic-front/quic/'s driver straight over quiche, reading one
// request frame per stream and answering a fixed Ok frame with FIN. Same process shape as
// echo-child.ts (the @matrixai/quic floor), so the two CPU figures compare the QUIC layers.
import { ALPN, FrameError, RequestAssembler, encodeResponse } from "../proto/index.ts";
import { loadTls } from "../quic-front/cert.ts";
import { settingsFromEnv } from "../quic-front/config.ts";
import { serverConfig } from "../quic/config.ts";
import { QuicDriver } from "../quic-front/quic/driver.ts";
import type { DriverConnection } from "../quic/connection.ts";

const settings = settingsFromEnv(process.env);
Error.stackTraceLimit = settings.stackTraceLimit;
const tls = await loadTls({ dataDir: settings.dataDir });
type Streams = Map<number, RequestAssembler>;
const buf = new Uint8Array(64 * 1024);
const ok = new Uint8Array(0);
const driver: QuicDriver<Streams> = new QuicDriver<Streams>(
  serverConfig({ certPem: tls.certPem, keyPem: tls.keyPem, alpn: ALPN, maxStreamsBidi: 1000, idleTimeoutMs: 120_000 }),
  {
    established(conn) {
      conn.app = new Map();
    },
    readable(conn: DriverConnection<Streams>, id) {
      const streams = conn.app!;
      let a = streams.get(id);
      if (!a) streams.set(id, (a = new RequestAssembler()));
      for (;;) {
        let got: [number, boolean] | null;
        try {
          got = conn.read(id, buf);
        } catch {
          streams.delete(id);
          return;
        }
        if (got === null) return;
        if (got[0] > 0) a.push(buf.subarray(0, got[0]));
        if (got[1]) {
          streams.delete(id);
          const f = a.finish();
          conn.write(id, encodeResponse(0, f instanceof FrameError ? 0 : f.requestId, ok), true, () => {});
          driver.touch(conn);
          return;
        }
      }
    },
    ended() {},
  },
  { maxConnections: 10_000 },
);
await driver.listen("127.0.0.1", 0);
process.send?.({ port: driver.port });
process.on("message", async (msg) => {
  if (msg === "cpu") process.send?.({ cpu: process.cpuUsage() });
  if (msg === "stop") {
    await driver.stop(0, "stopping", 500);
    process.exit(0);
  }
});
