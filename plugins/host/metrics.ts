// Per-plugin Prometheus counters, kept by the host in the front's process (they survive child
// restarts). Rendered in text format 0.0.4, without a trailing newline.
import type { HookName } from "../api/index.ts";
import type { PluginOutcome } from "./policy.ts";
import { familyHeader, formatLabels, sampleLine } from "../../proto/util/prometheus.ts";

interface Series {
  calls: number;
  rejects: number;
  errors: number;
  timeouts: number;
  seconds: number;
  cpuSeconds: number;
}

export class PluginMetrics {
  private readonly series = new Map<string, Series & { plugin: string; hook: HookName }>();
  private readonly unavailable = new Map<HookName, number>();
  restarts = 0;
  loadErrors = 0;
  loaded = 0;

  record(hook: HookName, o: PluginOutcome): void {
    const key = `${o.plugin}\u0000${hook}`;
    let s = this.series.get(key);
    if (!s)
      this.series.set(
        key,
        (s = { plugin: o.plugin, hook, calls: 0, rejects: 0, errors: 0, timeouts: 0, seconds: 0, cpuSeconds: 0 }),
      );
    s.calls++;
    if (o.outcome === "reject") s.rejects++;
    else if (o.outcome === "error") s.errors++;
    else if (o.outcome === "timeout") s.timeouts++;
    s.seconds += o.ms / 1000;
    s.cpuSeconds += (o.cpuMs ?? 0) / 1000;
  }

  /** A call decided without the child process (it was down or did not answer in time). */
  hostUnavailable(hook: HookName): void {
    this.unavailable.set(hook, (this.unavailable.get(hook) ?? 0) + 1);
  }

  get(plugin: string, hook: HookName): Series {
    const s = this.series.get(`${plugin}\u0000${hook}`);
    return s
      ? {
          calls: s.calls,
          rejects: s.rejects,
          errors: s.errors,
          timeouts: s.timeouts,
          seconds: s.seconds,
          cpuSeconds: s.cpuSeconds,
        }
      : { calls: 0, rejects: 0, errors: 0, timeouts: 0, seconds: 0, cpuSeconds: 0 };
  }

  render(): string {
    const out: string[] = [];
    const family = (name: string, help: string, type: "counter" | "gauge", pick: (s: Series) => number) => {
      out.push(...familyHeader(name, help, type));
      for (const s of this.series.values())
        out.push(sampleLine(name, formatLabels({ plugin: s.plugin, hook: s.hook }), pick(s)));
    };
    family("plugin_calls_total", "Plugin hook invocations, by plugin and hook.", "counter", (s) => s.calls);
    family("plugin_rejects_total", "Calls a plugin rejected.", "counter", (s) => s.rejects);
    family(
      "plugin_errors_total",
      "Plugin calls that threw, returned an invalid result, ran out of memory or were skipped while the plugin was suspended.",
      "counter",
      (s) => s.errors,
    );
    family(
      "plugin_timeouts_total",
      "Plugin calls that exceeded their CPU time budget or its wall-clock backstop.",
      "counter",
      (s) => s.timeouts,
    );
    family("plugin_seconds_total", "Wall time spent in plugin calls.", "counter", (s) => s.seconds);
    family(
      "plugin_cpu_seconds_total",
      "CPU time spent in plugin calls (what the time budget limits).",
      "counter",
      (s) => s.cpuSeconds,
    );
    out.push(
      ...familyHeader(
        "plugin_host_unavailable_total",
        "Hook calls decided by fail policy because the plugin host process was down or did not answer.",
        "counter",
      ),
    );
    for (const [hook, n] of this.unavailable)
      out.push(sampleLine("plugin_host_unavailable_total", formatLabels({ hook }), n));
    out.push(
      ...familyHeader("plugin_host_restarts_total", "Restarts of the plugin host process.", "counter"),
      sampleLine("plugin_host_restarts_total", "", this.restarts),
    );
    out.push(
      ...familyHeader("plugin_load_errors_total", "Plugin files that failed to load.", "counter"),
      sampleLine("plugin_load_errors_total", "", this.loadErrors),
    );
    out.push(
      ...familyHeader("plugins_loaded", "Plugins currently loaded.", "gauge"),
      sampleLine("plugins_loaded", "", this.loaded),
    );
    return out.join("\n");
  }
}
