// The front's /metrics text: delivery_queue_depth is a histogram of depths sampled at each
// Enqueue (the front never sees acks or expiry, so a gauge would go stale); latencies render in seconds.
import { describe, expect, it } from "vitest";
import { FrontMetrics } from "../../quic-front/metrics.ts";

describe("front metrics", () => {
  it("renders delivery_queue_depth as a histogram of observed depths", () => {
    const m = new FrontMetrics();
    for (const depth of [1, 1, 7, 20_000]) m.queueDepth.observe(depth);
    const text = m.render();
    expect(text).toContain("# TYPE delivery_queue_depth histogram");
    expect(text).not.toMatch(/^delivery_queue_depth \d/m);
    expect(text).toMatch(/^delivery_queue_depth_bucket\{le="0"\} 0$/m);
    expect(text).toMatch(/^delivery_queue_depth_bucket\{le="1"\} 2$/m);
    expect(text).toMatch(/^delivery_queue_depth_bucket\{le="10"\} 3$/m);
    expect(text).toMatch(/^delivery_queue_depth_bucket\{le="10000"\} 3$/m);
    expect(text).toMatch(/^delivery_queue_depth_bucket\{le="\+Inf"\} 4$/m);
    expect(text).toMatch(/^delivery_queue_depth_sum 20009$/m);
    expect(text).toMatch(/^delivery_queue_depth_count 4$/m);
  });

  it("keeps latencies in milliseconds rendered as seconds, and counts acks", () => {
    const m = new FrontMetrics();
    m.latency.observe(3, { method: "Fetch" });
    m.ack.inc();
    const text = m.render();
    expect(text).toMatch(/^rpc_latency_seconds_bucket\{method="Fetch",le="0.005"\} 1$/m);
    expect(text).toMatch(/^rpc_latency_seconds_sum\{method="Fetch"\} 0.003$/m);
    expect(text).toMatch(/^ack_total 1$/m);
  });
});
