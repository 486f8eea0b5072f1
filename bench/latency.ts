/**
 * B2 — send → receive latency. Goal: 1,000 sends/s for 30 s, each to one of 100 terminals subscribed over
 * graphql-ws: p99 of send → receive ≤ 25 ms, and none lost.
 *
 *   node --import tsx bench/latency.ts                                                  # the goal's load
 *   BENCH_RATE=100 BENCH_SECONDS=5 BENCH_TERMINALS=10 node --import tsx bench/latency.ts  # a small run
 *   DATABASE_URL=postgres://… node --import tsx bench/latency.ts
 *
 * Parameters (environment):
 *   BENCH_RATE                  sends per second, open loop (default 1,000)
 *   BENCH_SECONDS               seconds of sending (default 30)
 *   BENCH_TERMINALS             graphql-ws terminals, one user each; send i goes to terminal i mod n (default 100)
 *   BENCH_SENDERS               sending users, round robin (default 16)
 *   BENCH_MAX_IN_FLIGHT         unanswered sends at most; a send due beyond it is skipped and counted (default 256)
 *   BENCH_LATE_MS               a send fired more than this after its due time counts as late (default 5)
 *   BENCH_DRAIN_SECONDS         after the last send, wait at most this long for stragglers (default 30)
 *   BENCH_WARMUP_TIMEOUT_SECONDS  every terminal must receive a warm-up message within this (default 30)
 *   BENCH_BASELINE_RATE         rate of the baseline round trips (default 100/s)
 *   BENCH_BASELINE_SECONDS      seconds of each baseline (default 5)
 *   BENCH_GOAL_P99_MS           the goal's p99 (default 25)
 *   BENCH_REQUEST_TIMEOUT_MS    one HTTP request's (or graphql-ws query's) timeout (default 30,000)
 *   BENCH_READY_TIMEOUT_SECONDS wait for herald's /readyz (default 120)
 *   BENCH_WARM_CONNECTIONS      open this many keep-alive connections (concurrent GET /healthz) just before the
 *                               load, so that it opens none while herald is busy (default 0: the agent opens
 *                               them as the load needs; herald accepts one per event-loop turn, docs/performance.md)
 *   BENCH_STALL_TRACE_DIR       write a trace of the load on the wall clock there (bench/stallTrace.ts; with
 *                               BENCH_HERALD_NODE_ARGS="--import ./bench/stallProbe.mjs" herald's event loop and
 *                               GC too; read it with `node --import tsx bench/stallReport.ts DIR`)
 *
 * herald runs as its own process on a fresh database (bench/heraldProcess.ts startHerald). This process is the
 * load generator: Koala sends (POST /koala/api/mas/messages) over keep-alive HTTP/1.1 at a fixed rate,
 * whatever the answers, with at most BENCH_MAX_IN_FLIGHT unanswered; the terminals subscribe with
 * `subscription { messages { title seq } }`. A message's latency is the time it is received at its
 * terminal minus the time its send started, matched by title (also reported from its due time, which
 * counts the load generator's own lateness). Before measuring, every terminal receives one warm-up
 * message. After the last send, stragglers are awaited up to BENCH_DRAIN_SECONDS; what an accepted send
 * never delivered by then is lost (and the database is asked whether the event store and the read model
 * have those messages, to tell a lagging projection from a lost push).
 *
 * Baselines in the same run, before the load, at BENCH_BASELINE_RATE: the round trip of GET /healthz over
 * the same HTTP agent, and of a `{ me { userId } }` query over the terminals' graphql-ws sockets.
 *
 * Prints one JSON document on stdout; progress on stderr.
 */
import { createClient, type Client } from 'graphql-ws';
import pg from 'pg';
import WebSocket from 'ws';
import { CpuSampler } from './cpu';
import { issueTicket, koalaSend, startHeraldWithClient } from './httpClient';
import { openLoop } from './load';
import { benchDatabase } from './machine';
import { deadline, envInteger, envNumber, progress, runBenchmark, sleep } from './run';
import { StallTrace } from './stallTrace';
import { latencyStats, perSecond } from './stats';

