import { Wakeup } from './wakeup';

/**
 * A loop that runs in the background from `start()` until `stop()`: the start/stop pattern every
 * worker of herald shares (the due-work runner, the leadership, the projection runners), once. The body
 * runs while `running` and waits with `wait(ms)`; `wake()` ends a wait early, `stop()` ends it and
 * resolves once the body has returned.
 */
export class BackgroundLoop {
  private active = false;
  private done: Promise<void> | undefined;
  private readonly wakeup = new Wakeup();

  constructor(private readonly body: () => Promise<void>) {}

  get running(): boolean {
    return this.active;
  }

  /** Starts the body unless it runs already; answers whether it started it. */
  start(): boolean {
    if (this.active) return false;
    this.active = true;
    this.done = this.body();
    return true;
  }

  async stop(): Promise<void> {
    this.active = false;
    this.wakeup.signal();
    await this.done;
  }

  wake(): void {
    this.wakeup.signal();
  }

  /** Resolves after `ms`, or sooner when woken or stopped (a wake before the wait is not lost). */
  wait(ms: number): Promise<void> {
    return this.wakeup.wait(ms);
  }
}
