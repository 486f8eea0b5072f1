import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { projections } from '../../projections';
import { exportEvents } from '../../src/analysts/replay';
import {
  StreamNotFoundError,
  WrongExpectedRevisionError,
  type EventStore,
  type ExportSelection,
  type NewEvent,
  type RecordedEvent,
} from '../../src/eventStore/eventStore';
import { EventStoreDbEventStore } from '../../src/eventStore/eventStoreDbEventStore';
import { EventStoreDecorator } from '../../src/eventStore/eventStoreDecorator';
import type { Infrastructure } from '../../src/infrastructure';
import { rebuildProjections } from '../../src/projection/projectionRebuild';
import { ArchivedEventStore } from '../../src/storage/archivedEventStore';
import { EventArchive, mergedWithArchive } from '../../src/storage/eventArchive';
import {
  ArchiveMismatchError,
  eventRetentionPass,
  retiredStreamsQueued,
  type EventRetentionTerms,
} from '../../src/storage/eventRetention';
import { EventStoreDbStandIn } from '../support/eventStoreDbStandIn';
import { eventually } from '../support/eventually';
import { openTestInfrastructure } from '../support/infrastructure';
import { describeTarget, type TestDatabase } from '../support/postgres';

/**
 * The event store's retention (issue 26) on PostgreSQL: what the read models' pruning retired is archived
 * as replay lines, then removed; archive + store replays as the original stream, byte for byte; a crash
 * between the two leaves no gap and no duplicate; reads, subscriptions and checkpoints hold.
 */
