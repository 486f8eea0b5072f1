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
 *      more with data/metadata fetched as text, to show what the JSON parsing costs).
 *   4. `node --import tsx src/cli.ts projections rebuild` in a child process, timed end to end (process
 *      start to exit); the rate is events in the store ÷ that time. Its progress lines give each
 *      projection's replay time too.
 *   5. Sanity: rows in notifications / notification_messages against what was generated.
 *
 * Prints one JSON document on stdout; progress on stderr.
 */
import { type CliRun, incompleteRun } from './heraldProcess';
import { envInteger, progress, runBenchmark } from './run';
import { perSecond } from './stats';
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

/** From the rebuild's progress lines: when each projection was first reported and when it was done. */
function perProjection(
  run: CliRun,
): Record<string, { firstReportSecond: number; doneSecond: number | null; head: string }> {
  const result: Record<string, { firstReportSecond: number; doneSecond: number | null; head: string }> = {};
  run.stdoutLines.forEach((line, index) => {
    let parsed: { projection?: string; head?: string; done?: boolean };
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
      head: String(parsed.head),
    });
    if (parsed.done) entry.doneSecond = at;
  });
  return result;
}

runBenchmark(async (cleanup) => {
  const { url, machine, generated, store } = await generatedMessageStore(cleanup, HISTORY);

  progress('baseline: reading the store in position order');
  const read = await readAllInPositionOrder(url, true, READ_PAGE);
  const readText = await readAllInPositionOrder(url, false, READ_PAGE);
  progress(`  ${read.eventsPerSecond} events/s (JSON as text: ${readText.eventsPerSecond} events/s)`);

  progress(`herald projections rebuild (timeout ${REBUILD_TIMEOUT_SECONDS} s)`);
  const { run, lastProgress } = await timeRebuild(url, REBUILD_TIMEOUT_SECONDS * 1000);
  const failure = incompleteRun('the rebuild', run);
  if (failure) progress(failure);
  const completed = !failure;
  const rebuildRate = completed ? perSecond(store.events, run.seconds) : 0;

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
    baselineReadInPositionOrder: { ...read, jsonAsTextEventsPerSecond: readText.eventsPerSecond },
    rebuild: {
      completed,
      exitCode: run.exitCode,
      timedOut: run.timedOut,
      secondsEndToEnd: Number(run.seconds.toFixed(2)),
      eventsPerSecond: rebuildRate,
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
