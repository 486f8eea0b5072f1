/**
 * Sizing (issue 26; docs/operations.md, "Sizing"): the bytes one operation of each feature adds to the
 * database, measured — pg_total_relation_size of every table (indexes and TOAST included) before and after
 * N operations of one kind, the event store's row bytes per stream prefix, divided by the operations
 * acknowledged.
 *
 *   npm run bench:sizing
 *
 * Parameters (environment):
 *   BENCH_SIZING_OPERATIONS     operations per feature (default 2,000)
 *   BENCH_SIZING_RATE           their rate per second (default 100)
 *   BENCH_SIZING_FEATURES       which, comma-separated (default all: koala,onepush,rtio,datahub,email)
 *   BENCH_REQUEST_TIMEOUT_MS    one request's timeout (default 15,000)
 *
 * herald runs on its embedded defaults (bench/heraldProcess.ts startEmbeddedHerald) with an SMTP peer as
 * SMTP_URL; the operations are the soaks' (bench/chaosLoad.ts, one load generator process per feature,
 * only that feature's rate set): a Koala message to one user (every other one with `expire`, the inbox
 * row's partial index included), a ONE-PUSH `needConfirm` push to one connected device that confirms,
 * an RTIO call answered by its connected device, a datahub notification to one user (alternately the
 * topic and REST), an email through to_emails.json, sent. Before each feature's "before" and "after", the
 * database is VACUUMed (as autovacuum would have) and the bench waits until no table's rows change for
 * 3 s (the projections and workers are done). Retention is off (`forever`): nothing leaves meanwhile.
 */
import pg from 'pg';
import { EVENT_SIZES_BY_PREFIX_SQL } from '../src/eventStore/postgres/eventTables';
import { startSmtpPeer } from '../test/support/smtpPeer';
import { type Kind, KINDS, type LoadResult, type LoadSetup } from './chaosLoad';
import { startEmbeddedHerald } from './heraldProcess';
import { startLoad } from './loadProcess';
import { describeMachine } from './machine';
import { type Cleanup, envInteger, envNumber, progress, runBenchmark, sleep } from './run';
import { round } from './stats';
import { type StorageSample, storageSample } from './support';

const OPERATIONS = envInteger('BENCH_SIZING_OPERATIONS', 2000, 10);
const RATE = envNumber('BENCH_SIZING_RATE', 100, 1);
const REQUEST_TIMEOUT_MS = envNumber('BENCH_REQUEST_TIMEOUT_MS', 15_000, 1000);
const ALL_FEATURES: ReadonlyArray<{ kind: Kind; what: string }> = [
  { kind: 'koala', what: 'a Koala message to one user (half with expire)' },
  { kind: 'onepush', what: 'a ONE-PUSH needConfirm push to one device, confirmed' },
  { kind: 'rtio', what: 'an RTIO call, answered' },
  { kind: 'datahub', what: 'a datahub notification to one user' },
  { kind: 'email', what: 'an email, sent' },
];
const FEATURES = ALL_FEATURES.filter(
  (f) => !process.env.BENCH_SIZING_FEATURES || process.env.BENCH_SIZING_FEATURES.split(',').includes(f.kind),
);

/** The event store's row bytes and events per stream prefix (pg_column_size of each row). */
async function eventBytesByPrefix(database: pg.Client): Promise<Record<string, { events: number; bytes: number }>> {
  const { rows } = await database.query<{ prefix: string; events: string; bytes: string }>(EVENT_SIZES_BY_PREFIX_SQL);
  return Object.fromEntries(rows.map((r) => [r.prefix, { events: Number(r.events), bytes: Number(r.bytes) }]));
}

/** VACUUM, then wait until no table's row count changes for 3 s (60 s at most): herald is done with the last operation. */
async function settled(database: pg.Client): Promise<StorageSample> {
  const deadline = Date.now() + 60_000;
  const rowsOf = (s: StorageSample) => JSON.stringify(Object.entries(s.tables).map(([t, v]) => [t, v.rows]));
  let last = await storageSample(database);
  let stableSince = Date.now();
  while (Date.now() - stableSince < 3000 && Date.now() < deadline) {
    await sleep(500);
    const next = await storageSample(database);
    if (rowsOf(next) !== rowsOf(last)) stableSince = Date.now();
    last = next;
  }
  await database.query('VACUUM');
  return storageSample(database);
}

