/**
 * Storage soak (issue 26, "Done when"): constant mixed load on one herald on its embedded defaults, with a
 * short retention, for half an hour; samples the database and the read models every few seconds and
 * judges whether they reach a plateau, whether the send latency holds, and whether any acknowledged
 * message inside retention was lost.
 *
 *   npm run bench:soak                                     # 30 minutes, retention 5 minutes
 *   BENCH_SOAK_MINUTES=5 BENCH_SOAK_RETENTION=30s BENCH_SOAK_KOALA_EXPIRE_SECONDS=30 \
 *     BENCH_SOAK_RETENTION_INTERVAL_SECONDS=15 npm run bench:soak    # a short run that can still plateau
 *
 * Parameters (environment):
 *   BENCH_SOAK_MINUTES                  load duration (default 30)
 *   BENCH_SOAK_RATE                     operations per second, all kinds together (default 150): 40 % Koala
 *                                       sends, 25 % ONE-PUSH, 20 % RTIO calls, 15 % datahub notifications.
 *                                       150/s keeps the 2-core machine short of saturation (herald and its
 *                                       PostgreSQL take 0.4–0.9 of a core at it, docs/operations.md), so what
 *                                       the curve shows is storage growth, not a queue building up
 *   BENCH_SOAK_RETENTION                every HERALD_RETENTION_* category (default 5m; a duration as herald takes it)
 *   BENCH_SOAK_RETENTION_INTERVAL_SECONDS  HERALD_RETENTION_INTERVAL_SECONDS (default unset: herald's 60)
 *   BENCH_SOAK_KOALA_EXPIRE_SECONDS     `expire` of every other Koala send (default 60; the others: 0, kept)
 *   BENCH_SOAK_SAMPLE_SECONDS           sampling period (default 30; shorter runs: a 30th of the run, ≥ 5)
 *   BENCH_SOAK_DRAIN_SECONDS            after the load, how long messages may take to arrive (default 120)
 *   BENCH_SOAK_PLATEAU_TOLERANCE        a plateau: the last third's max ≤ (1 + this) × the middle third's (default 0.1)
 *   BENCH_SOAK_PLOT                     where the PNG goes (default <tmpdir>/herald-soak-<time>.png)
 *   BENCH_SOAK_USERS, BENCH_SOAK_DEVICES, BENCH_SOAK_RTIO_DEVICES   receivers (default 4, 4, 2)
 *   BENCH_REQUEST_TIMEOUT_MS            one request's timeout (default 15,000)
 *   BENCH_HERALD_ENV                    extra variables for herald (e.g. the event store's archive settings)
 * DATABASE_URL is ignored: herald runs on its embedded PostgreSQL (a fresh HERALD_DATA_DIR, a free port).
 *
 * Time is not compressed: herald runs in its own process on the system clock (its injected clock is for
 * in-process tests), so the retention is short instead and every duration is real.
 *
 * Processes: herald (bench/heraldProcess.ts) and its embedded PostgreSQL; the load generator of the chaos
 * soak (bench/chaosLoad.ts, bench/loadProcess.ts) in its own process, at fixed rates (open loop), with
 * graphql-ws `messages` subscribers of every user, ONE-PUSH devices on /msgpush.ws that confirm every
 * push (`needConfirm`), RTIO devices on /rtio.ws that answer every call.
 *
 * Sampled every BENCH_SOAK_SAMPLE_SECONDS (bench/support.ts storageSample): pg_database_size, every
 * table's rows (counted) and bytes — the read models, `events` and `streams` —, the events per stream
 * prefix (series `events: <prefix>`, judged like the read models' rows), the Koala rows of
 * messages without expiry (kept by the seed's promise: they grow by design), herald's RSS, and CPU of
 * herald, its PostgreSQL and the whole machine. Per window, from the load generator's operation records:
 * Koala send latency p50/p99 and acknowledged operations.
 *
 * Verdicts: each read model's prunable rows reach a plateau (the max of the last third of the load ≤
 * (1 + tolerance) × the max of the middle third, + 20 rows), judged only when the middle third starts
 * after a record can have left retention (retention + Koala expiry + pruning interval); the database's
 * size likewise (it holds only once the event store deletes what retention removed); the Koala send p99 of
 * the last tenth of the load ≤ 1.2 × the first tenth's; 0 acknowledged messages lost that were inside
 * retention — every acknowledged Koala message received by its user's subscriber and listed in the inbox
 * unless it had expired or left retention, every datahub notification listed unless it left retention,
 * every ONE-PUSH received by its device.
 *
 * Prints one JSON document on stdout (progress on stderr), writes the PNG, exits 0 whatever the verdict.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { parseKeep } from '../domain/retention';
import { type Kind, KINDS, type LoadResult, type LoadSetup } from './chaosLoad';
import { CLOCK_TICKS, CpuSampler } from './cpu';
import { startEmbeddedHerald } from './heraldProcess';
import { startLoad } from './loadProcess';
import { describeMachine } from './machine';
import { type Cleanup, envInteger, envNumber, progress, runBenchmark, sleep } from './run';
import { latencyStats, plateau, round } from './stats';
import { type StorageSample, storageSample } from './support';

const MINUTES = envNumber('BENCH_SOAK_MINUTES', 30, 0.5);
const RATE = envNumber('BENCH_SOAK_RATE', 150, 1);
const RETENTION = process.env.BENCH_SOAK_RETENTION?.trim() || '5m';
const RETENTION_INTERVAL = process.env.BENCH_SOAK_RETENTION_INTERVAL_SECONDS?.trim() || undefined;
const EXPIRE_SECONDS = envInteger('BENCH_SOAK_KOALA_EXPIRE_SECONDS', 60, 1);
const SAMPLE_SECONDS = envNumber('BENCH_SOAK_SAMPLE_SECONDS', Math.min(30, Math.max(5, (MINUTES * 60) / 30)), 1);
const DRAIN_SECONDS = envNumber('BENCH_SOAK_DRAIN_SECONDS', 120, 1);
const TOLERANCE = envNumber('BENCH_SOAK_PLATEAU_TOLERANCE', 0.1, 0);
const USERS = envInteger('BENCH_SOAK_USERS', 4, 1);
const DEVICES = envInteger('BENCH_SOAK_DEVICES', 4, 1);
const RTIO_DEVICES = envInteger('BENCH_SOAK_RTIO_DEVICES', 2, 1);
const REQUEST_TIMEOUT_MS = envNumber('BENCH_REQUEST_TIMEOUT_MS', 15_000, 1000);
const PLOT = process.env.BENCH_SOAK_PLOT?.trim() || path.join(os.tmpdir(), `herald-soak-${Date.now()}.png`);
const SHARES: Record<Kind, number> = { koala: 0.4, onepush: 0.25, rtio: 0.2, datahub: 0.15, report: 0, email: 0 };
const MAX_IN_FLIGHT = 64;
/** Rows a table may gain between the thirds and still count as level (small tables move by a few). */
const PLATEAU_SLACK_ROWS = 20;
const P99_LIMIT = 1.2;
const DEFAULT_RETENTION_INTERVAL_SECONDS = 60;

