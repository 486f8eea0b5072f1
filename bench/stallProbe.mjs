// Loaded into herald with `--import` (BENCH_HERALD_NODE_ARGS="--import ./bench/stallProbe.mjs") when
// BENCH_STALL_TRACE_DIR is set: every 50 ms the event loop's largest delay on the wall clock, and per 10 ms
// the connections accepted and HTTP requests begun and answered, as JSON lines in <dir>/herald-probe.jsonl (bench/stallReport.ts reads them beside the
// bench's own trace; garbage collection is in the --cpu-prof profile: a PerformanceObserver of 'gc'
// cost herald ~10 % of its CPU). Plain JavaScript: it loads before tsx. The first line maps the monotonic clock of a
// --cpu-prof profile (µs) to the wall clock.
import { subscribe } from 'node:diagnostics_channel';
import { appendFileSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import process from 'node:process';
import { setInterval } from 'node:timers';

const dir = process.env.BENCH_STALL_TRACE_DIR;
if (dir) {
  const file = `${dir}/herald-probe.jsonl`;
  const wall = () => performance.timeOrigin + performance.now();
  const clock = { kind: 'clock', wallMs: wall(), monotonicUs: Number(process.hrtime.bigint() / 1000n) };
  writeFileSync(file, `${JSON.stringify(clock)}\n`);
  let lines = [];
  const flush = () => {
    if (lines.length === 0) return;
    appendFileSync(file, `${lines.join('\n')}\n`);
    lines = [];
  };
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  setInterval(() => {
    lines.push(JSON.stringify({ kind: 'loop', wallMs: wall(), maxMs: delay.max / 1e6, meanMs: delay.mean / 1e6 }));
    delay.reset();
    if (lines.length >= 40) flush();
  }, 50).unref();
  // Connections accepted and requests begun and finished, counted per 10 ms: did a late send reach herald late?
  const counts = new Map();
  const count = (what) => {
    const bucket = Math.floor(wall() / 10) * 10;
    const key = `${what} ${bucket}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  };
  subscribe('net.server.socket', () => count('accept'));
  subscribe('http.server.request.start', () => count('request'));
  subscribe('http.server.response.finish', () => count('response'));
  const drainCounts = () => {
    for (const [key, n] of counts) {
      const [what, bucket] = key.split(' ');
      lines.push(JSON.stringify({ kind: what, wallMs: Number(bucket), n }));
    }
    counts.clear();
  };
  setInterval(drainCounts, 1000).unref();
  process.on('exit', () => {
    drainCounts();
    flush();
  });
}
