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
 * Not implemented (herald does not use them): Delete, Tombstone, persistent subscriptions, projections,
 * ACLs, structured UUIDs, link resolution, checkpoints. With EVENTSTORE_URL set, the same contract suite
 * runs against a real server instead (test/contract/eventStoreDbEventStore.int.spec.ts).
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Any } from 'google-protobuf/google/protobuf/any_pb';
import { ServerFeaturesService } from '@eventstore/db-client/generated/serverfeatures_grpc_pb';
import { SupportedMethod, SupportedMethods } from '@eventstore/db-client/generated/serverfeatures_pb';
import { AllStreamPosition, Empty, StreamIdentifier, UUID, WrongExpectedVersion as SharedWrongExpectedVersion } from '@eventstore/db-client/generated/shared_pb';
import { Status } from '@eventstore/db-client/generated/status_pb';
import { StreamsService } from '@eventstore/db-client/generated/streams_grpc_pb';
import { AppendReq, AppendResp, BatchAppendReq, BatchAppendResp, ReadReq, ReadResp } from '@eventstore/db-client/generated/streams_pb';

interface StoredEvent {
  readonly id: string;
  readonly streamName: string;
  readonly revision: bigint;
  readonly position: bigint;
  readonly metadata: ReadonlyMap<string, string>;
  readonly data: Uint8Array;
  readonly customMetadata: Uint8Array;
}

type Expected = { kind: 'any' } | { kind: 'no_stream' } | { kind: 'stream_exists' } | { kind: 'revision'; revision: bigint };

interface ProposedEvent {
  readonly id: string;
  readonly metadata: ReadonlyMap<string, string>;
  readonly data: Uint8Array;
  readonly customMetadata: Uint8Array;
}

type AppendOutcome =
  | { ok: true; revision: bigint; position: bigint }
  | { ok: false; current: bigint | 'no_stream' };

// gRPC status FAILED_PRECONDITION, which servers use for a wrong expected version on BatchAppend.
const FAILED_PRECONDITION = 9;

export class EventStoreDbStandIn {
  private readonly log: StoredEvent[] = [];
  private readonly streams = new Map<string, StoredEvent[]>();
  private readonly liveListeners = new Set<(event: StoredEvent) => void>();
  private nextPosition = 4096n;
  /** How many appends arrived on each path, so a test can tell which one the client took. */
  readonly appendCalls = { append: 0, batchAppend: 0 };

  private constructor(
    private readonly server: grpc.Server,
    readonly port: number,
  ) {}

