/**
 * Send → receive latency: messages sent over Koala's REST route at a fixed rate, received by terminals
 * subscribed over graphql-ws. Beside it, in the same run: the round trip of GET /healthz over HTTP and
 * of a `{ me }` query over the same graphql-ws sockets, as the machine's own baselines. Prints JSON.
 *
 *   npm run bench:latency
 *   BENCH_RATE=100 BENCH_SECONDS=10 BENCH_TERMINALS=20 npm run bench:latency
 *   DATABASE_URL=postgres://… npm run bench:latency
 */
import os from 'node:os';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { postForm, startTestHerald } from '../test/support/herald';
import { describeTarget, stopTestServer } from '../test/support/postgres';

const RATE = Number(process.env.BENCH_RATE ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const TERMINALS = Number(process.env.BENCH_TERMINALS ?? 10);

interface Stats {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => Number((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN).toFixed(2));
  return { count: sorted.length, p50Ms: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99), maxMs: Number((sorted[sorted.length - 1] ?? NaN).toFixed(2)) };
}

/** Calls `fire(i)` RATE times a second for SECONDS, on schedule (not waiting for the previous call). */
async function atFixedRate(fire: (i: number) => Promise<void>): Promise<void> {
  const total = RATE * SECONDS;
  const start = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(fire(i));
  }
  await Promise.all(inFlight);
}

async function main(): Promise<void> {
  const test = await startTestHerald({ sendRatePerMinute: 1_000_000 });
  const clients: Client[] = [];
  try {
    const ticket = async (userId: string) => (await postForm(`${test.url}/koala/api/mas/tickets`, { app_key: 'camel', secret_key: 'EERWERRRRE', user_id: userId })).body.result as string;
    const senderTicket = await ticket('bench-sender');
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    let warmedUp = 0;

    // Terminals: one graphql-ws socket each, subscribed to `messages`.
    const receivers = Array.from({ length: TERMINALS }, (_, i) => `bench-user-${i}`);
    const ready: Promise<void>[] = [];
    for (const userId of receivers) {
      const client = createClient({ url: `${test.url.replace(/^http/, 'ws')}/graphql`, webSocketImpl: WebSocket, connectionParams: { ticket: await ticket(userId) }, lazy: false, retryAttempts: 0 });
      clients.push(client);
      ready.push(new Promise((resolve) => client.on('connected', () => resolve())));
      client.subscribe<{ messages: { title: string } }>(
        { query: 'subscription { messages { title } }' },
        {
          next: (result) => {
            if (result.data!.messages.title === 'warm-up') warmedUp++;
            const started = sentAt.get(result.data!.messages.title);
            if (started !== undefined) latencies.push(performance.now() - started);
          },
          error: () => undefined,
          complete: () => undefined,
        },
      );
    }
    await Promise.all(ready);
    // Measure only once every terminal receives: a warm-up message each, until all have arrived.
    for (const userId of receivers) await postForm(`${test.url}/koala/api/mas/messages`, { ticket: senderTicket, users: userId, title: 'warm-up', content: 'w' });
    const warmUpDeadline = Date.now() + 10_000;
    while (warmedUp < TERMINALS) {
      if (Date.now() > warmUpDeadline) throw new Error(`only ${warmedUp} of ${TERMINALS} terminals received the warm-up message`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    const sendErrors: string[] = [];
    await atFixedRate(async (i) => {
      const title = `bench-${i}`;
      sentAt.set(title, performance.now());
      const { body } = await postForm(`${test.url}/koala/api/mas/messages`, { ticket: senderTicket, users: receivers[i % receivers.length]!, title, content: 'latency probe' });
      if (body.status !== 0) sendErrors.push(String(body.errcode));
    });
    const deadline = Date.now() + 10_000;
    while (latencies.length < RATE * SECONDS && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));

    // Baselines in the same run.
    const http: number[] = [];
    await atFixedRate(async () => {
      const t0 = performance.now();
      await (await fetch(`${test.url}/healthz`)).arrayBuffer();
      http.push(performance.now() - t0);
    });
    const wsQuery: number[] = [];
    await atFixedRate(async (i) => {
      const client = clients[i % clients.length]!;
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => client.subscribe({ query: '{ me { userId } }' }, { next: () => undefined, error: reject, complete: resolve }));
      wsQuery.push(performance.now() - t0);
    });

    process.stdout.write(
      JSON.stringify(
        {
          benchmark: 'latency',
          machine: { cpus: os.cpus().length, node: process.version, store: describeTarget() },
          ratePerSecond: RATE,
          seconds: SECONDS,
          terminals: TERMINALS,
          sendToReceive: { ...stats(latencies), sent: RATE * SECONDS, lost: RATE * SECONDS - latencies.length, sendErrors: sendErrors.length },
          baselines: { httpHealthzRoundTrip: stats(http), graphqlWsQueryRoundTrip: stats(wsQuery) },
        },
        null,
        2,
      ) + '\n',
    );
  } finally {
    await Promise.all(clients.map((c) => c.dispose()));
    await test.stop();
    await stopTestServer();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
