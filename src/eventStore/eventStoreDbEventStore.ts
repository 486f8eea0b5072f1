import {
  ANY,
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamDeletedError as EsdbStreamDeletedError,
  StreamNotFoundError as EsdbStreamNotFoundError,
  WrongExpectedVersionError,
  eventTypeFilter,
  excludeSystemEvents,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type AppendExpectedRevision,
  type Filter,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { OperationsClient } from '@eventstore/db-client/generated/operations_grpc_pb';
import { StartScavengeReq } from '@eventstore/db-client/generated/operations_pb';
import type * as grpc from '@grpc/grpc-js';
import {
  DEFAULT_READ_COUNT,
  EventStoreUnavailableError,
  InvalidPositionError,
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
  matchesFilter,
  type AllSubscription,
  type AppendResult,
  type EventFilter,
  type EventMetadata,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type StreamRemoval,
  type SubscribeToAllOptions,
  type SubscriptionBatch,
} from './eventStore';

/**
 * The EventStoreDB adapter of the event store port, through @eventstore/db-client (gRPC).
 *
 * Positions: the port's position is the commit position of $all; resuming passes it as both commit and
 * prepare position, which is what the server reports for events written by its gRPC API.
 */
export class EventStoreDbEventStore implements EventStore {
  readonly kind = 'eventstoredb' as const;
  private readonly client: EventStoreDBClient;
  private lastScavengeAt = Number.NEGATIVE_INFINITY;

  constructor(connectionString: string) {
    this.client = EventStoreDBClient.connectionString(connectionString);
  }

  async append(
    streamName: string,
    events: readonly NewEvent[],
    expectedRevision: ExpectedRevision = 'any',
  ): Promise<AppendResult> {
    let expected = expectedRevision;
    if (events.length === 0) throw new TypeError('append needs at least one event');
    const proposed = events.map((event) => ({
      id: event.id,
      contentType: 'application/json' as const,
      type: event.type,
      data: event.data as Record<string, unknown>,
      metadata: (event.metadata ?? {}) as Record<string, unknown>,
    }));
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.client.appendToStream(streamName, proposed, {
          expectedRevision: toEsdbRevision(expected),
        });
        // A retry the server recognised may come back without a position: it is the stored last event's.
        const position = result.position?.commit ?? (await this.positionOf(streamName, result.nextExpectedRevision));
        return { nextExpectedRevision: result.nextExpectedRevision, position };
      } catch (error) {
        // A deadline (the client's, or the server's commit timeout) leaves the outcome unknown: the events
        // may be written. The same ids at the same expected revision are a retry the server recognises
        // (its idempotency check), so sending them again is safe and tells us which it was.
        if (isUnknownOutcome(error) && attempt < UNKNOWN_OUTCOME_ATTEMPTS) continue;
        if (isUnknownOutcome(error)) {
          throw new EventStoreUnavailableError(
            `EventStoreDB did not confirm an append to ${streamName} in ${attempt} attempts; it may be written, and retrying it with the same event ids is safe`,
            { cause: error },
          );
        }
        const translated = translateError(error, streamName, expected);
        // A stream retention removed is no stream (as on PostgreSQL): `no_stream` starts it anew. The server
        // keeps its revision (`$tb`), so the append goes at that revision — still exact: a concurrent one wins.
        if (
          translated instanceof WrongExpectedRevisionError &&
          expected === 'no_stream' &&
          typeof translated.actual === 'bigint' &&
          (await this.truncatedAfter(streamName, translated.actual))
        ) {
          expected = translated.actual;
          attempt = 0;
          continue;
        }
        throw translated;
      }
    }
  }

  private async positionOf(streamName: string, revision: bigint): Promise<bigint> {
    const [event] = await this.readStream(streamName, { fromRevision: revision, maxCount: 1 });
    if (!event) throw new Error(`EventStoreDB reported revision ${revision} of ${streamName}, which it does not hold`);
    return event.position;
  }

  async readStream(streamName: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const backwards = options.direction === 'backwards';
    const events: RecordedEvent[] = [];
    try {
      for await (const resolved of this.client.readStream(streamName, {
        fromRevision: options.fromRevision ?? (backwards ? END : START),
        direction: backwards ? BACKWARDS : FORWARDS,
        maxCount: options.maxCount ?? Number.MAX_SAFE_INTEGER,
      })) {
        const event = toRecordedEvent(resolved);
        if (event) events.push(event);
      }
    } catch (error) {
      throw translateError(error, streamName);
    }
    // A stream whose every event retention truncated (`$tb`) is no stream, as on PostgreSQL: servers
    // answer such a read empty or not found (a soft delete's), and herald takes both as not found.
    // Read from a later revision, an empty answer is a stream with no newer event, or one removed since
    // (its metadata says which: only a read that found nothing pays for it).
    const whole = options.fromRevision === undefined || (!backwards && options.fromRevision === 0n);
    if (events.length > 0) return events;
    if (whole || (!backwards && (await this.truncatedAfter(streamName, options.fromRevision! - 1n))))
      throw new StreamNotFoundError(streamName);
    return events;
  }

  /** Whether retention truncated every event up to `revision` (`$tb` past it): the stream was removed. */
  private async truncatedAfter(streamName: string, revision: bigint): Promise<boolean> {
    try {
      const { metadata } = await this.client.getStreamMetadata(streamName);
      const before = metadata?.truncateBefore;
      return (typeof before === 'number' || typeof before === 'bigint') && BigInt(before) > revision;
    } catch (error) {
      const translated = translateError(error, streamName);
      if (translated instanceof StreamNotFoundError) return false;
      throw translated;
    }
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    const backwards = options.direction === 'backwards';
    const wanted = options.maxCount ?? DEFAULT_READ_COUNT;
    const events: RecordedEvent[] = [];
    let from = options.after;
    // $all reads include their start position and cannot filter server-side in this client: page through
    // and keep the events after `after` that match, until there are enough or the log ends.
    for (;;) {
      // At least 100: a real server's $all holds runs of system events ($statsCollected, …) to page past.
      const pageSize = Math.min(Math.max(wanted - events.length + 1, 100), 4096);
      let read = 0;
      try {
        for await (const resolved of this.client.readAll({
          fromPosition: from === undefined || from < 0n ? (backwards ? END : START) : { commit: from, prepare: from },
          direction: backwards ? BACKWARDS : FORWARDS,
          maxCount: pageSize,
        })) {
          read++;
          const event = toRecordedEvent(resolved);
          if (!event) continue;
          if (from !== undefined && (backwards ? event.position >= from : event.position <= from)) continue;
          from = event.position;
          if (matchesFilter(event, options.filter) && events.length < wanted) events.push(event);
        }
      } catch (error) {
        throw translateError(error, undefined, undefined, options.after);
      }
      if (events.length >= wanted || read < pageSize) return events;
    }
  }

  async headPosition(): Promise<bigint> {
    const [newest] = await this.readAll({ direction: 'backwards', maxCount: 1 });
    return newest?.position ?? -1n;
  }

  subscribeToAll(options: SubscribeToAllOptions = {}): AllSubscription {
    const subscription = this.client.subscribeToAll({
      fromPosition:
        options.after === undefined || options.after < 0n ? START : { commit: options.after, prepare: options.after },
      filter: serverFilter(options.filter),
    });
    return batchesOf(subscription, options.filter, options.after);
  }

  /**
   * Retention's removal (src/storage/eventRetention.ts), through stream metadata: `$tb` (truncate before)
   * set to the revision after the last event at or below `upto`, so the stream reads as no stream, and
   * `no_stream` starts it anew (append, above); the events leave the disk and $all at the next scavenge
   * (reclaimSpace) — all but the last one, which the server's scavenge keeps (so that its revision is kept):
   * one event and one `$$` metadata event per removed stream stay (docs/operations.md, "Retention"). A hard
   * delete would keep a tombstone instead, and refuse the name for ever (a removed nonce used forever),
   * unlike PostgreSQL. Not `$maxAge`: the server would drop events by age alone, unarchived, whatever the
   * read models say has ended (a Koala message kept forever, an open needConfirm delivery). Streams are
   * small (bounded by construction: docs/architecture.md, "Stream bounds"), so each is read whole to find
   * its bound.
   */
  async removeStreamEvents(streams: readonly string[], upto: bigint): Promise<StreamRemoval> {
    let removed = 0;
    const left: string[] = [];
    for (const name of streams) {
      let events: RecordedEvent[];
      try {
        events = await this.readStream(name);
      } catch (error) {
        if (error instanceof StreamNotFoundError || error instanceof StreamDeletedError) continue;
        throw error;
      }
      // A stream leaves whole or not at all: one with an event past the bound keeps every event.
      if (events.some((e) => e.position > upto)) {
        left.push(name);
        continue;
      }
      const gone = events;
      if (gone.length > 0) {
        try {
          await this.client.setStreamMetadata(name, { truncateBefore: Number(gone[gone.length - 1]!.revision + 1n) });
        } catch (error) {
          throw translateError(error, name);
        }
        removed += gone.length;
      }
    }
    return { removed, left };
  }

  /**
   * Starts a scavenge (Operations.StartScavenge, which client 6.2.1 does not wrap: its gRPC client is
   * reached through the client's own connection and credentials). The server runs it in the background;
   * one already running answers an error, which is logged by the caller and tried at the next pass.
   * Needs an admin user on a secured server. At most one a day from this process: a scavenge rewrites the
   * server's chunks, and what retention removes is a day's worth at a time anyway.
   */
  async reclaimSpace(): Promise<void> {
    if (Date.now() - this.lastScavengeAt < SCAVENGE_EVERY_MS) return;
    this.lastScavengeAt = Date.now();
    const client = this.client as unknown as ClientInternals;
    await client.execute(
      OperationsClient,
      'startScavenge',
      (operations) =>
        new Promise<void>((resolve, reject) =>
          operations.startScavenge(
            new StartScavengeReq().setOptions(new StartScavengeReq.Options().setThreadCount(1).setStartFromChunk(0)),
            ...client.callArguments({}),
            (error: grpc.ServiceError | null) => (error ? reject(translateError(error)) : resolve()),
          ),
        ),
    );
  }

  async close(): Promise<void> {
    await this.client.dispose();
  }
}

