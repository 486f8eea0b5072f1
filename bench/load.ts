/** Load shapes: closed loop (the next request when the last answered) and open loop (a fixed rate). */
import { CpuSampler, type CpuUse } from './cpu';
import { sleep } from './run';
import { latencyStats, type LatencyStats, perSecond, round } from './stats';

// --- closed-loop load -----------------------------------------------------------------------------

export interface ClosedLoopResult {
  readonly requests: number;
  readonly ok: number;
  readonly seconds: number;
  readonly okPerSecond: number;
  readonly latency: LatencyStats;
  readonly errors: Record<string, number>;
  readonly cpu: CpuUse;
}

/**
 * `concurrency` workers, each issuing its next request when the previous one answered, until `seconds`
 * pass or `maxRequests` were issued. `call` resolves with an error class ("ok" for success); a rejection
 * counts as "network". Latency covers every answered request.
 */
export async function closedLoop(
  options: { concurrency: number; seconds: number; maxRequests: number; cpu: CpuSampler },
  call: (worker: number, i: number) => Promise<string>,
): Promise<ClosedLoopResult> {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let issued = 0;
  let ok = 0;
  const before = options.cpu.snapshot();
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  await Promise.all(
    Array.from({ length: options.concurrency }, async (_, worker) => {
      for (let i = 0; performance.now() < deadline && issued < options.maxRequests; i++) {
        issued++;
        const t0 = performance.now();
        let outcome: string;
        try {
          outcome = await call(worker, i);
          latencies.push(performance.now() - t0);
        } catch {
          outcome = 'network';
        }
        if (outcome === 'ok') ok++;
        else errors[outcome] = (errors[outcome] ?? 0) + 1;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = CpuSampler.between(before, options.cpu.snapshot(), ok);
  return {
    requests: issued,
    ok,
    seconds: round(seconds),
    okPerSecond: perSecond(ok, seconds),
    latency: latencyStats(latencies),
    errors,
    cpu,
  };
}

// --- open-loop load -------------------------------------------------------------------------------

export interface OpenLoopResult {
  /** Calls the schedule asked for: rate × seconds. */
  readonly planned: number;
  readonly fired: number;
  /** Not fired because `maxInFlight` calls were still unanswered when they were due (counted, not hidden). */
  readonly skipped: number;
  /** Fired more than `lateMs` after their due time (the load generator could not keep up). */
  readonly late: number;
  readonly lateness: LatencyStats;
  readonly seconds: number;
  readonly firedPerSecond: number;
  /** The most calls unanswered at once. */
  readonly maxInFlightSeen: number;
}

/**
 * Fires `fire(i)` at a fixed rate for `seconds` whatever the answers (open loop): call i is due at
 * start + i/rate. At most `maxInFlight` calls are unanswered at a time; a call due while the bound is hit
 * is skipped and counted. Resolves when the schedule is over; `settled()` then waits for the calls still
 * in flight (each bounded by its own timeout).
 */
export async function openLoop(
  options: { rate: number; seconds: number; maxInFlight: number; lateMs: number },
  fire: (i: number, due: number) => Promise<void>,
): Promise<OpenLoopResult & { settled(): Promise<void> }> {
  const planned = Math.round(options.rate * options.seconds);
  const interval = 1000 / options.rate;
  const lateness: number[] = [];
  const inFlight = new Set<Promise<void>>();
  let fired = 0;
  let skipped = 0;
  let late = 0;
  let maxInFlightSeen = 0;
  const started = performance.now();
  let next = 0;
  while (next < planned) {
    const now = performance.now();
    for (; next < planned && started + next * interval <= now; next++) {
      const due = started + next * interval;
      if (inFlight.size >= options.maxInFlight) {
        skipped++;
        continue;
      }
      const behind = now - due;
      lateness.push(behind);
      if (behind > options.lateMs) late++;
      fired++;
      const call: Promise<void> = fire(next, due)
        .catch(() => undefined)
        .finally(() => inFlight.delete(call));
      inFlight.add(call);
      maxInFlightSeen = Math.max(maxInFlightSeen, inFlight.size);
    }
    if (next < planned) await sleep(Math.max(0, started + next * interval - performance.now()));
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    planned,
    fired,
    skipped,
    late,
    lateness: latencyStats(lateness),
    seconds: round(seconds),
    firedPerSecond: perSecond(fired, seconds),
    maxInFlightSeen,
    settled: async () => {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}