const RATE = envNumber('BENCH_RATE', 1_000, 0.1);
const SECONDS = envNumber('BENCH_SECONDS', 30, 0.1);
const TERMINALS = envInteger('BENCH_TERMINALS', 100, 1);
const SENDERS = envInteger('BENCH_SENDERS', 16, 1);
const MAX_IN_FLIGHT = envInteger('BENCH_MAX_IN_FLIGHT', 256, 1);
const LATE_MS = envNumber('BENCH_LATE_MS', 5, 0);
const DRAIN_SECONDS = envNumber('BENCH_DRAIN_SECONDS', 30, 0);
const WARMUP_TIMEOUT_SECONDS = envNumber('BENCH_WARMUP_TIMEOUT_SECONDS', 30, 1);
const BASELINE_RATE = envNumber('BENCH_BASELINE_RATE', 100, 0.1);
const BASELINE_SECONDS = envNumber('BENCH_BASELINE_SECONDS', 5, 0.1);
const GOAL_P99_MS = envNumber('BENCH_GOAL_P99_MS', 25, 0);
const REQUEST_TIMEOUT_MS = envNumber('BENCH_REQUEST_TIMEOUT_MS', 30_000, 1);
const WARM_CONNECTIONS = Math.min(envInteger('BENCH_WARM_CONNECTIONS', 0, 0), MAX_IN_FLIGHT);

interface Terminal {
  readonly userId: string;
  readonly client: Client;
  warmedUp: boolean;
  received: number;
  subscriptionError: string | undefined;
  completed: boolean;
}

interface PendingSend {
  readonly terminal: number;
  readonly due: number;
  readonly started: number;
}

/**
 * For messages that never arrived: how many the event store has (the send was appended) and how many the
 * notifications read model shows (projected, so the push was due), to tell a slow or stuck projection
 * from a lost push.
 */
