// Latency/throughput summaries for the benchmarks.
export interface Summary {
  ops: number;
  /** Operations that failed (counted, not timed). */
  errors: number;
  seconds: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
}

export function summarize(latenciesMs: number[], seconds: number, errors = 0): Summary {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { ops: sorted.length, errors, seconds, perSecond: sorted.length / seconds, p50ms: at(0.5), p99ms: at(0.99) };
}

/** Runs `op` for `count` operations at `concurrency`, recording each latency. */
export async function drive(count: number, concurrency: number, op: (i: number) => Promise<void>): Promise<Summary> {
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const s = performance.now();
        try {
          await op(i);
          latencies.push(performance.now() - s);
        } catch {
          errors++;
        }
      }
    }),
  );
  return summarize(latencies, (performance.now() - t0) / 1000, errors);
}

export const fmt = (s: Summary) =>
  `${s.perSecond.toFixed(0).padStart(6)} RPC/s   p50 ${s.p50ms.toFixed(2).padStart(7)} ms   p99 ${s.p99ms.toFixed(2).padStart(7)} ms   (${s.ops} RPCs${s.errors ? `, ${s.errors} failed` : ""})`;
