// Serves GET /metrics (Prometheus text format) for the front.
import { once } from "node:events";
import { createServer } from "node:http";
import type { FrontMetrics } from "./metrics.ts";
import { binding, listenAddress } from "./listen-error.ts";

/**
 * `more` adds text after the front's own metrics (the edge's federation metrics); it must not
 * reject and should bound its own time.
 */
export async function serveMetrics(
  metrics: FrontMetrics,
  listen: { host: string; port: number },
  more?: () => Promise<string>,
): Promise<{ url: string; close(): void }> {
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/metrics") {
      const own = metrics.render();
      void (more ? more().catch(() => "") : Promise.resolve("")).then((extra) => {
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(own + extra);
      });
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
