// A QUIC front in its own process, so the benchmark can measure the front's CPU time alone.
// Reports {port} on start and its process.cpuUsage() whenever the parent sends "cpu".
import { QpqFront } from "../quic-front/server.ts";
import { configFromEnv } from "../quic-front/config.ts";
import { loadTls } from "../quic-front/cert.ts";
import { createLogger } from "../quic-front/log.ts";

const config = configFromEnv(process.env);
const tls = await loadTls({ dataDir: config.dataDir });
const front = new QpqFront({ config, tls, logger: createLogger("error") });
await front.start();
process.send?.({ port: front.port });
process.on("message", async (msg) => {
  if (msg === "cpu") process.send?.({ cpu: process.cpuUsage() });
  if (msg === "stop") {
    await front.stop();
    process.exit(0);
  }
});
