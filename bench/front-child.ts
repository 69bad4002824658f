// A QUIC front in its own process, so the benchmark can measure the front's CPU time alone.
// Reports {port} on start and its process.cpuUsage() whenever the parent sends "cpu".
import { configFromEnv } from "../quic-front/config.ts";
import { createLogger } from "../proto/util/log.ts";
import { startFront } from "../quic-front/run.ts";

const config = configFromEnv(process.env);
Error.stackTraceLimit = config.stackTraceLimit; // as in production (quic-front/main.ts)
const running = await startFront(config, createLogger("error"));
process.send?.({ port: running.front.port });
process.on("message", async (msg) => {
  if (msg === "cpu") process.send?.({ cpu: process.cpuUsage() });
  if (msg === "stop") {
    await running.stop();
    process.exit(0);
  }
});
