/**
 * B1 — Koala send rate. Goal: at 64 concurrent senders, sends/s ≥ 0.5 × the GET /healthz requests/s of
 * the same herald process in the same run.
 *
 *   node --import tsx bench/send.ts                         # embedded PostgreSQL
 *   BENCH_SECONDS=3 node --import tsx bench/send.ts         # a short run
 *   DATABASE_URL=postgres://… node --import tsx bench/send.ts
 *
 * Parameters (environment):
 *   BENCH_CONCURRENCY          concurrent closed-loop clients in both phases (default 64)
 *   BENCH_SECONDS              seconds of each measured phase (default 10)
 *   BENCH_WARMUP_SECONDS       seconds of the warm-up before each phase, not measured (default 2)
 *   BENCH_MAX_REQUESTS         at most this many requests per phase, whatever the time (default 2,000,000)
 *   BENCH_RECIPIENTS           recipients recv-0 … the sends go to, one per send (default 1,000)
 *   BENCH_GOAL_RATIO           the goal: sends/s ÷ healthz/s (default 0.5)
 *   BENCH_GOAL_LAG_P99_MS      the goal for the notifications projection's lag behind the store while
 *                              sending, sampled every 20 ms (default 100; BENCH_SECONDS=60 for the issue's 60 s)
 *   BENCH_REQUEST_TIMEOUT_MS   one request's timeout (default 30,000)
 *   BENCH_READY_TIMEOUT_SECONDS  wait for herald's /readyz (default 120)
 *
 * herald runs as its own process (`node --import tsx src/cli.ts serve`) on a fresh database of the test
 * server, HERALD_APPS=camel:EERWERRRRE, the highest send rate per minute the configuration accepts, and
 * LOG_LEVEL=warn. The load comes from this process over keep-alive HTTP/1.1 (node:http Agent, one socket
 * per client).
 *
 *   phase 1: GET /healthz, closed loop, BENCH_CONCURRENCY clients → requests/s, p50/p99
 *   phase 2: POST /koala/api/mas/messages, closed loop, BENCH_CONCURRENCY clients, each with its own
 *            sender's ticket, each send to one recipient with a title of its own → sends/s, p50/p99,
 *            errors by errcode
 *
 * CPU use of herald (/proc/<pid>/stat), of the embedded PostgreSQL, of this process and of the machine is
 * sampled over each phase. Prints one JSON document on stdout; progress on stderr.
 */
import { CpuSampler } from './cpu';
import { issueTicket, koalaSend, startHeraldWithClient } from './httpClient';
import { closedLoop } from './load';
import { benchDatabase } from './machine';
import { envInteger, envNumber, progress, runBenchmark } from './run';
import { ProjectionLagSampler } from './support';

const CONCURRENCY = envInteger('BENCH_CONCURRENCY', 64, 1);
const SECONDS = envNumber('BENCH_SECONDS', 10, 0.1);
const WARMUP_SECONDS = envNumber('BENCH_WARMUP_SECONDS', 2, 0);
const MAX_REQUESTS = envInteger('BENCH_MAX_REQUESTS', 2_000_000, 1);
const RECIPIENTS = envInteger('BENCH_RECIPIENTS', 1_000, 1);
const GOAL_RATIO = envNumber('BENCH_GOAL_RATIO', 0.5, 0);
const GOAL_LAG_P99_MS = envNumber('BENCH_GOAL_LAG_P99_MS', 100, 0);

runBenchmark(async (cleanup) => {
  const { url: databaseUrl, machine } = await benchDatabase(cleanup);

  progress('starting herald');
  const { herald, http: client } = await startHeraldWithClient(cleanup, databaseUrl, { maxSockets: CONCURRENCY });
  const cpu = new CpuSampler(herald.pid);

  const tickets: string[] = [];
  for (let worker = 0; worker < CONCURRENCY; worker++) tickets.push(await issueTicket(client, `sender-${worker}`));

  const healthz = async () => {
    const response = await client.get('/healthz');
    return response.status === 200 ? 'ok' : `http-${response.status}`;
  };
  const send = (phase: string) => async (worker: number, i: number) => {
    const answer = await koalaSend(client, {
      ticket: tickets[worker]!,
      users: `recv-${(worker * 7919 + i) % RECIPIENTS}`,
      title: `${phase} ${worker}-${i}`,
      content: 'system patching 20:21',
    });
    return answer.status === 0 ? 'ok' : `errcode-${answer.errcode}`;
  };
  const loop = { concurrency: CONCURRENCY, maxRequests: MAX_REQUESTS, cpu };

  progress(`phase 1: GET /healthz, ${CONCURRENCY} clients, ${WARMUP_SECONDS} s warm-up + ${SECONDS} s`);
  const healthzWarmUp = await closedLoop({ ...loop, seconds: WARMUP_SECONDS }, healthz);
  const healthzResult = await closedLoop({ ...loop, seconds: SECONDS }, healthz);
  progress(`  ${healthzResult.okPerSecond} requests/s, p99 ${healthzResult.latency.p99Ms} ms`);

  progress(`phase 2: Koala send, ${CONCURRENCY} clients, ${WARMUP_SECONDS} s warm-up + ${SECONDS} s`);
  const sendWarmUp = await closedLoop({ ...loop, seconds: WARMUP_SECONDS }, send('warm-up'));
  const lag = new ProjectionLagSampler(databaseUrl);
  lag.start();
  const sendResult = await closedLoop({ ...loop, seconds: SECONDS }, send('send'));
  const projectionLag = await lag.stop();
  progress(
    `  ${sendResult.okPerSecond} sends/s, p99 ${sendResult.latency.p99Ms} ms; projection lag p99 ${projectionLag.p99Ms} ms`,
  );

  const ratio =
    healthzResult.okPerSecond > 0 ? Number((sendResult.okPerSecond / healthzResult.okPerSecond).toFixed(3)) : 0;
  const clean = Object.keys(healthzResult.errors).length === 0 && Object.keys(sendResult.errors).length === 0;
  return {
    benchmark: 'send (B1)',
    machine,
    parameters: {
      concurrency: CONCURRENCY,
      seconds: SECONDS,
      warmUpSeconds: WARMUP_SECONDS,
      maxRequests: MAX_REQUESTS,
      recipients: RECIPIENTS,
    },
    healthz: {
      ...healthzResult,
      requestsPerSecond: healthzResult.okPerSecond,
      warmUp: { requests: healthzWarmUp.requests, errors: healthzWarmUp.errors },
    },
    send: {
      ...sendResult,
      sendsPerSecond: sendResult.okPerSecond,
      warmUp: { requests: sendWarmUp.requests, errors: sendWarmUp.errors },
    },
    ratio,
    // How far the notifications projection trails the store while sending (the issue's "projection lag").
    projectionLag,
    goal: {
      ratioAtLeast: GOAL_RATIO,
      met: ratio >= GOAL_RATIO && clean,
      errorsFree: clean,
      projectionLagP99AtMostMs: GOAL_LAG_P99_MS,
      projectionLagMet:
        projectionLag.p99Ms !== null && projectionLag.p99Ms <= GOAL_LAG_P99_MS && projectionLag.stillBehind === 0,
    },
  };
});
