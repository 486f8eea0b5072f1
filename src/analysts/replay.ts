import {
  InvalidPositionError,
  StreamDeletedError,
  StreamNotFoundError,
  type EventStore,
  type ExportOutput,
  type ExportProgress,
  type ExportSelection,
  type RecordedEvent,
} from '../eventStore/eventStore';
import { appIdOf, selector, storeFilterOf } from './eventSelection';

/**
 * `herald replay`: the event stream as JSON Lines, for analysts (docs/analysts.md). One line per event,
 * its keys always in this order — `position`, `stream`, `revision`, `type`, `time`, `data`, `metadata` —
 * positions and revisions as decimal strings (they are 64-bit), `time` as ISO 8601 (milliseconds, UTC),
 * `data` and `metadata` as the store's JSON text: EventStoreDB's compact, as appended (this module);
 * PostgreSQL's as jsonb prints it (its store's `exportJsonLines`, which has PostgreSQL write the lines).
 * The same store gives the same bytes.
 */

const PAGE = 5000;

/** The event as analysts see it, in a replay line and over GraphQL: these keys, in this order. */
export function eventRecord(event: RecordedEvent) {
  return {
    position: event.position.toString(),
    stream: event.streamName,
    revision: event.revision.toString(),
    type: event.type,
    time: event.createdAt.toISOString(),
    data: event.data,
    metadata: event.metadata,
  };
}

/** The event as one line of JSON (without the line break). */
function eventLine(event: RecordedEvent): string {
  return JSON.stringify(eventRecord(event));
}

/**
 * Writes every event up to `head` (the newest when the replay started: a replay is a snapshot) that
 * passes `filter`, in stream order, through `write`, read through the store port: any store. Reads a
 * page at a time, the next page while this one is written.
 */
export async function replay(
  store: EventStore,
  filter: ExportSelection,
  head: bigint,
  write: ExportOutput,
  onProgress?: (progress: ExportProgress) => void,
): Promise<ExportProgress> {
  const storeFilter = storeFilterOf(filter);
  const selected = selector(filter, appIdOf);
  const streams = filter.streams && new Set(filter.streams);
  const end = typeof filter.to === 'bigint' && filter.to < head ? filter.to : head;
  const fromPosition = typeof filter.from === 'bigint' ? filter.from : undefined;
  const read = (after: bigint | undefined) => {
    const page = store.readAll({
      ...(after !== undefined && { after }),
      maxCount: PAGE,
      ...(storeFilter && { filter: storeFilter }),
    });
    page.catch(() => undefined); // awaited below; a prefetch that fails while a write does is not unhandled
    return page;
  };
  let after = await startAfter(store, fromPosition);
  let next = read(after);
  let written = 0;
  for (;;) {
    const page = await next;
    if (page.length === 0) break;
    const lastRead = page[page.length - 1]!.position;
    const more = page.length === PAGE && lastRead < end;
    if (more) next = read(lastRead);
    let chunk = '';
    let past = false;
    for (const event of page) {
      if (event.position > end) {
        past = true;
        break;
      }
      if (selected(event) && isWithinBounds(event, filter) && (!streams || streams.has(event.streamName))) {
        chunk += `${eventLine(event)}\n`;
        written++;
      }
    }
    if (chunk) await write(chunk);
    after = lastRead;
    onProgress?.({ written, position: after });
    if (past || !more) break;
  }
  return { written, position: after ?? -1n };
}

/** Where to read from: just before `from`. A store that takes only its own positions as `after` is read from the start instead. */
async function startAfter(store: EventStore, from: bigint | undefined): Promise<bigint | undefined> {
  if (from === undefined || from <= 0n) return undefined;
  try {
    await store.readAll({ after: from - 1n, maxCount: 1 });
    return from - 1n;
  } catch (error) {
    if (error instanceof InvalidPositionError) return undefined;
    throw error;
  }
}

function isWithinBounds(event: RecordedEvent, filter: ExportSelection): boolean {
  if (typeof filter.from === 'bigint' && event.position < filter.from) return false;
  if (filter.from instanceof Date && event.createdAt < filter.from) return false;
  return !(filter.to instanceof Date && event.createdAt > filter.to);
}

/**
 * The selected events up to `head` as replay lines through `write`: written by the store where it can
 * (`exportJsonLines`: PostgreSQL), read through the port otherwise. `herald replay` and retention's
 * archive both write this way, so an archived line is the line a replay printed.
 */
export function exportEvents(
  store: EventStore,
  selection: ExportSelection,
  head: bigint,
  write: ExportOutput,
  onProgress?: (progress: ExportProgress) => void,
): Promise<ExportProgress> {
  if (store.exportJsonLines) return store.exportJsonLines(selection, head, write, onProgress);
  return selection.streams
    ? replayStreams(store, selection, selection.streams, head, write)
    : replay(store, selection, head, write, onProgress);
}

/**
 * A list of streams (a batch retention archives) read stream by stream, not by scanning the global order:
 * each read whole (retention's streams are bounded: docs/architecture.md, "Stream bounds"), their
 * events merged by position.
 */
async function replayStreams(
  store: EventStore,
  selection: ExportSelection,
  streams: readonly string[],
  head: bigint,
  write: ExportOutput,
): Promise<ExportProgress> {
  const selected = selector(selection, appIdOf);
  const events: RecordedEvent[] = [];
  for (const name of streams) {
    try {
      events.push(...(await store.readStream(name)));
    } catch (error) {
      if (error instanceof StreamNotFoundError || error instanceof StreamDeletedError) continue;
      throw error;
    }
  }
  const end = typeof selection.to === 'bigint' && selection.to < head ? selection.to : head;
  const lines = events
    .filter((e) => e.position <= end && selected(e) && isWithinBounds(e, selection))
    .sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0))
    .map((e) => `${eventLine(e)}\n`);
  if (lines.length > 0) await write(lines.join(''));
  return { written: lines.length, position: end };
}
