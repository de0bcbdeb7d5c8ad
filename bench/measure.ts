/** Measuring helpers: interleaved rounds, medians and latency percentiles. */

export interface Contender {
  name: string;
  /** Runs `ops` operations and resolves when they are done. */
  run(ops: number): Promise<void>;
}

export interface Measured {
  name: string;
  /** Median ops/s over the rounds. */
  opsPerSec: number;
  rounds: number[];
}

/**
 * Runs every contender for `rounds` rounds, interleaved (A B C, B C A, ...), each round sized
 * to take about `roundMs`; reports the median ops/s of each. Interleaving spreads machine
 * noise (GC, the other core's load) over all contenders instead of penalising one.
 */
export async function interleave(
  contenders: Contender[],
  options: { rounds: number; roundMs: number },
): Promise<Measured[]> {
  const sizes = new Map<string, number>();
  for (const c of contenders) {
    // Warm up (JIT) and calibrate the batch size to ~roundMs, growing from one op: a slow op
    // (100 awaited round trips) is not run a thousand times before the first reading.
    let ops = 1;
    for (;;) {
      const started = process.hrtime.bigint();
      await c.run(ops);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (ms >= options.roundMs / 4 || ops >= 50_000_000) {
        sizes.set(c.name, Math.max(1, Math.round((ops * options.roundMs) / Math.max(ms, 0.001))));
        break;
      }
      ops *= 4;
    }
  }
  const results = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let round = 0; round < options.rounds; round++) {
    const order = contenders.map((_, i) => contenders[(i + round) % contenders.length]);
    for (const c of order) {
      const ops = sizes.get(c.name) ?? 1000;
      const started = process.hrtime.bigint();
      await c.run(ops);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      results.get(c.name)?.push(ops / seconds);
    }
  }
  return contenders.map((c) => {
    const rounds = results.get(c.name) ?? [];
    return { name: c.name, opsPerSec: median(rounds), rounds };
  });
}

export function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs `total` operations through `concurrency` workers; resolves per-op latencies (µs). */
export async function concurrent(
  total: number,
  concurrency: number,
  op: (i: number) => Promise<unknown>,
  latencies?: number[],
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const started = process.hrtime.bigint();
      await op(i);
      latencies?.push(Number(process.hrtime.bigint() - started) / 1e3);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
}

export function formatOps(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)} k`;
  return value.toFixed(0);
}

export function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a';
}
