import {
  matchesFilter,
  type AllSubscription,
  type EventStore,
  type RecordedEvent,
  type SubscribeToAllOptions,
  type SubscriptionBatch,
} from '../eventStore/eventStore';
import { EventStoreDecorator } from '../eventStore/eventStoreDecorator';
import type { ArchivedLine, EventArchive } from './eventArchive';

/**
 * The store with what retention archived put back, for `herald projections rebuild --archive`: its
 * catch-up subscription merges the archive's events into the store's history by position (each position
 * once, the store's copy first), so a rebuild replays the stream as it was. For a rebuild after
 * lengthening a retention: what the new policy keeps comes back, the rest is pruned from the fresh
 * tables again. Everything else is the store's.
 *
 * An archived event is read back from its replay line, which holds no event id: it gets one made from its
 * position (`00000000-0000-4000-8000-<position, hex>`), which only a parked event's record shows.
 */
export class ArchivedEventStore extends EventStoreDecorator {
  constructor(
    store: EventStore,
    private readonly archive: EventArchive,
  ) {
    super(store);
  }

  /** The newest of both: the store's newest events may be archived and gone from it. */
  override async headPosition(): Promise<bigint> {
    const [head, files] = await Promise.all([this.store.headPosition(), this.archive.files()]);
    return files.reduce((newest, f) => (BigInt(f.lastPosition) > newest ? BigInt(f.lastPosition) : newest), head);
  }

  override subscribeToAll(options: SubscribeToAllOptions = {}): AllSubscription {
    const inner = this.store.subscribeToAll(options);
    const after = options.after !== undefined && options.after >= 0n ? options.after : -1n;
    const archived = this.archive.lines({ from: after + 1n })[Symbol.asyncIterator]();
    let next: RecordedEvent | undefined | null = null; // null: not read yet; undefined: the archive is done
    const peek = async () => {
      while (next === null) {
        const line = await archived.next();
        if (line.done) next = undefined;
        else {
          const event = fromLine(line.value);
          if (matchesFilter(event, options.filter)) next = event;
        }
      }
      return next;
    };
    /** Archived events up to `position` (all that are left when undefined), the store's in between. */
    const merge = async (events: readonly RecordedEvent[], upTo: bigint | undefined): Promise<RecordedEvent[]> => {
      const merged: RecordedEvent[] = [];
      let i = 0;
      for (let a = await peek(); a && (upTo === undefined || a.position <= upTo); a = await peek()) {
        while (i < events.length && events[i]!.position <= a.position) merged.push(events[i++]!);
        if (merged[merged.length - 1]?.position !== a.position) merged.push(a);
        next = null;
      }
      merged.push(...events.slice(i));
      return merged;
    };
    async function* batches(): AsyncGenerator<SubscriptionBatch> {
      for await (const batch of inner) {
        const last = batch.events[batch.events.length - 1]?.position;
        // At the end of the history, the rest of the archive (its newest events may have been the store's newest).
        const events = await merge(batch.events, batch.caughtUp ? undefined : last);
        if (events.length > 0 || batch.caughtUp) yield { events, caughtUp: batch.caughtUp };
      }
    }
    const iterator = batches();
    return { [Symbol.asyncIterator]: () => iterator, close: () => inner.close() };
  }
}

function fromLine({ position, line }: ArchivedLine): RecordedEvent {
  const record = JSON.parse(line) as {
    stream: string;
    revision: string;
    type: string;
    time: string;
    data: unknown;
    metadata: RecordedEvent['metadata'];
  };
  return {
    id: `00000000-0000-4000-8000-${position.toString(16).padStart(12, '0')}`,
    streamName: record.stream,
    revision: BigInt(record.revision),
    position,
    type: record.type,
    data: record.data,
    metadata: record.metadata,
    createdAt: new Date(record.time),
  };
}