describe(`event store retention: archive, then remove (${describeTarget()})`, function () {
  this.timeout(60_000);
  let infrastructure: Infrastructure & { testDatabase: TestDatabase };
  let store: EventStore;
  let directory: string;
  let archive: EventArchive;

  beforeEach(async () => {
    infrastructure = await openTestInfrastructure();
    store = infrastructure.store;
    directory = await mkdtemp(path.join(tmpdir(), 'herald-archive-'));
    // Segments of 10 positions: many segments, and batches' files interleaving within them.
    archive = new EventArchive(directory, 10n);
  });
  afterEach(async () => {
    await infrastructure.close();
    await rm(directory, { recursive: true, force: true });
  });

  const event = (type: string, data: unknown = {}): NewEvent => ({
    id: randomUUID(),
    type,
    data: { ...(data as object), text: 'ünïcødé "quoted" \\ and a line\nbreak' },
    metadata: { appId: 'camel', correlationId: randomUUID() },
  });
  const terms = (overrides: Partial<EventRetentionTerms> = {}): EventRetentionTerms => ({
    pool: infrastructure.database.pool,
    store,
    archive,
    batchSize: 7,
    projectionNames: [],
    ...overrides,
  });
  const retire = (streams: readonly string[]) =>
    infrastructure.database.pool.query(
      'INSERT INTO retired_streams (stream_name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING',
      [streams],
    );

  /** What `herald replay` prints (with `withArchive`, `herald replay --archive`). */
  async function replayText(selection: ExportSelection = {}, withArchive = false): Promise<string> {
    let text = '';
    const decoder = new TextDecoder();
    const toText = async (chunk: string | Uint8Array) => {
      text += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    };
    const merged = withArchive
      ? mergedWithArchive(archive.lines(selection)[Symbol.asyncIterator](), toText)
      : undefined;
    await exportEvents(store, selection, await store.headPosition(), merged?.write ?? toText);
    await merged?.finish();
    return text + decoder.decode();
  }

  /** Messages and emails (retired later) interleaved with a device's registrations (kept). */
  async function history(): Promise<{ retired: string[]; kept: string[] }> {
    const retired: string[] = [];
    const kept = ['device-d1', 'app-camel'];
    for (let i = 0; i < 20; i++) {
      const message = `message-${randomUUID()}`;
      await store.append(message, [event('MessageSent', { i })], 'no_stream');
      await store.append(kept[i % 2]!, [event('DeviceRegistered', { i })]);
      await store.append(message, [event('MessageAcknowledged', { i }), event('MessageAcknowledged', { i })], 0n);
      const email = `email-${randomUUID()}`;
      await store.append(email, [event('EmailRequested', { i })], 'no_stream');
      retired.push(message, email);
    }
    return { retired, kept };
  }

  it('archives retired streams, then removes them; archive + store replays as the original, byte for byte', async () => {
    const { retired, kept } = await history();
    const original = await replayText();
    const originalMessages = await replayText({ streamPrefix: 'message-', types: ['MessageAcknowledged'] });
    const keptBefore = await store.readStream(kept[0]!);
    // A stream no read model ends (a device) queued by mistake stays in the store.
    await retire([...retired, kept[0]!]);

    const reports = await eventRetentionPass(terms());

    expect(reports!.length).to.equal(Math.ceil(41 / 7));
    const removed = reports!.reduce((n, r) => n + r.removed, 0);
    expect(removed).to.equal(20 * 4);
    expect(reports!.reduce((n, r) => n + r.archived, 0)).to.equal(removed);
    for (const name of retired) expect(await gone(store, name), name).to.equal(true);
    expect(await store.readStream(kept[0]!)).to.deep.equal(keptBefore);
    expect((await store.readAll({ maxCount: 1000 })).map((e) => e.streamName)).to.not.include.members(retired);
    expect(await retiredStreamsQueued(infrastructure.database.pool)).to.equal(0);

    // The manifests: every file listed, with its range, lines and digest.
    const files = await archive.files();
    expect(new Set(files.map((f) => path.dirname(f.file))).size).to.be.greaterThan(5);
    expect(files.length).to.be.greaterThan(new Set(files.map((f) => path.dirname(f.file))).size);
    expect(files.reduce((n, f) => n + f.count, 0)).to.equal(removed);
    for (const file of files) {
      const text = await readFile(path.join(directory, file.file), 'utf8');
      expect(Buffer.byteLength(text)).to.equal(file.bytes);
      const positions = text
        .split('\n')
        .slice(0, -1)
        .map((l) => BigInt((JSON.parse(l) as { position: string }).position));
      expect(positions[0]!.toString()).to.equal(file.firstPosition);
      expect(positions[positions.length - 1]!.toString()).to.equal(file.lastPosition);
    }

    expect(await replayText({}, true)).to.equal(original);
    expect(await replayText({ streamPrefix: 'message-', types: ['MessageAcknowledged'] }, true)).to.equal(
      originalMessages,
    );
    expect(await replayText()).to.not.equal(original);
  });

  it('a removed stream is no stream: its head goes with its events, a late append at its revision conflicts, no_stream starts it anew', async () => {
    const name = `message-${randomUUID()}`;
    await store.append(name, [event('MessageSent'), event('MessageAcknowledged')], 'no_stream');
    await retire([name]);
    await eventRetentionPass(terms());

    expect(await store.readStream(name).catch((e: unknown) => e)).to.be.instanceOf(StreamNotFoundError);
    const { rows } = await infrastructure.database.pool.query('SELECT 1 FROM streams WHERE stream_name = $1', [name]);
    expect(rows).to.have.length(0);
    // A late outcome on what was there (a delivery's attempt, a call's failure) re-creates nothing.
    const late = await store.append(name, [event('MessageAcknowledged')], 1n).catch((e: unknown) => e);
    expect(late).to.be.instanceOf(WrongExpectedRevisionError);
    const again = await store.append(name, [event('MessageSent')], 'no_stream');
    expect(again.nextExpectedRevision).to.equal(0n);
    expect((await store.readStream(name)).map((e) => e.revision)).to.deep.equal([0n]);
  });

  it('removes every category retention ends (RTIO calls and nonces, tickets, platform pushes); keeps devices, RTIO devices and inboxes', async () => {
    const { retired, kept } = await categoryHistory(store);
    const original = await replayText();
    await retire([...retired, ...kept]);

    const reports = await eventRetentionPass(terms());

    expect(reports!.reduce((n, r) => n + r.removed, 0)).to.equal(retired.length * 2);
    for (const name of retired) expect(await gone(store, name), name).to.equal(true);
    for (const name of kept) expect(await store.readStream(name), name).to.have.length(2);
    expect(await replayText({}, true)).to.equal(original);
  });

  it('a crash between the archive and the removal leaves no gap and no duplicate: the next pass finishes the batch', async () => {
    const { retired } = await history();
    const original = await replayText();
    await retire(retired);
    let crashes = 1;
    class CrashingStore extends EventStoreDecorator {
      override readonly removeStreamEvents: EventStore['removeStreamEvents'] = (streams, upto) => {
        if (crashes-- > 0) return Promise.reject(new Error('killed before the removal'));
        return store.removeStreamEvents!(streams, upto);
      };
    }
    const crashing = new CrashingStore(store);
    const error = await eventRetentionPass(terms({ store: crashing })).catch((e: unknown) => e);
    expect((error as Error).message).to.equal('killed before the removal');

    // Archived and still stored: a replay with the archive writes each event once.
    expect((await archive.files()).length).to.be.greaterThan(0);
    expect(await replayText({}, true)).to.equal(original);
    const archivedBefore = (await archive.files()).reduce((n, f) => n + f.count, 0);

    const reports = await eventRetentionPass(terms({ store: crashing }));
    const archived = (await archive.files()).reduce((n, f) => n + f.count, 0);
    expect(archived - archivedBefore).to.equal(reports!.slice(1).reduce((n, r) => n + r.archived, 0));
    expect(archived).to.equal(20 * 4);
    expect(await replayText({}, true)).to.equal(original);
    for (const name of retired) expect(await gone(store, name), name).to.equal(true);
  });

  it('a crash after the removal committed, before the batch was marked done: the next pass keeps the archive as it was', async () => {
    const { retired } = await history();
    const original = await replayText();
    await retire(retired);
    let crashes = 1;
    class CrashingStore extends EventStoreDecorator {
      override readonly removeStreamEvents: EventStore['removeStreamEvents'] = async (streams, upto) => {
        const removal = await store.removeStreamEvents!(streams, upto);
        if (crashes-- > 0) throw new Error('killed after the removal');
        return removal;
      };
    }
    const crashing = new CrashingStore(store);
    const error = await eventRetentionPass(terms({ store: crashing })).catch((e: unknown) => e);
    expect((error as Error).message).to.equal('killed after the removal');

    const reports = await eventRetentionPass(terms({ store: crashing }));
    // The interrupted batch: its events were removed already; its archive stands as written.
    expect(reports![0]!.removed).to.equal(0);
    expect(reports![0]!.archived).to.be.greaterThan(0);
    expect((await archive.files()).reduce((n, f) => n + f.count, 0)).to.equal(20 * 4);
    expect(await replayText({}, true)).to.equal(original);
    const { rows } = await infrastructure.database.pool.query<{ archived_events: string }>(
      'SELECT archived_events FROM event_archive_batches ORDER BY batch_id LIMIT 1',
    );
    expect(Number(rows[0]!.archived_events)).to.be.greaterThan(0);
  });

  it('never removes past a projection’s checkpoint, nor half a stream: one with an event past it stays whole, unarchived', async () => {
    const { pool } = infrastructure.database;
    const first = `message-${randomUUID()}`;
    const late = `message-${randomUUID()}`;
    await store.append(first, [event('MessageSent')], 'no_stream');
    await store.append(late, [event('MessageSent')], 'no_stream');
    await store.append(late, [event('MessageAcknowledged')], 0n);
    // The projection has read `late`'s opening event, not its acknowledgement.
    const checkpoint = (await store.readStream(late))[0]!.position;
    const after = await store.append('device-d1', [event('DeviceRegistered')]);
    await pool.query("INSERT INTO projection_checkpoints (name, version, position) VALUES ('inbox', 1, $1)", [
      checkpoint.toString(),
    ]);
    await retire([first, late]);

    await eventRetentionPass(terms({ projectionNames: ['inbox'] }));

    // The acknowledgement is past the checkpoint: the stream stays whole (never half removed), is not
    // archived, and is retired again for a later pass.
    expect(await gone(store, first)).to.equal(true);
    expect((await store.readStream(late)).map((e) => e.type)).to.deep.equal(['MessageSent', 'MessageAcknowledged']);
    expect((await pool.query('SELECT stream_name FROM retired_streams')).rows).to.deep.equal([{ stream_name: late }]);
    const archived = [];
    for await (const { line } of archive.lines()) archived.push((JSON.parse(line) as { stream: string }).stream);
    expect(archived).to.deep.equal([first]);
    // Reading and subscribing after the checkpoint go on from there.
    const next = await store.readAll({ after: checkpoint, maxCount: 10 });
    expect(next.map((e) => e.type)).to.deep.equal(['MessageAcknowledged', 'DeviceRegistered']);
    const subscription = store.subscribeToAll({ after: checkpoint });
    const seen: RecordedEvent[] = [];
    for await (const batch of subscription) {
      seen.push(...batch.events);
      if (seen.some((e) => e.position === after.position)) break;
    }
    await subscription.close();
    expect(seen.map((e) => e.type)).to.deep.equal(['MessageAcknowledged', 'DeviceRegistered']);

    // Once the projection has passed it, the rest goes.
    await pool.query("UPDATE projection_checkpoints SET position = $1 WHERE name = 'inbox'", [
      after.position.toString(),
    ]);
    await eventRetentionPass(terms({ projectionNames: ['inbox'] }));
    expect(await gone(store, late)).to.equal(true);
  });

  it('appends, reads of one’s own writes and a live subscription go on, gap-free, while removals run', async () => {
    const { retired } = await history();
    await retire(retired);
    const start = await store.headPosition();
    const subscription = store.subscribeToAll({ after: start });
    const seen: bigint[] = [];
    const reading = (async () => {
      for await (const batch of subscription) seen.push(...batch.events.map((e) => e.position));
    })();
    const appended: bigint[] = [];
    const writing = (async () => {
      for (let i = 0; i < 60; i++) {
        const name = `message-${randomUUID()}`;
        const { position } = await store.append(name, [event('MessageSent', { i })], 'no_stream');
        appended.push(position);
        // Read your writes: the append is readable at once.
        expect((await store.readStream(name)).map((e) => e.position)).to.deep.equal([position]);
      }
    })();
    const removing = eventRetentionPass(terms({ batchSize: 2 }));
    const [reports] = await Promise.all([removing, writing]);
    expect(reports!.reduce((n, r) => n + r.removed, 0)).to.equal(20 * 4);
    await eventually(() => expect(seen).to.deep.equal(appended));
    await subscription.close();
    await reading;
  });

  it('a rebuild’s subscription (--archive) reads archive + store as the original stream, from the start or after any position', async () => {
    const { retired } = await history();
    const head = await store.headPosition();
    /** Every event after `after` through a catch-up subscription, as a projection sees it (ids aside). */
    const subscribed = async (from: EventStore, after?: bigint) => {
      const subscription = from.subscribeToAll(after === undefined ? {} : { after });
      const events: unknown[] = [];
      for await (const batch of subscription) {
        for (const { id: _id, ...event } of batch.events) events.push(event);
        if (batch.caughtUp) break;
      }
      await subscription.close();
      return events;
    };
    const original = await subscribed(store);
    const middle = (original[37] as RecordedEvent).position;
    const originalAfter = await subscribed(store, middle);
    await retire(retired);
    await eventRetentionPass(terms());

    const withArchive = new ArchivedEventStore(store, archive);
    expect(await subscribed(store)).to.have.length(original.length - 20 * 4);
    expect(await subscribed(withArchive)).to.deep.equal(original);
    expect(await subscribed(withArchive, middle)).to.deep.equal(originalAfter);
    expect(await withArchive.headPosition()).to.equal(head);
  });

  it('an archive whose file changed is refused, not read with a gap', async () => {
    const { retired } = await history();
    await retire(retired);
    await eventRetentionPass(terms());
    const [file] = await archive.files();
    const target = path.join(directory, file!.file);
    await writeFile(target, (await readFile(target, 'utf8')).replace('"camel"', '"camal"'));
    const error = await replayText({}, true).catch((e: unknown) => e);
    expect((error as Error).message).to.match(/sha256/);
  });

  it('no pass while a rebuild reads the history: one started meanwhile does nothing; afterwards they run', async () => {
    const { retired } = await history();
    await retire(retired);
    let during: Awaited<ReturnType<typeof eventRetentionPass>> | 'not run' = 'not run';
    // The rebuild asks its store for the head once it holds its locks: a pass runs right then.
    class PassOnHead extends EventStoreDecorator {
      override async headPosition(): Promise<bigint> {
        if (during === 'not run') during = await eventRetentionPass(terms());
        return store.headPosition();
      }
    }
    const emails = projections.find((p) => p.name === 'emails')!;
    await rebuildProjections({ ...infrastructure, store: new PassOnHead(store) }, [emails], () => undefined);
    expect(during).to.equal(undefined);
    expect(await archive.files()).to.deep.equal([]);
    const after = await eventRetentionPass(terms());
    expect(after!.reduce((n, r) => n + r.removed, 0)).to.equal(20 * 4);
  });

  it('a pass refuses an archive that is not the database’s (another node’s directory), archiving and removing nothing', async () => {
    const { retired } = await history();
    await retire(retired.slice(0, 2));
    await eventRetentionPass(terms());
    const id = await archive.id();
    expect(id).to.match(/^[0-9a-f-]{36}$/);
    const { rows } = await infrastructure.database.pool.query('SELECT archive_id FROM event_archive_identity');
    expect(rows).to.deep.equal([{ archive_id: id }]);

    await retire(retired.slice(2));
    const elsewhere = await mkdtemp(path.join(tmpdir(), 'herald-archive-'));
    try {
      const other = new EventArchive(elsewhere, 10n);
      const error = await eventRetentionPass(terms({ archive: other })).catch((e: unknown) => e);
      expect(error).to.be.instanceOf(ArchiveMismatchError);
      expect(await other.files()).to.deep.equal([]);
      expect(await retiredStreamsQueued(infrastructure.database.pool)).to.be.greaterThan(0);
      for (const name of retired.slice(2)) expect(await store.readStream(name)).to.not.deep.equal([]);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
    // The database's own archive takes the rest.
    const reports = await eventRetentionPass(terms());
    expect(reports!.reduce((n, r) => n + r.removed, 0)).to.equal(20 * 4 - 4);
  });

  it('a first use that stopped between the id file and the database completes at the next pass, as long as nothing was archived', async () => {
    const { retired } = await history();
    // The database recorded an id whose file was never written (or the other way round): nothing archived yet.
    await infrastructure.database.pool.query('INSERT INTO event_archive_identity (archive_id) VALUES ($1)', [
      randomUUID(),
    ]);
    const { rows } = await infrastructure.database.pool.query<{ archive_id: string }>(
      'SELECT archive_id FROM event_archive_identity',
    );
    expect(await archive.id()).to.equal(undefined);
    await retire(retired);
    const reports = await eventRetentionPass(terms());
    expect(await archive.id()).to.equal(rows[0]!.archive_id);
    expect(reports!.reduce((n, r) => n + r.removed, 0)).to.equal(20 * 4);
  });

  it('takes at most 1,000 streams a batch, whatever the rows-per-batch setting', async () => {
    await store.append('device-d1', [event('DeviceRegistered')]);
    // Streams never written (cheap to queue): the batches are counted, not the events.
    await retire(Array.from({ length: 1500 }, () => `message-${randomUUID()}`));
    const reports = await eventRetentionPass(terms({ batchSize: 100_000 }));
    expect(reports!.map((r) => r.streams)).to.deep.equal([1000, 500]);
  });

  it('one pass at a time: a second, started while the first holds the lock, does nothing', async () => {
    const { retired } = await history();
    await retire(retired);
    // The second pass starts in the middle of the first (at its first removal), from another session.
    let second: Awaited<ReturnType<typeof eventRetentionPass>> | 'not run' = 'not run';
    class SecondPassOnRemoval extends EventStoreDecorator {
      override readonly removeStreamEvents: EventStore['removeStreamEvents'] = async (streams, upto) => {
        if (second === 'not run') second = await eventRetentionPass(terms());
        return store.removeStreamEvents!(streams, upto);
      };
    }
    const first = await eventRetentionPass(terms({ store: new SecondPassOnRemoval(store) }));
    expect(second).to.equal(undefined);
    expect(first!.reduce((n, r) => n + r.removed, 0)).to.equal(20 * 4);
    expect((await archive.files()).reduce((n, f) => n + f.count, 0)).to.equal(20 * 4);
  });
});

/**
 * The same pass on EventStoreDB (the gRPC stand-in, a test double): the queue and the batches in
 * PostgreSQL, the events archived through the port and removed by `$tb`, then scavenged.
 */
describe(`event store retention on EventStoreDB (stand-in; queue on ${describeTarget()})`, function () {
  this.timeout(60_000);
  let infrastructure: Infrastructure & { testDatabase: TestDatabase };
  let standIn: EventStoreDbStandIn;
  let store: EventStoreDbEventStore;
  let directory: string;
  let archive: EventArchive;

  beforeEach(async () => {
    infrastructure = await openTestInfrastructure();
    standIn = await EventStoreDbStandIn.start({ batchAppend: true });
    store = new EventStoreDbEventStore(standIn.connectionString);
    directory = await mkdtemp(path.join(tmpdir(), 'herald-archive-'));
    archive = new EventArchive(directory);
  });
  afterEach(async () => {
    await store.close();
    await standIn.stop();
    await infrastructure.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('archives, truncates ($tb) and scavenges; archive + store replays as the original, byte for byte', async () => {
    const retired: string[] = [];
    for (let i = 0; i < 10; i++) {
      const message = `message-${randomUUID()}`;
      await store.append(message, [{ id: randomUUID(), type: 'MessageSent', data: { i } }], 'no_stream');
      await store.append('device-d1', [{ id: randomUUID(), type: 'DeviceRegistered', data: { i } }]);
      await store.append(message, [{ id: randomUUID(), type: 'MessageAcknowledged', data: { i } }], 0n);
      retired.push(message);
    }
    const replayText = async (withArchive: boolean) => {
      let text = '';
      const toText = async (chunk: string | Uint8Array) => {
        text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      };
      const merged = withArchive ? mergedWithArchive(archive.lines()[Symbol.asyncIterator](), toText) : undefined;
      await exportEvents(store, {}, await store.headPosition(), merged?.write ?? toText);
      await merged?.finish();
      return text;
    };
    const original = await replayText(false);
    await infrastructure.database.pool.query('INSERT INTO retired_streams (stream_name) SELECT unnest($1::text[])', [
      retired,
    ]);

    const reports = await eventRetentionPass({
      pool: infrastructure.database.pool,
      store,
      archive,
      batchSize: 4,
      projectionNames: [],
    });

    expect(reports!.reduce((n, r) => n + r.removed, 0)).to.equal(20);
    expect(standIn.scavenges).to.equal(1);
    for (const name of retired) expect(await gone(store, name), name).to.equal(true);
    // As the server's scavenge: each truncated stream's last event stays in $all, the rest leave it.
    const all = await store.readAll({ maxCount: 100 });
    expect(all.filter((e) => e.streamName === 'device-d1')).to.have.length(10);
    expect(all.filter((e) => e.streamName !== 'device-d1').map((e) => [e.streamName, e.type])).to.deep.equal(
      retired.map((name) => [name, 'MessageAcknowledged']),
    );
    expect(await replayText(true)).to.equal(original);
  });

  it('removes every category retention ends (RTIO calls and nonces, tickets, platform pushes); keeps devices, RTIO devices and inboxes', async () => {
    const { retired, kept } = await categoryHistory(store);
    const replayText = async (withArchive: boolean) => {
      let text = '';
      const toText = async (chunk: string | Uint8Array) => {
        text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      };
      const merged = withArchive ? mergedWithArchive(archive.lines()[Symbol.asyncIterator](), toText) : undefined;
      await exportEvents(store, {}, await store.headPosition(), merged?.write ?? toText);
      await merged?.finish();
      return text;
    };
    const original = await replayText(false);
    await infrastructure.database.pool.query('INSERT INTO retired_streams (stream_name) SELECT unnest($1::text[])', [
      [...retired, ...kept],
    ]);

    const reports = await eventRetentionPass({
      pool: infrastructure.database.pool,
      store,
      archive,
      batchSize: 3,
      projectionNames: [],
    });

    expect(reports!.reduce((n, r) => n + r.removed, 0)).to.equal(retired.length * 2);
    for (const name of retired) expect(await gone(store, name), name).to.equal(true);
    for (const name of kept) expect(await store.readStream(name), name).to.have.length(2);
    expect(await replayText(true)).to.equal(original);
  });

  it('a stream whose every event was truncated is no stream, whether the server answers it empty or not found (soft delete); no_stream starts it anew', async () => {
    for (const truncatedReadsAsNotFound of [false, true]) {
      const server = await EventStoreDbStandIn.start({ batchAppend: true, truncatedReadsAsNotFound });
      const esdb = new EventStoreDbEventStore(server.connectionString);
      try {
        const name = `message-${randomUUID()}`;
        const { position } = await esdb.append(
          name,
          [{ id: randomUUID(), type: 'MessageSent', data: {} }],
          'no_stream',
        );
        await esdb.removeStreamEvents([name], position);
        expect(await esdb.readStream(name).catch((e: unknown) => e)).to.be.instanceOf(StreamNotFoundError);
        // Read on from the revision after its last (a conflict's reload): not found either.
        expect(await esdb.readStream(name, { fromRevision: 1n }).catch((e: unknown) => e)).to.be.instanceOf(
          StreamNotFoundError,
        );
        await esdb.append(name, [{ id: randomUUID(), type: 'MessageSent', data: { again: true } }], 'no_stream');
        const twice = esdb.append(name, [{ id: randomUUID(), type: 'MessageSent', data: {} }], 'no_stream');
        expect(await twice.catch((e: unknown) => e)).to.be.instanceOf(WrongExpectedRevisionError);
        expect((await esdb.readStream(name)).map((e) => e.data)).to.deep.equal([{ again: true }]);
      } finally {
        await esdb.close();
        await server.stop();
      }
    }
  });

  it('a crash with the batch half truncated: the next pass truncates the rest and keeps the archive whole', async () => {
    const retired: string[] = [];
    for (let i = 0; i < 6; i++) {
      const message = `message-${randomUUID()}`;
      await store.append(message, [{ id: randomUUID(), type: 'MessageSent', data: { i } }], 'no_stream');
      await store.append('device-d1', [{ id: randomUUID(), type: 'DeviceRegistered', data: { i } }]);
      retired.push(message);
    }
    await infrastructure.database.pool.query('INSERT INTO retired_streams (stream_name) SELECT unnest($1::text[])', [
      retired,
    ]);
    let crashes = 1;
    class HalfTruncating extends EventStoreDecorator {
      override readonly removeStreamEvents: EventStore['removeStreamEvents'] = async (streams, upto) => {
        if (crashes-- <= 0) return store.removeStreamEvents(streams, upto);
        await store.removeStreamEvents(streams.slice(0, 3), upto);
        throw new Error('killed with half the batch truncated');
      };
    }
    const terms = {
      pool: infrastructure.database.pool,
      store: new HalfTruncating(store),
      archive,
      batchSize: 100,
      projectionNames: [],
    };
    const error = await eventRetentionPass(terms).catch((e: unknown) => e);
    expect((error as Error).message).to.equal('killed with half the batch truncated');
    await eventRetentionPass(terms);
    for (const name of retired) expect(await gone(store, name), name).to.equal(true);
    const archived: string[] = [];
    for await (const { line } of archive.lines()) archived.push((JSON.parse(line) as { stream: string }).stream);
    expect(archived.sort()).to.deep.equal([...retired].sort());
  });
});

/**
 * Two events on a stream of each category retention now ends beyond the read models' own rows (issue 26:
 * RTIO calls and their nonces, tickets, platform pushes) and of some it keeps, interleaved.
 */
async function categoryHistory(store: EventStore): Promise<{ retired: string[]; kept: string[] }> {
  const id = () => randomUUID().replace(/-/g, '');
  const retired = [
    `rtio-call-${id()}`,
    `rtio-nonce-${id()}`,
    `ticket-${randomUUID()}`,
    `platformpush-${randomUUID()}.${id()}`,
  ];
  const kept = [`rtio-device-${id()}`, `device-${id()}`, `inbox-camel.${id()}`, `broadcast-read-camel.n1.${id()}`];
  for (let i = 0; i < 2; i++)
    for (const name of [...retired, ...kept])
      await store.append(
        name,
        [{ id: randomUUID(), type: 'SomethingHappened', data: { name, i } }],
        i === 0 ? 'no_stream' : 0n,
      );
  return { retired, kept };
}

/** Whether the stream is no stream (removed by retention, or never written). */
async function gone(store: EventStore, name: string): Promise<boolean> {
  return (await store.readStream(name).catch((e: unknown) => e)) instanceof StreamNotFoundError;
}
