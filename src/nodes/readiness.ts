/**
 * `/readyz` as a list of named checks (docs/operations.md, "Probes"): herald is ready when every check
 * is. A check answers why its part is not ready (`problem`), and what an operator may want to see
 * (`detail`, shown under the check's name). Adding a part — the bus of a multi-node deployment, say — is
 * one more entry in the list herald.ts builds.
 */
export interface ReadinessCheck {
  readonly name: string;
  run(): Promise<CheckOutcome>;
}

export interface CheckOutcome {
  /** Why this part is not ready, in a few words; absent when it is. */
  readonly problem?: string;
  readonly detail?: unknown;
}

export interface Readiness {
  readonly ready: boolean;
  /** Each check that is not ready, with its problem. */
  readonly notReady: Readonly<Record<string, string>>;
  /** Each check's detail, by name. */
  readonly checks: Readonly<Record<string, unknown>>;
}

/** A check that does not answer within this long is not ready: a load balancer's probe must not hang on a dead store. */
export const CHECK_TIMEOUT_MS = 2000;

/** Runs the checks at once; one that throws or does not answer in time is not ready, with why. */
export async function assessReadiness(
  checks: readonly ReadinessCheck[],
  timeoutMs = CHECK_TIMEOUT_MS,
): Promise<Readiness> {
  const outcomes = await Promise.all(
    checks.map(async (check) => {
      try {
        return await withTimeout(check.run(), timeoutMs, `no answer within ${timeoutMs / 1000} s`);
      } catch (error) {
        return { problem: ((error as Error).message ?? String(error)).slice(0, 300) };
      }
    }),
  );
  const notReady: Record<string, string> = {};
  const details: Record<string, unknown> = {};
  checks.forEach((check, i) => {
    const outcome = outcomes[i]!;
    if (outcome.problem !== undefined) notReady[check.name] = outcome.problem;
    if (outcome.detail !== undefined) details[check.name] = outcome.detail;
  });
  return { ready: Object.keys(notReady).length === 0, notReady, checks: details };
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
