import { describe, it, expect, afterEach } from "vitest";
import { createServer, type Server } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { EDGE_METRICS_MAX_BYTES, federationMetrics } from "../../quic-front/edge-metrics.ts";
import { RelayHeader } from "../../proto/wire/relay.ts";

let server: Server | undefined;
afterEach(() => server?.close());

/** An edge stand-in that answers /federation/metrics with `status` and `body`, and records the secret. */
async function edge(status: number, body: string): Promise<{ url: string; secrets: string[] }> {
  const secrets: string[] = [];
  server = createServer((req, res) => {
    secrets.push(String(req.headers[RelayHeader.frontAuth]));
    res.writeHead(req.url === "/federation/metrics" ? status : 404).end(body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, secrets };
}

describe("the edge's federation metrics on the front's /metrics", () => {
  it("appends them with federation_metrics_up 1, sending the front secret", async () => {
    const e = await edge(200, 'federation_outbox_depth{peer="b.example"} 3\n');
    const text = await federationMetrics(e.url, "s3cret");
    expect(text).toContain('federation_outbox_depth{peer="b.example"} 3\n');
    expect(text).toMatch(/^federation_metrics_up 1$/m);
    expect(e.secrets).toEqual(["s3cret"]);
  });

  it("shows federation_metrics_up 0, and nothing of the edge, when it refuses, is down or answers too much", async () => {
    const refused = await edge(401, "no");
    expect(await federationMetrics(refused.url, "wrong")).toMatch(/^federation_metrics_up 0$/m);
    server?.close();

    const huge = await edge(200, "x".repeat(EDGE_METRICS_MAX_BYTES + 1));
    const text = await federationMetrics(huge.url, "s");
    expect(text).toMatch(/^federation_metrics_up 0$/m);
    expect(text).not.toContain("xxxx");
    server?.close();

    expect(await federationMetrics("http://127.0.0.1:9", "s", 5_000)).toMatch(/^federation_metrics_up 0$/m);
  });
});