const CAUGHT_UP = Symbol('caught up');
const HIGH_WATER = 4 * DEFAULT_READ_COUNT;

/**
 * Turns the client's push-style subscription (a Readable emitting events, `caughtUp` and `fellBehind`)
 * into the port's pull-style batches, pausing the stream while the consumer is behind.
 */
function batchesOf(
  subscription: ReturnType<EventStoreDBClient['subscribeToAll']>,
  filter: EventFilter | undefined,
  after: bigint | undefined,
): AllSubscription {
  const queue: Array<RecordedEvent | typeof CAUGHT_UP> = [];
  let live = false;
  let ended = false;
  let failure: unknown;
  let notify: (() => void) | undefined;
  const wake = () => {
    const resolve = notify;
    notify = undefined;
    resolve?.();
  };

  subscription.on('data', (resolved: AllStreamResolvedEvent) => {
    const event = toRecordedEvent(resolved);
    if (!event || !matchesFilter(event, filter)) return;
    queue.push(event);
    if (queue.length >= HIGH_WATER) subscription.pause();
    wake();
  });
  subscription.on('caughtUp', () => {
    queue.push(CAUGHT_UP);
    wake();
  });
  subscription.on('fellBehind', () => {
    live = false;
  });
  subscription.on('error', (error: unknown) => {
    failure = ended ? undefined : translateError(error, undefined, undefined, after);
    ended = true;
    wake();
  });
  subscription.on('end', () => {
    ended = true;
    wake();
  });
  subscription.on('close', () => {
    ended = true;
    wake();
  });

  const close = async () => {
    if (!ended) {
      ended = true;
      wake();
      await subscription.unsubscribe().catch(() => undefined);
    }
  };

  async function* batches(): AsyncGenerator<SubscriptionBatch> {
    try {
      for (;;) {
        while (queue.length === 0 && !ended) await new Promise<void>((resolve) => (notify = resolve));
        if (queue.length === 0) {
          if (failure) throw failure;
          return;
        }
        const events: RecordedEvent[] = [];
        while (queue.length > 0 && events.length < DEFAULT_READ_COUNT) {
          const item = queue[0]!;
          if (item === CAUGHT_UP) {
            queue.shift();
            live = true;
            break;
          }
          events.push(queue.shift() as RecordedEvent);
        }
        if (queue.length < DEFAULT_READ_COUNT && subscription.isPaused()) subscription.resume();
        yield { events, caughtUp: live && !queue.some((item) => item !== CAUGHT_UP) };
      }
    } finally {
      await close();
    }
  }

  const iterator = batches();
  return { [Symbol.asyncIterator]: () => iterator, close };
}

