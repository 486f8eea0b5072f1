import { BackgroundLoop } from './backgroundLoop';
import type { Clock } from './clock';
import type { Logger } from './logger';
import type { Service } from './services';

/**
 * A background worker that does what a read model says is due (releasing scheduled messages, sending
 * emails, forwarding reports, posting callbacks, retrying deliveries). Durable because what is due lives
 * in the read model: a restart loses nothing.
 *
 * Each item is attempted on its own, several at once: up to MAX_IN_FLIGHT attempts run side by side, at
 * most half of them (or `maxInFlightPerKey`) for one key (an app, a device, an app's callback URL), and each attempt gets an AbortSignal
 * that fires after `attemptTimeoutMs`. So a peer that never answers costs its own items one timeout per
 * attempt and delays no other item beyond its schedule (issue 21, item 9). An attempt that throws is
 * logged and retried after a back-off of its own (1 s doubling to 5 min) while the others go on. An
 * attempt's outcome is awaited in the read model before the item can be looked at again, so it is not
 * found due twice. Not so an item held back by its key's share and begun when a slot frees: it is what a
 * look read, possibly seconds before, perhaps before another attempt's outcome showed or before this node
 * lost leadership. Held items rely on every perform re-deciding from its stream or decider (the outbox,
 * scheduler, app callbacks and device retries all do), so a stale one records and sends nothing twice.
 *
 * The worker does not trust `perform` to heed its signal (a store that hangs, a lock held): an attempt
 * still running RECORDING_GRACE_MS after its signal fired is abandoned, its slot freed, and counted as a
 * failure; `stop()` abandons every attempt at once. An abandoned attempt may still write later: each
 * perform records through a decider that takes one outcome per attempt (or a release, a close, once), so
 * a late write records nothing twice.
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
  /** Whose share of the attempts in flight the item takes (an app, a device); one key for all when absent. */
  readonly keyOf?: (item: Item) => string;
  /** Attempts in flight at once (default MAX_IN_FLIGHT). */
  readonly maxInFlight?: number;
  /** Attempts one key may have in flight (default half of maxInFlight). */
  readonly maxInFlightPerKey?: number;
  /**
   * Does one item; answers what it recorded (events, position), or undefined when it was not due after
   * all. `signal` aborts when the attempt has taken `attemptTimeoutMs` (then record the failure: the
   * worker waits RECORDING_GRACE_MS more for it), or when the worker stops (`isStopping(signal)`: then
   * record nothing, the item stays due for whoever runs next; the worker does not wait).
   */
  perform(item: Item, now: Date, signal: AbortSignal): Promise<Recorded | undefined>;
  /** The longest one attempt may take before its signal aborts it. */
  readonly attemptTimeoutMs: number;
  /** Resolves once the read model shows a change at this position. */
  readonly readYourWrites?: ((position: bigint | undefined) => Promise<void>) | undefined;
  /**
   * The longest wait between two looks, unless woken (how late an item may be done when nothing wakes
   * the worker, or while every item due is already being attempted).
   */
  readonly maxWaitMs: number;
  /** An error as text fit for a log line (default: the error itself, logged as `err`). */
  readonly describe?: (error: unknown) => string;
}

export interface Recorded {
  readonly events: readonly unknown[];
  readonly position?: bigint | undefined;
}

/** Attempts in flight at once, per worker; one key may take half of them. */
export const MAX_IN_FLIGHT = 64;
export const MAX_IN_FLIGHT_PER_KEY = MAX_IN_FLIGHT / 2;
const MAX_ITEM_BACKOFF_MS = 5 * 60_000;
const MAX_IDLE_REST_MS = 5000;
const MAX_TRACKED_FAILURES = 10_000;
/** Items held back by their key's share, waiting for its attempts to end (beyond it: found by a later look). */
const MAX_HELD = 10_000;
const BATCH = 100;
/**
 * How long an attempt whose signal fired for the timeout keeps its slot: time to record "no answer" and
 * see it in the read model, ample for a store that answers; past it the attempt is abandoned.
 */
export const RECORDING_GRACE_MS = 2000;

/** The reason a worker's attempts are aborted with when it stops. */
class Stopping extends Error {
  constructor() {
    super('the worker is stopping');
  }
}

/** The reason an attempt is aborted with when it takes too long. */
class TimedOut extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

/** Whether `signal` was aborted because the worker stops (not because the attempt took too long). */
export const isStopping = (signal: AbortSignal): boolean => signal.aborted && signal.reason instanceof Stopping;

