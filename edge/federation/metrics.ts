// Per-peer federation metrics in the Prometheus text format (GET /federation/metrics).
import { Counter, Gauge } from "../../proto/util/prometheus.ts";
import type { OutboxMetrics } from "../durable/federation-outbox.ts";

const LINK_STATES = ["idle", "up", "down"] as const;

export function renderFederationMetrics(
  rows: { peer: string; out: OutboxMetrics; in: OutboxMetrics }[],
  unknown: OutboxMetrics,
  now: number,
): string {
  const depth = new Gauge("federation_outbox_depth", "Relays waiting in the outbox to a peer");
  const bytes = new Gauge("federation_outbox_bytes", "Payload bytes waiting in the outbox to a peer");
  const oldest = new Gauge("federation_outbox_oldest_age_seconds", "Age of the oldest relay waiting for a peer");
  const link = new Gauge("federation_link_up", "1 for the link state a peer is in (idle, up, down)");
  const lastSuccess = new Gauge(
    "federation_last_success_seconds",
    "Seconds since the last relay a peer accepted (-1: never)",
  );
  const relayed = new Counter("federation_relayed_total", "Relays a peer stored");
  const rejected = new Counter("federation_relay_rejected_total", "Relays a peer refused for good (kept, not retried)");
  const retries = new Counter("federation_relay_retries_total", "Failed relay attempts (retried with back-off)");
  const deferred = new Counter(
    "federation_relay_deferred_total",
    "Relays a busy recipient could not take yet (held back for it alone, retried)",
  );
  const accepted = new Counter("federation_inbound_accepted_total", "Signed requests accepted from a peer");
  const refused = new Counter("federation_inbound_refused_total", "Requests refused, by claimed peer and reason");
  for (const r of rows) {
    const peer = { peer: r.peer };
    depth.set(r.out.depth, peer);
    bytes.set(r.out.bytes, peer);
    oldest.set(r.out.oldestAgeMs / 1000, peer);
    for (const s of LINK_STATES) link.set(r.out.linkState === s ? 1 : 0, { ...peer, state: s });
    lastSuccess.set(r.out.lastSuccessAt ? (now - r.out.lastSuccessAt) / 1000 : -1, peer);
    relayed.inc(peer, r.out.relayed);
    rejected.inc(peer, r.out.rejected);
    retries.inc(peer, r.out.retries);
    deferred.inc(peer, r.out.deferred);
    accepted.inc(peer, r.in.accepted);
    for (const [reason, n] of Object.entries(r.in.refused)) refused.inc({ ...peer, reason }, n);
  }
  for (const [reason, n] of Object.entries(unknown.refused)) refused.inc({ peer: "unknown", reason }, n);
  return (
    [depth, bytes, oldest, link, lastSuccess, relayed, rejected, retries, deferred, accepted, refused]
      .map((f) => f.render())
      .join("\n") + "\n"
  );
}
