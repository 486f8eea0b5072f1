/**
 * TEST DOUBLE — this is not EventStoreDB. It is a protocol-level stand-in that speaks the part of
 * EventStoreDB's gRPC API that herald's adapter uses, so the event store contract suite can run against
 * the real @eventstore/db-client without a server. It is built on @grpc/grpc-js with the service
 * definitions and message classes the client itself ships (`@eventstore/db-client/generated/*`), and
 * follows the behaviour recorded in shared/notes/eventstoredb-protocol.md:
 *
 * - ServerFeatures.GetSupportedMethods lists Streams.BatchAppend when `batchAppend` is on; otherwise it
 *   answers UNIMPLEMENTED, like servers before BatchAppend, and the client falls back to Streams.Append.
 * - Streams.Append (client streaming: options, then one message per event) answers `success` or
 *   `wrong_expected_version`; Streams.BatchAppend (bidirectional, grouped by correlation id until
 *   `is_final`) answers `success` or a google.rpc.Status (code 9) packing WrongExpectedVersion.
 * - Streams.Read: stream and $all reads (forwards/backwards, from start/end/revision/position, inclusive
 *   of the start), `stream_not_found` then end for a missing stream; subscriptions (exclusive of their
 *   start) send a confirmation, the history, CaughtUp, then live events; stream-name and event-type
 *   filters by prefix or regex.
 * - 64-bit numbers travel as decimal strings, event ids as UUID strings, `created` as .NET ticks.
 *   Positions are byte offsets of a pretend log: increasing, not contiguous — as on a real server.
 *
 * - The server's failure answers: a retry it recognises (its idempotency check, `checkCommit` below)
 *   succeeds without a position; a tombstoned stream answers StreamDeleted (BatchAppend: a Status packing
 *   `StreamDeleted`; Append and reads: a FAILED_PRECONDITION status with the `exception: stream-deleted`
 *   trailer); a commit that times out answers Timeout (BatchAppend: a Status packing `Timeout`; Append:
 *   ABORTED), whether or not the events were written — `timeOutNextAppends` makes the next appends do that;
 *   a read or subscription of $all from a position that is no record's answers INVALID_ARGUMENT "Trying to
 *   read from an invalid position."
 *
 * - Stream metadata (retention, issue 26): a `$metadata` event appended to `$$<stream>` (the client's
 *   setStreamMetadata) sets `$tb` (truncate before: revisions below it no longer read) and `$maxAge`
 *   (seconds: older events no longer read) for that stream's reads and subscriptions. A stream whose every
 *   event is hidden so reads as empty (it exists: its revision counts on, `no_stream` conflicts). As on the
 *   server, $all reads still show hidden events until a scavenge (Operations.StartScavenge) takes them out
 *   of the log — all but each stream's last event, which a scavenge keeps; their positions stay valid starts
 *   for a read of $all.
 *
 * Not implemented (herald does not use them): soft Delete, tombstone's expected revision, persistent
 * subscriptions, projections, ACLs, structured UUIDs, link resolution, checkpoints. With EVENTSTORE_URL set,
 * the same contract suite runs against a real server instead (test/contract/eventStoreDbEventStore.int.spec.ts).
 */
import { randomUUID } from 'node:crypto';
import type { Code } from '@eventstore/db-client/generated/code_pb';
import { OperationsService } from '@eventstore/db-client/generated/operations_grpc_pb';
import { ScavengeResp, type StartScavengeReq } from '@eventstore/db-client/generated/operations_pb';
import { ServerFeaturesService } from '@eventstore/db-client/generated/serverfeatures_grpc_pb';
import { SupportedMethod, SupportedMethods } from '@eventstore/db-client/generated/serverfeatures_pb';
import {
  AllStreamPosition,
  Empty,
  StreamDeleted,
  StreamIdentifier,
  Timeout,
  UUID,
  WrongExpectedVersion as SharedWrongExpectedVersion,
} from '@eventstore/db-client/generated/shared_pb';
import { Status } from '@eventstore/db-client/generated/status_pb';
import { StreamsService } from '@eventstore/db-client/generated/streams_grpc_pb';
import {
  AppendReq,
  AppendResp,
  BatchAppendReq,
  BatchAppendResp,
  ReadReq,
  ReadResp,
  TombstoneReq,
  TombstoneResp,
} from '@eventstore/db-client/generated/streams_pb';
import * as grpc from '@grpc/grpc-js';
import { Any } from 'google-protobuf/google/protobuf/any_pb';

