/** Lets a test wait, with a deadline, for a condition on something that changes (frames arriving, a socket closing). */
export class Changes {
  private waiters: Array<() => void> = [];

  /** Something changed: every waiter looks at its condition again. */
  notify(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Resolves once `condition` holds, looking again at each change; fails with `describe()` after the deadline. */
  async until(condition: () => boolean, describe: () => string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(describe());
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
