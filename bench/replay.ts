/**
 * `herald replay` of a large store to a file. Goal: at least 100,000 events/s written as JSON Lines.
 *
 *   node --import tsx bench/replay.ts                          # 1,000,000 events, embedded PostgreSQL
 *   BENCH_EVENTS=20000 node --import tsx bench/replay.ts       # a small run
 *   DATABASE_URL=postgres://… node --import tsx bench/replay.ts
 *
 * Parameters (environment): BENCH_EVENTS (1,000,000), BENCH_USERS (50,000), BENCH_CHUNK (20,000),
 * BENCH_SEED (herald-bench), BENCH_READ_PAGE (5,000, the baseline's page), BENCH_TIMEOUT_SECONDS (1,800),
 * BENCH_GOAL_EVENTS_PER_SECOND (100,000).
 *
 * Steps, on a fresh database: herald creates its schema; the events are generated straight into the
 * store (bench/support.ts generateMessageEvents) and VACUUM (ANALYZE)d; the baseline reads them in
 * position order page by page (JSON parsed, as herald's client does); then `herald replay --out FILE`
 * runs in its own process, timed from start to exit, and its file is checked (one line per event, the
 * first and last positions the store's).
 *
 * Prints one JSON document on stdout; progress on stderr.
 */
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { incompleteRun, runHeraldCli } from './heraldProcess';
import { envInteger, progress, runBenchmark } from './run';
import { perSecond } from './stats';
import { generatedMessageStore, messageHistoryParameters, readAllInPositionOrder } from './support';

const HISTORY = messageHistoryParameters();
const READ_PAGE = envInteger('BENCH_READ_PAGE', 5_000, 1);
const TIMEOUT_SECONDS = envInteger('BENCH_TIMEOUT_SECONDS', 1_800, 1);
const GOAL = envInteger('BENCH_GOAL_EVENTS_PER_SECOND', 100_000, 1);

/** Lines in the file, and its first and last line's position (read from both ends, not all parsed). */
async function checkFile(
  file: string,
): Promise<{ lines: number; bytes: number; firstPosition: string | null; lastPosition: string | null }> {
  const handle = await open(file);
  try {
    let lines = 0;
    let first = '';
    let last = '';
    let carry = '';
    for await (const chunk of handle.createReadStream({ encoding: 'utf8', highWaterMark: 1 << 20 })) {
      const text = carry + (chunk as string);
      const parts = text.split('\n');
      carry = parts.pop()!;
      for (const line of parts) {
        if (!line) continue;
        if (lines === 0) first = line;
        last = line;
        lines++;
      }
    }
    const position = (line: string) => (line ? (JSON.parse(line) as { position: string }).position : null);
    return { lines, bytes: (await stat(file)).size, firstPosition: position(first), lastPosition: position(last) };
  } finally {
    await handle.close();
  }
}

runBenchmark(async (cleanup) => {
  const { url, machine, store } = await generatedMessageStore(cleanup, HISTORY);

  progress('baseline: reading the store in position order');
  const baseline = await readAllInPositionOrder(url, true, READ_PAGE);
  progress(`  ${baseline.eventsPerSecond} events/s`);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'herald-bench-replay-'));
  cleanup.add('replay output', () => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'events.jsonl');
  progress('herald replay --out FILE');
  const run = await runHeraldCli(['replay', '--out', file], url, TIMEOUT_SECONDS * 1000);
  const failure = incompleteRun('replay', run);
  if (failure) progress(failure);
  const completed = !failure;
  const output = completed ? await checkFile(file) : null;
  const rate = completed ? perSecond(store.events, run.seconds) : 0;
  const checks = {
    everyEventWritten: output?.lines === store.events,
    firstPosition: output?.firstPosition === store.firstPosition,
    lastPosition: output?.lastPosition === store.headPosition,
  };
  return {
    benchmark: 'herald replay to a file',
    machine,
    parameters: {
      ...HISTORY,
      readPage: READ_PAGE,
      timeoutSeconds: TIMEOUT_SECONDS,
    },
    store,
    baselineReadInPositionOrder: baseline,
    replay: {
      completed,
      exitCode: run.exitCode,
      secondsEndToEnd: Number(run.seconds.toFixed(2)),
      eventsPerSecond: rate,
      bytes: output?.bytes ?? null,
      megabytesPerSecond: output ? Number((output.bytes / 1e6 / run.seconds).toFixed(1)) : null,
      vsBaselineRead: baseline.eventsPerSecond > 0 ? Number((rate / baseline.eventsPerSecond).toFixed(3)) : null,
    },
    checks,
    goal: { eventsPerSecondAtLeast: GOAL, met: completed && rate >= GOAL && Object.values(checks).every(Boolean) },
  };
});
