import type { Pool } from 'pg';
import { messageStreamName } from '../domain/message/message';
import { dueScheduledMessages, nextReleaseAt } from '../projections/notifications';
import { messageAggregate } from './aggregates';
import { handleCommand } from './commandHandler';
import type { EventStore } from './eventStore/eventStore';
import type { Logger } from './logger';
import { Wakeup } from './wakeup';

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

  constructor(private readonly deps: { readonly store: EventStore; readonly pool: Pool; readonly log: Logger }) {}

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
    const due = await dueScheduledMessages(this.deps.pool, now, BATCH);
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
        const next = await nextReleaseAt(this.deps.pool);
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
    return new Date();
  }
}