interface StoredEvent {
  readonly id: string;
  readonly streamName: string;
  readonly revision: bigint;
  readonly position: bigint;
  readonly metadata: ReadonlyMap<string, string>;
  readonly data: Uint8Array;
  readonly customMetadata: Uint8Array;
}

type Expected =
  { kind: 'any' } | { kind: 'no_stream' } | { kind: 'stream_exists' } | { kind: 'revision'; revision: bigint };

interface ProposedEvent {
  readonly id: string;
  readonly metadata: ReadonlyMap<string, string>;
  readonly data: Uint8Array;
  readonly customMetadata: Uint8Array;
}

type AppendOutcome =
  | { kind: 'written'; revision: bigint; position: bigint }
  /** A retry of events already stored: the server answers success with `no_position`. */
  | { kind: 'retried'; revision: bigint }
  | { kind: 'wrong_expected_version'; current: bigint | 'no_stream' }
  | { kind: 'stream_deleted' }
  | { kind: 'timeout' };

export class EventStoreDbStandIn {
  private readonly log: StoredEvent[] = [];
  private readonly streams = new Map<string, StoredEvent[]>();
  private readonly liveListeners = new Set<(event: StoredEvent) => void>();
  private readonly recordPositions = new Set<bigint>();
  private readonly tombstoned = new Set<string>();
  private readonly pendingTimeouts: Array<{ readonly written: boolean }> = [];
  private nextPosition = 4096n;
  /** How many appends arrived on each path, so a test can tell which one the client took. */
  readonly appendCalls = { append: 0, batchAppend: 0 };
  /** Scavenges asked for. */
  scavenges = 0;
  private truncatedReadsAsNotFound = false;

  private constructor(
    private readonly server: grpc.Server,
    readonly port: number,
  ) {}