async function whereAreTheLost(
  databaseUrl: string,
  titles: readonly string[],
): Promise<{ eventStore: number; readModel: number; readModelQueryError?: string }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const eventStore = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM events WHERE event_type = 'MessageSent' AND data->>'title' = ANY ($1::text[])`,
      [titles],
    );
    try {
      const readModel = await client.query<{ n: string }>(
        'SELECT count(*) AS n FROM notification_messages WHERE title = ANY ($1::text[])',
        [titles],
      );
      return { eventStore: Number(eventStore.rows[0]!.n), readModel: Number(readModel.rows[0]!.n) };
    } catch (error) {
      return {
        eventStore: Number(eventStore.rows[0]!.n),
        readModel: -1,
        readModelQueryError: (error as Error).message,
      };
    }
  } finally {
    await client.end();
  }
}

runBenchmark(async (cleanup) => {
  const { url: databaseUrl, machine } = await benchDatabase(cleanup);

  progress('starting herald');
  const { herald, http } = await startHeraldWithClient(cleanup, databaseUrl, { maxSockets: MAX_IN_FLIGHT });
  const cpu = new CpuSampler(herald.pid);
  const trace = await StallTrace.open(databaseUrl, herald.pid, () => http.sockets());
  /** Each measured send's times, by index, when tracing. */
  const traced = new Map<
    number,
    { terminal: number; due: number; started: number; answered?: number; received?: number }
  >();

  const senderTickets: string[] = [];
  for (let s = 0; s < SENDERS; s++) senderTickets.push(await issueTicket(http, `latency-sender-${s}`));

  // --- terminals ---
  const pending = new Map<string, PendingSend>();
  const sendToReceive: number[] = [];
  const dueToReceive: number[] = [];
  let unexpected = 0;
  let wrongTerminal = 0;
  const terminals: Terminal[] = [];
  cleanup.add('close the terminals', () => Promise.all(terminals.map((t) => t.client.dispose())));

  const onMessage = (index: number, title: string) => {
    const at = performance.now();
    const terminal = terminals[index]!;
    terminal.received++;
    if (title.startsWith('warm-up ')) {
      terminal.warmedUp = true;
      return;
    }
    const sent = pending.get(title);
    if (!sent) {
      unexpected++; // a duplicate, or a send that had failed
      return;
    }
    pending.delete(title);
    if (sent.terminal !== index) wrongTerminal++;
    sendToReceive.push(at - sent.started);
    const times = traced.get(Number(title.slice('lat-'.length)));
    if (times) times.received = at;
    dueToReceive.push(at - sent.due);
  };

  progress(`connecting ${TERMINALS} terminals`);
  const connected: Promise<void>[] = [];
  for (let index = 0; index < TERMINALS; index++) {
    const userId = `terminal-${index}`;
    const ticket = await issueTicket(http, userId);
    const client = createClient({
      url: `${herald.wsUrl}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { ticket },
      lazy: false,
      retryAttempts: 0,
    });
    const terminal: Terminal = {
      userId,
      client,
      warmedUp: false,
      received: 0,
      subscriptionError: undefined,
      completed: false,
    };
    terminals.push(terminal);
    connected.push(new Promise((resolve) => client.on('connected', () => resolve())));
    client.subscribe<{ messages: { title: string; seq: string } }>(
      { query: 'subscription { messages { title seq } }' },
      {
        next: (result) => {
          if (result.data) onMessage(index, result.data.messages.title);
          else terminal.subscriptionError = JSON.stringify(result.errors);
        },
        error: (error: unknown) => {
          terminal.subscriptionError = Array.isArray(error)
            ? JSON.stringify(error)
            : String((error as Error)?.message ?? error);
        },
        complete: () => {
          terminal.completed = true;
        },
      },
    );
  }
  const connectDeadline = deadline(WARMUP_TIMEOUT_SECONDS * 1000).then(() => {
    throw new Error(`the terminals did not all connect within ${WARMUP_TIMEOUT_SECONDS} s`);
  });
  await Promise.race([Promise.all(connected), connectDeadline]);

  // Warm-up: every terminal receives a message before anything is measured (re-sent to the ones that
  // have not, in case a subscription was not registered yet when its first warm-up went out).
  progress('warm-up: one message to each terminal');
  const warmUpDeadline = Date.now() + WARMUP_TIMEOUT_SECONDS * 1000;
  for (let round = 0; terminals.some((t) => !t.warmedUp); round++) {
    if (Date.now() > warmUpDeadline)
      throw new Error(
        `only ${terminals.filter((t) => t.warmedUp).length} of ${TERMINALS} terminals received a warm-up message within ${WARMUP_TIMEOUT_SECONDS} s`,
      );
    const waiting = terminals.filter((t) => !t.warmedUp);
    await Promise.all(
      waiting.map(async (t, k) => {
        const answer = await koalaSend(http, {
          ticket: senderTickets[k % SENDERS]!,
          users: t.userId,
          title: `warm-up ${round}`,
          content: 'w',
        });
        if (answer.status !== 0) throw new Error(`warm-up send: ${JSON.stringify(answer)}`);
      }),
    );
    const roundEnd = Date.now() + 2000;
    while (terminals.some((t) => !t.warmedUp) && Date.now() < roundEnd) await sleep(10);
  }

  // --- baselines ---
  progress(`baselines at ${BASELINE_RATE}/s for ${BASELINE_SECONDS} s each: GET /healthz, graphql-ws { me }`);
  const healthz: number[] = [];
  let healthzErrors = 0;
  const healthzLoop = await openLoop(
    { rate: BASELINE_RATE, seconds: BASELINE_SECONDS, maxInFlight: MAX_IN_FLIGHT, lateMs: LATE_MS },
    async () => {
      const t0 = performance.now();
      try {
        const response = await http.get('/healthz');
        if (response.status !== 200) healthzErrors++;
        else healthz.push(performance.now() - t0);
      } catch {
        healthzErrors++;
      }
    },
  );
  await healthzLoop.settled();
  const wsQuery: number[] = [];
  let wsQueryErrors = 0;
  const wsLoop = await openLoop(
    { rate: BASELINE_RATE, seconds: BASELINE_SECONDS, maxInFlight: MAX_IN_FLIGHT, lateMs: LATE_MS },
    async (i) => {
      const client = terminals[i % terminals.length]!.client;
      const t0 = performance.now();
      try {
        await new Promise<void>((resolve, reject) => {
          let answered = false;
          const timer = setTimeout(() => {
            cancel();
            reject(new Error('no answer in time'));
          }, REQUEST_TIMEOUT_MS);
          const cancel = client.subscribe<{ me: { userId: string } }>(
            { query: '{ me { userId } }' },
            {
              next: (result) => (answered = Boolean(result.data?.me.userId)),
              error: (error: unknown) => {
                clearTimeout(timer);
                reject(error instanceof Error ? error : new Error(JSON.stringify(error)));
              },
              complete: () => {
                clearTimeout(timer);
                if (answered) resolve();
                else reject(new Error('no answer'));
              },
            },
          );
        });
        wsQuery.push(performance.now() - t0);
      } catch {
        wsQueryErrors++;
      }
    },
  );
  await wsLoop.settled();

  // --- the load ---
  progress(`sending ${RATE}/s for ${SECONDS} s to ${TERMINALS} terminals (at most ${MAX_IN_FLIGHT} in flight)`);
  const sendAnswer: number[] = [];
  const sendErrors: Record<string, number> = {};
  let accepted = 0;
  if (WARM_CONNECTIONS > 0) {
    progress(`opening ${WARM_CONNECTIONS} connections`);
    await Promise.all(Array.from({ length: WARM_CONNECTIONS }, () => http.get('/healthz')));
  }
  await trace?.start();
  const before = cpu.snapshot();
  const load = await openLoop(
    { rate: RATE, seconds: SECONDS, maxInFlight: MAX_IN_FLIGHT, lateMs: LATE_MS },
    async (i, due) => {
      const title = `lat-${i}`;
      const terminal = i % TERMINALS;
      const started = performance.now();
      pending.set(title, { terminal, due, started });
      if (trace) traced.set(i, { terminal, due, started });
      try {
        const answer = await koalaSend(http, {
          ticket: senderTickets[i % SENDERS]!,
          users: terminals[terminal]!.userId,
          title,
          content: 'latency probe',
        });
        sendAnswer.push(performance.now() - started);
        const times = traced.get(i);
        if (times) times.answered = performance.now();
        if (answer.status === 0) {
          accepted++;
          return;
        }
        sendErrors[`errcode-${answer.errcode}`] = (sendErrors[`errcode-${answer.errcode}`] ?? 0) + 1;
      } catch {
        sendErrors.network = (sendErrors.network ?? 0) + 1;
      }
      pending.delete(title); // refused: not expected at the terminal
    },
  );
  const duringLoad = CpuSampler.between(before, cpu.snapshot(), load.fired);
  const receivedWhileSending = sendToReceive.length;
  progress(
    `  fired ${load.fired} of ${load.planned} (skipped ${load.skipped}); received ${receivedWhileSending} so far; waiting for answers and stragglers (≤ ${DRAIN_SECONDS} s)`,
  );

  const drainStarted = performance.now();
  const drainDeadline = drainStarted + DRAIN_SECONDS * 1000;
  await Promise.race([load.settled(), deadline(DRAIN_SECONDS * 1000)]);
  let lastReport = performance.now();
  while (pending.size > 0 && performance.now() < drainDeadline) {
    await sleep(20);
    if (performance.now() - lastReport > 5000) {
      progress(`  ${pending.size} still to arrive`);
      lastReport = performance.now();
    }
  }
  const drainSeconds = (performance.now() - drainStarted) / 1000;
  if (trace) {
    for (const [i, t] of traced) trace.send(i, t.terminal, t.due, t.started, t.answered, t.received);
    await trace.close();
  }
  const afterDrain = CpuSampler.between(before, cpu.snapshot(), accepted);
  const unanswered = load.fired - accepted - Object.values(sendErrors).reduce((a, b) => a + b, 0);
  const lost = pending.size; // accepted (or still unanswered) sends whose message never arrived
  const latency = latencyStats(sendToReceive);
  const subscriptionErrors = terminals
    .filter((t) => t.subscriptionError !== undefined)
    .map((t) => ({ terminal: t.userId, error: t.subscriptionError }));
  const sendRefused = Object.values(sendErrors).reduce((a, b) => a + b, 0);
  const lostWhere =
    lost > 0
      ? {
          ...(await whereAreTheLost(databaseUrl, [...pending.keys()])),
          terminals: new Set([...pending.values()].map((p) => p.terminal)).size,
          sendIndexRange: [
            Math.min(...[...pending.keys()].map((t) => Number(t.slice(4)))),
            Math.max(...[...pending.keys()].map((t) => Number(t.slice(4)))),
          ],
        }
      : null;

  return {
    benchmark: 'latency (B2)',
    machine,
    parameters: {
      ratePerSecond: RATE,
      seconds: SECONDS,
      terminals: TERMINALS,
      senders: SENDERS,
      maxInFlight: MAX_IN_FLIGHT,
      lateMs: LATE_MS,
      drainSeconds: DRAIN_SECONDS,
      baselineRatePerSecond: BASELINE_RATE,
      baselineSeconds: BASELINE_SECONDS,
      warmConnections: WARM_CONNECTIONS,
    },
    sendToReceive: {
      fromSendStart: latency,
      fromDueTime: latencyStats(dueToReceive),
      planned: load.planned,
      fired: load.fired,
      skippedInFlightBound: load.skipped,
      firedLate: load.late,
      // A send the bench could not fire on time (in-flight bound), refused, or never received (unanswered ones too).
      failed: load.skipped + sendRefused + lost,
      accepted,
      sendErrors,
      unansweredSends: unanswered,
      received: sendToReceive.length,
      receivedWhileSending,
      lost,
      lostFoundIn: lostWhere,
      unexpectedMessages: unexpected,
      wrongTerminal,
      subscriptionErrors,
      subscriptionsCompleted: terminals.filter((t) => t.completed).length,
    },
    sender: {
      seconds: load.seconds,
      firedPerSecond: load.firedPerSecond,
      acceptedPerSecond: perSecond(accepted, load.seconds),
      maxInFlightSeen: load.maxInFlightSeen,
      lateness: load.lateness,
      sendAnswer: latencyStats(sendAnswer),
    },
    drain: { seconds: Number(drainSeconds.toFixed(2)), cpuThroughDrain: afterDrain },
    cpuWhileSending: duringLoad,
    baselines: {
      httpHealthzRoundTrip: { ...latencyStats(healthz), errors: healthzErrors, skipped: healthzLoop.skipped },
      graphqlWsMeQueryRoundTrip: { ...latencyStats(wsQuery), errors: wsQueryErrors, skipped: wsLoop.skipped },
    },
    goal: {
      p99AtMostMs: GOAL_P99_MS,
      lost: 0,
      met:
        latency.p99Ms !== null &&
        latency.p99Ms <= GOAL_P99_MS &&
        lost === 0 &&
        load.skipped === 0 &&
        sendRefused === 0 &&
        sendToReceive.length === load.planned,
    },
  };
});