async function main(cleanup: Cleanup): Promise<unknown> {
  const machine = await describeMachine();
  const smtp = await startSmtpPeer();
  cleanup.add('stop the SMTP peer', () => smtp.close());
  const { herald, database } = await startEmbeddedHerald(cleanup, {
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    ...Object.fromEntries(
      ['MESSAGES', 'DELIVERIES', 'PUSHES', 'RTIO_CALLS', 'RTIO_REPORTS', 'EMAILS', 'INBOXES', 'TICKETS'].map((c) => [
        `HERALD_RETENTION_${c}`,
        'forever',
      ]),
    ),
  });
  const features = [];
  for (const [index, feature] of FEATURES.entries()) {
    const rates = Object.fromEntries(KINDS.map((k) => [k, k === feature.kind ? RATE : 0])) as Record<Kind, number>;
    const load = startLoad();
    const setup: LoadSetup = {
      nodes: [herald.url],
      run: `sizing-${index}-${Date.now()}`,
      users: 4,
      devices: 4,
      rtioDevices: 2,
      rates,
      maxInFlight: 64,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      koalaExpireSeconds: 86_400,
    };
    const ready = load.next('ready', 180_000);
    load.send({ type: 'setup', setup });
    await ready;
    const before = await settled(database);
    const eventsBefore = await eventBytesByPrefix(database);
    progress(`${feature.kind}: ${OPERATIONS} operations at ${RATE}/s`);
    load.send({ type: 'run' });
    await sleep((OPERATIONS / RATE) * 1000);
    const resultPromise = load.next<{ result: LoadResult }>('result', 300_000);
    load.send({ type: 'stop', drainUntil: Date.now() + 60_000 });
    const { result } = await resultPromise;
    await load.stop();
    if (feature.kind === 'email') {
      const deadline = Date.now() + 60_000;
      while (smtp.received.length < result.summary.email.acknowledged && Date.now() < deadline) await sleep(200);
    }
    const after = await settled(database);
    const eventsAfter = await eventBytesByPrefix(database);
    const acknowledged = result.summary[feature.kind].acknowledged;
    const perOperation = (bytes: number) => (acknowledged > 0 ? round(bytes / acknowledged, 0) : null);
    const tables = Object.fromEntries(
      Object.keys(after.tables)
        .map(
          (t) =>
            [
              t,
              after.tables[t]!.bytes - (before.tables[t]?.bytes ?? 0),
              after.tables[t]!.rows - (before.tables[t]?.rows ?? 0),
            ] as const,
        )
        .filter(([, bytes, rows]) => bytes !== 0 || rows !== 0)
        .map(([t, bytes, rows]) => [
          t,
          { bytesPerOperation: perOperation(bytes), rowsPerOperation: round(rows / Math.max(1, acknowledged), 3) },
        ]),
    );
    const eventStoreTables = ['events', 'streams'];
    const sum = (pick: (t: string) => boolean) =>
      Object.keys(after.tables)
        .filter(pick)
        .reduce((n, t) => n + after.tables[t]!.bytes - (before.tables[t]?.bytes ?? 0), 0);
    features.push({
      feature: feature.kind,
      what: feature.what,
      acknowledged,
      failed: result.summary[feature.kind].failed,
      bytesPerOperation: {
        eventStore: perOperation(sum((t) => eventStoreTables.includes(t))),
        readModels: perOperation(sum((t) => !eventStoreTables.includes(t))),
        database: perOperation(after.databaseBytes - before.databaseBytes),
      },
      tables,
      eventsByPrefix: Object.fromEntries(
        Object.entries(eventsAfter)
          .map(
            ([prefix, a]) =>
              [
                prefix,
                a.events - (eventsBefore[prefix]?.events ?? 0),
                a.bytes - (eventsBefore[prefix]?.bytes ?? 0),
              ] as const,
          )
          .filter(([, events]) => events !== 0)
          .map(([prefix, events, bytes]) => [
            prefix,
            {
              eventsPerOperation: round(events / Math.max(1, acknowledged), 3),
              rowBytesPerOperation: perOperation(bytes),
            },
          ]),
      ),
    });
    progress(
      `${feature.kind}: ${JSON.stringify(features[features.length - 1]!.bytesPerOperation)} bytes per operation`,
    );
  }
  return {
    benchmark: 'sizing: bytes per operation per feature (issue 26)',
    machine: { ...machine, store: 'embedded PostgreSQL (herald-owned)' },
    parameters: { operationsPerFeature: OPERATIONS, ratePerSecond: RATE, retention: 'forever' },
    note: 'bytes: pg_total_relation_size deltas (heap, indexes, TOAST, free space maps) after VACUUM, over the acknowledged operations; eventsByPrefix: the rows own bytes (pg_column_size), without indexes',
    features,
  };
}

runBenchmark(main);