  static async start(options: {
    readonly batchAppend: boolean;
    /**
     * Answer a read of a stream whose every event `$tb` truncated as not found (a server's soft delete,
     * which is a `$tb` too, reads so) instead of empty: herald must read it as empty either way.
     */
    readonly truncatedReadsAsNotFound?: boolean;
  }): Promise<EventStoreDbStandIn> {
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, boundPort) =>
        error ? reject(error) : resolve(boundPort),
      ),
    );
    const standIn = new EventStoreDbStandIn(server, port);
    standIn.truncatedReadsAsNotFound = options.truncatedReadsAsNotFound ?? false;
    server.addService(StreamsService, {
      read: (call: grpc.ServerWritableStream<ReadReq, ReadResp>) => standIn.read(call),
      append: (call: grpc.ServerReadableStream<AppendReq, AppendResp>, callback: grpc.sendUnaryData<AppendResp>) =>
        standIn.appendCall(call, callback),
      batchAppend: (call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>) => standIn.batchAppendCall(call),
      delete: (_call: unknown, callback: grpc.sendUnaryData<never>) =>
        callback({ code: grpc.status.UNIMPLEMENTED, details: 'not in the stand-in' }),
      tombstone: (
        call: grpc.ServerUnaryCall<TombstoneReq, TombstoneResp>,
        callback: grpc.sendUnaryData<TombstoneResp>,
      ) => standIn.tombstoneCall(call, callback),
    });
    server.addService(OperationsService, {
      startScavenge: (
        _call: grpc.ServerUnaryCall<StartScavengeReq, ScavengeResp>,
        callback: grpc.sendUnaryData<ScavengeResp>,
      ) => {
        standIn.scavenge();
        standIn.scavenges++;
        callback(
          null,
          new ScavengeResp().setScavengeId(randomUUID()).setScavengeResult(ScavengeResp.ScavengeResult.STARTED),
        );
      },
    });
    server.addService(ServerFeaturesService, {
      getSupportedMethods: (_call: unknown, callback: grpc.sendUnaryData<SupportedMethods>) => {
        if (!options.batchAppend)
          return callback({ code: grpc.status.UNIMPLEMENTED, details: 'server features are not supported' });
        const methods = new SupportedMethods();
        methods.setEventStoreServerVersion('23.10.0-stand-in');
        for (const name of ['Read', 'Append', 'BatchAppend']) {
          const method = new SupportedMethod();
          method.setServiceName('event_store.client.streams.Streams');
          method.setMethodName(name);
          if (name === 'BatchAppend') method.setFeaturesList(['batchappend']);
          methods.addMethods(method);
        }
        callback(null, methods);
      },
    });
    return standIn;
  }

  get connectionString(): string {
    return `esdb://127.0.0.1:${this.port}?tls=false`;
  }

  async stop(): Promise<void> {
    this.liveListeners.clear();
    this.server.forceShutdown();
  }

  /**
   * Fault injection: the next `count` appends time out, as a server's commit phase can (0 clears).
   * `written: true` writes the events first (the client cannot tell), `false` writes nothing.
   */
  timeOutNextAppends(count: number, options: { readonly written: boolean }): void {
    this.pendingTimeouts.length = 0;
    for (let i = 0; i < count; i++) this.pendingTimeouts.push(options);
  }

  // --- writes -------------------------------------------------------------------------------------

  private tombstoneCall(
    call: grpc.ServerUnaryCall<TombstoneReq, TombstoneResp>,
    callback: grpc.sendUnaryData<TombstoneResp>,
  ): void {
    const streamName = streamNameOf(call.request.getOptions()?.getStreamIdentifier());
    if (this.tombstoned.has(streamName)) return callback(streamDeletedStatus(streamName));
    this.tombstoned.add(streamName);
    this.streams.delete(streamName);
    // The server records the deletion in $all as a system event.
    const [tombstone] = this.record(streamName, BigInt(Number.MAX_SAFE_INTEGER), [
      {
        id: randomUUID(),
        metadata: new Map([
          ['type', '$streamDeleted'],
          ['content-type', 'application/octet-stream'],
        ]),
        data: new Uint8Array(),
        customMetadata: new Uint8Array(),
      },
    ]);
    const position = new TombstoneResp.Position();
    position.setCommitPosition(tombstone!.position.toString());
    position.setPreparePosition(tombstone!.position.toString());
    callback(null, new TombstoneResp().setPosition(position));
  }

  private appendCall(
    call: grpc.ServerReadableStream<AppendReq, AppendResp>,
    callback: grpc.sendUnaryData<AppendResp>,
  ): void {
    let streamName = '';
    let expected: Expected = { kind: 'any' };
    const proposed: ProposedEvent[] = [];
    call.on('data', (request: AppendReq) => {
      const options = request.getOptions();
      if (options) {
        streamName = streamNameOf(options.getStreamIdentifier());
        expected = expectedOf(options, options.hasRevision() ? options.getRevision() : undefined);
      }
      const message = request.getProposedMessage();
      if (message) proposed.push(toProposed(message));
    });
    call.on('end', () => {
      this.appendCalls.append++;
      const outcome = this.append(streamName, expected, proposed);
      if (outcome.kind === 'stream_deleted') return callback(streamDeletedStatus(streamName));
      if (outcome.kind === 'timeout')
        return callback({ code: grpc.status.ABORTED, details: 'Operation timed out: Commit phase timeout.' });
      const response = new AppendResp();
      if (outcome.kind === 'written' || outcome.kind === 'retried') {
        const success = new AppendResp.Success();
        success.setCurrentRevision(outcome.revision.toString());
        if (outcome.kind === 'written') {
          const position = new AppendResp.Position();
          position.setCommitPosition(outcome.position.toString());
          position.setPreparePosition(outcome.position.toString());
          success.setPosition(position);
        } else {
          success.setNoPosition(new Empty());
        }
        response.setSuccess(success);
      } else {
        const wrong = new AppendResp.WrongExpectedVersion();
        if (outcome.current === 'no_stream') wrong.setCurrentNoStream(new Empty());
        else wrong.setCurrentRevision(outcome.current.toString());
        switch (expected.kind) {
          case 'revision':
            wrong.setExpectedRevision(expected.revision.toString());
            break;
          case 'no_stream':
            wrong.setExpectedNoStream(new Empty());
            break;
          case 'stream_exists':
            wrong.setExpectedStreamExists(new Empty());
            break;
          case 'any':
            wrong.setExpectedAny(new Empty());
        }
        response.setWrongExpectedVersion(wrong);
      }
      callback(null, response);
    });
  }

  private batchAppendCall(call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>): void {
    const pending = new Map<
      string,
      { streamName: string; expected: Expected; identifier: StreamIdentifier; proposed: ProposedEvent[] }
    >();
    call.on('data', (request: BatchAppendReq) => {
      const correlationId = request.getCorrelationId()?.getString() ?? '';
      let batch = pending.get(correlationId);
      const options = request.getOptions();
      if (!batch) {
        if (!options) return; // the first request of a batch carries its options
        const expected = expectedOf(options, options.hasStreamPosition() ? options.getStreamPosition() : undefined);
        batch = {
          streamName: streamNameOf(options.getStreamIdentifier()),
          expected,
          identifier: options.getStreamIdentifier()!,
          proposed: [],
        };
        pending.set(correlationId, batch);
      }
      for (const message of request.getProposedMessagesList()) batch.proposed.push(toProposed(message));
      if (!request.getIsFinal()) return;
      pending.delete(correlationId);
      this.appendCalls.batchAppend++;

      const outcome = this.append(batch.streamName, batch.expected, batch.proposed);
      const response = new BatchAppendResp();
      response.setCorrelationId(request.getCorrelationId());
      response.setStreamIdentifier(batch.identifier);
      if (outcome.kind === 'written' || outcome.kind === 'retried') {
        const success = new BatchAppendResp.Success();
        success.setCurrentRevision(outcome.revision.toString());
        if (outcome.kind === 'written') {
          const position = new AllStreamPosition();
          position.setCommitPosition(outcome.position.toString());
          position.setPreparePosition(outcome.position.toString());
          success.setPosition(position);
        } else {
          success.setNoPosition(new Empty());
        }
        response.setSuccess(success);
      } else if (outcome.kind === 'wrong_expected_version') {
        const details = new SharedWrongExpectedVersion();
        if (outcome.current === 'no_stream') details.setCurrentNoStream(new Empty());
        else details.setCurrentStreamRevision(outcome.current.toString());
        const expected = batch.expected;
        if (expected.kind === 'revision') details.setExpectedStreamPosition(expected.revision.toString());
        else if (expected.kind === 'no_stream') details.setExpectedNoStream(new Empty());
        else if (expected.kind === 'stream_exists') details.setExpectedStreamExists(new Empty());
        else details.setExpectedAny(new Empty());
        response.setError(
          packedStatus(
            grpc.status.FAILED_PRECONDITION,
            'WrongExpectedVersion',
            details,
            'event_store.client.WrongExpectedVersion',
          ),
        );
      } else if (outcome.kind === 'stream_deleted') {
        const details = new StreamDeleted().setStreamIdentifier(batch.identifier);
        response.setError(
          packedStatus(grpc.status.FAILED_PRECONDITION, 'StreamDeleted', details, 'event_store.client.StreamDeleted'),
        );
      } else {
        response.setError(
          packedStatus(grpc.status.DEADLINE_EXCEEDED, 'Timeout', new Timeout(), 'event_store.client.Timeout'),
        );
      }
      call.write(response);
    });
    call.on('end', () => call.end());
  }

  /** The store's one write path: an injected fault, or `write`: deletion, idempotency, expected revision, then the log. */
  private append(streamName: string, expected: Expected, proposed: readonly ProposedEvent[]): AppendOutcome {
    const timeout = this.pendingTimeouts.shift();
    if (!timeout) return this.write(streamName, expected, proposed);
    if (timeout.written) this.write(streamName, expected, proposed);
    return { kind: 'timeout' };
  }

  private write(streamName: string, expected: Expected, proposed: readonly ProposedEvent[]): AppendOutcome {
    if (this.tombstoned.has(streamName)) return { kind: 'stream_deleted' };
    const stream = this.streams.get(streamName) ?? [];
    const current = stream.length === 0 ? ('no_stream' as const) : BigInt(stream.length - 1);

    const retry = checkCommit(stream, expected, proposed);
    if (retry === 'conflict') return { kind: 'wrong_expected_version', current };
    if (retry) return { kind: 'retried', revision: retry.revision };

    const holds =
      expected.kind === 'any' ||
      (expected.kind === 'no_stream' && current === 'no_stream') ||
      (expected.kind === 'stream_exists' && current !== 'no_stream') ||
      (expected.kind === 'revision' && current === expected.revision);
    if (!holds) return { kind: 'wrong_expected_version', current };

    const written = this.record(streamName, BigInt(stream.length), proposed);
    stream.push(...written);
    this.streams.set(streamName, stream);
    const last = written[written.length - 1]!;
    return { kind: 'written', revision: last.revision, position: last.position };
  }

  /** Writes records to the log at the next positions and hands them to live subscribers. */
  private record(streamName: string, firstRevision: bigint, proposed: readonly ProposedEvent[]): StoredEvent[] {
    const created = (BigInt(Date.now()) * 10_000n).toString(); // .NET ticks since the Unix epoch
    const written: StoredEvent[] = proposed.map((p, index) => {
      const position = this.nextPosition;
      this.nextPosition += BigInt(64 + p.data.length + p.customMetadata.length);
      this.recordPositions.add(position);
      return {
        id: p.id,
        streamName,
        revision: firstRevision + BigInt(index),
        position,
        metadata: new Map([...p.metadata, ['created', created]]),
        data: p.data,
        customMetadata: p.customMetadata,
      };
    });
    this.log.push(...written);
    for (const event of written) for (const listener of this.liveListeners) listener(event);
    return written;
  }

  // --- stream metadata and scavenging ---------------------------------------------------------------

  /** The stream's metadata as its newest `$metadata` event in `$$<stream>` says: `$tb`, `$maxAge` (seconds). */
  private metadataOf(streamName: string): { readonly tb?: bigint; readonly maxAgeMs?: number } {
    const meta = this.streams.get(`$$${streamName}`);
    const newest = meta?.[meta.length - 1];
    if (!newest || newest.metadata.get('type') !== '$metadata') return {};
    const json = JSON.parse(Buffer.from(newest.data).toString('utf8')) as { $tb?: number; $maxAge?: number };
    return {
      ...(typeof json.$tb === 'number' && { tb: BigInt(json.$tb) }),
      ...(typeof json.$maxAge === 'number' && { maxAgeMs: json.$maxAge * 1000 }),
    };
  }

  /** A stream's events its metadata leaves readable (the server applies it on stream reads, not on $all). */
  private visible(streamName: string, events: readonly StoredEvent[]): StoredEvent[] {
    const { tb, maxAgeMs } = this.metadataOf(streamName);
    const now = Date.now();
    return events.filter(
      (e) =>
        (tb === undefined || e.revision >= tb) &&
        (maxAgeMs === undefined || now - Number(BigInt(e.metadata.get('created') ?? '0') / 10_000n) <= maxAgeMs),
    );
  }

  /**
   * A scavenge, done at once: what stream metadata hides leaves the log ($all), except each stream's last
   * event, which the server always keeps ("scavenge will always keep one event in the stream even if the
   * stream was deleted"); streams keep their revisions.
   */
  private scavenge(): void {
    const hidden = new Set<StoredEvent>();
    for (const [name, events] of this.streams) {
      if (name.startsWith('$$')) continue;
      const visible = new Set(this.visible(name, events));
      for (const event of events.slice(0, -1)) if (!visible.has(event)) hidden.add(event);
    }
    const kept = this.log.filter((e) => !hidden.has(e));
    this.log.length = 0;
    this.log.push(...kept);
  }

  // --- reads and subscriptions --------------------------------------------------------------------

  private read(call: grpc.ServerWritableStream<ReadReq, ReadResp>): void {
    const options = call.request.getOptions();
    if (!options) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'missing read options' });
      return;
    }
    const backwards = options.getReadDirection() === ReadReq.Options.ReadDirection.BACKWARDS;
    const matches = eventMatcher(options);
    const subscribing = options.hasSubscription();

    let history: StoredEvent[];
    let streamName: string | undefined;
    if (options.hasStream()) {
      const streamOptions = options.getStream()!;
      streamName = streamNameOf(streamOptions.getStreamIdentifier());
      if (this.tombstoned.has(streamName)) {
        call.emit('error', streamDeletedStatus(streamName));
        return;
      }
      const stream = this.streams.get(streamName);
      const truncatedAway =
        this.truncatedReadsAsNotFound &&
        stream !== undefined &&
        this.metadataOf(streamName).tb !== undefined &&
        this.visible(streamName, stream).length === 0;
      if ((!stream || truncatedAway) && !subscribing) {
        const notFound = new ReadResp.StreamNotFound();
        notFound.setStreamIdentifier(streamOptions.getStreamIdentifier());
        const response = new ReadResp();
        response.setStreamNotFound(notFound);
        call.write(response);
        call.end();
        return;
      }
      const stored = stream ?? [];
      const events = this.visible(streamName, stored);
      const C = ReadReq.Options.StreamOptions.RevisionOptionCase;
      const from =
        streamOptions.getRevisionOptionCase() === C.REVISION
          ? BigInt(streamOptions.getRevision())
          : streamOptions.getRevisionOptionCase() === C.END
            ? BigInt(stored.length - 1)
            : subscribing
              ? -1n
              : 0n;
      // Reads include their start revision; subscriptions start after it.
      history = subscribing
        ? streamOptions.getRevisionOptionCase() === C.END
          ? []
          : events.filter((e) => e.revision > from)
        : backwards
          ? events.filter((e) => e.revision <= from).reverse()
          : events.filter((e) => e.revision >= from);
    } else {
      const allOptions = options.getAll()!;
      const C = ReadReq.Options.AllOptions.AllOptionCase;
      const start =
        allOptions.getAllOptionCase() === C.POSITION
          ? BigInt(allOptions.getPosition()!.getCommitPosition())
          : undefined;
      const atEnd = allOptions.getAllOptionCase() === C.END;
      // A position must be a record's (or the end of the log, where the next one goes).
      if (start !== undefined && start !== this.nextPosition && !this.recordPositions.has(start)) {
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'Trying to read from an invalid position.' });
        return;
      }
      if (subscribing) history = atEnd ? [] : this.log.filter((e) => start === undefined || e.position > start);
      else if (backwards)
        history = (
          atEnd || start === undefined ? [...this.log] : this.log.filter((e) => e.position <= start)
        ).reverse();
      else history = atEnd ? [] : this.log.filter((e) => start === undefined || e.position >= start);
    }
    history = history.filter(matches);

    if (!subscribing) {
      const count = Number(options.getCount() || '0');
      for (const event of history.slice(0, count)) call.write(eventResponse(event));
      call.end();
      return;
    }

    // Subscription: confirmation, history, CaughtUp, then live. The live listener is registered in the
    // same tick as the history is taken, so no append can fall between the two.
    const confirmation = new ReadResp.SubscriptionConfirmation();
    confirmation.setSubscriptionId(randomUUID());
    call.write(new ReadResp().setConfirmation(confirmation));
    const listener = (event: StoredEvent) => {
      if ((streamName === undefined || event.streamName === streamName) && matches(event))
        call.write(eventResponse(event));
    };
    this.liveListeners.add(listener);
    const unsubscribe = () => this.liveListeners.delete(listener);
    call.on('cancelled', unsubscribe);
    call.on('close', unsubscribe);
    call.on('error', unsubscribe);
    for (const event of history) call.write(eventResponse(event));
    call.write(new ReadResp().setCaughtUp(new ReadResp.CaughtUp()));
  }
}

