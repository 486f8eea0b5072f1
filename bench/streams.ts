/**
 * Issue 26, "Long streams": what one datahub decision costs on the inbox of a user with a long history —
 * marking a site broadcast read, and clearing the stats — in time and in events read from the store.
 * Prints one JSON document.
 *
 *   flock /work/bench.lock npm run -s bench:streams
 *   BENCH_CODE=/tmp/herald-before flock /work/bench.lock npm run -s bench:streams   # an earlier herald's decisions
 *   DATABASE_URL=postgres://… npm run -s bench:streams
 *
 * Parameters (environment):
 *   BENCH_PRIOR_READS  broadcast reads the user's inbox holds first (default 10,000)
 *   BENCH_SAMPLES      timed decisions of each kind, one at a time (default 50)
 *   BENCH_CODE         the herald tree whose command handler and aggregates decide (default: this one), e.g.
 *                      `git archive <commit> src domain | tar -x -C /tmp/herald-before`: the same decisions
 *                      as that herald made them, on the same store, measured the same way
 *
 * The inbox `inbox-camel.bench-user` is written as herald before issue 26 wrote it (one NotificationRead
 * per broadcast read), in one PostgreSQL event store (this tree's adapter). Then, one at a time: a read of
 * a new broadcast (as Datahub.markRead decides it once the read model has found the broadcast unread), and
 * a clear (as Datahub.clearStats: load, then decide on what was loaded). The command layer only: the read
 * model's lookup before a read (one indexed query, which since issue 26 also says whether the user read it)
 * is left out. Events read are counted by
 * test/support/streamReads.ts.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Aggregate, LoadedStream } from '../src/command/commandHandler';
import type { NewEvent } from '../src/eventStore/eventStore';
import type { PostgresEventStore } from '../src/eventStore/postgres/postgresEventStore';
import type { postgresEventStoreMigrations } from '../src/eventStore/postgres/schema/migrations';
import type { migrate } from '../src/postgres/migrations';
import { createTestDatabase, describeTarget, stopTestServer } from '../test/support/postgres';
import { countStreamReads } from '../test/support/streamReads';
import { envInteger, progress, runBenchmark } from './run';
import { latencyStats } from './stats';

const PRIOR_READS = envInteger('BENCH_PRIOR_READS', 10_000, 0);
const SAMPLES = envInteger('BENCH_SAMPLES', 50, 1);
const CODE = path.resolve(process.env.BENCH_CODE ?? path.join(__dirname, '..'));
const APP = 'camel';
const USER = 'bench-user';

type AnyAggregate = Aggregate<unknown, { type: string; data: unknown }, unknown>;
interface Code {
  handleCommand: (...args: unknown[]) => Promise<{ events: readonly unknown[] }>;
  loadState: (store: unknown, aggregate: unknown, streamName: string) => Promise<LoadedStream<{ statsClears: number }>>;
  aggregates: Record<string, AnyAggregate | undefined>;
  inbox: Record<string, ((...ids: string[]) => string) | undefined>;
}

runBenchmark(async (cleanup) => {
  const code: Code = {
    ...((await import(path.join(CODE, 'src/command/commandHandler.ts'))) as Pick<Code, 'handleCommand' | 'loadState'>),
    aggregates: (await import(path.join(CODE, 'src/command/aggregates.ts'))) as Code['aggregates'],
    inbox: (await import(path.join(CODE, 'domain/inbox/inbox.ts'))) as Code['inbox'],
  };
  const inboxAggregate = code.aggregates.inboxAggregate!;
  const inboxStream = code.inbox.inboxStreamName!(APP, USER);
  // Since issue 26 a broadcast's read is its own stream; before, it was the inbox's.
  const readStreamOf = (notificationId: string) =>
    code.inbox.broadcastReadStreamName
      ? {
          aggregate: code.aggregates.broadcastReadAggregate!,
          stream: code.inbox.broadcastReadStreamName(APP, notificationId, USER),
        }
      : { aggregate: inboxAggregate, stream: inboxStream };

  const testDatabase = await createTestDatabase();
  cleanup.add('drop the database', async () => {
    await testDatabase.drop();
    await stopTestServer();
  });
  const database = testDatabase.open();
  // The store of the tree that decides, so its error classes are the ones its handler tells apart.
  const { PostgresEventStore: Store } = (await import(
    path.join(CODE, 'src/eventStore/postgres/postgresEventStore.ts')
  )) as {
    PostgresEventStore: typeof PostgresEventStore;
  };
  const { postgresEventStoreMigrations: migrations } = (await import(
    path.join(CODE, 'src/eventStore/postgres/schema/migrations.ts')
  )) as { postgresEventStoreMigrations: typeof postgresEventStoreMigrations };
  const { migrate: migrateIt } = (await import(path.join(CODE, 'src/postgres/migrations.ts'))) as {
    migrate: typeof migrate;
  };
  await migrateIt(database.pool, migrations);
  const store = new Store(database);
  const reads = countStreamReads(store);
  cleanup.add('close the store', () => store.close());

  progress(`writing ${PRIOR_READS} earlier broadcast reads to ${inboxStream}`);
  const prior: NewEvent[] = Array.from({ length: PRIOR_READS }, () => ({
    id: randomUUID(),
    type: 'NotificationRead',
    data: { notificationId: randomUUID(), appId: APP, userId: USER, readAt: '2026-01-01T00:00:00.000Z' },
    metadata: { correlationId: 'bench', causationId: 'bench' },
  }));
  for (let i = 0; i < prior.length; i += 1_000) await store.append(inboxStream, prior.slice(i, i + 1_000));

  async function timed(label: string, decide: () => Promise<number>) {
    const ms: number[] = [];
    const eventsRead: number[] = [];
    let appended = 0;
    for (let i = 0; i < SAMPLES; i++) {
      const before = reads.eventsRead;
      const started = performance.now();
      appended += await decide();
      ms.push(performance.now() - started);
      eventsRead.push(reads.eventsRead - before);
    }
    progress(`${label}: p50 ${latencyStats(ms).p50Ms} ms`);
    return {
      latencyMs: latencyStats(ms),
      eventsReadPerDecision: { min: Math.min(...eventsRead), max: Math.max(...eventsRead) },
      appended,
    };
  }

  const markBroadcastRead = await timed('mark a broadcast read', async () => {
    const notificationId = randomUUID();
    const { aggregate, stream } = readStreamOf(notificationId);
    const command = {
      type: 'MarkBroadcastRead',
      appId: APP,
      userId: USER,
      notificationId,
      now: new Date().toISOString(),
    };
    const known = code.inbox.broadcastReadStreamName
      ? [{ state: aggregate.decider.initialState(), revision: -1n }]
      : [];
    return (await code.handleCommand(store, aggregate, stream, command, { appId: APP }, ...known)).events.length;
  });
  const clearStats = await timed('clear the stats', async () => {
    const loaded = await code.loadState(store, inboxAggregate, inboxStream);
    const command = {
      type: 'ClearNotificationStats',
      appId: APP,
      userId: USER,
      clearsSeen: loaded.state.statsClears,
      now: new Date().toISOString(),
    };
    return (await code.handleCommand(store, inboxAggregate, inboxStream, command, { appId: APP }, loaded)).events
      .length;
  });

  return {
    benchmark: 'streams',
    code: CODE,
    target: describeTarget(),
    priorReads: PRIOR_READS,
    samples: SAMPLES,
    markBroadcastRead,
    clearStats,
  };
});
