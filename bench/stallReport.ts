/**
 * What happened during the worst stalls of a traced latency run (bench/stallTrace.ts, bench/stallProbe.mjs):
 *
 *   node --import tsx bench/stallReport.ts DIR [stalls=3] [bucketMs=100]
 *
 * For each of the worst sends (one per stall, stalls at least 2 s apart), a timeline in buckets from 1 s
 * before its start to its arrival: sends started, answered and received, the largest latency of the sends
 * started there, herald's and the bench's largest event-loop delay, herald's GC time, and the wait events
 * of PostgreSQL's client backends and the background processes that were busy; then herald's top self time
 * (the .cpuprofile in DIR, if any) in the stall's window against the whole run.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './heraldProcess';
import { type CpuProfile, summarizeProfile } from './inspector';

const [dir, stallsArg, bucketArg] = process.argv.slice(2);
if (!dir) throw new Error('usage: bench/stallReport.ts DIR [stalls] [bucketMs]');
const STALLS = Number(stallsArg ?? 3);
const BUCKET = Number(bucketArg ?? 100);

interface Send {
  index: number;
  start: number;
  answer?: number;
  receive?: number;
}
const sends: Send[] = readFileSync(path.join(dir, 'sends.csv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => {
    const [index, , , start, answer, receive] = line.split(',');
    const n = (v: string | undefined) => (v ? Number(v) : undefined);
    return { index: Number(index), start: Number(start), answer: n(answer), receive: n(receive) };
  });
// A send never answered was refused or failed (the bench counts it); one answered but never received is lost.
const latency = (s: Send) => (s.receive !== undefined ? s.receive - s.start : s.answer !== undefined ? Infinity : 0);

const probe = (() => {
  try {
    return readFileSync(path.join(dir, 'herald-probe.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; wallMs: number; [k: string]: unknown });
  } catch {
    return [];
  }
})();
const benchLoop = readFileSync(path.join(dir, 'bench-loop.csv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((l) => l.split(',').map(Number) as [number, number]);
type Activity = [number, string, string | null, string | null, string | null, string | null];
const pgSamples = readFileSync(path.join(dir, 'pg.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as { t: number; a: Activity[]; h?: [number, number]; p?: [number, number] });

/** ms on a CPU and ms waiting for one (run queue), from /proc schedstat between two times: herald, PostgreSQL. */
function scheduling(from: number, to: number): string {
  const a = pgSamples.find((p) => p.t >= from);
  const b = pgSamples.find((p) => p.t >= to) ?? pgSamples[pgSamples.length - 1];
  if (!a?.h || !b?.h || !a.p || !b.p || b.t <= a.t) return '-';
  const ms = (x: number) => Math.max(0, Math.round(x / 1e6));
  return `${ms(b.h[0] - a.h[0])}/${ms(b.h[1] - a.h[1])} ${ms(b.p[0] - a.p[0])}/${ms(b.p[1] - a.p[1])}`;
}

