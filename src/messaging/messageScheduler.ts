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

  constructor(private readonly deps: { readonly store: EventStore; readonly scheduled: ScheduledMessages; readonly clock: Clock; readonly log: Logger }) {}

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

  /** Releases what is due now; returns how many messages it released or expired. */
  async releaseDue(): Promise<number> {
    const now = this.now();
    const due = await this.deps.scheduled.due(now, BATCH);
    let changed = 0;
    for (const { messageId, appId } of due) {
      const result = await handleCommand(
        this.deps.store,
        messageAggregate,
        messageStreamName(messageId),
        { type: 'ReleaseMessage', now: now.toISOString() },
        { appId, actor: 'herald:scheduler', commandId: `release:${messageId}` },
      );
      changed += result.events.length;
    }
    return changed;
  }

  private async run(): Promise<void> {
    while (this.running) {
      let waitMs = MAX_WAIT_MS;
      try {
        await this.releaseDue();
        const next = await this.deps.scheduled.nextReleaseAt();
        if (next) waitMs = Math.max(0, Math.min(MAX_WAIT_MS, next.getTime() - this.now().getTime()));
      } catch (error) {
        this.deps.log.error({ err: error }, 'releasing scheduled messages failed; retrying');
        waitMs = 1000;
      }
      // A message still due (the projection has not seen its release yet) must not spin the loop.
      await this.wakeup.wait(Math.max(waitMs, 20));
    }
  }

  private now(): Date {
    return this.deps.clock();
  }
}
