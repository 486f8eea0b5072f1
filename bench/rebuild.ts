/**
 * B4 — rebuilding every projection from the event store. Goal: at least 50,000 events/s.
 *
 *   node --import tsx bench/rebuild.ts                          # embedded PostgreSQL
 *   BENCH_EVENTS=20000 node --import tsx bench/rebuild.ts       # a small run
 *   DATABASE_URL=postgres://… node --import tsx bench/rebuild.ts
 *
 * Parameters (environment):
 *   BENCH_EVENTS                   message events generated into the store (default 1,000,000)
 *   BENCH_USERS                    recipient population user-0 … (default 50,000)
 *   BENCH_CHUNK                    slots (≈ messages) per generating INSERT (default 20,000)
 *   BENCH_SEED                     seed of the generated history (default herald-bench)
 *   BENCH_READ_PAGE                page size of the baseline read (default 5,000)
 *   BENCH_REBUILD_TIMEOUT_SECONDS  the rebuild is stopped after this long (default 3,600)
 *   BENCH_GOAL_EVENTS_PER_SECOND   the goal (default 50,000)
 *   BENCH_READY_TIMEOUT_SECONDS    wait for herald's /readyz (default 120)
 *
 * Steps, all on a fresh database of the test server (test/support/postgres.ts):
 *   1. herald serve is started once, so it creates its schema (and registers the app camel), and stopped.
 *   2. BENCH_EVENTS events of camel's messages are written straight into the `events`/`streams` tables
 *      with set-based SQL (bench/support.ts generateMessageEvents): MessageSent to 1–50 recipients
 *      (skewed toward few), MessageScheduled followed later by MessageReleased, MessageAcknowledged by
 *      recipients of delivered messages. A sample is checked against domain/message's codecs and decider.
 *      Then VACUUM (ANALYZE), as a store that has been running a while would be.
 *   3. Baseline: every event read in position order with keyset pages (`WHERE position > $last ORDER BY
 *      position LIMIT n`, all columns, JSON parsed by the client as herald's pg client would; and once
 *      more with data/metadata fetched as text, to show what the JSON parsing costs), with µs of CPU per
 *      event of the reading client (the bench) and of PostgreSQL.
 *   4. `node --import tsx src/cli.ts projections rebuild` in a child process, timed end to end (process
 *      start to exit); the rate is events in the store ÷ that time. Its progress lines give each
 *      projection's replay time too. µs of CPU per event of herald (the CLI process, tsx start-up
 *      included) and of PostgreSQL, from /proc sampled every 100 ms while it runs (the CLI's figures end
 *      with its last sample, at most 100 ms before it exits).
 *   5. Sanity: rows in notifications / notification_messages against what was generated.
 *
 * Prints one JSON document on stdout; progress on stderr.
 */
import { CpuSampler, type CpuSnapshot } from './cpu';
import { type CliRun, incompleteRun } from './heraldProcess';
import { envInteger, progress, runBenchmark } from './run';
import { perSecond, round } from './stats';
import {
  generatedMessageStore,
  messageHistoryParameters,
  readAllInPositionOrder,
  readModelCounts,
  timeRebuild,
} from './support';

const HISTORY = messageHistoryParameters();
const READ_PAGE = envInteger('BENCH_READ_PAGE', 5_000, 1);
const REBUILD_TIMEOUT_SECONDS = envInteger('BENCH_REBUILD_TIMEOUT_SECONDS', 3_600, 1);
const GOAL = envInteger('BENCH_GOAL_EVENTS_PER_SECOND', 50_000, 1);

interface ProjectionFigures {
  firstReportSecond: number;
  doneSecond: number | null;
  /** As its done line gives it: events read ÷ seconds until it was swapped in. */
  eventsPerSecond: number | null;
  head: string;
}

/** From the rebuild's progress lines: when each projection was first reported and when it was done. */
function perProjection(run: CliRun): Record<string, ProjectionFigures> {
  const result: Record<string, ProjectionFigures> = {};
  run.stdoutLines.forEach((line, index) => {
    let parsed: { projection?: string; head?: string; done?: boolean; eventsPerSecond?: number };
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      return;
    }
    if (!parsed.projection) return;
    const at = Number(run.lineTimes[index]!.toFixed(2));
    const entry = (result[parsed.projection] ??= {
      firstReportSecond: at,
      doneSecond: null,
      eventsPerSecond: null,
      head: String(parsed.head),
    });
    if (parsed.done) {
      entry.doneSecond = at;
      entry.eventsPerSecond = parsed.eventsPerSecond ?? null;
    }
  });
  return result;
}

