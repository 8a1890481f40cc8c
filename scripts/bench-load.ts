/**
 * The bench's load generator and the statistics its figures use: closed-loop clients sending
 * requests back to back, and the median and interquartile range of paired rounds' ratios.
 */

/** One measured phase of load. */
export interface Phase {
  requests: number;
  seconds: number;
  latencies: number[];
  errors: number;
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The interquartile range of a set of ratios, as `[q1, q3]`. */
export function quartiles(xs: number[]): [number, number] {
  const sorted = [...xs].sort((x, y) => x - y);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.round(p * (sorted.length - 1)))]!;
  return [q(0.25), q(0.75)];
}

/** How sure a paired figure is: the interquartile range of its rounds' (or pairs') ratios, and their count. */
export function spreadOf(ratios: number[], unit = "paired rounds"): string {
  const [q1, q3] = quartiles(ratios);
  return `IQR ${q1.toFixed(3)}-${q3.toFixed(3)} over ${ratios.length} ${unit}`;
}

/** The `i`-th pair's order: `a` first on even pairs, `b` first on odd ones, so a drift lands on neither side. */
export function alternating<T>(i: number, a: T, b: T): [T, T] {
  return i % 2 ? [b, a] : [a, b];
}

/** `concurrency` loops sending `send()` back to back for `seconds`. */
export async function load(send: () => Promise<Response>, seconds: number, concurrency: number): Promise<Phase> {
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const res = await send();
        await res.arrayBuffer();
        latencies.push(performance.now() - t0);
        if (res.status !== 200) errors++;
      }
    }),
  );
  return { requests: latencies.length, seconds: (performance.now() - started) / 1000, latencies, errors };
}
