// A small Prometheus registry: counters, gauges and latency histograms in text format 0.0.4.
type Labels = Record<string, string>;

const labelKey = (labels: Labels | undefined) =>
  labels ? Object.keys(labels).sort().map((k) => `${k}="${labels[k].replace(/["\\\n]/g, "_")}"`).join(",") : "";

class Family {
  readonly values = new Map<string, number>();
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge";
  constructor(name: string, help: string, type: "counter" | "gauge") {
    this.name = name;
    this.help = help;
    this.type = type;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    if (this.values.size === 0 && this.type === "counter") lines.push(`${this.name} 0`);
    for (const [k, v] of this.values) lines.push(k ? `${this.name}{${k}} ${v}` : `${this.name} ${v}`);
    return lines.join("\n");
  }
}

export class Counter extends Family {
  constructor(name: string, help: string) {
    super(name, help, "counter");
  }
  inc(labels?: Labels, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
}

export class Gauge extends Family {
  constructor(name: string, help: string) {
    super(name, help, "gauge");
  }
  set(value: number, labels?: Labels): void {
    this.values.set(labelKey(labels), value);
  }
}

const BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000];

export class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  readonly name: string;
  readonly help: string;
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }
  observe(valueMs: number, labels?: Labels): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { counts: new Array(BUCKETS_MS.length).fill(0), sum: 0, count: 0 }));
    for (let i = 0; i < BUCKETS_MS.length; i++) if (valueMs <= BUCKETS_MS[i]) s.counts[i]++;
    s.sum += valueMs;
    s.count++;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : "";
      BUCKETS_MS.forEach((b, i) => lines.push(`${this.name}_bucket{${sep}le="${b / 1000}"} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ""} ${s.sum / 1000}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ""} ${s.count}`);
    }
    return lines.join("\n");
  }
}

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
  readonly connectionsRefused = new Counter("connections_refused_total", "Connections refused, by reason (shutting_down, connection_limit, address_limit, plugin).");
  readonly authTimeouts = new Counter("connections_auth_timeout_total", "Connections closed for not authenticating in time.");
  readonly fetchWaitWaiting = new Gauge("fetch_wait_waiting", "FetchWaits parked at the front, waiting for a message.");
  readonly fetchWaitRefused = new Counter("fetch_wait_refused_total", "FetchWaits refused by a concurrency cap, by limit (connection, identity).");
  readonly inflight = new Gauge("rpc_inflight", "RPCs in progress.");
  readonly queueDepth = new Gauge("delivery_queue_depth", "Pending messages of the most recently enqueued-to recipient queue (sampled).");
  readonly latency = new Histogram("rpc_latency_seconds", "RPC latency at the front, by method.");
  private readonly extra: { render(): string }[] = [];

  /** Lets other components (the plugin host) add their families to /metrics. */
  register(family: { render(): string }): void {
    this.extra.push(family);
  }

  render(): string {
    const all: { render(): string }[] = [
      this.enqueue, this.enqueueBytes, this.fetch, this.fetchWait, this.keyPackageUpload, this.loginSuccess,
      this.loginFailure, this.rateLimitHit, this.rpc, this.frameErrors, this.relayErrors, this.pushEvents, this.connections,
      this.connectionsRefused, this.authTimeouts, this.fetchWaitWaiting, this.fetchWaitRefused, this.inflight, this.queueDepth, this.latency, ...this.extra,
    ];
    return all.map((f) => f.render()).join("\n") + "\n";
  }
}
