import { EVENT_VERSIONS } from '../../domain/eventCatalogue';
import { FIRST_VERSION, type EventVersions } from '../../domain/eventVersions';
import type {
  AllSubscription,
  EventMetadata,
  EventStore,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeToAllOptions,
} from './eventStore';
import { EventStoreDecorator } from './eventStoreDecorator';

/**
 * Event versioning on read (domain/eventVersions.ts): every event read through this store comes out in
 * its type's current shape, whichever adapter holds it and however old it is — readStream for commands,
 * readAll for the GraphQL feed and analysts, subscribeToAll for projections and their rebuilds. Stored
 * events are never rewritten; an upcast event says so by its `schemaVersion`, which is then the current one.
 *
 * An event newer than this code (a newer herald wrote it, during a rolling upgrade or after a downgrade)
 * has no upcaster here: it passes unchanged, and every decoder refuses it by its version (`schemaRefusal`)
 * rather than read it as the older shape it may resemble. A projection parks it; after the upgrade,
 * `herald projections retry` applies it.
 */
export class UpcastingEventStore extends EventStoreDecorator {
  /**
   * The store's export (PostgreSQL's COPY), its lines of older versions upcast; absent where the store has
   * none. Initialized, so the base's forwarding of the raw export is replaced, never kept.
   */
  override readonly exportJsonLines?: EventStore['exportJsonLines'] = undefined;

  constructor(
    store: EventStore,
    private readonly versions: EventVersions = EVENT_VERSIONS,
  ) {
    super(store);
    const exportJsonLines = store.exportJsonLines?.bind(store);
    if (exportJsonLines) {
      this.exportJsonLines = async (selection, head, write, onProgress) => {
        const lines = linesUpcaster(versions);
        const progress = await exportJsonLines(
          selection,
          head,
          async (chunk) => {
            const out = lines.chunk(chunk);
            if (out.length > 0) await write(out);
          },
          onProgress,
        );
        const rest = lines.end();
        if (rest !== undefined) await write(rest);
        return progress;
      };
    }
  }

  override async readStream(streamName: string, options?: ReadStreamOptions): Promise<RecordedEvent[]> {
    return (await this.store.readStream(streamName, options)).map(this.upcast);
  }

  override async readAll(options?: ReadAllOptions): Promise<RecordedEvent[]> {
    return (await this.store.readAll(options)).map(this.upcast);
  }

  override subscribeToAll(options?: SubscribeToAllOptions): AllSubscription {
    const subscription = this.store.subscribeToAll(options);
    const upcast = this.upcast;
    return {
      close: () => subscription.close(),
      async *[Symbol.asyncIterator]() {
        for await (const batch of subscription) yield { ...batch, events: batch.events.map(upcast) };
      },
    };
  }

  private readonly upcast = (event: RecordedEvent): RecordedEvent => upcastEvent(event, this.versions);
}

/**
 * An export's lines with those of an older version upcast. The store writes its lines as stored (jsonb's
 * own text) and fast; only lines that name a type with upcasters are parsed and written again (compact, as
 * JSON.stringify writes them), so an export stays the store's fast path while the history holds few old
 * events. A chunk need not end with its last line (pg-copy-streams hands a long row on in pieces), so the
 * bytes after a chunk's last newline wait for the next chunk; `end` gives what is left after the last one.
 */
/** A line of an export, parsed: what upcasting reads of it (its other keys pass through in their order). */
type ExportedRecord = Pick<RecordedEvent, 'type' | 'data' | 'metadata'>;

export interface LinesUpcaster {
  chunk(chunk: string | Uint8Array): string | Uint8Array;
  end(): string | Uint8Array | undefined;
}

const NEWLINE = 0x0a;

export function linesUpcaster(versions: EventVersions): LinesUpcaster {
  // A type is found by its key and value as the line writes them: in a JSON string a quote is escaped, so
  // no stream name or data can hold this text before the line's own "type".
  const markers = versions.changedTypes().map((type) => `,"type":${JSON.stringify(type)},`);
  if (markers.length === 0) return { chunk: (chunk) => chunk, end: () => undefined };
  const upcastLines = (bytes: Buffer): string | Uint8Array => {
    if (!markers.some((marker) => bytes.includes(marker))) return bytes;
    const lines = bytes.toString().split('\n');
    for (const [index, line] of lines.entries()) {
      if (!markers.some((marker) => line.includes(marker))) continue;
      const record = JSON.parse(line) as ExportedRecord;
      const upcast = upcastEvent(record, versions);
      if (upcast !== record) lines[index] = JSON.stringify(upcast);
    }
    return lines.join('\n');
  };
  let unfinished = Buffer.alloc(0);
  return {
    chunk(chunk) {
      const bytes =
        typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      const joined = unfinished.length === 0 ? bytes : Buffer.concat([unfinished, bytes]);
      // A newline byte is never inside a UTF-8 sequence, so the split leaves every character whole.
      const end = joined.lastIndexOf(NEWLINE) + 1;
      unfinished = Buffer.from(joined.subarray(end)); // a copy: the store may reuse its chunk's memory
      return upcastLines(joined.subarray(0, end));
    },
    end() {
      const rest = unfinished;
      unfinished = Buffer.alloc(0);
      return rest.length > 0 ? upcastLines(rest) : undefined;
    },
  };
}

/**
 * The event in its type's current shape, its `schemaVersion` then the current one. Also for events read
 * other than through the store: a parked event's copy, retried after an upgrade.
 */
export function upcastEvent<E extends Pick<RecordedEvent, 'type' | 'data' | 'metadata'>>(
  event: E,
  versions: EventVersions = EVENT_VERSIONS,
): E {
  const version = schemaVersionOf(event.metadata);
  const current = versions.current(event.type);
  // Current, newer or no version at all: as it is (decoders refuse the last two).
  if (version === undefined || version >= current) return event;
  let data: unknown;
  try {
    data = versions.upcast(event.type, version, event.data);
  } catch {
    // An upcaster must not throw; if one does, the event stays old for its codec to judge (a projection parks it).
    return event;
  }
  return { ...event, data, metadata: { ...event.metadata, schemaVersion: current } };
}

/**
 * The version of an event's data as its metadata records it (`schemaVersion`, stamped by the command
 * handler): absent → 1, as on every event stored before versioning; undefined when it is no version.
 */
export function schemaVersionOf(metadata: EventMetadata): number | undefined {
  const version = metadata['schemaVersion'];
  if (version === undefined) return FIRST_VERSION;
  return typeof version === 'number' && Number.isInteger(version) && version >= FIRST_VERSION ? version : undefined;
}

/** Why a recorded event cannot be decoded as its type's current shape (its version), or undefined when it can. */
export function schemaRefusal(event: RecordedEvent, versions: EventVersions = EVENT_VERSIONS): string | undefined {
  return versions.refusal(event.type, schemaVersionOf(event.metadata));
}

/** The version the writer stamps on a new event of `type`: the current one. */
export const currentSchemaVersion = (type: string): number => EVENT_VERSIONS.current(type);