function top(map: Map<string, number>, n: number): string {
  return [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${k}×${v}`)
    .join(' ');
}

function timeline(from: number, to: number): void {
  console.log(
    'bucket(ms)  started answered received maxLat(ms) | heraldLoop benchLoop gc(ms) busy(ms) cpu/runq(ms) herald pg | herald accepted/requests/responses |  pg samples: client waits ; busy background',
  );
  for (let b = from; b < to; b += BUCKET) {
    const e = b + BUCKET;
    const inB = (t: number | undefined) => t !== undefined && t >= b && t < e;
    const started = sends.filter((s) => inB(s.start));
    const maxLat = started.reduce((m, s) => Math.max(m, latency(s)), 0);
    const heraldLoop = probe
      .filter((p) => p.kind === 'loop' && p.wallMs >= b && p.wallMs < e + 50)
      .reduce((m, p) => Math.max(m, p.maxMs as number), 0);
    const slice = profileWindow(b, e);
    const gc = slice
      ? summarizeProfile(slice, ROOT, 100).topFunctions.find((f) => f.name === '(garbage collector)')
      : undefined;
    const busy = slice ? summarizeProfile(slice, ROOT, 1).busyMs : undefined;
    const herald = (kind: string) =>
      probe.filter((p) => p.kind === kind && p.wallMs >= b && p.wallMs < e).reduce((n, p) => n + (p.n as number), 0);
    const bl = benchLoop.filter(([t]) => t >= b && t < e + 50).reduce((m, [, v]) => Math.max(m, v), 0);
    const samples = pgSamples.filter((p) => p.t >= b && p.t < e);
    const waits = new Map<string, number>();
    const background = new Map<string, number>();
    for (const s of samples)
      for (const [, type, state, waitType, wait, query] of s.a) {
        if (type === 'client backend') {
          const key = `${wait ?? (state === 'active' ? 'CPU' : state)}:${(query ?? '').slice(0, 28)}`;
          waits.set(key, (waits.get(key) ?? 0) + 1);
        } else if (waitType !== 'Activity') {
          // Activity: a background process idle in its main loop
          const key = `${type}:${waitType ?? ''}:${wait ?? 'CPU'}`;
          background.set(key, (background.get(key) ?? 0) + 1);
        }
      }
    console.log(
      `${String(Math.round(b - from)).padStart(6)} ${String(started.length).padStart(8)} ${String(sends.filter((s) => inB(s.answer)).length).padStart(8)} ${String(sends.filter((s) => inB(s.receive)).length).padStart(8)} ${String(Math.round(maxLat)).padStart(10)} | ${heraldLoop.toFixed(0).padStart(10)} ${bl.toFixed(0).padStart(9)} ${String(gc?.selfMs ?? '-').padStart(6)} ${String(busy ?? '-').padStart(5)} ${scheduling(b, e).padStart(16)} | ${herald('accept')}/${herald('request')}/${herald('response')} | n=${samples.length} ${top(waits, 4)} ; ${top(background, 3)}`,
    );
  }
}

// The worst sends, one per stall.
const worst: Send[] = [];
for (const s of [...sends].sort((a, b) => latency(b) - latency(a))) {
  if (worst.length >= STALLS) break;
  if (worst.every((w) => Math.abs(w.start - s.start) > 2000)) worst.push(s);
}

// The main thread's profile: the largest (a worker's is small).
const profileFile = readdirSync(dir)
  .filter((f) => f.endsWith('.cpuprofile'))
  .sort((a, b) => statSync(path.join(dir, b)).size - statSync(path.join(dir, a)).size)[0];
const profile = profileFile ? (JSON.parse(readFileSync(path.join(dir, profileFile), 'utf8')) as CpuProfile) : undefined;
const clock = probe.find((p) => p.kind === 'clock') as { wallMs: number; monotonicUs: number } | undefined;

/** The profile's samples between two wall times, as a profile of its own. */
function profileWindow(from: number, to: number): CpuProfile | undefined {
  if (!profile || !clock) return undefined;
  const samples: number[] = [];
  const deltas: number[] = [];
  let t = profile.startTime;
  const all = profile.samples ?? [];
  const allDeltas = profile.timeDeltas ?? [];
  for (let i = 0; i < all.length; i++) {
    t += allDeltas[i] ?? 0;
    const wall = clock.wallMs + (t - clock.monotonicUs) / 1000;
    if (wall >= from && wall < to) {
      samples.push(all[i]!);
      deltas.push(allDeltas[i] ?? 0);
    }
  }
  return { ...profile, samples, timeDeltas: deltas, startTime: 0, endTime: to * 1000 - from * 1000 };
}

const runStart = sends[0]!.start;
console.log(
  `${sends.length} sends; ${sends.filter((s) => s.receive === undefined).length} never received; run started at ${new Date(runStart).toISOString()}`,
);
// Per second: is it overload (latency climbing with a queue) or a discrete stall?
console.log('second  started  p50(ms)  max(ms)  heraldBusy(ms)  heraldLoopMax(ms)  cpu/runq(ms) herald pg');
for (let b = runStart; b < sends[sends.length - 1]!.start; b += 1000) {
  const lat = sends
    .filter((s) => s.start >= b && s.start < b + 1000)
    .map(latency)
    .sort((x, y) => x - y);
  const slice = profileWindow(b, b + 1000);
  const loop = probe
    .filter((p) => p.kind === 'loop' && p.wallMs >= b && p.wallMs < b + 1000)
    .reduce((m, p) => Math.max(m, p.maxMs as number), 0);
  console.log(
    `${String(Math.round((b - runStart) / 1000)).padStart(6)} ${String(lat.length).padStart(8)} ${String(Math.round(lat[Math.floor(lat.length / 2)] ?? 0)).padStart(8)} ${String(Math.round(lat[lat.length - 1] ?? 0)).padStart(8)} ${String(slice ? Math.round(summarizeProfile(slice, ROOT, 1).busyMs) : '-').padStart(15)} ${loop.toFixed(0).padStart(18)} ${scheduling(b, b + 1000).padStart(20)}`,
  );
}
// Did the send path or the delivery stall? The largest gaps between a send's answer and its arrival (the
// live tail, the projection's push, graphql-ws): a ~1 s one would be the tail's poll fallback.
const deliveryGaps = sends
  .filter((s) => s.receive !== undefined && s.answer !== undefined)
  .map((s) => s.receive! - s.answer!)
  .sort((a, b) => b - a);
console.log(
  `arrival after the answer: largest ${deliveryGaps
    .slice(0, 5)
    .map((g) => Math.round(g))
    .join(', ')} ms; ${deliveryGaps.filter((g) => g > 200).length} over 200 ms`,
);

// Per second, herald's run-queue wait against the latency (Pearson r): starvation by the machine's other work.
const perSecond: [number, number][] = [];
for (let b = runStart; b + 1000 < sends[sends.length - 1]!.start; b += 1000) {
  const a = pgSamples.find((p) => p.t >= b);
  const z = pgSamples.find((p) => p.t >= b + 1000);
  const lat = sends
    .filter((s) => s.start >= b && s.start < b + 1000 && s.receive !== undefined)
    .map(latency)
    .sort((x, y) => x - y);
  if (a?.h && z?.h && lat.length > 0) perSecond.push([(z.h[1] - a.h[1]) / 1e6, lat[Math.floor(lat.length * 0.99)]!]);
}
if (perSecond.length > 2) {
  const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
  const xs = perSecond.map((p) => p[0]);
  const ys = perSecond.map((p) => p[1]);
  const mx = mean(xs);
  const my = mean(ys);
  const cov = mean(perSecond.map(([x, y]) => (x - mx) * (y - my)));
  const r = cov / Math.sqrt(mean(xs.map((x) => (x - mx) ** 2)) * mean(ys.map((y) => (y - my) ** 2)));
  console.log(
    `per second: herald's run-queue wait vs p99 latency, Pearson r = ${r.toFixed(2)} over ${perSecond.length} s`,
  );
}
for (const w of worst) {
  const end = w.receive ?? w.start + 3000;
  console.log(
    `\n=== send ${w.index} at +${((w.start - runStart) / 1000).toFixed(2)} s: latency ${Math.round(latency(w))} ms, answered after ${w.answer === undefined ? '-' : Math.round(w.answer - w.start)} ms`,
  );
  timeline(w.start - 1000, end + BUCKET);
  const window = profileWindow(w.start, end);
  if (window) {
    const summary = summarizeProfile(window, ROOT, 12);
    console.log(`herald profile ${Math.round(end - w.start)} ms window: busy ${summary.busyMs} ms`);
    for (const line of summary.byArea) console.log(`  area ${line.selfPercent}% ${line.name}`);
    for (const line of summary.topFunctions) console.log(`  ${line.selfPercent}% ${line.selfMs} ms ${line.name}`);
  }
}
if (profile) {
  const summary = summarizeProfile(profile, ROOT, 8);
  console.log(`\nwhole profile: busy ${summary.busyMs} ms`);
  for (const line of summary.byArea) console.log(`  area ${line.selfPercent}% ${line.name}`);
}
interface Counters {
  checkpointer: Record<string, number>;
  wal: Record<string, number>;
  tables: { table: string; autovacuums: number; autoanalyzes: number }[];
  settings: Record<string, string>;
}
const [before, after] = JSON.parse(readFileSync(path.join(dir, 'pg-stats.json'), 'utf8')) as [Counters, Counters];
const diff = (a: Record<string, number>, b: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(b)
      .filter(([k, v]) => typeof v === 'number' && v !== a[k])
      .map(([k, v]) => [k, v - (a[k] ?? 0)]),
  );
console.log(
  '\nPostgreSQL during the load: checkpointer',
  JSON.stringify(diff(before.checkpointer, after.checkpointer)),
);
console.log('  WAL', JSON.stringify(diff(before.wal, after.wal)));
console.log(
  '  autovacuum/analyze',
  JSON.stringify(
    after.tables
      .map((t) => {
        const b = before.tables.find((x) => x.table === t.table);
        return {
          table: t.table,
          vacuums: t.autovacuums - (b?.autovacuums ?? 0),
          analyzes: t.autoanalyzes - (b?.autoanalyzes ?? 0),
        };
      })
      .filter((t) => t.vacuums > 0 || t.analyzes > 0),
  ),
);
console.log('  settings', JSON.stringify(after.settings));
