/**
 * Append throughput of the PostgreSQL event store adapter, beside raw INSERT baselines on the same
 * database in the same run. Prints one JSON document.
 *
 *   npm run bench:append                      # embedded PostgreSQL
 *   DATABASE_URL=postgres://… npm run bench:append
 *   BENCH_SECONDS=5 npm run bench:append      # seconds per scenario (default 5)
 *
 * Each herald append is one event to the writer's own stream with its expected revision, as the command
 * handler does. Baselines: one autocommitted single-row INSERT per event (what an append costs without
 * group commit), and 500-row multi-row INSERTs (the ceiling of batching).
 *
 * Beside each rate, µs of CPU per event (CpuSampler over the scenario): of this process (the adapter and
 * the load that drives it, in one process) and of PostgreSQL — the embedded server's processes, or, with
 * DATABASE_URL, every process of the machine named `postgres` (so run it on an otherwise idle server).
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { PostgresEventStore } from '../src/eventStore/postgres/postgresEventStore';
import { postgresEventStoreMigrations } from '../src/eventStore/postgres/schema/migrations';
import type { Database } from '../src/postgres/database';
import { migrate } from '../src/postgres/migrations';
import { createTestDatabase, describeTarget, stopTestServer } from '../test/support/postgres';
import { CLOCK_TICKS, CpuSampler } from './cpu';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const POOL_SIZE = 16;
const payload = { title: 'system upgrade', content: 'system patching 20:21', users: ['jiangxiaoyu', 'zhouyang'] };

interface Result {
  readonly scenario: string;
  readonly concurrency: number;
  readonly events: number;
  readonly eventsPerSecond: number;
  readonly latencyMs?: { readonly p50: number; readonly p99: number };
  readonly cpu: {
    /** This process: the adapter (or the raw INSERTs' pg client) and the load driving it. */
    readonly processMicrosPerEvent: number | null;
    readonly postgresMicrosPerEvent: number | null;
    readonly postgresPercent: number | null;
    readonly machineBusyPercent: number | null;
  };
}

/** CPU ticks of every process named `postgres` (a DATABASE_URL server on this machine); NaN when none is readable. */
function postgresServerTicks(): number {
  let ticks = 0;
  let found = false;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (!text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')).startsWith('postgres')) continue;
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
      found = true;
    } catch {
      // the process has gone
    }
  }
  return found ? ticks : NaN;
}

const cpu = new CpuSampler(undefined);
const snapshot = () => ({ sampled: cpu.snapshot(), server: postgresServerTicks() });

/** Runs `concurrency` workers calling `operation` until the time is up; each call writes `eventsPerCall`. */
async function measure(
  scenario: string,
  concurrency: number,
  eventsPerCall: number,
  operation: (worker: number, i: number) => Promise<void>,
): Promise<Result> {
  const latencies: number[] = [];
  const before = snapshot();
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  let calls = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const t0 = performance.now();
        await operation(worker, i);
        latencies.push(performance.now() - t0);
        calls++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const after = snapshot();
  const events = calls * eventsPerCall;
  const use = CpuSampler.between(before.sampled, after.sampled, events);
  const benchMicros =
    after.sampled.bench.user + after.sampled.bench.system - before.sampled.bench.user - before.sampled.bench.system;
  const serverTicks = after.server - before.server;
  const embedded = !process.env.DATABASE_URL;
  const postgresMicrosPerEvent = embedded
    ? (use.postgresMicrosPerOperation ?? null)
    : Number.isFinite(serverTicks) && events > 0
      ? Number(((1e6 * serverTicks) / CLOCK_TICKS / events).toFixed(1))
      : null;
  const postgresPercent = embedded
    ? use.postgresPercent
    : Number.isFinite(serverTicks)
      ? Number(((100 * serverTicks) / CLOCK_TICKS / elapsed).toFixed(1))
      : null;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    Number(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!.toFixed(2));
  return {
    scenario,
    concurrency,
    events,
    eventsPerSecond: Math.round(events / elapsed),
    latencyMs: { p50: at(0.5), p99: at(0.99) },
    cpu: {
      processMicrosPerEvent: events > 0 ? Number((benchMicros / events).toFixed(1)) : null,
      postgresMicrosPerEvent,
      postgresPercent,
      machineBusyPercent: use.machineBusyPercent,
    },
  };
}

async function heraldAppend(database: Database, concurrency: number): Promise<Result> {
  const store = new PostgresEventStore(database);
  const run = randomUUID().slice(0, 8);
  try {
    return await measure('herald append (PostgreSQL adapter, group commit)', concurrency, 1, (worker, i) =>
      store
        .append(
          `bench-${run}-${worker}`,
          [{ id: randomUUID(), type: 'MessageSent', data: payload }],
          i === 0 ? 'no_stream' : BigInt(i - 1),
        )
        .then(() => undefined),
    );
  } finally {
    await store.close();
  }
}

async function rawInsert(database: Database, concurrency: number): Promise<Result> {
  return measure('raw single-row INSERT (autocommit)', concurrency, 1, async () => {
    await database.pool.query('INSERT INTO bench_raw (id, stream_name, data) VALUES ($1, $2, $3)', [
      randomUUID(),
      'bench',
      JSON.stringify(payload),
    ]);
  });
}

async function rawBatchInsert(database: Database, concurrency: number): Promise<Result> {
  const rows = 500;
  return measure(`raw ${rows}-row INSERT`, concurrency, rows, async () => {
    const ids = Array.from({ length: rows }, () => randomUUID());
    await database.pool.query(
      'INSERT INTO bench_raw (id, stream_name, data) SELECT unnest($1::uuid[]), $2, $3::jsonb',
      [ids, 'bench', JSON.stringify(payload)],
    );
  });
}

async function main(): Promise<void> {
  const testDatabase = await createTestDatabase();
  const database = testDatabase.open({ maxConnections: POOL_SIZE });
  try {
    await migrate(database.pool, postgresEventStoreMigrations);
    await database.pool.query(
      'CREATE TABLE bench_raw (position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id uuid NOT NULL UNIQUE, stream_name text NOT NULL, data jsonb NOT NULL)',
    );
    const { rows } = await database.pool.query<{ server_version: string }>('SHOW server_version');

    const results: Result[] = [];
    for (const concurrency of [1, 64]) {
      results.push(await rawInsert(database, concurrency));
      results.push(await heraldAppend(database, concurrency));
    }
    results.push(await rawBatchInsert(database, 4));

    const rate = (scenario: string, concurrency: number) =>
      results.find((r) => r.scenario.startsWith(scenario) && r.concurrency === concurrency)?.eventsPerSecond ?? 0;
    process.stdout.write(
      JSON.stringify(
        {
          benchmark: 'append',
          machine: {
            cpus: os.cpus().length,
            node: process.version,
            postgres: rows[0]?.server_version,
            target: describeTarget(),
            poolSize: POOL_SIZE,
          },
          secondsPerScenario: SECONDS,
          results,
          heraldVsRawInsert: {
            concurrency1: Number((rate('herald', 1) / rate('raw single', 1)).toFixed(2)),
            concurrency64: Number((rate('herald', 64) / rate('raw single', 64)).toFixed(2)),
          },
        },
        null,
        2,
      ) + '\n',
    );
  } finally {
    await testDatabase.drop();
    await stopTestServer();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
