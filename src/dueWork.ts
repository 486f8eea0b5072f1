import type { Clock } from './clock';
import type { Logger } from './logger';
import { Wakeup } from './wakeup';

/**
 * A background worker that does what a read model says is due (releasing scheduled messages, sending
 * emails). Durable because what is due lives in the read model: a restart loses nothing. Each item is
 * done on its own: one whose step throws is logged and retried after a back-off of its own (1 s doubling
 * to 5 min) while the others go on. After a round it waits until the read model shows what it recorded,
 * so the next look does not find the same items due again.
 */
export interface DueWorkDeps<Item> {
  readonly clock: Clock;
  readonly log: Logger;
  /** What the worker does, for log lines ("releasing a scheduled message"). */
  readonly doing: string;
  /** Items due at `now`, earliest first, at most `limit`. */
  due(now: Date, limit: number): Promise<readonly Item[]>;
  /** When the next item falls due, if any. */
  nextDueAt(): Promise<Date | undefined>;
  readonly idOf: (item: Item) => string;
  /** Does one item; answers what it recorded (events, position), or undefined when it was not due after all. */
  perform(item: Item, now: Date): Promise<{ readonly events: readonly unknown[]; readonly position?: bigint | undefined } | undefined>;
  /** Resolves once the read model shows a change at this position. */
  readonly readYourWrites?: ((position: bigint | undefined) => Promise<void>) | undefined;
  /** The longest wait between two looks, unless woken (how late an item may be done when nothing wakes the worker). */
  readonly maxWaitMs: number;
  /** An error as text fit for a log line (default: the error itself, logged as `err`). */
  readonly describe?: (error: unknown) => string;
}

const MAX_IDLE_WAIT_MS = 5000;
const MAX_ITEM_BACKOFF_MS = 5 * 60_000;
const MAX_TRACKED_FAILURES = 10_000;
const BATCH = 100;

export class DueWork<Item> {
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly wakeup = new Wakeup();
  private readonly failing = new Map<string, { failures: number; retryAt: number }>();

  constructor(private readonly deps: DueWorkDeps<Item>) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wakeup.signal();
    await this.loop;
  }

  /** Look for due items now (one was just added, or a test moved the clock). */
  wake(): void {
    this.wakeup.signal();
  }

  /** Does every item due now, one after the other. Returns how many events were recorded. */
  async doDue(): Promise<number> {
    const now = this.deps.clock();
    const due = await this.deps.due(now, BATCH + this.failing.size);
    let recorded = 0;
    let newest: bigint | undefined;
    for (const item of due) {
      const id = this.deps.idOf(item);
      const failing = this.failing.get(id);
      if (failing && failing.retryAt > now.getTime()) continue;
      try {
        const result = await this.deps.perform(item, now);
        this.failing.delete(id);
        if (!result) continue;
        recorded += result.events.length;
        if (result.position !== undefined && (newest === undefined || result.position > newest)) newest = result.position;
      } catch (error) {
        const failures = (failing?.failures ?? 0) + 1;
        const backoffMs = Math.min(MAX_ITEM_BACKOFF_MS, 1000 * 2 ** (failures - 1));
        if (this.failing.size < MAX_TRACKED_FAILURES) this.failing.set(id, { failures, retryAt: now.getTime() + backoffMs });
        this.deps.log.error({ ...this.errorField(error), id, failures, retryInMs: backoffMs }, `${this.deps.doing} failed; the others go on`);
      }
    }
    await this.deps.readYourWrites?.(newest);
    return recorded;
  }

  private async run(): Promise<void> {
    let idleLooks = 0;
    while (this.running) {
      let waitMs = this.deps.maxWaitMs;
      try {
        const recorded = await this.doDue();
        const next = await this.deps.nextDueAt();
        if (next) waitMs = Math.max(0, Math.min(this.deps.maxWaitMs, next.getTime() - this.deps.clock().getTime()));
        // Still due but nothing recorded (failing ones backing off, or a read model that lags): look
        // again less and less often rather than re-reading their streams in a tight loop.
        idleLooks = recorded === 0 && next !== undefined && waitMs === 0 ? idleLooks + 1 : 0;
        if (idleLooks > 0) waitMs = Math.min(MAX_IDLE_WAIT_MS, 50 * 2 ** Math.min(idleLooks, 10));
      } catch (error) {
        this.deps.log.error(this.errorField(error), `looking for due work (${this.deps.doing}) failed; retrying`);
        waitMs = 1000;
      }
      await this.wakeup.wait(waitMs);
    }
  }

  private errorField(error: unknown): Record<string, unknown> {
    return this.deps.describe ? { error: this.deps.describe(error) } : { err: error };
  }
}
