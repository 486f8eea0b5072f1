import { randomUUID } from 'node:crypto';
import { isLeft } from 'fp-ts/lib/Either';
import type * as t from 'io-ts';
import { v5 as uuidv5 } from 'uuid';
import { DomainError, type Decider, type DomainEvent } from '../../domain/decider';
import { HeraldError } from '../../domain/heraldError';
import {
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
  type EventMetadata,
  type EventStore,
  type ReadStreamOptions,
  type RecordedEvent,
} from '../eventStore/eventStore';
import { currentSchemaVersion, schemaRefusal } from '../eventStore/upcastingEventStore';
import { currentCorrelationId } from '../runtime/correlation';

/** What the handler needs of an aggregate: its decider and the codec its stored events must pass. */
export interface Aggregate<Command, Event extends DomainEvent, State> {
  readonly decider: Decider<Command, Event, State>;
  readonly eventCodec: t.Decoder<unknown, Event>;
  /**
   * For a stream that grows with use, how much of it a decision needs (docs/architecture.md, "Stream
   * bounds"): its state is the fold of its `last` events, `evolve` making every earlier one irrelevant (a
   * unit test per aggregate checks this on generated histories), so loading reads at most max(last, 1)
   * events whatever the stream's length. `last: 0`: the state counts from the stream's current revision
   * (the initial state there; a conflict folds only what was written since). Absent: the whole stream,
   * for streams bounded by construction.
   */
  readonly window?: { readonly last: number };
}

export interface CommandContext {
  /**
   * Set when the request can be retried (a client resend, a redelivered message): event ids are derived
   * from it, so the retry appends nothing twice. Omitted → fresh ids.
   */
  readonly commandId?: string;
  readonly correlationId?: string;
  readonly causationId?: string;
  readonly appId?: string;
  readonly actor?: string;
}

/** A stream's state as folded from its events, with its revision and the position of its last event. */
export interface LoadedStream<State> {
  readonly state: State;
  /** -1n when the stream has no events. */
  readonly revision: bigint;
  readonly position?: bigint;
  /**
   * Ids of the stream's events that were read (not for `newStream`; a windowed load: its window's), which
   * tell a retried command (its commandId) from a new one.
   */
  readonly eventIds?: ReadonlySet<string>;
}

/**
 * A stream whose id the caller has just made (a fresh or request-derived id), so it almost certainly has
 * no events: passed to handleCommand, the command is decided without reading and appended with
 * `no_stream`. If the stream exists after all (a retried request), the append conflicts and the command
 * is decided again on what the stream holds.
 */
export function newStream<Command, Event extends DomainEvent, State>(
  aggregate: Aggregate<Command, Event, State>,
): LoadedStream<State> {
  return { state: aggregate.decider.initialState(), revision: -1n };
}

export interface CommandResult<Event, State> {
  readonly events: readonly Event[];
  readonly state: State;
  /** Revision of the stream after the command; -1n when it still has no events. */
  readonly revision: bigint;
  /**
   * What a reader must have seen to see the command's effect: the position of the last appended event,
   * or, when nothing was appended, of the stream's last event (its effect may be a concurrent caller's).
   * Undefined when the stream has no events.
   */
  readonly position?: bigint;
}

const EVENT_ID_NAMESPACE = '1b671a64-40d5-491e-99b0-da01ff1f3341';

/**
 * How long a command keeps deciding again while other writers win the append on its stream. Sized for
 * 32 writers on one stream: each round one of them wins, so the unluckiest may lose ~31 rounds; a
 * full-jitter back-off (a random wait up to base·2^attempt, capped) spreads the losers so that they do
 * not all collide again. Past either bound the caller gets StreamContendedError (each API's busy /
 * retry-later answer), never an internal error.
 */
export const CONFLICT_RETRY = { maxAttempts: 50, maxElapsedMs: 5_000, baseDelayMs: 4, maxDelayMs: 250 } as const;

