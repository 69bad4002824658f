// The front's Prometheus families (the registry and text format: proto/util/prometheus.ts).
import { Counter, Gauge, Histogram, type HistogramScale } from "../proto/util/prometheus.ts";

/** Queue depths up to the default MAX_QUEUE_MESSAGES (10,000) and beyond. */
const QUEUE_DEPTH: HistogramScale = { buckets: [0, 1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000], divisor: 1 };

/** The front's metrics (design.md, "Operations"). */
export class FrontMetrics {
  readonly enqueue = new Counter("enqueue_total", "Messages accepted for delivery (per recipient).");
  readonly enqueueBytes = new Counter("enqueue_bytes_total", "Bytes of enqueue requests accepted.");
  readonly fetch = new Counter("fetch_total", "Fetch RPCs answered.");
  readonly fetchWait = new Counter("fetch_wait_total", "FetchWait RPCs answered.");
  readonly keyPackageUpload = new Counter("key_package_upload_total", "KeyPackages uploaded.");
  readonly loginSuccess = new Counter("auth_login_success_total", "Successful OPAQUE logins.");
  readonly loginFailure = new Counter("auth_login_failure_total", "Failed OPAQUE logins.");
  readonly rateLimitHit = new Counter("rate_limit_hit_total", "Requests refused by a rate limit.");
  readonly rpc = new Counter("rpc_total", "RPCs answered, by method and status.");
  readonly frameErrors = new Counter("frame_errors_total", "Malformed request frames, by kind.");
  readonly relayErrors = new Counter("relay_errors_total", "Failed relays to the edge, by kind.");
  readonly pushEvents = new Counter("push_events_total", "Push events received from recipient queues.");
  readonly connections = new Gauge("connections_open", "Open client connections.");
  readonly connectionsRefused = new Counter(
    "connections_refused_total",
    "Connections refused, by reason (shutting_down, connection_limit, address_limit, plugin).",
  );
  readonly authTimeouts = new Counter(
    "connections_auth_timeout_total",
    "Connections closed for not authenticating in time.",
  );
  readonly fetchWaitWaiting = new Gauge("fetch_wait_waiting", "FetchWaits parked at the front, waiting for a message.");
  readonly fetchWaitRefused = new Counter(
    "fetch_wait_refused_total",
    "FetchWaits refused by a concurrency cap, by limit (connection, identity).",
  );
  readonly inflight = new Gauge("rpc_inflight", "RPCs in progress.");
  /**
   * Sampled at each accepted Enqueue: the recipient queue's pending messages right after it. A
   * distribution of observations, not a current value: acks and expiry happen in the queue's
   * Durable Object and are not seen here, so a gauge would go stale.
   */
  readonly queueDepth = new Histogram(
    "delivery_queue_depth",
    "Pending messages in the recipient's queue right after each accepted Enqueue (sampled per message; not the current depth).",
    QUEUE_DEPTH,
  );
  readonly ack = new Counter("ack_total", "Ack RPCs answered Ok.");
  readonly latency = new Histogram("rpc_latency_seconds", "RPC latency at the front, by method.");
  private readonly extra: { render(): string }[] = [];

  /** Lets other components (the plugin host) add their families to /metrics. */
  register(family: { render(): string }): void {
    this.extra.push(family);
  }

  render(): string {
    const all: { render(): string }[] = [
      this.enqueue,
      this.enqueueBytes,
      this.fetch,
      this.fetchWait,
      this.keyPackageUpload,
      this.loginSuccess,
      this.loginFailure,
      this.rateLimitHit,
      this.rpc,
      this.frameErrors,
      this.relayErrors,
      this.pushEvents,
      this.connections,
      this.connectionsRefused,
      this.authTimeouts,
      this.fetchWaitWaiting,
      this.fetchWaitRefused,
      this.inflight,
      this.queueDepth,
      this.ack,
      this.latency,
      ...this.extra,
    ];
    return all.map((f) => f.render()).join("\n") + "\n";
  }
}
