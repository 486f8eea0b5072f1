import { InvalidPositionError, type EventStore, type RecordedEvent, type RecordedEventText } from '../eventStore/eventStore';
import { selector, storeFilterOf, type EventSelection } from './eventSelection';

/**
 * `herald replay`: the event stream as JSON Lines, for analysts (docs/analysts.md). One line per event,
 * its keys always in this order — `position`, `stream`, `revision`, `type`, `time`, `data`, `metadata` —
 * positions and revisions as decimal strings (they are 64-bit), `time` as ISO 8601 (milliseconds, UTC),
 * `data` and `metadata` as the store's own JSON text (RecordedEventText): the same store gives the same
 * bytes, and nothing is parsed or re-serialized on the way.
 */

export interface ReplayFilter extends EventSelection {
  /** From this position, or from this time (inclusive). */
  readonly from?: bigint | Date;
  /** Up to this position, or up to this time (inclusive). */
  readonly to?: bigint | Date;
}

export interface ReplayProgress {
  /** Events read from the store (matching or not) and written. */
  readonly scanned: number;
  readonly written: number;
  readonly position: bigint;
}

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

/**
 * The event as one line of JSON (without the line break): `eventRecord`'s keys, assembled around the
 * store's JSON text rather than stringified from parsed objects (twice as fast, and exactly what is stored).
 */
function eventLine(event: RecordedEventText): string {
  return `{"position":"${event.position}","stream":${JSON.stringify(event.streamName)},"revision":"${event.revision}","type":${JSON.stringify(event.type)},"time":"${event.createdAt.toISOString()}","data":${event.data},"metadata":${event.metadata}}`;
}

/** The app of an event whose metadata is JSON text (parsed only when a replay filters by app). */
const appIdOfText = (event: RecordedEventText): unknown => (JSON.parse(event.metadata) as { appId?: unknown }).appId;

/**
 * Writes every event that passes `filter`, in stream order, through `write` (a chunk of lines at a time;
 * awaited, so a slow file is written at its pace). Reads the store a page at a time, the next page while
 * this one is written.
 */
export async function replay(
  store: EventStore,
  filter: ReplayFilter,
  write: (chunk: string) => Promise<void>,
  onProgress?: (progress: ReplayProgress) => void,
): Promise<ReplayProgress> {
  const storeFilter = storeFilterOf(filter);
  const selected = selector(filter, appIdOfText);
  const fromPosition = typeof filter.from === 'bigint' ? filter.from : undefined;
  const read = (after: bigint | undefined) => {
    const page = store.readAllAsText({ ...(after !== undefined && { after }), maxCount: PAGE, ...(storeFilter && { filter: storeFilter }) });
    page.catch(() => undefined); // awaited below; a prefetch that fails while a write does is not unhandled
    return page;
  };
  let after = await startAfter(store, fromPosition);
  let next = read(after);
  let scanned = 0;
  let written = 0;
  for (;;) {
    const page = await next;
    if (page.length === 0) break;
    const last = page[page.length - 1]!.position;
    const more = page.length === PAGE && !(typeof filter.to === 'bigint' && last >= filter.to);
    if (more) next = read(last);
    let chunk = '';
    let past = false;
    for (const event of page) {
      scanned++;
      if (isPastEnd(event, filter.to)) {
        past = true;
        break;
      }
      if (selected(event) && isWithinBounds(event, filter)) {
        chunk += `${eventLine(event)}\n`;
        written++;
      }
    }
    if (chunk) await write(chunk);
    after = last;
    onProgress?.({ scanned, written, position: after });
    if (past || !more) break;
  }
  return { scanned, written, position: after ?? -1n };
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

function isPastEnd(event: RecordedEventText, to: bigint | Date | undefined): boolean {
  // Positions only grow; times may not (a late commit), so a time bound filters rather than stops.
  return typeof to === 'bigint' && event.position > to;
}

function isWithinBounds(event: RecordedEventText, filter: ReplayFilter): boolean {
  if (typeof filter.from === 'bigint' && event.position < filter.from) return false;
  if (filter.from instanceof Date && event.createdAt < filter.from) return false;
  return !(filter.to instanceof Date && event.createdAt > filter.to);
}
