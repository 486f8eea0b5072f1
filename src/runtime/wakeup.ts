/**
 * A level-triggered wake-up: `signal()` before `wait()` is not lost, so a waiter that checks for work,
 * finds none and then waits cannot miss a signal sent in between.
 */
export class Wakeup {
  private signalled = false;
  private waiter: (() => void) | undefined;

  signal(): void {
    this.signalled = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  /** Resolves on the next signal (or at once if one is pending), or after `timeoutMs`. */
  wait(timeoutMs: number): Promise<void> {
    if (this.signalled) {
      this.signalled = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve();
      }, timeoutMs);
      this.waiter = () => {
        clearTimeout(timer);
        this.signalled = false;
        resolve();
      };
    });
  }
}
