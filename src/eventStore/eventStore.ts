/**
 * The event store port. Every write in herald goes through `append`; every read model is built from
 * `subscribeToAll`. Two adapters implement it (PostgreSQL, EventStoreDB) and one contract suite
 * (test/contract/eventStore.contract.ts) holds them to the same behaviour.
 */

/** Metadata every herald event carries (DESIGN.md: conventions). */
export interface EventMetadata {
  readonly correlationId?: string;
  readonly causationId?: string;
  readonly appId?: string;
  readonly actor?: string;
  readonly [key: string]: unknown;
}

/** An event about to be appended. `id` is a UUID; a retried append with the same ids appends nothing. */
export interface NewEvent {
  readonly id: string;
  readonly type: string;
  readonly data: unknown;
  readonly metadata?: EventMetadata;
}

/**
 * A stored event. `revision` counts from 0 within its stream; `position` orders all events of the store
 * and is what checkpoints and cursors hold. Positions increase but need not be contiguous.
 */
export interface RecordedEvent {
  readonly id: string;
  readonly streamName: string;
  readonly revision: bigint;
  readonly position: bigint;
  readonly type: string;
  readonly data: unknown;
  readonly metadata: EventMetadata;
  readonly createdAt: Date;
}

/** What the writer believes about the stream: a revision, or a state. */
export type ExpectedRevision = bigint | 'any' | 'no_stream' | 'stream_exists';

export interface AppendResult {
  /** Revision of the last event now in the stream. */
  readonly nextExpectedRevision: bigint;
  /** Position of the last event appended (or of the already stored event, for an idempotent retry). */
  readonly position: bigint;
}

export interface ReadStreamOptions {
  readonly fromRevision?: bigint;
  readonly direction?: Direction;
  readonly maxCount?: number;
}

export interface ReadAllOptions {
  /**
   * Exclusive: read events after this position (forwards) or before it (backwards). It must be the
   * position of an event of this store (InvalidPositionError otherwise); negative → from the start.
   */
  readonly after?: bigint;
  readonly direction?: Direction;
  readonly maxCount?: number;
  readonly filter?: EventFilter;
}

export type Direction = 'forwards' | 'backwards';

/** Server-side filter. herald only filters by stream or event-type prefix; system events (`$…`) are always excluded. */
export interface EventFilter {
  readonly streamNamePrefixes?: readonly string[];
  readonly eventTypePrefixes?: readonly string[];
}

/**
 * Which events an analyst asks for, by what they are: the same for `herald replay` and the GraphQL `events`
 * query and subscription (src/analysts/eventSelection.ts). Time and position bounds are the caller's.
 */
export interface EventSelection {
  /** Exact event types; none → all. */
  readonly types?: readonly string[];
  /** Streams whose name starts with this. */
  readonly streamPrefix?: string;
  /** Events whose metadata names this app. */
  readonly appId?: string;
}

/** What an export writes: the selection, within bounds by position or by time (both inclusive). */
export interface ExportSelection extends EventSelection {
  readonly from?: bigint | Date;
  readonly to?: bigint | Date;
  /** Only these streams (retention's archive: src/storage/eventArchive.ts), at most a batch of them. */
  readonly streams?: readonly string[];
}

/** Where an export sends its lines: a chunk of whole lines at a time, awaited (a slow file is written at its pace). */
export type ExportOutput = (chunk: string | Uint8Array) => Promise<void>;

export interface ExportProgress {
  /** Events written so far. */
  readonly written: number;
  /** How far the export has read: every event up to here that passes the selection is written. */
  readonly position: bigint;
}

export interface StreamRemoval {
  readonly removed: number;
  /** Streams kept whole (an event past the bound): retention retires them again. */
  readonly left: readonly string[];
}

export interface SubscribeToAllOptions {
  /** Exclusive start, an event's position (InvalidPositionError otherwise); omitted or negative → from the very beginning. */
  readonly after?: bigint;
  readonly filter?: EventFilter;
}

/**
 * A catch-up subscription: first the history after `after`, then live events, in position order, each
 * exactly once. It yields batches so a consumer can apply many events in one transaction; `caughtUp` is
 * true on a batch after which the subscription had nothing more to read at that moment.
 */
export interface SubscriptionBatch {
  readonly events: readonly RecordedEvent[];
  readonly caughtUp: boolean;
}

export interface AllSubscription extends AsyncIterable<SubscriptionBatch> {
  /** Ends the iteration; safe to call more than once. */
  close(): Promise<void>;
}

