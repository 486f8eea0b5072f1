/**
 * The event store's retention on PostgreSQL (issue 26): what archiving and removing retired streams costs,
 * per event, and what the alternative — a partition by position range dropped whole, after moving out
 * what must stay — would cost for the same range.
 *
 *   node --import tsx bench/eventRetention.ts                      # embedded PostgreSQL
 *   DATABASE_URL=postgres://… node --import tsx bench/eventRetention.ts
 *
 * Parameters (environment):
 *   BENCH_STREAMS     retired message streams generated (default 50,000), 4 events each, each message
 *                     followed by one event of a kept stream (a device's): retired and kept events share
 *                     every position range, as herald's categories do
 *   BENCH_BATCH       streams per removal batch (default 1,000: HERALD_RETENTION_BATCH_SIZE's default)
 *
 * Steps on a fresh database: generate the history set-based, VACUUM (ANALYZE); queue every message stream
 * as retired; time one eventRetentionPass (archive to a temporary directory, then delete, batch by
 * batch), with µs of CPU per removed event of this process (which formats nothing: PostgreSQL writes the
 * lines) and of the embedded PostgreSQL; the events table's size before, after, and after VACUUM. Then the
 * partition alternative's unavoidable part on the same range: copying the kept rows out (INSERT … SELECT),
 * timed. Prints one JSON document on stdout.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PostgresEventStore } from '../src/eventStore/postgres/postgresEventStore';
import { postgresEventStoreMigrations } from '../src/eventStore/postgres/schema/migrations';
import { migrate } from '../src/postgres/migrations';
import { projectionRunnerMigrations } from '../src/projection/projectionRunner';
import { EventArchive } from '../src/storage/eventArchive';
import { eventRetentionMigrations, eventRetentionPass } from '../src/storage/eventRetention';
import { createTestDatabase, describeTarget } from '../test/support/postgres';
import { CpuSampler } from './cpu';
import { envInteger, progress, runBenchmark } from './run';
import { round } from './stats';

const STREAMS = envInteger('BENCH_STREAMS', 50_000, 1);
const BATCH = envInteger('BENCH_BATCH', 1_000, 1);

runBenchmark(async (cleanup) => {
  const testDatabase = await createTestDatabase();
  cleanup.add('test database', () => testDatabase.drop());
  const database = testDatabase.open();
  const { pool } = database;
  await migrate(pool, [...postgresEventStoreMigrations, ...projectionRunnerMigrations, ...eventRetentionMigrations]);
  const store = new PostgresEventStore(database);
  cleanup.add('store', () => store.close());
  const directory = await mkdtemp(path.join(tmpdir(), 'herald-bench-archive-'));
  cleanup.add('archive', () => rm(directory, { recursive: true, force: true }));

  progress(`generating ${STREAMS} message streams (4 events each) interleaved with ${STREAMS} device events`);
  await pool.query(
    `INSERT INTO events (event_id, stream_name, revision, event_type, data, metadata)
     SELECT gen_random_uuid(),
            CASE WHEN k < 4 THEN 'message-' || i ELSE 'device-' || (i % 1000) END,
            CASE WHEN k < 4 THEN k ELSE i / 1000 END,
            CASE WHEN k = 0 THEN 'MessageSent' WHEN k < 4 THEN 'MessageAcknowledged' ELSE 'DeviceRegistered' END,
            jsonb_build_object('messageId', 'm-' || i, 'appId', 'camel', 'title', repeat('t', 40),
                               'content', repeat('c', 120), 'recipients', jsonb_build_array('u-' || (i % 5000))),
            jsonb_build_object('appId', 'camel', 'correlationId', gen_random_uuid(), 'actor', 'bench')
       FROM generate_series(0, $1 - 1) AS i, generate_series(0, 4) AS k
      ORDER BY i, k`,
    [STREAMS],
  );
  await pool.query(
    `INSERT INTO streams (stream_name, revision) SELECT stream_name, max(revision) FROM events GROUP BY stream_name`,
  );
  await pool.query('VACUUM (ANALYZE) events, streams');
  const sizeOf = async () =>
    Number((await pool.query<{ n: string }>("SELECT pg_total_relation_size('events') AS n")).rows[0]!.n);
  const sizeBefore = await sizeOf();
  const head = await store.headPosition();
  await pool.query(
    `INSERT INTO retired_streams (stream_name) SELECT 'message-' || i FROM generate_series(0, $1 - 1) i`,
    [STREAMS],
  );

  progress(`archiving and removing ${STREAMS * 4} events in batches of ${BATCH} streams`);
  const sampler = new CpuSampler(undefined);
  const from = sampler.snapshot();
  const reports = (await eventRetentionPass({
    pool,
    store,
    archive: new EventArchive(directory),
    batchSize: BATCH,
    projectionNames: [],
  }))!;
  const to = sampler.snapshot();
  const benchCpu = (to.bench.user + to.bench.system - from.bench.user - from.bench.system) / 1;
  const removed = reports.reduce((n, r) => n + r.removed, 0);
  const seconds = (to.at - from.at) / 1000;
  const cpu = CpuSampler.between(from, to, removed);
  const sizeAfter = await sizeOf();
  await pool.query('VACUUM events');
  const sizeAfterVacuum = await sizeOf();
  const archive = await new EventArchive(directory).files();

  progress('the partition alternative: copying the kept rows of the same range out');
  const copyStarted = performance.now();
  await pool.query(
    `CREATE TABLE kept AS SELECT * FROM events WHERE position <= $1 AND stream_name NOT LIKE 'message-%'`,
    [head.toString()],
  );
  const copySeconds = (performance.now() - copyStarted) / 1000;

  return {
    target: describeTarget(),
    streams: STREAMS,
    batch: BATCH,
    eventsRemoved: removed,
    eventsKept: STREAMS,
    batches: reports.length,
    seconds: round(seconds, 2),
    eventsPerSecond: Math.round(removed / seconds),
    benchMicrosPerEvent: round(benchCpu / removed, 1),
    postgresMicrosPerEvent: cpu.postgresMicrosPerOperation ?? null,
    machineBusyPercent: cpu.machineBusyPercent,
    eventsTableBytes: { before: sizeBefore, after: sizeAfter, afterVacuum: sizeAfterVacuum },
    archive: {
      files: archive.length,
      bytes: archive.reduce((n, f) => n + f.bytes, 0),
      bytesPerEvent: round(archive.reduce((n, f) => n + f.bytes, 0) / removed, 1),
    },
    partitionAlternative: {
      keptRowsCopied: STREAMS,
      copySeconds: round(copySeconds, 2),
      note: 'the copy alone; a detach/drop and the swap of the kept rows back come on top',
    },
  };
});