/** Rows retention never removes, with why (docs/operations.md, Retention): they grow with the load by design. */
const KEPT_BY_DESIGN: Record<string, string> = {
  // The event store removes (archived first) the streams of what the read models pruned; these stay.
  events: 'all events: holds the kept categories below (the per-prefix series show what leaves)',
  streams: 'one row per kept stream (a removed stream takes its row with it): grows with the kept categories above',
};

function rssBytes(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

interface Sample {
  /** Seconds since the load started (negative: before it). */
  readonly t: number;
  readonly phase: 'before' | 'load' | 'drain';
  readonly storage: StorageSample;
  readonly heraldRssBytes: number | null;
  /** CPU ticks: herald's process, herald with its PostgreSQL (its children), the machine. */
  readonly ticks: { herald: number; heraldTree: number; machine: { busy: number; total: number } };
}

/** Rows per series: every table, and the Koala tables split into what expires (prunable) and what is kept. */
function series(sample: StorageSample): Record<string, number> {
  const rows: Record<string, number> = Object.fromEntries(Object.entries(sample.tables).map(([t, s]) => [t, s.rows]));
  // The event store per stream prefix: each category that leaves must level off like a read model.
  for (const [prefix, events] of Object.entries(sample.eventsByPrefix)) rows[`events: ${prefix}`] = events;
  for (const [table, kept] of [
    ['notification_messages', sample.koalaKept.messages],
    ['notifications', sample.koalaKept.notifications],
  ] as const) {
    if (rows[table] === undefined) continue;
    rows[`${table} (expire 0)`] = kept;
    rows[`${table} (expiring)`] = rows[table] - kept;
  }
  return rows;
}

// --- the plot -------------------------------------------------------------------------------------

interface Line {
  readonly name: string;
  readonly points: ReadonlyArray<{ t: number; v: number | null }>;
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];
const escapeXml = (text: string) => text.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** One panel of the plot: lines over minutes, the y axis from 0 to the largest value. */
function panel(
  title: string,
  unit: string,
  lines: readonly Line[],
  top: number,
  xMax: number,
  loadEnd: number,
): string {
  const [left, width, height] = [80, 820, 200];
  const values = lines.flatMap((l) => l.points.map((p) => p.v)).filter((v): v is number => v !== null);
  const yMax = Math.max(1, ...values) * 1.05;
  const x = (t: number) => left + (Math.max(0, t) / xMax) * width;
  const y = (v: number) => top + height - (v / yMax) * height;
  const parts = [
    `<text x="${left}" y="${top - 8}" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    `<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="none" stroke="#999"/>`,
    `<line x1="${x(loadEnd)}" y1="${top}" x2="${x(loadEnd)}" y2="${top + height}" stroke="#bbb" stroke-dasharray="4 4"/>`,
  ];
  for (let k = 0; k <= 4; k++) {
    const v = (yMax * k) / 4;
    const label = v >= 100 ? Math.round(v).toLocaleString('en') : round(v, 1).toString();
    parts.push(
      `<line x1="${left}" y1="${y(v)}" x2="${left + width}" y2="${y(v)}" stroke="#eee"/>`,
      `<text x="${left - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${label}</text>`,
    );
  }
  const minutes = xMax / 60;
  const step = minutes <= 10 ? 1 : 5;
  for (let m = 0; m <= minutes + 1e-9; m += step)
    parts.push(`<text x="${x(m * 60)}" y="${top + height + 14}" font-size="11" text-anchor="middle">${m}</text>`);
  parts.push(`<text x="${left - 6}" y="${top - 8}" font-size="11" text-anchor="end">${escapeXml(unit)}</text>`);
  lines.forEach((line, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const segments: string[][] = [[]];
    for (const p of line.points)
      if (p.v === null) segments.push([]);
      else segments[segments.length - 1]!.push(`${round(x(p.t), 1)},${round(y(p.v), 1)}`);
    for (const segment of segments.filter((s) => s.length > 0))
      parts.push(`<polyline points="${segment.join(' ')}" fill="none" stroke="${colour}" stroke-width="1.6"/>`);
    const legendY = top + 14 + i * 14;
    parts.push(
      `<line x1="${left + width + 10}" y1="${legendY - 4}" x2="${left + width + 26}" y2="${legendY - 4}" stroke="${colour}" stroke-width="2"/>`,
      `<text x="${left + width + 30}" y="${legendY}" font-size="11">${escapeXml(line.name)}</text>`,
    );
  });
  return parts.join('\n');
}

