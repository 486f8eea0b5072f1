import type { RecordedEvent } from '../../src/eventStore/eventStore';

/** Domain events as a store would hand them to a projection: ids and positions in the given order. */
export function recorded<E extends { readonly type: string; readonly data: unknown }>(
  events: readonly E[],
  streamOf: (event: E) => string,
): RecordedEvent[] {
  return events.map((event, i) => ({
    id: `10000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    streamName: streamOf(event),
    revision: 0n,
    position: BigInt(i + 10),
    type: event.type,
    data: event.data,
    metadata: {},
    createdAt: new Date(0),
  }));
}
