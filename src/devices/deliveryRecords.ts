import { DomainError, type Decider } from '../../domain/decider';
import {
  deliveryDecider,
  type DeliveryCommand,
  type DeliveryEvent,
  type DeliveryState,
} from '../../domain/device/delivery';
import { deliveryAggregate } from '../command/aggregates';
import {
  handleCommand,
  type Aggregate,
  type CommandContext,
  type CommandResult,
  type LoadedStream,
} from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import { currentCorrelationId } from '../runtime/correlation';

/**
 * The gateway's delivery records — attempts and confirmations — written in flushes, one after the other.
 * A flush appends its records together (the store commits them in one statement), and the records that
 * come meanwhile wait for the next: a confirmation arriving while its attempt still waits joins it, and
 * both are one append of two events on the delivery's stream. When a push reaches a thousand devices,
 * most devices confirm before their attempt's turn, so the push costs about one append per device
 * instead of two (an append, not an event, is what the store pays for). Unloaded, a record waits for no
 * one: the flush starts at once.
 *
 * Every record is a command on its delivery's stream, decided there by handleCommand with the expected
 * revision: on a conflict it is decided again on what the stream holds. A command appends after the
 * records of its stream made before it, so a confirmation is decided on its attempt's outcome without
 * waiting for it to be stored first.
 */

/** Records per flush: as many as the PostgreSQL store commits in one statement (src/eventStore/postgres/append.ts). */
const RECORDS_PER_FLUSH = 256;
/**
 * The first flush after a quiet spell takes fewer, and each next one 4 times as many: a push's attempts
 * all wait when its fan-out ends, before any device's confirmation is read, and only the first flush's
 * attempts are stored without theirs.
 */
const FIRST_FLUSH = 32;

interface Waiting {
  readonly command: DeliveryCommand;
  readonly resolve: (result: CommandResult<DeliveryEvent, DeliveryState>) => void;
  readonly reject: (error: unknown) => void;
}

interface Entry {
  readonly streamName: string;
  /** What the stream holds before these commands: known, known once the record before lands, or to be read. */
  readonly before: LoadedStream<DeliveryState> | Promise<LoadedStream<DeliveryState> | undefined> | undefined;
  readonly context: CommandContext;
  readonly commands: Waiting[];
}

/** The commands of one flush on one stream, decided one after the other; a refused one changes nothing. */
const inTurn: Decider<readonly DeliveryCommand[], DeliveryEvent, DeliveryState> = {
  initialState: deliveryDecider.initialState,
  evolve: deliveryDecider.evolve,
  decide(commands, state) {
    const events: DeliveryEvent[] = [];
    let now = state;
    for (const command of commands) {
      let decided: readonly DeliveryEvent[];
      try {
        decided = deliveryDecider.decide(command, now);
      } catch (error) {
        if (error instanceof DomainError) continue;
        throw error;
      }
      events.push(...decided);
      now = decided.reduce(deliveryDecider.evolve, now);
    }
    return events;
  },
};
const inTurnAggregate: Aggregate<readonly DeliveryCommand[], DeliveryEvent, DeliveryState> = {
  decider: inTurn,
  eventCodec: deliveryAggregate.eventCodec,
};

export class DeliveryRecords {
  private readonly waiting = new Map<string, Entry>();
  private flushing = false;

  constructor(private readonly store: EventStore) {}

  /**
   * Records `command` on the delivery's stream after the records of it made before. `before`: what the
   * stream holds (or will, once the last record of it lands), if the caller knows; otherwise it is read.
   * Resolves with the command's own events and the stream as it left it; a refused confirmation rejects
   * with the decider's DomainError.
   */
  record(
    streamName: string,
    command: DeliveryCommand,
    context: CommandContext,
    before?: Entry['before'],
  ): Promise<CommandResult<DeliveryEvent, DeliveryState>> {
    return new Promise((resolve, reject) => {
      const joined = this.waiting.get(streamName);
      if (joined) joined.commands.push({ command, resolve, reject });
      else {
        const correlationId = context.correlationId ?? currentCorrelationId();
        this.waiting.set(streamName, {
          streamName,
          before,
          context: { ...context, ...(correlationId !== undefined && { correlationId }) },
          commands: [{ command, resolve, reject }],
        });
      }
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    try {
      for (let size = FIRST_FLUSH; this.waiting.size > 0; size = Math.min(RECORDS_PER_FLUSH, size * 4)) {
        const entries: Entry[] = [];
        for (const [streamName, entry] of this.waiting) {
          if (entries.length === size) break;
          entries.push(entry);
          this.waiting.delete(streamName);
        }
        await Promise.all(entries.map((entry) => this.append(entry)));
      }
    } finally {
      this.flushing = false;
    }
  }

  private async append(entry: Entry): Promise<void> {
    let result: CommandResult<DeliveryEvent, DeliveryState>;
    try {
      const before = await entry.before;
      result = await handleCommand(
        this.store,
        inTurnAggregate,
        entry.streamName,
        entry.commands.map((waiting) => waiting.command),
        entry.context,
        before,
      );
    } catch (error) {
      for (const waiting of entry.commands) waiting.reject(error);
      return;
    }
    for (const waiting of entry.commands) {
      const refusal = refusalOf(waiting.command, result.state);
      if (refusal) waiting.reject(refusal);
      else waiting.resolve({ ...result, events: result.events.filter((event) => isEventOf(waiting.command, event)) });
    }
  }
}

/** A confirmation is taken when the delivery ends up confirmed; otherwise the decider refused it (the delivery ended). */
function refusalOf(command: DeliveryCommand, state: DeliveryState): DomainError | undefined {
  if (command.type !== 'ConfirmDelivery' || state.status === 'confirmed') return undefined;
  try {
    deliveryDecider.decide(command, state);
  } catch (error) {
    if (error instanceof DomainError) return error;
  }
  return new DomainError('expired', 'the delivery has ended: the message was dropped or has expired');
}

function isEventOf(command: DeliveryCommand, event: DeliveryEvent): boolean {
  switch (command.type) {
    case 'RecordAttempt':
      return event.type === 'MessageDelivered' || event.type === 'DeliveryRetried';
    case 'ConfirmDelivery':
      return event.type === 'DeliveryConfirmed';
    default:
      return true;
  }
}