/**
 * Other writers kept winning the append on one stream past CONFLICT_RETRY's bounds: nothing of the
 * command was appended, and the same request may be sent again after `retryAfterSeconds`.
 */
export class StreamContendedError extends HeraldError {
  override readonly name = 'StreamContendedError';
  constructor(
    readonly streamName: string,
    readonly attempts: number,
  ) {
    super('busy', 'too many concurrent changes to the same record; nothing was changed, retry in 1 s', 1);
  }
}

/**
 * The only writer: read the stream, fold, decide, append with the expected revision. On a concurrent
 * write it starts over (bounded by attempts and time, with jittered back-off), so the decision is always
 * made on fresh state.
 */
export async function handleCommand<Command, Event extends DomainEvent, State>(
  store: EventStore,
  aggregate: Aggregate<Command, Event, State>,
  streamName: string,
  command: Command,
  context: CommandContext = {},
  /** What the caller already knows of the stream (just loaded, or `newStream`): decided on without a read. */
  known?: LoadedStream<State>,
): Promise<CommandResult<Event, State>> {
  const { decider } = aggregate;
  const deadline = Date.now() + CONFLICT_RETRY.maxElapsedMs;
  let loaded = known ?? (await loadState(store, aggregate, streamName));
  for (let attempt = 1; ; attempt++) {
    const { state, revision, position } = loaded;
    // A command whose events the stream already holds was applied before (a client's retry): its effect
    // is what the store holds, whatever deciding again would give now. (Stores only take an append's
    // ids as a retry of it at the same revisions, so this cannot be left to them.)
    if (context.commandId && loaded.eventIds?.has(eventIdOf(streamName, context.commandId, 0))) {
      return { events: [], state, revision, ...(position !== undefined && { position }) };
    }
    const events = decider.decide(command, state);
    if (events.length === 0) return { events, state, revision, ...(position !== undefined && { position }) };

    const correlationId = context.correlationId ?? currentCorrelationId() ?? context.commandId ?? randomUUID();
    const metadata: EventMetadata = {
      correlationId,
      causationId: context.causationId ?? correlationId,
      ...(context.appId !== undefined && { appId: context.appId }),
      ...(context.actor !== undefined && { actor: context.actor }),
    };
    try {
      const result = await store.append(
        streamName,
        events.map((event, index) => ({
          id: context.commandId ? eventIdOf(streamName, context.commandId, index) : randomUUID(),
          type: event.type,
          data: event.data,
          metadata: { ...metadata, schemaVersion: currentSchemaVersion(event.type) },
        })),
        revision < 0n ? 'no_stream' : revision,
      );
      return {
        events,
        state: events.reduce(decider.evolve, state),
        revision: result.nextExpectedRevision,
        position: result.position,
      };
    } catch (error) {
      if (!(error instanceof WrongExpectedRevisionError)) throw asDomainError(error);
      // What the caller knew is out of date (the stream was not new, or someone wrote since it was read):
      // decide again on what the stream holds, at once; after that, with jittered back-off. Only the events
      // written since are read, folded onto what was known: a conflict costs what the others wrote, not the
      // stream's length.
      if (attempt > 1 || !known) {
        const delay = Math.random() * Math.min(CONFLICT_RETRY.maxDelayMs, CONFLICT_RETRY.baseDelayMs * 2 ** attempt);
        if (attempt >= CONFLICT_RETRY.maxAttempts || Date.now() + delay > deadline)
          throw new StreamContendedError(streamName, attempt);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
      // Knowing nothing (`newStream`), a windowed stream is loaded through its window, not read whole.
      loaded =
        loaded.revision < 0n && aggregate.window?.last !== 0
          ? await loadState(store, aggregate, streamName)
          : await loadSince(store, aggregate, streamName, loaded);
    }
  }
}

const eventIdOf = (streamName: string, commandId: string, index: number) =>
  uuidv5(`${streamName}/${commandId}/${index}`, EVENT_ID_NAMESPACE);

/**
 * The stream's state: the whole stream folded, or, for an aggregate with a `window`, only the events the
 * window names (a bounded read whatever the stream's length).
 */
export async function loadState<Command, Event extends DomainEvent, State>(
  store: EventStore,
  aggregate: Aggregate<Command, Event, State>,
  streamName: string,
): Promise<LoadedStream<State>> {
  const initial: LoadedStream<State> = { state: aggregate.decider.initialState(), revision: -1n };
  const { window } = aggregate;
  if (!window) return loadSince(store, aggregate, streamName, initial);
  const newest = await readOrNone(store, streamName, { direction: 'backwards', maxCount: Math.max(window.last, 1) });
  const last = newest[0];
  if (!last) return initial;
  let state = initial.state;
  for (const event of newest.slice(0, window.last).reverse())
    state = aggregate.decider.evolve(state, decodeEvent(aggregate.eventCodec, event));
  return { state, revision: last.revision, position: last.position, eventIds: new Set(newest.map((e) => e.id)) };
}

/** `known` brought up to date: the events after its revision folded onto its state. */
async function loadSince<Command, Event extends DomainEvent, State>(
  store: EventStore,
  aggregate: Aggregate<Command, Event, State>,
  streamName: string,
  known: LoadedStream<State>,
): Promise<LoadedStream<State>> {
  const recorded = await readOrNone(
    store,
    streamName,
    known.revision < 0n ? {} : { fromRevision: known.revision + 1n },
    known.revision,
  );
  let { state } = known;
  for (const event of recorded) state = aggregate.decider.evolve(state, decodeEvent(aggregate.eventCodec, event));
  const last = recorded[recorded.length - 1];
  const position = last?.position ?? known.position;
  return {
    state,
    revision: last?.revision ?? known.revision,
    ...(position !== undefined && { position }),
    eventIds: new Set([...(known.eventIds ?? []), ...recorded.map((e) => e.id)]),
  };
}

/**
 * The stream's events as asked; none when it does not exist. A stream retention removed is no stream
 * (docs/operations.md, "Retention"): a command on it decides on the initial state, as on a name never
 * used — each aggregate refuses there what only an existing thing takes (a late attempt, outcome or
 * confirmation answers not_found; test/int/retention.int.spec.ts). One known to hold events (`known`
 * revision ≥ 0) that now reads as none was removed under the caller: not_found, never decided on again
 * from the start (its append would conflict forever and answer "busy").
 */
async function readOrNone(
  store: EventStore,
  streamName: string,
  options: ReadStreamOptions,
  knownRevision = -1n,
): Promise<RecordedEvent[]> {
  try {
    return await store.readStream(streamName, options);
  } catch (error) {
    if (!(error instanceof StreamNotFoundError)) throw asDomainError(error);
    if (knownRevision >= 0n)
      throw new DomainError('not_found', `${streamName} was removed by retention (it ended long ago)`);
    return [];
  }
}

/** A stream an operator deleted is, to every command, a thing that no longer exists. */
function asDomainError(error: unknown): unknown {
  return error instanceof StreamDeletedError ? new DomainError('not_found', `${error.streamName} was deleted`) : error;
}

/**
 * Stored events pass their codec on the way in, like any other input; a failure means a corrupt stream,
 * or an event of a newer herald (its schema version), on which this one must not decide.
 */
export function decodeEvent<Event>(codec: t.Decoder<unknown, Event>, event: RecordedEvent): Event {
  const refusal = schemaRefusal(event);
  if (refusal !== undefined)
    throw new Error(`event ${event.id} (${event.type}) in ${event.streamName} cannot be read: ${refusal}`);
  const decoded = codec.decode({ type: event.type, data: event.data });
  if (isLeft(decoded))
    throw new Error(`event ${event.id} (${event.type}) in ${event.streamName} does not match its codec`);
  return decoded.right;
}
