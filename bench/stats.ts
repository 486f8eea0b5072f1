/** Figures of the benchmarks' result documents: rounding, percentiles, rates, medians, tallies and plateaus. */

export interface LatencyStats {
  readonly count: number;
  readonly meanMs: number | null;
  readonly p50Ms: number | null;
  readonly p90Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
}

export const round = (value: number, digits = 2) => Number(value.toFixed(digits));

/** Nearest-rank percentiles of `samples` (milliseconds). Empty → nulls. */
export function latencyStats(samples: readonly number[]): LatencyStats {
  if (samples.length === 0) return { count: 0, meanMs: null, p50Ms: null, p90Ms: null, p99Ms: null, maxMs: null };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!);
  let sum = 0;
  for (const s of sorted) sum += s;
  return {
    count: sorted.length,
    meanMs: round(sum / sorted.length),
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    maxMs: round(sorted[sorted.length - 1]!),
  };
}

export const perSecond = (count: number, seconds: number) => (seconds > 0 ? Math.round(count / seconds) : 0);

/** The median of the known values, rounded to 2 digits; null when none is known. */
export function median(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  if (known.length === 0) return null;
  const mid = Math.floor(known.length / 2);
  return round(known.length % 2 === 1 ? known[mid]! : (known[mid - 1]! + known[mid]!) / 2);
}

/** Counts one more `key` in `record` (failures by cause, say). */
export const count = (record: Record<string, number>, key: string) => (record[key] = (record[key] ?? 0) + 1);

/** An error's message for a result document, whatever was thrown (never throws itself). */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

export interface Plateau {
  /** Null when a third of the run has no sample. */
  readonly reached: boolean | null;
  readonly middleThirdMax: number;
  readonly lastThirdMax: number;
  readonly why?: string;
}

/**
 * Whether a series sampled over a run of `runSeconds` levelled off (bench/soak.ts): the largest value of
 * its last third is at most (1 + `tolerance`) × the largest of its middle third, + `slack` (small series
 * move by a few). The largest, not the mean: a sawtooth (pruned in passes) is level when its peaks are.
 */
export function plateau(
  points: ReadonlyArray<{ readonly t: number; readonly v: number }>,
  runSeconds: number,
  tolerance: number,
  slack: number,
): Plateau {
  const max = (from: number, to: number) =>
    Math.max(-Infinity, ...points.filter((p) => p.t >= from && p.t <= to).map((p) => p.v));
  const middleThirdMax = max(runSeconds / 3, (2 * runSeconds) / 3);
  const lastThirdMax = max((2 * runSeconds) / 3, runSeconds);
  if (!Number.isFinite(middleThirdMax) || !Number.isFinite(lastThirdMax))
    return { reached: null, middleThirdMax: 0, lastThirdMax: 0, why: 'no sample in a third' };
  return { reached: lastThirdMax <= middleThirdMax * (1 + tolerance) + slack, middleThirdMax, lastThirdMax };
}
