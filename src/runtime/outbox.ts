import type { DomainEvent } from '../../domain/decider';
import { isDue, type AttemptOutcome, type AttemptState } from '../../domain/outbox';
import { handleCommand, loadState, type Aggregate, type LoadedStream } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import type { Clock } from './clock';
import { isStopping, type DueWorkDeps } from './dueWork';
import type { Logger } from './logger';

/**
 * One retrying outbox (docs/architecture.md, "Background work"): items on streams of their own, each an
 * outbox item of domain/outbox.ts, attempted until their schedule ends. An outbox says how to attempt an
 * item and which command records an outcome; the runner (src/runtime/dueWork.ts) attempts due items side by side
 * with a timeout per attempt, and this decides each attempt on the item's stream: it attempts what the
 * stream says is due now (a lagging read model cannot make it attempt an item again that is settled)
 * and records the outcome with the revision it read, as an event on that stream.
 *
 * Email (src/mail/mailer.ts) and RTIO reports (src/rtio/reportForwarder.ts) are outboxes.
 */
export interface Outbox<
  Item,
  State extends OutboxItemState,
  Command,
  Event extends DomainEvent,
  Outcome extends AttemptOutcome,
> {
  /** What it does, for log lines ("forwarding a device report"). */
  readonly doing: string;
  /** Who records the outcomes (the events' `actor`). */
  readonly actor: string;
  readonly aggregate: Aggregate<Command, Event, State | { readonly status: 'none' }>;
  readonly streamOf: (item: Item) => string;
  readonly idOf: (item: Item) => string;
  /**
   * Whose share of the attempts in flight the item takes (its owner: an app, a device), so one owner's
   * flood leaves room for the others'. Not a destination: an outbox's items may all go to one.
   */
  readonly keyOf: (item: Item) => string;
  /** Attempts in flight at once, and per key (DueWork's defaults: 64, half of it). */
  readonly maxInFlight?: number;
  readonly maxInFlightPerKey?: number;
  /** The longest one attempt may take: then it is a failed attempt, "no answer within … ms". */
  readonly attemptTimeoutMs: number;
  /** The longest wait between two looks at the read model, unless woken. */
  readonly maxWaitMs: number;
  /**
   * The item's stream as this node itself just left it (it appended the item a moment ago), if it knows:
   * the attempt is decided on that instead of reading the stream — a read model lagging behind the store
   * cannot be fresher than it. Absent or undefined: the stream is read.
   */
  readonly known?: (item: Item) => LoadedStream<State | { readonly status: 'none' }> | undefined;
  /** Makes the attempt; a throw is a failed attempt (described by `describe`). Stops at `signal`. */
  attempt(state: State, signal: AbortSignal): Promise<Outcome>;
  /** The command that records the outcome of attempt `attempt` (1-based). */
  record(outcome: Outcome | { readonly ok: false; readonly error: string }, attempt: number, now: string): Command;
  /** An error as text fit for an event and a log line (secrets cut out). */
  readonly describe: (error: unknown) => string;
  /** Logs an attempt's outcome (so each outbox keeps its recipients' details out of the log its own way). */
  readonly logOutcome: (
    state: State,
    attempt: number,
    outcome: Outcome | { readonly ok: false; readonly error: string },
  ) => void;
}

/** An outbox item's state once it exists: where its attempts stand, and whose it is. */
export type OutboxItemState = AttemptState & { readonly appId: string };

export interface OutboxDeps<Item> {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly log: Logger;
  /** The outbox's items as its read model shows them. */
  readonly pending: {
    /** Items due at `now`, earliest first. */
    due(now: Date, limit: number): Promise<readonly Item[]>;
    nextAttemptAt(): Promise<Date | undefined>;
  };
  /** Resolves once the read model shows an outcome at this position (so the item is no longer due). */
  readonly readYourWrites?: ((position: bigint | undefined) => Promise<void>) | undefined;
}

/** What a DueWork needs to run `outbox` (a worker extends DueWork with it: src/mail/mailer.ts). */
export function outboxWork<
  Item,
  State extends OutboxItemState,
  Command,
  Event extends DomainEvent,
  Outcome extends AttemptOutcome,
>(deps: OutboxDeps<Item>, outbox: Outbox<Item, State, Command, Event, Outcome>): DueWorkDeps<Item> {
  const { store, clock } = deps;
  return {
    clock,
    log: deps.log,
    doing: outbox.doing,
    maxWaitMs: outbox.maxWaitMs,
    attemptTimeoutMs: outbox.attemptTimeoutMs,
    due: (now, limit) => deps.pending.due(now, limit),
    nextDueAt: () => deps.pending.nextAttemptAt(),
    idOf: outbox.idOf,
    keyOf: outbox.keyOf,
    ...(outbox.maxInFlight !== undefined && { maxInFlight: outbox.maxInFlight }),
    ...(outbox.maxInFlightPerKey !== undefined && { maxInFlightPerKey: outbox.maxInFlightPerKey }),
    readYourWrites: deps.readYourWrites,
    describe: outbox.describe,
    async perform(item, _now, signal) {
      const streamName = outbox.streamOf(item);
      const loaded = outbox.known?.(item) ?? (await loadState(store, outbox.aggregate, streamName));
      const { state } = loaded;
      if (state.status === 'none' || !isDue(state as State, clock())) return undefined;
      const pending = state as State;
      const attempt = pending.attempts + 1;
      let outcome: Outcome | { readonly ok: false; readonly error: string };
      try {
        outcome = await outbox.attempt(pending, signal);
      } catch (error) {
        // Stopping: nothing is recorded, the item stays due for whoever runs next.
        if (isStopping(signal)) throw error;
        outcome = {
          ok: false,
          error: signal.aborted ? `no answer within ${outbox.attemptTimeoutMs} ms` : outbox.describe(error),
        };
      }
      outbox.logOutcome(pending, attempt, outcome);
      return handleCommand(
        store,
        outbox.aggregate,
        streamName,
        outbox.record(outcome, attempt, clock().toISOString()),
        { appId: pending.appId, actor: outbox.actor },
        loaded,
      );
    },
  };
}
