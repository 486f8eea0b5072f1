import type { EventFilter, EventSelection, RecordedEvent } from '../eventStore/eventStore';

/** What the store can filter itself (by prefix only): fewer events cross the wire, `selects` decides. */
export function storeFilterOf(selection: EventSelection): EventFilter | undefined {
  const types = selection.types && selection.types.length > 0 ? selection.types : undefined;
  if (!types && selection.streamPrefix === undefined) return undefined;
  return {
    ...(selection.streamPrefix !== undefined && { streamNamePrefixes: [selection.streamPrefix] }),
    ...(types && { eventTypePrefixes: types }),
  };
}

/**
 * A predicate for the selection; build it once per read, not once per event. `appIdOf` reads an event's
 * app from its metadata (parsed, or JSON text), asked only when the selection names an app.
 */
export function selector<Event extends Pick<RecordedEvent, 'type' | 'streamName'>>(
  selection: EventSelection,
  appIdOf: (event: Event) => unknown,
): (event: Event) => boolean {
  const types = selection.types && selection.types.length > 0 ? new Set(selection.types) : undefined;
  const { streamPrefix, appId } = selection;
  return (event) =>
    (!types || types.has(event.type)) &&
    (streamPrefix === undefined || event.streamName.startsWith(streamPrefix)) &&
    (appId === undefined || appIdOf(event) === appId);
}

export const appIdOf = (event: RecordedEvent): unknown => event.metadata.appId;