  static async start(options: { readonly batchAppend: boolean }): Promise<EventStoreDbStandIn> {
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, boundPort) => (error ? reject(error) : resolve(boundPort))),
    );
    const standIn = new EventStoreDbStandIn(server, port);
    server.addService(StreamsService, {
      read: (call: grpc.ServerWritableStream<ReadReq, ReadResp>) => standIn.read(call),
      append: (call: grpc.ServerReadableStream<AppendReq, AppendResp>, callback: grpc.sendUnaryData<AppendResp>) => standIn.appendCall(call, callback),
      batchAppend: (call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>) => standIn.batchAppendCall(call),
      delete: (_call: unknown, callback: grpc.sendUnaryData<never>) => callback({ code: grpc.status.UNIMPLEMENTED, details: 'not in the stand-in' }),
      tombstone: (_call: unknown, callback: grpc.sendUnaryData<never>) => callback({ code: grpc.status.UNIMPLEMENTED, details: 'not in the stand-in' }),
    });
    server.addService(ServerFeaturesService, {
      getSupportedMethods: (_call: unknown, callback: grpc.sendUnaryData<SupportedMethods>) => {
        if (!options.batchAppend) return callback({ code: grpc.status.UNIMPLEMENTED, details: 'server features are not supported' });
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

  // --- writes -------------------------------------------------------------------------------------

  private appendCall(call: grpc.ServerReadableStream<AppendReq, AppendResp>, callback: grpc.sendUnaryData<AppendResp>): void {
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
      const response = new AppendResp();
      if (outcome.ok) {
        const success = new AppendResp.Success();
        success.setCurrentRevision(outcome.revision.toString());
        const position = new AppendResp.Position();
        position.setCommitPosition(outcome.position.toString());
        position.setPreparePosition(outcome.position.toString());
        success.setPosition(position);
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
    const pending = new Map<string, { streamName: string; expected: Expected; identifier: StreamIdentifier; proposed: ProposedEvent[] }>();
    call.on('data', (request: BatchAppendReq) => {
      const correlationId = request.getCorrelationId()?.getString() ?? '';
      let batch = pending.get(correlationId);
      const options = request.getOptions();
      if (!batch) {
        if (!options) return; // the first request of a batch carries its options
        const expected = expectedOf(options, options.hasStreamPosition() ? options.getStreamPosition() : undefined);
        batch = { streamName: streamNameOf(options.getStreamIdentifier()), expected, identifier: options.getStreamIdentifier()!, proposed: [] };
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
      if (outcome.ok) {
        const success = new BatchAppendResp.Success();
        success.setCurrentRevision(outcome.revision.toString());
        const position = new AllStreamPosition();
        position.setCommitPosition(outcome.position.toString());
        position.setPreparePosition(outcome.position.toString());
        success.setPosition(position);
        response.setSuccess(success);
      } else {
        const details = new SharedWrongExpectedVersion();
        if (outcome.current === 'no_stream') details.setCurrentNoStream(new Empty());
        else details.setCurrentStreamRevision(outcome.current.toString());
        const expected = batch.expected;
        if (expected.kind === 'revision') details.setExpectedStreamPosition(expected.revision.toString());
        else if (expected.kind === 'no_stream') details.setExpectedNoStream(new Empty());
        else if (expected.kind === 'stream_exists') details.setExpectedStreamExists(new Empty());
        else details.setExpectedAny(new Empty());
        const packed = new Any();
        packed.pack(details.serializeBinary(), 'event_store.client.WrongExpectedVersion');
        const status = new Status();
        status.setCode(FAILED_PRECONDITION);
        status.setMessage('WrongExpectedVersion');
        status.setDetails(packed);
        response.setError(status);
      }
      call.write(response);
    });
    call.on('end', () => call.end());
  }

  /** The store's one write path: idempotency, expected-revision check, then the log and live listeners. */
  private append(streamName: string, expected: Expected, proposed: readonly ProposedEvent[]): AppendOutcome {
    const stream = this.streams.get(streamName) ?? [];
    const current = stream.length === 0 ? ('no_stream' as const) : BigInt(stream.length - 1);

    const retry = checkCommit(stream, expected, proposed);
    if (retry === 'conflict') return { ok: false, current };
    if (retry) return { ok: true, revision: retry.revision, position: retry.position };

    const holds =
      expected.kind === 'any' ||
      (expected.kind === 'no_stream' && current === 'no_stream') ||
      (expected.kind === 'stream_exists' && current !== 'no_stream') ||
      (expected.kind === 'revision' && current === expected.revision);
    if (!holds) return { ok: false, current };

    const created = (BigInt(Date.now()) * 10_000n).toString(); // .NET ticks since the Unix epoch
    const written: StoredEvent[] = proposed.map((p, index) => {
      const position = this.nextPosition;
      this.nextPosition += BigInt(64 + p.data.length + p.customMetadata.length);
      return {
        id: p.id,
        streamName,
        revision: BigInt(stream.length + index),
        position,
        metadata: new Map([...p.metadata, ['created', created]]),
        data: p.data,
        customMetadata: p.customMetadata,
      };
    });
    stream.push(...written);
    this.streams.set(streamName, stream);
    this.log.push(...written);
    for (const event of written) for (const listener of this.liveListeners) listener(event);
    const last = written[written.length - 1]!;
    return { ok: true, revision: last.revision, position: last.position };
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
      const stream = this.streams.get(streamName);
      if (!stream && !subscribing) {
        const notFound = new ReadResp.StreamNotFound();
        notFound.setStreamIdentifier(streamOptions.getStreamIdentifier());
        const response = new ReadResp();
        response.setStreamNotFound(notFound);
        call.write(response);
        call.end();
        return;
      }
      const events = stream ?? [];
      const C = ReadReq.Options.StreamOptions.RevisionOptionCase;
      const from =
        streamOptions.getRevisionOptionCase() === C.REVISION
          ? BigInt(streamOptions.getRevision())
          : streamOptions.getRevisionOptionCase() === C.END
            ? BigInt(events.length - 1)
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
      const start = allOptions.getAllOptionCase() === C.POSITION ? BigInt(allOptions.getPosition()!.getCommitPosition()) : undefined;
      const atEnd = allOptions.getAllOptionCase() === C.END;
      if (subscribing) history = atEnd ? [] : this.log.filter((e) => start === undefined || e.position > start);
      else if (backwards) history = (atEnd || start === undefined ? [...this.log] : this.log.filter((e) => e.position <= start)).reverse();
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
      if ((streamName === undefined || event.streamName === streamName) && matches(event)) call.write(eventResponse(event));
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

/** Append and BatchAppend carry the expected revision in differently numbered oneofs of the same shape. */
function expectedOf(options: { hasNoStream(): boolean; hasStreamExists(): boolean }, revision: string | undefined): Expected {
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
function checkCommit(stream: readonly StoredEvent[], expected: Expected, proposed: readonly ProposedEvent[]): StoredEvent | 'conflict' | undefined {
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
