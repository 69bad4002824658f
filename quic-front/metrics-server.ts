// Serves GET /metrics (Prometheus text format) for the front.
import { once } from "node:events";
import { createServer } from "node:http";
import type { FrontMetrics } from "./metrics.ts";
import { binding, listenAddress } from "./listen-error.ts";

export async function serveMetrics(
  metrics: FrontMetrics,
  listen: { host: string; port: number },
): Promise<{ url: string; close(): void }> {
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(metrics.render());
    } else {
      res.writeHead(404).end();
    }
  });
  await binding("metrics endpoint", listenAddress("tcp", listen.host, listen.port), async () => {
    server.listen(listen.port, listen.host);
    await once(server, "listening");
  });
  const { port } = server.address() as { port: number };
  return {
    url: `http://${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${port}/metrics`,
    close: () => server.close(),
  };
}