function streamDeletedStatus(streamName: string): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set('exception', 'stream-deleted');
  metadata.set('stream-name', streamName);
  return { code: grpc.status.FAILED_PRECONDITION, details: `Event stream '${streamName}' is deleted.`, metadata };
}

/** BatchAppend's per-append errors: a google.rpc.Status whose details pack one of the shared messages. */
function packedStatus(
  code: grpc.status,
  message: string,
  details: { serializeBinary(): Uint8Array },
  typeName: string,
): Status {
  const packed = new Any();
  packed.pack(details.serializeBinary(), typeName);
  const status = new Status();
  status.setCode(code as number as Code); // google.rpc.Code numbers are gRPC's status codes
  status.setMessage(message);
  status.setDetails(packed);
  return status;
}

/** Append and BatchAppend carry the expected revision in differently numbered oneofs of the same shape. */
function expectedOf(
  options: { hasNoStream(): boolean; hasStreamExists(): boolean },
  revision: string | undefined,
): Expected {
  if (revision !== undefined) return { kind: 'revision', revision: BigInt(revision) };
  if (options.hasNoStream()) return { kind: 'no_stream' };
  if (options.hasStreamExists()) return { kind: 'stream_exists' };
  return { kind: 'any' };
}

function eventMatcher(options: ReadReq.Options): (event: StoredEvent) => boolean {
  const filter = options.getFilter();
  if (!filter) return () => true;
  const byStream = filter.hasStreamIdentifier();
  const expression = byStream ? filter.getStreamIdentifier()! : filter.getEventType()!;
  const prefixes = expression.getPrefixList();
  const regex = expression.getRegex() ? new RegExp(expression.getRegex()) : undefined;
  return (event) => {
    const subject = byStream ? event.streamName : (event.metadata.get('type') ?? '');
    if (prefixes.length > 0) return prefixes.some((p) => subject.startsWith(p));
    return regex ? regex.test(subject) : true;
  };
}

