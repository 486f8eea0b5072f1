import { messageStreamName } from '../../domain/message/message';
import { messageAggregate } from '../command/aggregates';
import { handleCommand } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import type { Clock } from '../runtime/clock';
import { DueWork } from '../runtime/dueWork';
import type { Logger } from '../runtime/logger';

/** What the scheduler reads of the scheduled messages (implemented by the notifications projection). */
export interface ScheduledMessages {
  /** Scheduled messages whose release time has come, earliest first. */
  due(now: Date, limit: number): Promise<Array<{ messageId: string; appId: string }>>;
  /** When the next scheduled message is due, if any. */
  nextReleaseAt(): Promise<Date | undefined>;
}

/**
 * Releases scheduled messages (Koala `execute`) when they are due. Durable: what is scheduled lives in
 * the notifications read model, built from MessageScheduled events, so a restart loses nothing and
 * releases whatever fell due while herald was down. Releasing is idempotent (the decider ignores a
 * release of a message no longer scheduled), so several nodes may run schedulers side by side.
 */
export class MessageScheduler extends DueWork<{ readonly messageId: string; readonly appId: string }> {
  override readonly name = 'message scheduler';

  constructor(deps: {
    readonly store: EventStore;
    readonly scheduled: ScheduledMessages;
    readonly clock: Clock;
    readonly log: Logger;
    /** Resolves once the read model shows a release at this position (so it is no longer "due"). */
    readonly readYourWrites?: (position: bigint | undefined) => Promise<void>;
  }) {
    // Due messages, each on its own: one whose release fails backs off alone.
    super({
      clock: deps.clock,
      log: deps.log,
      doing: 'releasing a scheduled message',
      // Nothing wakes the scheduler when a message falls due: it looks at least every 250 ms.
      maxWaitMs: 250,
      // A release is a write to the store, no peer: the runner abandons it (frees its slot) if the store
      // hangs; a late release is harmless (the decider releases a message once, commandId per message).
      attemptTimeoutMs: 10_000,
      due: (now, limit) => deps.scheduled.due(now, limit),
      nextDueAt: () => deps.scheduled.nextReleaseAt(),
      idOf: (message) => message.messageId,
      perform: ({ messageId, appId }, now) =>
        handleCommand(
          deps.store,
          messageAggregate,
          messageStreamName(messageId),
          { type: 'ReleaseMessage', now: now.toISOString() },
          { appId, actor: 'herald:scheduler', commandId: `release:${messageId}` },
        ),
      readYourWrites: deps.readYourWrites,
    });
  }

  /** Releases what is due now; returns how many were released or expired. */
  releaseDue(): Promise<number> {
    return this.doDue();
  }
}
