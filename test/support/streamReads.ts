import type { EventStore } from '../../src/eventStore/eventStore';

/** Events read by stream reads (loading aggregates) so far. */
export interface StreamReads {
  readonly eventsRead: number;
  /** The events read while `action` ran, beside its result (one action at a time). */
  during<T>(action: () => Promise<T>): Promise<{ result: T; eventsRead: number }>;
  /** Gives the store its own readStream back. */
  restore(): void;
}

/**
 * Counts the events the store's readStream hands back, in place (so a running herald's own store can be
 * watched): issue 26's bound on what loading an aggregate reads.
 */
export function countStreamReads(store: EventStore): StreamReads {
  const readStream = store.readStream;
  let eventsRead = 0;
  store.readStream = async (streamName, options) => {
    const events = await readStream.call(store, streamName, options);
    eventsRead += events.length;
    return events;
  };
  return {
    get eventsRead() {
      return eventsRead;
    },
    async during(action) {
      const before = eventsRead;
      const result = await action();
      return { result, eventsRead: eventsRead - before };
    },
    restore: () => void (store.readStream = readStream),
  };
}