function renderPlot(
  title: string,
  panels: ReadonlyArray<{ title: string; unit: string; lines: Line[] }>,
  xMax: number,
  loadEnd: number,
): Buffer {
  const panelHeight = 260;
  const height = 80 + panels.length * panelHeight;
  const body = panels.map((p, i) => panel(p.title, p.unit, p.lines, 90 + i * panelHeight, xMax, loadEnd)).join('\n');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="${height}" font-family="DejaVu Sans, sans-serif">
<rect width="1200" height="${height}" fill="white"/>
<text x="80" y="30" font-size="16" font-weight="bold">${escapeXml(title)}</text>
<text x="80" y="48" font-size="11">minutes since the load started; dashed: end of the load (then the drain)</text>
${body}
</svg>`;
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
}

// --- the run --------------------------------------------------------------------------------------

async function main(cleanup: Cleanup): Promise<unknown> {
  const benchStarted = Date.now();
  const keep = parseKeep(RETENTION);
  if (keep === undefined)
    throw new Error(`BENCH_SOAK_RETENTION=${RETENTION}: expected a duration as HERALD_RETENTION_* takes it`);
  const retentionSeconds = keep === 'forever' ? Infinity : keep / 1000;
  const rates = Object.fromEntries(KINDS.map((k) => [k, round(RATE * SHARES[k], 3)])) as Record<Kind, number>;
  const machine = await describeMachine();

  const heraldEnv = {
    HERALD_TICKET_SECRET: randomBytes(24).toString('hex'),
    ...Object.fromEntries(
      [
        'MESSAGES',
        'DELIVERIES',
        'PUSHES',
        'RTIO_CALLS',
        'RTIO_REPORTS',
        'EMAILS',
        'INBOXES',
        'TICKETS',
        // What never ends is the app's to drop (issue 26): the soak's one app keeps it as long as the rest.
        'UNEXPIRING_MESSAGES',
        'DATAHUB_NOTIFICATIONS',
      ].map((c) => [`HERALD_RETENTION_${c}`, RETENTION]),
    ),
    ...(RETENTION_INTERVAL && { HERALD_RETENTION_INTERVAL_SECONDS: RETENTION_INTERVAL }),
  };
  const { herald, database } = await startEmbeddedHerald(cleanup, heraldEnv);
  const postgresVersion = (await database.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]
    ?.v;

  progress('starting the load generator');
  const load = startLoad();
  cleanup.add('stop the load generator', () => load.stop());
  const setup: LoadSetup = {
    nodes: [herald.url],
    run: `soak-${Date.now()}`,
    users: USERS,
    devices: DEVICES,
    rtioDevices: RTIO_DEVICES,
    rates,
    maxInFlight: MAX_IN_FLIGHT,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    koalaExpireSeconds: EXPIRE_SECONDS,
    ...(Number.isFinite(retentionSeconds) && { keptSeconds: retentionSeconds }),
  };
  const ready = load.next('ready', 180_000);
  load.send({ type: 'setup', setup });
  await ready;

  const samples: Sample[] = [];
  let runStart = Date.now();
  let phase: Sample['phase'] = 'before';
  const takeSample = async () => {
    const at = Date.now();
    const storage = await storageSample(database);
    const heraldCpu = new CpuSampler(herald.pid, [load.pid]).snapshot();
    const treeCpu = new CpuSampler(undefined, [load.pid]).snapshot();
    samples.push({
      t: round((at - runStart) / 1000, 1),
      phase,
      storage,
      heraldRssBytes: rssBytes(herald.pid),
      ticks: { herald: heraldCpu.herald, heraldTree: treeCpu.postgres, machine: heraldCpu.machine },
    });
  };
  await takeSample();

  const loadSeconds = MINUTES * 60;
  progress(
    `load for ${MINUTES} min at ${RATE} operations/s (${JSON.stringify(rates)}), retention ${RETENTION}, a sample every ${SAMPLE_SECONDS} s`,
  );
  runStart = Date.now();
  phase = 'load';
  load.send({ type: 'run' });
  let sampling = true;
  const sampler = (async () => {
    for (let k = 1; sampling; k++) {
      await sleep(Math.max(0, runStart + k * SAMPLE_SECONDS * 1000 - Date.now()));
      if (!sampling) break;
      try {
        await takeSample();
      } catch (error) {
        progress(`sample failed: ${(error as Error).message}`);
      }
      const last = samples[samples.length - 1]!;
      if (k % Math.max(1, Math.round(60 / SAMPLE_SECONDS)) === 0)
        progress(
          `t=${last.t}s database ${round(last.storage.databaseBytes / 2 ** 20, 1)} MiB, events ${last.storage.tables.events?.rows ?? '?'}, ` +
            `device_deliveries ${last.storage.tables.device_deliveries?.rows ?? '?'}, notification_messages ${last.storage.tables.notification_messages?.rows ?? '?'}`,
        );
    }
  })();
  cleanup.add('stop sampling', async () => {
    sampling = false;
  });
  await sleep(runStart + loadSeconds * 1000 - Date.now());
  phase = 'drain';
  const loadEnded = Date.now();

  progress(`load over; draining up to ${DRAIN_SECONDS} s and counting`);
  const drainUntil = Date.now() + DRAIN_SECONDS * 1000;
  const resultPromise = load.next<{ result: LoadResult }>(
    'result',
    DRAIN_SECONDS * 1000 + 6 * REQUEST_TIMEOUT_MS + 600_000,
  );
  load.send({ type: 'stop', drainUntil });
  const { result } = await resultPromise;
  sampling = false;
  await sampler;
  await takeSample();

  // --- figures ---
  const loadSampleSeconds = (loadEnded - runStart) / 1000;
  const koalaKind = KINDS.indexOf('koala');
  const koalaSends = result.ops.filter((op) => op[0] === koalaKind && op[4] === 'ok');
  const inWindow = (from: number, to: number) =>
    koalaSends
      .filter((op) => op[2] >= runStart + from * 1000 && op[2] < runStart + to * 1000)
      .map((op) => op[3] - op[2]);
  const acknowledgedIn = (from: number, to: number) =>
    result.ops.filter((op) => op[4] === 'ok' && op[2] >= runStart + from * 1000 && op[2] < runStart + to * 1000).length;
  const curve = samples.map((s, i) => {
    const previous = samples[i - 1];
    const window = previous && previous.phase !== 'before' ? previous.t : 0;
    const latency = i > 0 && window < loadSampleSeconds ? latencyStats(inWindow(window, s.t)) : undefined;
    const seconds = previous ? s.t - previous.t : 0;
    const cpuPercent = (ticks: number) =>
      previous && seconds > 0 ? round((100 * ticks) / CLOCK_TICKS / seconds, 1) : null;
    const operations = previous ? acknowledgedIn(window, s.t) : 0;
    const heraldTicks = previous ? s.ticks.herald - previous.ticks.herald : NaN;
    const postgresTicks = previous ? s.ticks.heraldTree - previous.ticks.heraldTree - heraldTicks : NaN;
    const machineTotal = previous ? s.ticks.machine.total - previous.ticks.machine.total : 0;
    return {
      t: s.t,
      phase: s.phase,
      databaseBytes: s.storage.databaseBytes,
      eventsRows: s.storage.tables.events?.rows ?? null,
      eventsBytes: s.storage.tables.events?.bytes ?? null,
      rows: series(s.storage),
      bytes: Object.fromEntries(Object.entries(s.storage.tables).map(([t, v]) => [t, v.bytes])),
      heraldRssBytes: s.heraldRssBytes,
      ...(latency && {
        koalaSends: latency.count,
        koalaSendP50Ms: latency.p50Ms,
        koalaSendP99Ms: latency.p99Ms,
      }),
      acknowledgedOperations: operations,
      cpu: previous && {
        heraldPercentOfOneCore: cpuPercent(heraldTicks),
        postgresPercentOfOneCore: cpuPercent(postgresTicks),
        machineBusyPercent:
          machineTotal > 0
            ? round((100 * (s.ticks.machine.busy - previous.ticks.machine.busy)) / machineTotal, 1)
            : null,
        heraldAndPostgresMicrosPerOperation:
          operations > 0 ? round((1e6 * (heraldTicks + postgresTicks)) / CLOCK_TICKS / operations) : null,
      },
    };
  });

  // Plateaus, judged once a record can have left retention before the middle third.
  const interval = Number(RETENTION_INTERVAL ?? DEFAULT_RETENTION_INTERVAL_SECONDS);
  const settleSeconds = retentionSeconds + EXPIRE_SECONDS + interval + SAMPLE_SECONDS;
  const judgeable = settleSeconds <= loadSampleSeconds / 3;
  const tooShort = `the run is too short to judge: a record can leave retention ${settleSeconds} s into the load (retention + Koala expiry + pruning interval + a sample), the middle third starts at ${round(loadSampleSeconds / 3)} s`;
  const loadPoints = curve.filter((c) => c.phase !== 'drain');
  const names = [...new Set(loadPoints.flatMap((c) => Object.keys(c.rows)))].sort();
  const readModels = Object.fromEntries(
    names.map((name) => {
      const p = plateau(
        loadPoints.map((c) => ({ t: c.t, v: c.rows[name] ?? 0 })),
        loadSampleSeconds,
        TOLERANCE,
        PLATEAU_SLACK_ROWS,
      );
      const kept = KEPT_BY_DESIGN[name];
      return [
        name,
        {
          ...p,
          reached: judgeable ? p.reached : null,
          ...(kept && { keptByDesign: kept }),
          endRows: curve[curve.length - 1]!.rows[name] ?? 0,
        },
      ];
    }),
  );
  // The koala tables' totals hold the kept rows: their prunable part is judged in the `(expiring)` series.
  const judged = Object.entries(readModels).filter(
    ([name]) => !KEPT_BY_DESIGN[name] && name !== 'notification_messages' && name !== 'notifications',
  );
  const notLevel = judged.filter(([, p]) => p.reached === false).map(([name]) => name);
  const databasePlateau = plateau(
    loadPoints.map((c) => ({ t: c.t, v: c.databaseBytes })),
    loadSampleSeconds,
    TOLERANCE,
    1 << 20,
  );

  const tenth = Math.max(SAMPLE_SECONDS, loadSampleSeconds / 10);
  const startLatency = latencyStats(inWindow(0, tenth));
  const endLatency = latencyStats(inWindow(loadSampleSeconds - tenth, loadSampleSeconds));
  const p99Ratio =
    startLatency.p99Ms && endLatency.p99Ms !== null ? round(endLatency.p99Ms / startLatency.p99Ms) : null;

  const koala = result.koala as { lostMessages: number; notListed: number };
  const datahub = result.datahub as { notListed: number };
  const onepush = result.onepush as { lostMessages: number };
  const lost = {
    koalaNotDeliveredToItsSubscriber: koala.lostMessages,
    koalaNotListedWhileUnexpired: koala.notListed,
    datahubNotListed: datahub.notListed,
    onepushNotDelivered: onepush.lostMessages,
  };
  const lostTotal = Object.values(lost).reduce((a, b) => a + b, 0);
  const acknowledged = KINDS.reduce((sum, k) => sum + result.summary[k].acknowledged, 0);
  const first = samples.find((s) => s.phase === 'load') ?? samples[0]!;
  const lastLoad = [...samples].reverse().find((s) => s.phase === 'load') ?? samples[samples.length - 1]!;
  const loadCpu = {
    heraldPercentOfOneCore: round(
      (100 * (lastLoad.ticks.herald - samples[0]!.ticks.herald)) / CLOCK_TICKS / (lastLoad.t - samples[0]!.t),
      1,
    ),
    heraldAndPostgresPercentOfOneCore: round(
      (100 * (lastLoad.ticks.heraldTree - samples[0]!.ticks.heraldTree)) / CLOCK_TICKS / (lastLoad.t - samples[0]!.t),
      1,
    ),
    machineBusyPercent: round(
      (100 * (lastLoad.ticks.machine.busy - samples[0]!.ticks.machine.busy)) /
        (lastLoad.ticks.machine.total - samples[0]!.ticks.machine.total),
      1,
    ),
    heraldAndPostgresMicrosPerAcknowledgedOperation: round(
      (1e6 * (lastLoad.ticks.heraldTree - samples[0]!.ticks.heraldTree)) /
        CLOCK_TICKS /
        Math.max(1, acknowledgedIn(0, lastLoad.t)),
    ),
  };

  const verdict = {
    readModelsPlateau: judgeable ? notLevel.length === 0 : null,
    readModelsNotLevel: notLevel,
    databaseSizePlateau: judgeable ? databasePlateau.reached : null,
    databaseSizeNote:
      'grows with what is kept by design (Koala messages with expire 0, datahub notifications, and their streams rows) on top of a plateau of what leaves; PostgreSQL reuses deleted rows’ space, it never shrinks the files',
    sendP99EndOverStart: p99Ratio,
    sendP99Held: p99Ratio === null ? null : p99Ratio <= P99_LIMIT,
    lostInsideRetention: lostTotal,
    noLoss: lostTotal === 0,
    ...(!judgeable && { note: tooShort }),
  };

  // --- the plot ---
  const minutesMax = Math.max(...curve.map((c) => c.t));
  const rowLines = (pick: (name: string) => boolean) =>
    names
      .filter(pick)
      // Tables the load does not change (apps, checkpoints, migrations) are left out.
      .filter((name) => {
        const values = curve.map((c) => c.rows[name] ?? 0);
        return Math.max(...values) - Math.min(...values) > PLATEAU_SLACK_ROWS;
      })
      .map((name) => ({ name, points: curve.map((c) => ({ t: c.t, v: c.rows[name] ?? null })) }));
  const png = renderPlot(
    `herald soak: ${RATE} operations/s for ${MINUTES} min, retention ${RETENTION} (${new Date(runStart).toISOString().slice(0, 16)}Z)`,
    [
      {
        title: 'read model rows that retention prunes',
        unit: 'rows',
        lines: rowLines(
          (n) => !KEPT_BY_DESIGN[n] && n !== 'notification_messages' && n !== 'notifications' && n !== 'events',
        ),
      },
      {
        title: 'rows kept by design (no end) and the event store',
        unit: 'rows',
        lines: rowLines((n) => !!KEPT_BY_DESIGN[n]),
      },
      {
        title: 'database size and herald RSS',
        unit: 'MiB',
        lines: [
          { name: 'pg_database_size', points: curve.map((c) => ({ t: c.t, v: round(c.databaseBytes / 2 ** 20, 1) })) },
          {
            name: 'events (table + indexes)',
            points: curve.map((c) => ({
              t: c.t,
              v: c.eventsBytes === null ? null : round(c.eventsBytes / 2 ** 20, 1),
            })),
          },
          {
            name: 'herald RSS',
            points: curve.map((c) => ({
              t: c.t,
              v: c.heraldRssBytes === null ? null : round(c.heraldRssBytes / 2 ** 20, 1),
            })),
          },
        ],
      },
      {
        title: 'Koala send latency per window',
        unit: 'ms',
        lines: [
          {
            name: 'p50',
            points: curve
              .filter((c) => c.koalaSendP50Ms !== undefined)
              .map((c) => ({ t: c.t, v: c.koalaSendP50Ms ?? null })),
          },
          {
            name: 'p99',
            points: curve
              .filter((c) => c.koalaSendP99Ms !== undefined)
              .map((c) => ({ t: c.t, v: c.koalaSendP99Ms ?? null })),
          },
        ],
      },
    ],
    minutesMax,
    loadSampleSeconds,
  );
  await writeFile(PLOT, png);
  progress(`plot written to ${PLOT}`);

  return {
    benchmark: 'storage soak (issue 26)',
    goal: {
      readModels: `each read model's prunable rows reach a plateau: the last third's max ≤ ${1 + TOLERANCE} × the middle third's (+ ${PLATEAU_SLACK_ROWS} rows)`,
      databaseSize: 'pg_database_size reaches a plateau, the same way (+ 1 MiB)',
      sendP99: `Koala send p99 of the load's last tenth ≤ ${P99_LIMIT} × its first tenth's`,
      lost: 0,
    },
    verdict,
    machine: { ...machine, store: 'embedded PostgreSQL (herald-owned)', postgres: postgresVersion ?? null },
    parameters: {
      minutes: MINUTES,
      operationsPerSecond: RATE,
      ratesPerSecond: rates,
      retention: RETENTION,
      retentionIntervalSeconds: interval,
      koalaExpireSecondsOfEveryOtherSend: EXPIRE_SECONDS,
      sampleSeconds: SAMPLE_SECONDS,
      drainSeconds: DRAIN_SECONDS,
      users: USERS,
      onepushDevices: DEVICES,
      rtioDevices: RTIO_DEVICES,
      maxInFlightPerKind: MAX_IN_FLIGHT,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      clock: 'real time: herald runs in its own process on the system clock (no compression)',
    },
    plot: PLOT,
    lost,
    traffic: Object.fromEntries(
      KINDS.filter((k) => rates[k] > 0).map((k) => [
        k,
        {
          ...result.summary[k],
          planned: Math.floor(rates[k] * loadSampleSeconds),
          acknowledgedPerSecond: round(result.summary[k].acknowledged / loadSampleSeconds),
        },
      ]),
    ),
    sendLatency: {
      firstTenth: startLatency,
      lastTenth: endLatency,
      wholeLoad: latencyStats(inWindow(0, loadSampleSeconds)),
    },
    readModels,
    databaseSize: {
      ...databasePlateau,
      reached: judgeable ? databasePlateau.reached : null,
      endBytes: curve[curve.length - 1]!.databaseBytes,
    },
    cpu: {
      ...loadCpu,
      acknowledgedOperations: acknowledged,
      note: 'over the load; herald + PostgreSQL (its children); machineBusyPercent is of all cores — the rest of it is the load generator and other processes',
    },
    firstSampleAt: first.t,
    curve,
    koala: { ...(result.koala as Record<string, unknown>), subscribers: undefined },
    datahub: result.datahub,
    onepush: { ...(result.onepush as Record<string, unknown>), devices: undefined },
    drain: result.drain,
    benchSeconds: round((Date.now() - benchStarted) / 1000, 1),
  };
}

runBenchmark(main);