function serverFilter(filter: EventFilter | undefined): Filter {
  // The server takes one filter; the rest is applied client-side by matchesFilter.
  if (filter?.streamNamePrefixes) return streamNameFilter({ prefixes: [...filter.streamNamePrefixes] });
  if (filter?.eventTypePrefixes) return eventTypeFilter({ prefixes: [...filter.eventTypePrefixes] });
  return excludeSystemEvents();
}

function toRecordedEvent(resolved: ResolvedEvent | AllStreamResolvedEvent): RecordedEvent | undefined {
  const event = resolved.event;
  if (!event || !event.position) return undefined;
  let data: unknown = event.data;
  if (data instanceof Uint8Array) data = decodeJson(data);
  let metadata: unknown = event.metadata;
  if (metadata instanceof Uint8Array) metadata = metadata.length === 0 ? {} : decodeJson(metadata);
  return {
    id: event.id,
    streamName: event.streamId,
    revision: event.revision,
    position: event.position.commit,
    type: event.type,
    data,
    metadata: (metadata ?? {}) as EventMetadata,
    createdAt: event.created,
  };
}

function decodeJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { $binary: Buffer.from(bytes).toString('base64') };
  }
}

function toEsdbRevision(expected: ExpectedRevision): AppendExpectedRevision {
  switch (expected) {
    case 'any':
      return ANY;
    case 'no_stream':
      return NO_STREAM;
    case 'stream_exists':
      return STREAM_EXISTS;
    default:
      return expected;
  }
}

