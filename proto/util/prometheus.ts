// Prometheus text format 0.0.4: counters, gauges and latency histograms, and the rendering of
// any family (the front's registry and the plugin host's per-plugin counters use the same).
export type Labels = Record<string, string>;

/** A label value as the text format wants it: backslash, double quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

/** `a="x",b="y"`, in the order given; "" for no labels. */
export function formatLabels(labels: Labels | undefined): string {
  return labels
    ? Object.keys(labels)
        .map((k) => `${k}="${escapeLabelValue(labels[k])}"`)
        .join(",")
    : "";
}

/** One sample line; `labels` already formatted (formatLabels). */
export function sampleLine(name: string, labels: string, value: number): string {
  return labels ? `${name}{${labels}} ${value}` : `${name} ${value}`;
}

export function familyHeader(name: string, help: string, type: "counter" | "gauge" | "histogram"): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
}

/** Series are keyed by their labels in key order, so {a, b} and {b, a} are one series. */
const seriesKey = (labels: Labels | undefined) =>
  labels
    ? formatLabels(
        Object.fromEntries(
          Object.keys(labels)
            .sort()
            .map((k) => [k, labels[k]]),
        ),
      )
    : "";

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
    const lines = familyHeader(this.name, this.help, this.type);
    if (this.values.size === 0 && this.type === "counter") lines.push(sampleLine(this.name, "", 0));
    for (const [k, v] of this.values) lines.push(sampleLine(this.name, k, v));
    return lines.join("\n");
  }
}

export class Counter extends Family {
  constructor(name: string, help: string) {
    super(name, help, "counter");
  }
  inc(labels?: Labels, by = 1): void {
    const k = seriesKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(seriesKey(labels)) ?? 0;
  }
}

export class Gauge extends Family {
  constructor(name: string, help: string) {
    super(name, help, "gauge");
  }
  set(value: number, labels?: Labels): void {
    this.values.set(seriesKey(labels), value);
  }
}

/** Bucket bounds in the unit observed, and what to divide by to render (ms → s: 1000). */
export interface HistogramScale {
  buckets: readonly number[];
  divisor: number;
}

/** Latencies observed in milliseconds, rendered in seconds. */
export const LATENCY_MS: HistogramScale = {
  buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000],
  divisor: 1000,
};

/** Observations in the unit of `scale` (latencies in ms by default). */
export class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  readonly name: string;
  readonly help: string;
  private readonly scale: HistogramScale;
  constructor(name: string, help: string, scale: HistogramScale = LATENCY_MS) {
    this.name = name;
    this.help = help;
    this.scale = scale;
  }
  observe(value: number, labels?: Labels): void {
    const { buckets } = this.scale;
    const k = seriesKey(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { counts: new Array(buckets.length).fill(0), sum: 0, count: 0 }));
    for (let i = 0; i < buckets.length; i++) if (value <= buckets[i]) s.counts[i]++;
    s.sum += value;
    s.count++;
  }
  render(): string {
    const lines = familyHeader(this.name, this.help, "histogram");
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : "";
      const { buckets, divisor } = this.scale;
      buckets.forEach((b, i) => lines.push(`${this.name}_bucket{${sep}le="${b / divisor}"} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
      lines.push(sampleLine(`${this.name}_sum`, k, s.sum / divisor));
      lines.push(sampleLine(`${this.name}_count`, k, s.count));
    }
    return lines.join("\n");
  }
}