function eventResponse(event: StoredEvent): ReadResp {
  const recorded = new ReadResp.ReadEvent.RecordedEvent();
  recorded.setId(new UUID().setString(event.id));
  recorded.setStreamIdentifier(new StreamIdentifier().setStreamName(Buffer.from(event.streamName, 'utf8')));
  recorded.setStreamRevision(event.revision.toString());
  recorded.setCommitPosition(event.position.toString());
  recorded.setPreparePosition(event.position.toString());
  for (const [key, value] of event.metadata) recorded.getMetadataMap().set(key, value);
  recorded.setData(event.data);
  recorded.setCustomMetadata(event.customMetadata);
  const readEvent = new ReadResp.ReadEvent();
  readEvent.setEvent(recorded);
  readEvent.setCommitPosition(event.position.toString());
  return new ReadResp().setEvent(readEvent);
}

function toProposed(message: AppendReq.ProposedMessage | BatchAppendReq.ProposedMessage): ProposedEvent {
  const metadata = new Map<string, string>();
  message.getMetadataMap().forEach((value, key) => metadata.set(key, value));
  return {
    id: (message.getId()?.getString() ?? '').toLowerCase(),
    metadata,
    data: message.getData_asU8(),
    customMetadata: message.getCustomMetadata_asU8(),
  };
}