const UNKNOWN_OUTCOME_ATTEMPTS = 3;

/** The server's commit timeout (BatchAppend: a Timeout status; Append: ABORTED) or the call's deadline. */
function isUnknownOutcome(error: unknown): boolean {
  const type = (error as { type?: unknown } | undefined)?.type;
  return type === 'deadline-exceeded' || type === 'timeout';
}

// gRPC INVALID_ARGUMENT: what a server answers to a read or subscription from a position inside a record.
const INVALID_ARGUMENT = 3;

/**
 * The client's errors in the port's terms. After the server goes away the 6.x client reports the first
 * call as UnavailableError and later ones as a raw gRPC error with code 14 (UNAVAILABLE).
 */
function translateError(error: unknown, streamName?: string, expected?: ExpectedRevision, position?: bigint): unknown {
  if (error instanceof WrongExpectedVersionError) {
    const actual = error.actualVersion;
    return new WrongExpectedRevisionError(
      streamName ?? error.streamName,
      expected ?? 'any',
      typeof actual === 'bigint' ? actual : 'no_stream',
    );
  }
  if (error instanceof EsdbStreamNotFoundError) return new StreamNotFoundError(streamName ?? String(error.streamName));
  if (error instanceof EsdbStreamDeletedError) return new StreamDeletedError(streamName ?? String(error.streamName));
  const e = error as { type?: unknown; code?: unknown; message?: unknown } | undefined;
  // The client has no class for this status: it arrives as an UnknownError carrying the gRPC code.
  if (position !== undefined && e?.code === INVALID_ARGUMENT && /invalid position/i.test(String(e.message)))
    return new InvalidPositionError(position);
  if (e && (e.type === 'unavailable' || e.type === 'cancelled' || isUnknownOutcome(e) || e.code === 14)) {
    return new EventStoreUnavailableError(`EventStoreDB unavailable: ${String(e.message)}`, { cause: error });
  }
  return error;
}

const SCAVENGE_EVERY_MS = 24 * 3600_000;

/** The client's protected means of calling a service it does not wrap (as its own projection calls do). */
interface ClientInternals {
  execute<T>(
    service: typeof OperationsClient,
    debugName: string,
    action: (client: OperationsClient) => Promise<T>,
  ): Promise<T>;
  callArguments(options: object): [grpc.Metadata, grpc.CallOptions];
}