export interface EventStore {
  readonly kind: 'postgresql' | 'eventstoredb';
  /**
   * Throws WrongExpectedRevisionError, StreamDeletedError, or EventStoreUnavailableError. An append whose
   * outcome is unknown (EventStoreDB: its deadline passed) is retried by the adapter with the same event
   * ids, which is safe because the store takes it as a retry; if the outcome stays unknown it throws
   * EventStoreUnavailableError, and the caller may retry later with the same ids.
   */
  append(streamName: string, events: readonly NewEvent[], expectedRevision?: ExpectedRevision): Promise<AppendResult>;
  /** Throws StreamNotFoundError when the stream has no events, StreamDeletedError when it was deleted. */
  readStream(streamName: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>;
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]>;
  /** Position of the newest event, or -1n for an empty store. */
  headPosition(): Promise<bigint>;
  subscribeToAll(options?: SubscribeToAllOptions): AllSubscription;
  /**
   * A capability, not every store's: writes every event up to `head` (a snapshot) that `selection` picks,
   * in position order, as the JSON Lines of `herald replay` (docs/analysts.md), formatted by the store
   * itself — much faster than reading the events through this port and serializing them. PostgreSQL offers
   * it (COPY); EventStoreDB does not (src/analysts/replay.ts reads through the port instead). A decorator
   * that changes events on read forwards it with the same change made to the lines (UpcastingEventStore).
   */
  exportJsonLines?(
    selection: ExportSelection,
    head: bigint,
    write: ExportOutput,
    onProgress?: (progress: ExportProgress) => void,
  ): Promise<ExportProgress>;
  /**
   * A capability, not every store's: retention's removal of `streams` whose events are all at or below
   * position `upto` (a stream with a later event keeps every event: never half removed), once they are
   * archived (src/storage/eventRetention.ts). Afterwards each stream is no stream: a read
   * throws StreamNotFoundError, `no_stream` starts it anew, and an expected revision conflicts (PostgreSQL;
   * EventStoreDB keeps the revision behind `$tb`, so an append at it would continue the removed stream:
   * retention only removes streams nothing appends to any more). Positions
   * of removed events stay valid as `after` for reads and subscriptions (a checkpoint may hold one).
   * Returns the events removed, and the streams kept (an event after `upto`).
   */
  removeStreamEvents?(streams: readonly string[], upto: bigint): Promise<StreamRemoval>;
  /**
   * After removals, gives their space back where the store needs to be asked: EventStoreDB's scavenge
   * (until it runs, truncated events still take disk and still show in $all reads). PostgreSQL has none:
   * autovacuum makes the deleted rows' space reusable.
   */
  reclaimSpace?(): Promise<void>;
  close(): Promise<void>;
}

export class WrongExpectedRevisionError extends Error {
  override readonly name = 'WrongExpectedRevisionError';
  constructor(
    readonly streamName: string,
    readonly expected: ExpectedRevision,
    readonly actual: bigint | 'no_stream',
  ) {
    super(`stream ${streamName}: expected revision ${String(expected)}, actual ${String(actual)}`);
  }
}

export class StreamNotFoundError extends Error {
  override readonly name = 'StreamNotFoundError';
  constructor(readonly streamName: string) {
    super(`stream ${streamName} not found`);
  }
}

/** The stream was deleted (on EventStoreDB, by an operator); it cannot be read or written again. */
export class StreamDeletedError extends Error {
  override readonly name = 'StreamDeletedError';
  constructor(readonly streamName: string) {
    super(`stream ${streamName} is deleted`);
  }
}

/**
 * A read or subscription started after a position that is no event's position in this store: a
 * checkpoint or cursor from another store (or a restored backup), or a made-up number.
 */
export class InvalidPositionError extends Error {
  override readonly name = 'InvalidPositionError';
  constructor(readonly position: bigint) {
    super(
      `position ${position} is not the position of an event in this store (a checkpoint from another store or an older backup?)`,
    );
  }
}

/** The store cannot be reached (down, restarting, network). Callers may retry later. */
export class EventStoreUnavailableError extends Error {
  override readonly name = 'EventStoreUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export const DEFAULT_READ_COUNT = 500;

function isSystemStream(streamName: string): boolean {
  return streamName.startsWith('$');
}

export function matchesFilter(
  event: Pick<RecordedEvent, 'streamName' | 'type'>,
  filter: EventFilter | undefined,
): boolean {
  if (isSystemStream(event.streamName) || event.type.startsWith('$')) return false;
  if (!filter) return true;
  if (filter.streamNamePrefixes && !filter.streamNamePrefixes.some((p) => event.streamName.startsWith(p))) return false;
  if (filter.eventTypePrefixes && !filter.eventTypePrefixes.some((p) => event.type.startsWith(p))) return false;
  return true;
}
