// The edge's per-peer federation metrics (GET /federation/metrics, front secret), appended to
// the front's /metrics so that operators scrape one endpoint. Bounded in time and size: a slow
// or failing edge costs a scrape at most EDGE_METRICS_TIMEOUT_MS and shows as
// federation_metrics_up 0, never as a failed scrape of the front's own metrics.
import { RelayHeader } from "../proto/wire/relay.ts";
import { Gauge } from "../proto/util/prometheus.ts";

export const EDGE_METRICS_TIMEOUT_MS = 2_000;
export const EDGE_METRICS_MAX_BYTES = 1 << 20;

async function fetchText(edgeUrl: string, frontSecret: string, timeoutMs: number): Promise<string> {
  const res = await fetch(new URL("/federation/metrics", edgeUrl), {
    headers: { [RelayHeader.frontAuth]: frontSecret },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`edge answered HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get("content-length") ?? 0);
  if (declared > EDGE_METRICS_MAX_BYTES) {
    await res.body?.cancel();
    throw new Error("edge metrics too large");
  }
  const text = await res.text();
  if (text.length > EDGE_METRICS_MAX_BYTES) throw new Error("edge metrics too large");
  return text;
}

/** The edge's federation metrics, then federation_metrics_up (1, or 0 when they could not be read). */
export async function federationMetrics(
  edgeUrl: string,
  frontSecret: string,
  timeoutMs = EDGE_METRICS_TIMEOUT_MS,
): Promise<string> {
  const up = new Gauge("federation_metrics_up", "1 when the edge's federation metrics were read for this scrape");
  let text = "";
  try {
    text = await fetchText(edgeUrl, frontSecret, timeoutMs);
    up.set(1);
  } catch {
    up.set(0);
  }
  return text + up.render() + "\n";
}
