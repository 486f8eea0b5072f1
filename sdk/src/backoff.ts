/** How long the client waits before connecting again: doubling from `initialMs` up to `maxMs`. */
export interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 1000, maxMs: 30_000 };

/**
 * The wait after `failures` failed attempts in a row (0: the first reconnect). Half of it is fixed and
 * half random ("equal jitter"): when herald restarts, every open page reconnects at about the same time;
 * the random half spreads them out, the fixed half keeps a floor so a page never spins.
 */
export function backoffDelay(failures: number, backoff: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(Math.max(failures, 0), 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
