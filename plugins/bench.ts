// Cost of one hook call through the plugin host: IPC round trip to the child plus the isolate
// calls. `node plugins/bench.ts [calls]` prints a JSON line per scenario; `benchHookCalls` is
// exported for `npm run bench`.
import { fileURLToPath } from "node:url";
import type { HookName } from "./api/index.ts";
import { PluginHost } from "./host/index.ts";
import { silentLogger } from "../proto/util/log.ts";
import { sampleEvent } from "./host/sample-events.ts";

const example = (f: string) => fileURLToPath(new URL(`./examples/${f}`, import.meta.url));
export const EXAMPLE_FILES = [
  "address-filter.js",
  "max-payload-size.js",
  "sender-rate-limit.js",
  "membership-audit.js",
].map(example);

export interface HookBenchResult {
  scenario: string;
  hook: HookName;
  plugins: number;
  /** Sequential: one call at a time, mean latency (µs). */
  sequentialUs: number;
  p50Us: number;
  p99Us: number;
  /** 64 calls in flight: wall time per call (µs). */
  pipelinedUs: number;
  /** CPU time of the front's process per call, pipelined (µs). */
  frontCpuUs: number;
  /** Mean time inside each plugin's isolate per call, as the child measured it (µs). */
  isolateUs: Record<string, number>;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

export async function benchHookCalls(calls = 20_000): Promise<HookBenchResult[]> {
  const results: HookBenchResult[] = [];
  const scenarios: { scenario: string; files: string[] }[] = [
    { scenario: "no plugins", files: [] },
    { scenario: "four examples", files: EXAMPLE_FILES },
  ];
  for (const { scenario, files } of scenarios) {
    const host = await PluginHost.start({ files, logger: silentLogger });
    try {
      const hook: HookName = "on_message_send";
      // Distinct senders so the rate limiter allows every call (the common case).
      const events = Array.from({ length: 1024 }, (_, i) =>
        sampleEvent(hook, { senderIdentity: i.toString(16).padStart(64, "0") }),
      );
      const once = (i: number) =>
        host.has(hook) ? host.call(hook, events[i & 1023]) : Promise.resolve({ allow: true as const });
      for (let i = 0; i < 2000; i++) await once(i);
      const lat: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) {
        const s = performance.now();
        await once(i);
        lat.push(performance.now() - s);
      }
      const seq = ((performance.now() - t0) * 1000) / calls;
      lat.sort((a, b) => a - b);
      const cpu0 = process.cpuUsage();
      const t1 = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next < calls) await once(next++);
        }),
      );
      const wall = ((performance.now() - t1) * 1000) / calls;
      const cpu = process.cpuUsage(cpu0);
      const isolateUs: Record<string, number> = {};
      for (const p of host.plugins) {
        const st = host.stats(p.name, hook);
        if (st.calls > 0) isolateUs[p.name] = +((st.seconds * 1e6) / st.calls).toFixed(1);
      }
      results.push({
        scenario,
        hook,
        plugins: host.plugins.length,
        sequentialUs: +seq.toFixed(1),
        p50Us: +(pct(lat, 50) * 1000).toFixed(1),
        p99Us: +(pct(lat, 99) * 1000).toFixed(1),
        pipelinedUs: +wall.toFixed(1),
        frontCpuUs: +((cpu.user + cpu.system) / calls).toFixed(1),
        isolateUs,
      });
    } finally {
      await host.stop();
    }
  }
  return results;
}

if (import.meta.main) {
  for (const r of await benchHookCalls(Number(process.argv[2] ?? 20_000)))
    process.stdout.write(JSON.stringify(r) + "\n");
}
