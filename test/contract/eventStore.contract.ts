import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { expect } from 'chai';
import { NotificationEvent } from '../../domain/notification/notification';
import { replay } from '../../src/analysts/replay';
import { decodeEvent } from '../../src/command/commandHandler';
import {
  EventStoreUnavailableError,
  InvalidPositionError,
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
  type AllSubscription,
  type EventStore,
  type ExportOutput,
  type ExportProgress,
  type ExportSelection,
  type NewEvent,
  type RecordedEvent,
} from '../../src/eventStore/eventStore';
import { UpcastingEventStore } from '../../src/eventStore/upcastingEventStore';
import { eventually } from '../support/eventually';
import { notificationSentV1 } from '../support/oldEvents';

/**
 * The event store contract: every adapter of the port passes these same cases. Stream names are unique
 * per test and subscriptions filter on them, so the suite also runs against a shared, non-empty server.
 */
export interface EventStoreUnderTest {
  /** Opens a store client; called more than once, each client is a separate writer on the same store. */
  open(): Promise<EventStore>;
  teardown(): Promise<void>;
  /** Deletes a stream for good, where the store can (EventStoreDB's tombstone); herald never does. */
  readonly tombstone?: (streamName: string) => Promise<void>;
  /** Makes the next `count` appends time out, written or not, where the store can be made to (the stand-in); 0 clears. */
  readonly timeOutNextAppends?: (count: number, options: { readonly written: boolean }) => void;
}