/** `promise`, or its rejection with the signal's reason once `signal` aborts (for work that takes no signal). */
export function untilAborted<T>(signal: AbortSignal, promise: Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

interface InFlight {
  /** Whose share of the attempts in flight it takes. */
  readonly key: string;
  /** Settles when the attempt has ended or been abandoned. */
  readonly done: Promise<number>;
  /** Aborts the attempt and abandons it at once. */
  readonly abort: (reason: Error) => void;
}

/**
 * A worker is a service (started and stopped with the others; on the node that leads, by the leadership). A
 * worker with a name of its own (MessageScheduler, Mailer, …) extends it and adds only what is its own (its
 * items' source and attempt); `wake` and the rest of the runner are every worker's.
 */
export class DueWork<Item> implements Service {
  /** For the service list's log lines; a subclass names itself. */
  readonly name: string;
  private readonly loop = new BackgroundLoop(() => this.run());
  private readonly failing = new Map<string, { failures: number; retryAt: number }>();
  /**
   * Items the read model keeps showing due whose attempts record nothing (it lags, or a projection is
   * parked): each is looked at less and less often (50 ms doubling to 5 s) instead of re-reading its
   * stream at every look, until a look no longer finds it due.
   */
  private readonly idle = new Map<string, { looks: number; restsUntil: number }>();
  /**
   * Attempts in flight, each with its own controllers and timer: nothing of an attempt outlives it. (One
   * signal shared by all attempts, combined with AbortSignal.any, would keep a reference to each attempt's
   * signal for as long as the worker lives: nodejs/node#55351.)
   */
  private readonly inFlight = new Map<string, InFlight>();
  /** Attempts in flight per key (counted, not found by walking `inFlight`: it holds up to maxInFlight). */
  private readonly inFlightPerKey = new Map<string, number>();
  /**
   * Items found due (by a look, or offered) while their key had its share in flight, by key, earliest
   * first: one begins as each of the key's attempts ends, without another look. A flood of one key (a send
   * to ALL through one APNs connection) would otherwise have each ending attempt look again, reading back
   * the hundreds of items in flight to find the few it may begin.
   */
  private readonly held = new Map<string, Map<string, Item>>();
  private heldCount = 0;
  /** The look under way (a controller per look, for the same reason). */
  private look: AbortController | undefined;

  constructor(private readonly deps: DueWorkDeps<Item>) {
    this.name = deps.doing;
  }

  start(): void {
    this.clearHeld();
    this.loop.start();
  }

  /** Stops looking and abandons the attempts in flight (told to record nothing); waits for none of them. */
  async stop(): Promise<void> {
    const looking = this.loop.stop();
    // A look stuck on a hung store is not waited for either.
    this.look?.abort(new Stopping());
    await looking;
    for (const attempt of this.inFlight.values()) attempt.abort(new Stopping());
    await Promise.all([...this.inFlight.values()].map((a) => a.done));
    this.clearHeld();
  }

  /** Attempts in flight (for tests: none once they have ended). */
  get attemptsInFlight(): number {
    return this.inFlight.size;
  }

  /** Look for due items now (one was just added, or a test moved the clock). */
  wake(): void {
    this.loop.wake();
  }

  /**
   * Attempts `item` now, outside the worker's looks (it arrived live), unless it is being attempted,
   * backing off, or the limits are reached (then a look finds it due later).
   */
  offer(item: Item): void {
    this.begin(item, this.deps.clock());
  }

  /** Attempts every item due now and waits for them all. Returns how many events were recorded. */
  async doDue(): Promise<number> {
    const started = await this.beginDue(this.deps.clock());
    const recorded = await Promise.all(started);
    return recorded.reduce((sum, n) => sum + n, 0);
  }

  /** Begins the attempts of the items due at `now` that may begin; answers them. */
  private async beginDue(now: Date, look?: AbortSignal): Promise<Array<Promise<number>>> {
    const asking = this.deps.due(now, BATCH + this.failing.size + this.inFlight.size + this.idle.size);
    const due = await (look ? untilAborted(look, asking) : asking);
    const dueIds = new Set(due.map(this.deps.idOf));
    for (const id of this.idle.keys()) if (!dueIds.has(id)) this.idle.delete(id);
    const started: Array<Promise<number>> = [];
    for (const item of due) {
      const attempt = this.begin(item, now);
      if (attempt) started.push(attempt);
    }
    return started;
  }

  private begin(item: Item, now: Date): Promise<number> | undefined {
    const id = this.deps.idOf(item);
    const key = this.deps.keyOf?.(item) ?? '';
    const maxInFlight = this.deps.maxInFlight ?? MAX_IN_FLIGHT;
    if (this.inFlight.has(id) || this.inFlight.size >= maxInFlight) return undefined;
    const failing = this.failing.get(id);
    if (failing && failing.retryAt > now.getTime()) return undefined;
    // In real time, not herald's clock: a rest only keeps a look from re-reading the same stream in a
    // tight loop, and the item may be due again at once in herald's time (a device's next retry recorded
    // while its last one was still queued). Herald's clock stands still in tests; a rest on it never ended.
    const idle = this.idle.get(id);
    if (idle && idle.restsUntil > performance.now()) return undefined;
    const sameKey = this.inFlightPerKey.get(key) ?? 0;
    if (sameKey >= (this.deps.maxInFlightPerKey ?? maxInFlight / 2)) {
      this.hold(key, id, item);
      return undefined;
    }
    this.unhold(key, id);
    // `signal` is the attempt's (handed to perform); `abandon` frees the slot whether or not perform heeds it.
    const signal = new AbortController();
    const abandon = new AbortController();
    let timer = setTimeout(() => {
      signal.abort(new TimedOut(this.deps.attemptTimeoutMs));
      timer = setTimeout(() => abandon.abort(signal.signal.reason), RECORDING_GRACE_MS);
    }, this.deps.attemptTimeoutMs);
    const done = this.attempt(item, id, key, now, signal.signal, abandon.signal).finally(() => {
      clearTimeout(timer);
      this.inFlight.delete(id);
      const left = (this.inFlightPerKey.get(key) ?? 1) - 1;
      if (left > 0) this.inFlightPerKey.set(key, left);
      else this.inFlightPerKey.delete(key);
      if (this.loop.running) this.beginHeld(key);
    });
    this.inFlightPerKey.set(key, sameKey + 1);
    this.inFlight.set(id, {
      key,
      done,
      abort: (reason) => {
        signal.abort(reason);
        abandon.abort(reason);
      },
    });
    return done;
  }

  private hold(key: string, id: string, item: Item): void {
    let queue = this.held.get(key);
    if (queue?.has(id) || this.heldCount >= MAX_HELD) return;
    if (!queue) this.held.set(key, (queue = new Map()));
    queue.set(id, item);
    this.heldCount += 1;
  }

  private unhold(key: string, id: string): void {
    const queue = this.held.get(key);
    if (!queue?.delete(id)) return;
    this.heldCount -= 1;
    if (queue.size === 0) this.held.delete(key);
  }

  /** Begins the key's earliest held item that may begin (one whose attempt ended or backs off is dropped: a look finds it if due). */
  private beginHeld(key: string): void {
    const queue = this.held.get(key);
    if (!queue) return;
    const now = this.deps.clock();
    for (const [id, item] of queue) {
      if (this.inFlight.size >= (this.deps.maxInFlight ?? MAX_IN_FLIGHT)) return;
      this.unhold(key, id);
      if (this.begin(item, now)) return;
    }
  }

  private clearHeld(): void {
    this.held.clear();
    this.heldCount = 0;
  }

  /** One attempt; answers how many events it recorded, once the read model shows them. */
  private async attempt(
    item: Item,
    id: string,
    key: string,
    now: Date,
    signal: AbortSignal,
    abandon: AbortSignal,
  ): Promise<number> {
    try {
      const result = await untilAborted(abandon, this.performAndShow(item, now, signal));
      this.failing.delete(id);
      if (!result || result.events.length === 0) {
        const looks = (this.idle.get(id)?.looks ?? 0) + 1;
        if (this.idle.size < MAX_TRACKED_FAILURES)
          this.idle.set(id, { looks, restsUntil: performance.now() + Math.min(MAX_IDLE_REST_MS, 50 * 2 ** looks) });
        return 0;
      }
      this.idle.delete(id);
      // What is due has changed: look again for this attempt's free slot, unless a held item takes it.
      if (!this.held.has(key)) this.loop.wake();
      return result.events.length;
    } catch (error) {
      if (isStopping(signal)) return 0;
      const failures = (this.failing.get(id)?.failures ?? 0) + 1;
      const backoffMs = Math.min(MAX_ITEM_BACKOFF_MS, 1000 * 2 ** (failures - 1));
      if (this.failing.size < MAX_TRACKED_FAILURES)
        this.failing.set(id, { failures, retryAt: this.deps.clock().getTime() + backoffMs });
      this.deps.log.error(
        { ...this.errorField(error), id, failures, retryInMs: backoffMs },
        `${this.deps.doing} failed; the others go on`,
      );
      return 0;
    }
  }

  /** What perform recorded, once the read model shows it. */
  private async performAndShow(item: Item, now: Date, signal: AbortSignal): Promise<Recorded | undefined> {
    const result = await this.deps.perform(item, now, signal);
    if (result && result.events.length > 0) await this.deps.readYourWrites?.(result.position);
    return result;
  }

  private async run(): Promise<void> {
    while (this.loop.running) {
      let waitMs = this.deps.maxWaitMs;
      const look = (this.look = new AbortController());
      try {
        const now = this.deps.clock();
        await this.beginDue(now, look.signal);
        const next = await untilAborted(look.signal, this.deps.nextDueAt());
        // Due now (next ≤ now) means every item due is being attempted or backing off: an attempt that
        // records something wakes the worker, else it looks again after maxWaitMs.
        if (next && next.getTime() > now.getTime())
          waitMs = Math.min(this.deps.maxWaitMs, next.getTime() - now.getTime());
      } catch (error) {
        if (isStopping(look.signal)) return;
        this.deps.log.error(this.errorField(error), `looking for due work (${this.deps.doing}) failed; retrying`);
        waitMs = 1000;
      }
      await this.loop.wait(waitMs);
    }
  }

  private errorField(error: unknown): Record<string, unknown> {
    return this.deps.describe ? { error: this.deps.describe(error) } : { err: error };
  }
}