function streamNameOf(identifier: StreamIdentifier | undefined): string {
  return Buffer.from(identifier?.getStreamName_asU8() ?? new Uint8Array()).toString('utf8');
}

/**
 * The server's idempotency check (EventStoreDB's IndexWriter.CheckCommit), for an append whose ids may
 * be stored already: with an expected revision (or no_stream) behind the stream's, a retry must be the
 * very events at the revisions right after it, in order; with any/stream_exists, all of its ids in the
 * stream. A partial or shifted match is "corrupted idempotency", which the client sees as a wrong
 * expected version. Returns the stored last event of an accepted retry, 'conflict', or undefined for
 * an append to check and write as new. (The server looks ids up in a bounded cache; this one never
 * forgets, which only matters for retries long after the fact.)
 */
function checkCommit(
  stream: readonly StoredEvent[],
  expected: Expected,
  proposed: readonly ProposedEvent[],
): StoredEvent | 'conflict' | undefined {
  if (proposed.length === 0) return undefined;
  const current = BigInt(stream.length - 1);
  if (expected.kind === 'any' || expected.kind === 'stream_exists') {
    const stored = proposed.map((p) => stream.find((e) => e.id === p.id));
    if (stored[0] === undefined) return undefined;
    return stored.every((e) => e !== undefined) ? stored[stored.length - 1]! : 'conflict';
  }
  const from = expected.kind === 'no_stream' ? -1n : expected.revision;
  if (from >= current) return undefined; // at (or past) the head: the expected-revision check decides
  for (const [i, p] of proposed.entries()) {
    const at = stream[Number(from) + 1 + i];
    if (!at || at.id !== p.id) return 'conflict';
  }
  return stream[Number(from) + proposed.length]!;
}