export function eventStoreContract(setup: () => Promise<EventStoreUnderTest>): void {
  let target: EventStoreUnderTest;
  let store: EventStore;
  let prefix: string;

  before(async function () {
    this.timeout(120_000);
    target = await setup();
    store = await target.open();
  });
  after(async () => {
    await target?.teardown();
  });
  beforeEach(() => {
    prefix = `t${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  });

  const stream = (name: string) => `${prefix}_${name}`;
  const event = (type: string, data: unknown = {}, metadata: Record<string, unknown> = {}): NewEvent => ({
    id: randomUUID(),
    type,
    data,
    metadata,
  });

  describe('append and readStream', () => {
    it('appends to a new stream and reads the events back in order with ids, data and metadata', async () => {
      const events = [event('Opened', { n: 1 }, { correlationId: 'c-1' }), event('Noted', { n: 2, text: '你好' })];
      const result = await store.append(stream('a'), events, 'no_stream');
      expect(result.nextExpectedRevision).to.equal(1n);

      const read = await store.readStream(stream('a'));
      expect(read.map((e) => [e.id, e.type, e.revision, e.streamName])).to.deep.equal([
        [events[0]!.id, 'Opened', 0n, stream('a')],
        [events[1]!.id, 'Noted', 1n, stream('a')],
      ]);
      expect(read[0]!.data).to.deep.equal({ n: 1 });
      expect(read[1]!.data).to.deep.equal({ n: 2, text: '你好' });
      expect(read[0]!.metadata).to.include({ correlationId: 'c-1' });
      expect(read[0]!.createdAt).to.be.instanceOf(Date);
      expect(read[1]!.position > read[0]!.position).to.equal(true);
      expect(result.position).to.equal(read[1]!.position);
    });

    it('continues a stream at the expected revision', async () => {
      await store.append(stream('b'), [event('One')], 'no_stream');
      const result = await store.append(stream('b'), [event('Two'), event('Three')], 0n);
      expect(result.nextExpectedRevision).to.equal(2n);
      expect((await store.readStream(stream('b'))).map((e) => e.type)).to.deep.equal(['One', 'Two', 'Three']);
    });

    it('rejects a wrong expected revision with WrongExpectedRevisionError and appends nothing', async () => {
      await store.append(stream('c'), [event('One'), event('Two')], 'no_stream');
      const stale = await store.append(stream('c'), [event('Late')], 0n).then(
        () => expect.fail('append with a stale revision succeeded'),
        (error: unknown) => error,
      );
      expect(stale).to.be.instanceOf(WrongExpectedRevisionError);
      expect((stale as WrongExpectedRevisionError).streamName).to.equal(stream('c'));
      await expectRejection(store.append(stream('c'), [event('Again')], 'no_stream'), WrongExpectedRevisionError);
      await expectRejection(store.append(stream('missing'), [event('X')], 'stream_exists'), WrongExpectedRevisionError);
      await expectRejection(store.append(stream('missing'), [event('X')], 0n), WrongExpectedRevisionError);
      expect((await store.readStream(stream('c'))).map((e) => e.type)).to.deep.equal(['One', 'Two']);
    });

    it("accepts 'any' and 'stream_exists' when they hold", async () => {
      await store.append(stream('d'), [event('One')], 'any');
      await store.append(stream('d'), [event('Two')], 'stream_exists');
      const result = await store.append(stream('d'), [event('Three')], 'any');
      expect(result.nextExpectedRevision).to.equal(2n);
    });

    it('is idempotent: appending the same event ids again stores nothing twice and answers as the first time', async () => {
      const events = [event('One'), event('Two')];
      const first = await store.append(stream('e'), events, 'no_stream');
      await store.append(stream('e'), [event('Three')], 1n);
      // (EventStoreDB answers a retry without a position; the adapter finds the stored one.)
      for (const expected of ['no_stream', 'any'] as const) {
        const retried = await store.append(stream('e'), events, expected);
        expect(retried, `retried at ${expected}`).to.deep.equal(first);
      }
      expect((await store.readStream(stream('e'))).map((e) => e.type)).to.deep.equal(['One', 'Two', 'Three']);
    });

    it('retries an append whose outcome is unknown (a deadline passed) with the same ids: written once', async function () {
      if (!target.timeOutNextAppends) return this.skip();
      const written = [event('A'), event('B')];
      target.timeOutNextAppends(1, { written: true });
      const result = await store.append(stream('deadline'), written, 'no_stream');
      const stored = await store.readStream(stream('deadline'));
      expect(stored.map((e) => e.id)).to.deep.equal(written.map((e) => e.id));
      expect(result).to.deep.equal({ nextExpectedRevision: 1n, position: stored[1]!.position });

      target.timeOutNextAppends(1, { written: false });
      await store.append(stream('deadline'), [event('C')], 'any');
      expect((await store.readStream(stream('deadline'))).map((e) => e.type)).to.deep.equal(['A', 'B', 'C']);

      // Unknown every time: the caller is told so, and its own retry with the same ids is safe.
      const late = [event('D')];
      target.timeOutNextAppends(10, { written: true });
      await expectRejection(store.append(stream('deadline'), late, 2n), EventStoreUnavailableError);
      target.timeOutNextAppends(0, { written: false });
      expect((await store.append(stream('deadline'), late, 2n)).nextExpectedRevision).to.equal(3n);
      expect((await store.readStream(stream('deadline'))).map((e) => e.type)).to.deep.equal(['A', 'B', 'C', 'D']);
    });

    it('answers StreamDeletedError for a deleted stream, on reads and appends', async function () {
      if (!target.tombstone) return this.skip();
      await store.append(stream('deleted'), [event('Doomed')], 'no_stream');
      await target.tombstone(stream('deleted'));
      await expectRejection(store.readStream(stream('deleted')), StreamDeletedError);
      for (const expected of ['any', 'no_stream', 0n] as const) {
        await expectRejection(store.append(stream('deleted'), [event('Again')], expected), StreamDeletedError);
      }
      // The deletion's own record in the log is a system event: never returned.
      const ours = await store.readAll({ filter: { streamNamePrefixes: [prefix] }, maxCount: 100 });
      expect(ours.map((e) => e.type)).to.deep.equal(['Doomed']);
    });

    it('keys idempotency by stream: an event id reused in another stream is another event, not a conflict', async () => {
      // EventStoreDB's rule (event ids deduplicate appends within a stream); both adapters keep it.
      const shared = event('Shared');
      await store.append(stream('id-a'), [shared], 'no_stream');
      const other = await store.append(stream('id-b'), [shared], 'no_stream');
      expect(other.nextExpectedRevision).to.equal(0n);
      expect((await store.readStream(stream('id-a'))).map((e) => e.id)).to.deep.equal([shared.id]);
      expect((await store.readStream(stream('id-b'))).map((e) => e.id)).to.deep.equal([shared.id]);
      // And in one group commit too.
      const again = event('SharedInGroup');
      await Promise.all([store.append(stream('id-c'), [again], 'any'), store.append(stream('id-d'), [again], 'any')]);
      expect((await store.readStream(stream('id-c'))).map((e) => e.id)).to.deep.equal([again.id]);
      expect((await store.readStream(stream('id-d'))).map((e) => e.id)).to.deep.equal([again.id]);
    });

    it("accepts a retry only as the same events at the same revisions (EventStoreDB's idempotency check)", async () => {
      const [a, b, c] = [event('A'), event('B'), event('C')];
      await store.append(stream('retry'), [a, b], 'no_stream');
      await store.append(stream('retry'), [event('Later')], 1n);
      // The same append again, with the revision it was made at: the events are there, nothing is written.
      expect((await store.append(stream('retry'), [a, b], 'no_stream')).nextExpectedRevision).to.equal(1n);
      expect((await store.append(stream('retry'), [a, b], 'any')).nextExpectedRevision).to.equal(1n);
      // Not the same append: out of order, a part of it with new events, or at another revision.
      for (const [events, expected] of [
        [[b, a], 'no_stream'],
        [[a, c], 'any'],
        [[a, c], 'no_stream'],
        [[b], 'no_stream'],
      ] as const) {
        const outcome = await store.append(stream('retry'), events, expected).then(
          () => 'written',
          (error: unknown) => (error instanceof WrongExpectedRevisionError ? 'conflict' : String(error)),
        );
        expect(outcome, `${events.map((e) => e.type).join(',')} at ${String(expected)}`).to.equal('conflict');
      }
      expect((await store.readStream(stream('retry'))).map((e) => e.type)).to.deep.equal(['A', 'B', 'Later']);
    });

    it('gives each of many concurrent appends through one client its own outcome', async () => {
      // Concurrent appends may be committed together (group commit): outcomes must stay per append.
      const appends = Array.from({ length: 60 }, (_, i) => ({
        stream: stream(`g${i % 5}`),
        events: Array.from({ length: 1 + (i % 3) }, (_, k) => event('Grouped', { i, k })),
      }));
      const racers = Array.from({ length: 10 }, (_, i) => [event('Racer', { i })]);
      const [results, raced] = await Promise.all([
        Promise.all(appends.map((a) => store.append(a.stream, a.events, 'any'))),
        Promise.allSettled(racers.map((events) => store.append(stream('race'), events, 'no_stream'))),
      ]);

      expect(raced.filter((r) => r.status === 'fulfilled')).to.have.length(1);
      for (const r of raced.filter((r) => r.status === 'rejected')) {
        expect((r as PromiseRejectedResult).reason).to.be.instanceOf(WrongExpectedRevisionError);
      }
      for (let s = 0; s < 5; s++) {
        const read = await store.readStream(stream(`g${s}`));
        expect(read.map((e) => e.revision)).to.deep.equal(read.map((_, r) => BigInt(r)));
      }
      for (const [i, append] of appends.entries()) {
        const read = await store.readStream(append.stream);
        const last = read.find((e) => e.id === append.events[append.events.length - 1]!.id)!;
        expect(results[i]!.position, `append ${i} reports the position of its last event`).to.equal(last.position);
        expect(results[i]!.nextExpectedRevision).to.equal(last.revision);
        const stored = read.filter((e) => append.events.some((a) => a.id === e.id));
        expect(stored.map((e) => e.revision)).to.deep.equal(
          stored.map((_, k) => last.revision - BigInt(stored.length - 1 - k)),
        );
      }

      // The same append sent twice at once (a client retry racing the original) is stored once.
      const twice = [event('Once')];
      const [, a, b] = await Promise.all([
        store.append(stream('first'), [event('First')], 'any'), // so the two below can share a group
        store.append(stream('twice'), twice, 'any'),
        store.append(stream('twice'), twice, 'any'),
      ]);
      expect(a.position).to.equal(b.position);
      expect(await store.readStream(stream('twice'))).to.have.length(1);
    });

    it('throws StreamNotFoundError when reading a stream that does not exist', async () => {
      await expectRejection(store.readStream(stream('nothing-here')), StreamNotFoundError);
    });

    it('reads a stream backwards, from a revision, and bounded by maxCount', async () => {
      await store.append(
        stream('f'),
        ['A', 'B', 'C', 'D'].map((t) => event(t)),
        'no_stream',
      );
      expect((await store.readStream(stream('f'), { direction: 'backwards' })).map((e) => e.type)).to.deep.equal([
        'D',
        'C',
        'B',
        'A',
      ]);
      expect((await store.readStream(stream('f'), { fromRevision: 2n })).map((e) => e.type)).to.deep.equal(['C', 'D']);
      expect((await store.readStream(stream('f'), { maxCount: 2 })).map((e) => e.type)).to.deep.equal(['A', 'B']);
      expect(
        (await store.readStream(stream('f'), { direction: 'backwards', fromRevision: 1n })).map((e) => e.type),
      ).to.deep.equal(['B', 'A']);
    });
  });

  describe('readAll and headPosition', () => {
    it('reads all streams in position order after a position, forwards and backwards, with filters', async () => {
      await store.append(stream('x'), [event('XOne')], 'no_stream');
      await store.append(stream('y'), [event('YOne')], 'no_stream');
      await store.append(stream('x'), [event('XTwo')], 0n);
      const ours = (events: RecordedEvent[]) => events.filter((e) => e.streamName.startsWith(prefix));

      const forwards = ours(await store.readAll({ filter: { streamNamePrefixes: [prefix] }, maxCount: 100 }));
      expect(forwards.map((e) => e.type)).to.deep.equal(['XOne', 'YOne', 'XTwo']);
      expect(isAscending(forwards.map((e) => e.position))).to.equal(true);

      const afterFirst = await store.readAll({
        after: forwards[0]!.position,
        filter: { streamNamePrefixes: [prefix] },
      });
      expect(afterFirst.map((e) => e.type)).to.deep.equal(['YOne', 'XTwo']);

      const head = await store.headPosition();
      expect(head >= forwards[2]!.position).to.equal(true);
      const backwards = await store.readAll({
        direction: 'backwards',
        filter: { streamNamePrefixes: [prefix] },
        maxCount: 2,
      });
      expect(backwards.map((e) => e.type)).to.deep.equal(['XTwo', 'YOne']);

      const onlyX = await store.readAll({ filter: { streamNamePrefixes: [stream('x')] } });
      expect(onlyX.map((e) => e.type)).to.deep.equal(['XOne', 'XTwo']);
      const byType = await store.readAll({ filter: { eventTypePrefixes: ['YOn'], streamNamePrefixes: [prefix] } });
      expect(byType.map((e) => e.type)).to.deep.equal(['YOne']);
    });
  });

  describe('system events', () => {
    it('never returns system ($…) events, and the head is the newest other event even behind many of them', async () => {
      const before = await store.append(stream('before'), [event('Before')], 'no_stream');
      const normal = await store.append(stream('visible'), [event('Visible')], 'no_stream');
      for (let i = 0; i < 3; i++)
        await store.append(
          `$${prefix}-sys`,
          Array.from({ length: 50 }, () => event('Tick')),
          'any',
        );
      expect(await store.headPosition()).to.equal(normal.position);
      const [newest] = await store.readAll({ direction: 'backwards', maxCount: 1 });
      expect(newest?.type).to.equal('Visible');
      const ours = await store.readAll({ after: before.position, maxCount: 1000 });
      expect(ours.map((e) => e.type)).to.deep.equal(['Visible']);
    });
  });

  describe('positions', () => {
    it('refuses to read or subscribe after a position that is no event of this store (InvalidPositionError)', async () => {
      const { position } = await store.append(stream('p'), [event('One'), event('Two')], 'no_stream');
      // Inside the last record on EventStoreDB (positions are byte offsets); not yet written on PostgreSQL.
      const bogus = position + 1n;
      await expectRejection(store.readAll({ after: bogus }), InvalidPositionError);
      await expectRejection(store.readAll({ after: bogus, direction: 'backwards' }), InvalidPositionError);
      const subscription = store.subscribeToAll({ after: bogus, filter: { streamNamePrefixes: [prefix] } });
      await expectRejection(subscription[Symbol.asyncIterator]().next(), InvalidPositionError);
      await subscription.close();
      // A negative position means "from the start", as an empty store's head (-1) would be passed.
      const fromStart = await store.readAll({ after: -1n, filter: { streamNamePrefixes: [prefix] } });
      expect(fromStart.map((e) => e.type)).to.deep.equal(['One', 'Two']);
    });
  });

  describe('exportJsonLines, where a store offers it (PostgreSQL)', () => {
    it('writes the lines that reading through the port writes (src/analysts/replay.ts), for each selection', async function () {
      if (!store.exportJsonLines) this.skip();
      const sent = await store.append(
        stream('m1'),
        [
          event('MessageSent', { title: 'a "quote", \\ and 你好', n: 1 }, { appId: 'camel' }),
          event('MessageAcknowledged', {}, { appId: 'camel' }),
        ],
        'no_stream',
      );
      await store.append(stream('m2'), [event('MessageSent', { n: 2 }, { appId: 'other' })], 'no_stream');
      await store.append(stream('d1'), [event('DeviceRegistered', { alias: 'a' }, { appId: 'camel' })], 'no_stream');
      const head = await store.headPosition();
      const cases: Array<{ selection: ExportSelection; types: string[] }> = [
        {
          selection: { streamPrefix: prefix },
          types: ['MessageSent', 'MessageAcknowledged', 'MessageSent', 'DeviceRegistered'],
        },
        { selection: { streamPrefix: prefix, types: ['MessageSent'] }, types: ['MessageSent', 'MessageSent'] },
        {
          selection: { streamPrefix: prefix, appId: 'camel' },
          types: ['MessageSent', 'MessageAcknowledged', 'DeviceRegistered'],
        },
        {
          selection: { streamPrefix: stream('m'), from: sent.position },
          types: ['MessageAcknowledged', 'MessageSent'],
        },
      ];
      for (const { selection, types } of cases) {
        const exported = await jsonLines((write) => store.exportJsonLines!(selection, head, write));
        const read = await jsonLines((write) => replay(store, selection, head, write));
        expect(
          exported.lines.map((line) => line.type),
          inspect(selection),
        ).to.deep.equal(types);
        expect(exported.lines).to.deep.equal(read.lines);
        expect(exported.written).to.equal(types.length);
        for (const line of exported.lines)
          expect(Object.keys(line)).to.deep.equal([
            'position',
            'stream',
            'revision',
            'type',
            'time',
            'data',
            'metadata',
          ]);
      }
    });
  });

  describe('retention: removeStreamEvents (issue 26), where a store offers it', () => {
    // A stream whose events retention removed is no stream (docs/operations.md, "Retention"): PostgreSQL
    // deletes its rows and its head; EventStoreDB sets `$tb` past its last event and scavenges.
    const removal = (context: Mocha.Context) => {
      if (!store.removeStreamEvents) context.skip();
      return store.removeStreamEvents!.bind(store);
    };

    it('a removed stream is no stream: reads find none, and no_stream starts it anew (once)', async function () {
      const remove = removal(this);
      const appended = await store.append(stream('gone'), [event('Sent'), event('Acked')], 'no_stream');
      const result = await remove([stream('gone')], appended.position);
      expect(result).to.deep.equal({ removed: 2, left: [] });
      await expectRejection(store.readStream(stream('gone')), StreamNotFoundError);
      await expectRejection(
        store.readStream(stream('gone'), { direction: 'backwards', maxCount: 1 }),
        StreamNotFoundError,
      );
      await store.append(stream('gone'), [event('Again')], 'no_stream');
      await expectRejection(store.append(stream('gone'), [event('Twice')], 'no_stream'), WrongExpectedRevisionError);
      expect((await store.readStream(stream('gone'))).map((e) => e.type)).to.deep.equal(['Again']);
      expect(await store.readStream(stream('never-written')).catch((e: unknown) => e)).to.be.instanceOf(
        StreamNotFoundError,
      );
    });

    it('never half removes a stream: one with an event past the bound keeps every event, and is named as left', async function () {
      const remove = removal(this);
      const before = await store.append(stream('done'), [event('Sent'), event('Acked')], 'no_stream');
      const first = await store.append(stream('part'), [event('Sent')], 'no_stream');
      await store.append(stream('part'), [event('Acked')], 0n);
      await store.append(stream('whole'), [event('Sent')], 'no_stream');
      expect(before.position < first.position).to.equal(true);
      const result = await remove(
        [stream('done'), stream('part'), stream('whole'), stream('never-written')],
        first.position,
      );
      expect(result.removed).to.equal(2);
      expect([...result.left].sort()).to.deep.equal([stream('part'), stream('whole')]);
      await expectRejection(store.readStream(stream('done')), StreamNotFoundError);
      expect((await store.readStream(stream('part'))).map((e) => e.type)).to.deep.equal(['Sent', 'Acked']);
      expect((await store.readStream(stream('whole'))).map((e) => e.type)).to.deep.equal(['Sent']);
    });

    it('once space is reclaimed, $all no longer holds the removed events (EventStoreDB keeps a stream’s last), and reads still start after their positions', async function () {
      const remove = removal(this);
      const removed = await store.append(stream('old'), [event('Sent'), event('Acked')], 'no_stream');
      await store.append(stream('kept'), [event('Registered')], 'no_stream');
      await remove([stream('old')], removed.position);
      await store.reclaimSpace?.();
      const ours = await store.readAll({ filter: { streamNamePrefixes: [prefix] }, maxCount: 100 });
      // A scavenge always keeps each stream's last event in $all; PostgreSQL deletes every row.
      const left = ours.filter((e) => e.streamName === stream('old')).map((e) => e.type);
      expect([[], ['Acked']]).to.deep.include(left);
      expect(ours.filter((e) => e.streamName !== stream('old')).map((e) => e.streamName)).to.deep.equal([
        stream('kept'),
      ]);
      const after = await store.readAll({
        after: removed.position,
        maxCount: 100,
        filter: { streamNamePrefixes: [prefix] },
      });
      expect(after.map((e) => e.type)).to.deep.equal(['Registered']);
    });
  });

  describe('subscribeToAll', () => {
    it('delivers the history, then reports caught up, then delivers live events', async () => {
      await store.append(stream('s'), [event('Before1'), event('Before2')], 'no_stream');
      const subscription = store.subscribeToAll({ filter: { streamNamePrefixes: [prefix] } });
      const seen: string[] = [];
      let caughtUpAfter = -1;
      const consumer = consume(subscription, (batch) => {
        seen.push(...batch.events.map((e) => e.type));
        if (batch.caughtUp && caughtUpAfter < 0) caughtUpAfter = seen.length;
        return seen.length >= 3;
      });
      await eventually(() => expect(caughtUpAfter, 'caught up').to.be.at.least(0));
      expect(caughtUpAfter).to.equal(2);
      await store.append(stream('s'), [event('Live')], 1n);
      await consumer;
      expect(seen).to.deep.equal(['Before1', 'Before2', 'Live']);
    });

    it('resumes after a saved position without repeating or skipping', async () => {
      await store.append(
        stream('r'),
        ['A', 'B', 'C'].map((t) => event(t)),
        'no_stream',
      );
      const [a] = await store.readStream(stream('r'), { maxCount: 1 });
      const subscription = store.subscribeToAll({ after: a!.position, filter: { streamNamePrefixes: [prefix] } });
      const seen: string[] = [];
      await consume(subscription, (batch) => {
        seen.push(...batch.events.map((e) => e.type));
        return seen.length >= 2;
      });
      expect(seen).to.deep.equal(['B', 'C']);
    });

    it('8 concurrent writers × 1,000 events: a running subscriber sees each exactly once, in position order', async function () {
      this.timeout(180_000);
      const writers = 8;
      const perWriter = 1_000;
      const clients = await Promise.all(Array.from({ length: writers }, () => target.open()));
      const subscription = store.subscribeToAll({ filter: { streamNamePrefixes: [prefix] } });
      const seen: RecordedEvent[] = [];
      const consumer = consume(subscription, (batch) => {
        seen.push(...batch.events);
        return seen.length >= writers * perWriter;
      });

      await Promise.all(
        clients.map(async (client, w) => {
          for (let i = 0; i < perWriter; i++) {
            await client.append(stream(`w${w}`), [event('Wrote', { w, i })], i === 0 ? 'no_stream' : BigInt(i - 1));
          }
        }),
      );
      await consumer;
      await Promise.all(clients.map((c) => c.close()));

      expect(seen).to.have.length(writers * perWriter);
      expect(new Set(seen.map((e) => e.id)).size).to.equal(writers * perWriter);
      expect(isAscending(seen.map((e) => e.position))).to.equal(true);
      for (let w = 0; w < writers; w++) {
        const mine = seen.filter((e) => e.streamName === stream(`w${w}`)).map((e) => (e.data as { i: number }).i);
        expect(mine).to.deep.equal(Array.from({ length: perWriter }, (_, i) => i));
      }
    });

    it('ends iteration when closed', async () => {
      const subscription = store.subscribeToAll({ filter: { streamNamePrefixes: [prefix] } });
      const consumer = consume(subscription, () => false);
      await subscription.close();
      await consumer;
    });
  });

  // Event versioning (domain/eventVersions.ts): events stored in an old shape, appended raw as history
  // holds them, read back through the decorator herald wraps every adapter in, in the current shape.
  describe('upcasting on read (UpcastingEventStore)', () => {
    const v1 = notificationSentV1;
    const history = () => [
      event('NotificationSent', v1, { correlationId: 'c-old' }),
      event('NotificationSent', { ...v1, forClient: true, forBrowser: true }, { schemaVersion: 2 }),
      event('NotificationSent', { ...v1, forBrowser: 'v3 meant something else' }, { schemaVersion: 3 }),
    ];
    // The decorator does not own the store: it is closed with the suite's.
    const upcasting = () => new UpcastingEventStore(store);

    /** The three events as read through the decorator: old upcast, current and newer as stored. */
    function expectUpcast(read: readonly RecordedEvent[], appended: readonly NewEvent[]) {
      expect(read.map((e) => e.id)).to.deep.equal(appended.map((e) => e.id));
      const [old, current, newer] = read;
      expect(old!.data).to.deep.equal({ ...v1, forBrowser: true });
      expect(old!.metadata).to.include({ correlationId: 'c-old', schemaVersion: 2 });
      expect(decodeEvent(NotificationEvent, old!).data).to.include({ forBrowser: true, forClient: false });
      expect(current!.data).to.deep.equal(appended[1]!.data);
      expect(current!.metadata).to.include({ schemaVersion: 2 });
      expect(newer!.data).to.deep.equal(appended[2]!.data);
      expect(() => decodeEvent(NotificationEvent, newer!)).to.throw(/schema version 3, newer than this herald's 2/);
    }

    it('readStream: an old-shape event reads back upcast; the stored event is unchanged', async () => {
      const appended = history();
      await store.append(stream('v'), appended, 'no_stream');
      expectUpcast(await upcasting().readStream(stream('v')), appended);
      const [stored] = await store.readStream(stream('v'), { maxCount: 1 });
      expect(stored!.data).to.deep.equal(v1);
      expect(stored!.metadata).not.to.have.property('schemaVersion');
    });

    it('readAll: an old-shape event reads back upcast', async () => {
      const appended = history();
      await store.append(stream('v'), appended, 'no_stream');
      expectUpcast(await upcasting().readAll({ filter: { streamNamePrefixes: [prefix] } }), appended);
    });

    it('subscribeToAll: an old-shape event is delivered upcast', async () => {
      const appended = history();
      await store.append(stream('v'), appended, 'no_stream');
      const seen: RecordedEvent[] = [];
      await consume(upcasting().subscribeToAll({ filter: { streamNamePrefixes: [prefix] } }), (batch) => {
        seen.push(...batch.events);
        return seen.length >= appended.length;
      });
      expectUpcast(seen, appended);
    });

    it('exportJsonLines, where the store offers it: the old-shape line is written upcast, the others as the store writes them', async function () {
      if (!store.exportJsonLines) this.skip();
      const appended = history();
      await store.append(stream('v'), appended, 'no_stream');
      const selection = { streamPrefix: stream('v') };
      const head = await store.headPosition();
      const raw = await jsonLines((write) => store.exportJsonLines!(selection, head, write));
      const exported = await jsonLines((write) => upcasting().exportJsonLines!(selection, head, write));
      const read = await jsonLines((write) => replay(upcasting(), selection, head, write));
      expect(exported.lines).to.deep.equal(read.lines);
      expect(exported.lines[0]!['data']).to.deep.equal({ ...v1, forBrowser: true });
      expect(exported.lines[0]!['metadata']).to.include({ correlationId: 'c-old', schemaVersion: 2 });
      expect(raw.lines[0]!['data']).to.deep.equal(v1);
      expect(exported.lines.slice(1)).to.deep.equal(raw.lines.slice(1));
      expect(Object.keys(exported.lines[0]!)).to.deep.equal(Object.keys(raw.lines[0]!));
    });
  });
}

/** What an export or a replay writes, parsed: one JSON value a line. */
async function jsonLines(
  produce: (write: ExportOutput) => Promise<ExportProgress>,
): Promise<{ lines: Array<Record<string, unknown>>; written: number }> {
  const chunks: Buffer[] = [];
  const { written } = await produce(async (chunk) => {
    chunks.push(Buffer.from(chunk));
  });
  // Decoded once: a chunk may end inside a character.
  const lines = Buffer.concat(chunks).toString('utf8').split('\n');
  expect(lines.pop(), 'the output ends with a line break').to.equal('');
  return { lines: lines.map((line) => JSON.parse(line) as Record<string, unknown>), written };
}

/** Iterates a subscription until `onBatch` returns true (or the subscription ends), with a deadline. */
async function consume(
  subscription: AllSubscription,
  onBatch: (batch: { events: readonly RecordedEvent[]; caughtUp: boolean }) => boolean,
  timeoutMs = 120_000,
): Promise<void> {
  const timer = setTimeout(() => void subscription.close(), timeoutMs);
  try {
    for await (const batch of subscription) {
      if (onBatch(batch)) break;
    }
  } finally {
    clearTimeout(timer);
    await subscription.close();
  }
}

async function expectRejection(promise: Promise<unknown>, type: new (...args: never[]) => Error): Promise<void> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome, `expected ${type.name}`).to.be.instanceOf(type);
}

function isAscending(values: readonly bigint[]): boolean {
  return values.every((v, i) => i === 0 || v > values[i - 1]!);
}
