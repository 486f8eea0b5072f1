import { messageStreamName } from '../../domain/message/message';
import { messageAggregate } from '../command/aggregates';
import { handleCommand } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import type { Logger } from '../logger';
import type { Clock } from '../clock';
import { Wakeup } from '../wakeup';

/** What the scheduler reads of the scheduled messages (implemented by the notifications projection). */
export interface ScheduledMessages {
  /** Scheduled messages whose release time has come, earliest first. */
  due(now: Date, limit: number): Promise<Array<{ messageId: string; appId: string }>>;
  /** When the next scheduled message is due, if any. */
  nextReleaseAt(): Promise<Date | undefined>;
}

const MAX_WAIT_MS = 250;
const MAX_IDLE_WAIT_MS = 5000;
const MAX_MESSAGE_BACKOFF_MS = 5 * 60_000;
const MAX_TRACKED_FAILURES = 10_000;
const BATCH = 100;

/**
 * Releases scheduled messages (Koala `execute`) when they are due. Durable: what is scheduled lives in
 * the notifications read model, built from MessageScheduled events, so a restart loses nothing and
 * releases whatever fell due while herald was down. Releasing is idempotent (the decider ignores a
 * release of a message no longer scheduled), so several nodes may run schedulers side by side.
 */
export class MessageScheduler {
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly wakeup = new Wakeup();
  /** Messages whose release failed: each waits out its own back-off, so it holds up no other. */
  private readonly failing = new Map<string, { failures: number; retryAt: number }>();

  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly scheduled: ScheduledMessages;
      readonly clock: Clock;
      readonly log: Logger;
      /** Resolves once the read model shows a release at this position (so it is no longer "due"). */
      readonly readYourWrites?: (position: bigint | undefined) => Promise<void>;
    },
  ) {}

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

  /**
   * Releases what is due now, each message on its own: one that fails is logged and retried after a
   * back-off of its own (1 s doubling to 5 min) while the others go on. Waits until the read model shows
   * the releases, so the next look does not find them due again. Returns how many were released or expired.
   */
  async releaseDue(): Promise<number> {
    const now = this.now();
    const due = await this.deps.scheduled.due(now, BATCH + this.failing.size);
    let changed = 0;
    let newest: bigint | undefined;
    for (const { messageId, appId } of due) {
      const failing = this.failing.get(messageId);
      if (failing && failing.retryAt > now.getTime()) continue;
      try {
        const result = await handleCommand(
          this.deps.store,
          messageAggregate,
          messageStreamName(messageId),
          { type: 'ReleaseMessage', now: now.toISOString() },
          { appId, actor: 'herald:scheduler', commandId: `release:${messageId}` },
        );
        this.failing.delete(messageId);
        changed += result.events.length;
        if (result.position !== undefined && (newest === undefined || result.position > newest)) newest = result.position;
      } catch (error) {
        const failures = (failing?.failures ?? 0) + 1;
        const backoffMs = Math.min(MAX_MESSAGE_BACKOFF_MS, 1000 * 2 ** (failures - 1));
        if (this.failing.size < MAX_TRACKED_FAILURES) this.failing.set(messageId, { failures, retryAt: now.getTime() + backoffMs });
        this.deps.log.error({ err: error, messageId, failures, retryInMs: backoffMs }, 'releasing a scheduled message failed; the others go on');
      }
    }
    await this.deps.readYourWrites?.(newest);
    return changed;
  }

  private async run(): Promise<void> {
    let idleLooks = 0;
    while (this.running) {
      let waitMs = MAX_WAIT_MS;
      try {
        const changed = await this.releaseDue();
        const next = await this.deps.scheduled.nextReleaseAt();
        if (next) waitMs = Math.max(0, Math.min(MAX_WAIT_MS, next.getTime() - this.now().getTime()));
        // Still due but nothing released (failing ones backing off, or a read model that lags): look
        // again less and less often rather than re-reading their streams in a tight loop.
        idleLooks = changed === 0 && next !== undefined && waitMs === 0 ? idleLooks + 1 : 0;
        if (idleLooks > 0) waitMs = Math.min(MAX_IDLE_WAIT_MS, 50 * 2 ** Math.min(idleLooks, 10));
      } catch (error) {
        this.deps.log.error({ err: error }, 'looking for due scheduled messages failed; retrying');
        waitMs = 1000;
      }
      await this.wakeup.wait(waitMs);
    }
  }

  private now(): Date {
    return this.deps.clock();
  }
}