/** The baseline read, with µs of CPU per event of the reading client (this process) and of PostgreSQL. */
async function timedRead(url: string, parsed: boolean) {
  const sampler = new CpuSampler(undefined);
  const before = sampler.snapshot();
  const read = await readAllInPositionOrder(url, parsed, READ_PAGE);
  const after = sampler.snapshot();
  const cpu = CpuSampler.between(before, after, read.events);
  const clientMicros = after.bench.user + after.bench.system - (before.bench.user + before.bench.system);
  return {
    ...read,
    clientMicrosPerEvent: read.events > 0 ? round(clientMicros / read.events, 1) : null,
    postgresMicrosPerEvent: cpu.postgresMicrosPerOperation ?? null,
  };
}

/**
 * The rebuild, with CPU from /proc: herald's process is sampled every SAMPLE_MS while it runs, as its
 * figures leave /proc when it exits.
 */
const SAMPLE_MS = 100;
async function sampledRebuild(url: string) {
  let sampler: CpuSampler | undefined;
  let first: CpuSnapshot | undefined;
  let last: CpuSnapshot | undefined;
  const sample = () => {
    const snapshot = sampler?.snapshot();
    if (snapshot && Number.isFinite(snapshot.herald)) last = snapshot;
  };
  const timer = setInterval(sample, SAMPLE_MS);
  try {
    const result = await timeRebuild(url, REBUILD_TIMEOUT_SECONDS * 1000, (pid) => {
      sampler = new CpuSampler(pid);
      // Its ticks start at 0: this snapshot stands for the moment before it started.
      first = { ...sampler.snapshot(), herald: 0 };
    });
    return { ...result, cpu: first && last ? CpuSampler.between(first, last) : undefined, first, last };
  } finally {
    clearInterval(timer);
  }
}

runBenchmark(async (cleanup) => {
  const { url, machine, generated, store } = await generatedMessageStore(cleanup, HISTORY);

  progress('baseline: reading the store in position order');
  const read = await timedRead(url, true);
  const readText = await timedRead(url, false);
  progress(`  ${read.eventsPerSecond} events/s (JSON as text: ${readText.eventsPerSecond} events/s)`);

  progress(`herald projections rebuild (timeout ${REBUILD_TIMEOUT_SECONDS} s)`);
  const { run, lastProgress, cpu, first, last } = await sampledRebuild(url);
  const failure =
    incompleteRun('the rebuild', run) ?? (cpu ? undefined : 'the rebuild ended before its CPU could be sampled');
  if (failure) progress(failure);
  const completed = !failure;
  const rebuildRate = completed ? perSecond(store.events, run.seconds) : 0;
  const perEvent = first && last ? CpuSampler.between(first, last, store.events) : undefined;

  const counts = await readModelCounts(url);
  const checks = {
    notificationsMatch: counts.notifications === generated.notifications,
    notificationMessagesMatch: counts.notificationMessages === generated.messages,
    appRegistered: counts.apps >= 1,
    checkpointsAtHead: Object.values(counts.checkpoints).every((p) => BigInt(p) >= BigInt(store.headPosition)),
  };

  return {
    benchmark: 'rebuild (B4)',
    machine,
    parameters: {
      ...HISTORY,
      readPage: READ_PAGE,
      rebuildTimeoutSeconds: REBUILD_TIMEOUT_SECONDS,
    },
    generated,
    store,
    baselineReadInPositionOrder: {
      ...read,
      jsonAsTextEventsPerSecond: readText.eventsPerSecond,
      jsonAsTextClientMicrosPerEvent: readText.clientMicrosPerEvent,
      jsonAsTextPostgresMicrosPerEvent: readText.postgresMicrosPerEvent,
    },
    rebuild: {
      completed,
      exitCode: run.exitCode,
      timedOut: run.timedOut,
      secondsEndToEnd: Number(run.seconds.toFixed(2)),
      eventsPerSecond: rebuildRate,
      heraldMicrosPerEvent: perEvent?.heraldMicrosPerOperation ?? null,
      postgresMicrosPerEvent: perEvent?.postgresMicrosPerOperation ?? null,
      cpu: cpu ?? null,
      perProjection: perProjection(run),
      lastProgress: lastProgress ?? null,
      vsBaselineRead: read.eventsPerSecond > 0 ? Number((rebuildRate / read.eventsPerSecond).toFixed(3)) : null,
    },
    readModels: {
      ...counts,
      expectedNotifications: generated.notifications,
      expectedNotificationMessages: generated.messages,
    },
    checks,
    goal: {
      eventsPerSecondAtLeast: GOAL,
      met: completed && rebuildRate >= GOAL && Object.values(checks).every(Boolean),
    },
  };
});
