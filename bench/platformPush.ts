/**
 * Platform push (issue 25, APNs). Goal: 10,000 offline iOS devices, one ONE-PUSH send to ALL → the APNs
 * stand-in on loopback: requests/s over one HTTP/2 connection and the time to the last one, ≥ 5,000/s,
 * 0 lost, each device once.
 *
 *   flock /work/bench.lock npm run bench:platformPush
 *   BENCH_DEVICES=1000 node --import tsx bench/platformPush.ts      # a small run
 *
 * Parameters (environment):
 *   BENCH_DEVICES                 offline IOS devices registered (default 10,000)
 *   BENCH_REGISTER_CONCURRENCY    concurrent POST /msgpush/register (default 32)
 *   BENCH_TIMEOUT_SECONDS         the send's deadline for the last APNs request (default 300)
 *   BENCH_CLIENT_STREAMS          the adapter-alone run's stream bound (default 500)
 *
 * Three processes on this machine: herald (`herald serve`, its own process, configured as a one-app
 * deployment would be: HERALD_APNS_* with HERALD_APNS_HOST/HERALD_APNS_CA_FILE naming the stand-in), the
 * APNs stand-in (bench/apnsStandInProcess.ts: HTTP/2 over TLS, verifying each request's JWT, path,
 * headers and size), and this one, the load generator (registrations, the send, polling the stand-in).
 *
 * `endToEnd`: from the send's start (t0) to the stand-in's last 200 — herald's trigger finding the
 * offline devices, a PlatformPushRequested per device, the outbox's attempts over the app's one HTTP/2
 * connection, a PlatformPushSent per device. requests/s = devices ÷ (last − t0); lost = devices without a
 * 200; repeated = devices answered 200 more than once; sessions = HTTP/2 connections the stand-in saw;
 * herald's and the embedded PostgreSQL's CPU per push (µs). `adapterAlone`: the APNs adapter
 * (src/platformPush/apns.ts) in this process sending the same number of notifications over one
 * connection with BENCH_CLIENT_STREAMS streams: the connection's ceiling, without herald's bookkeeping.
 *
 * Prints one JSON document on stdout; progress on stderr.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApnsConnection } from '../src/platformPush/apns';
import { apnsTestKey } from '../test/support/apnsStandIn';
import { CpuSampler } from './cpu';
import { APP_ID, APP_SECRET } from './heraldProcess';
import { startHeraldWithClient } from './httpClient';
import { benchDatabase } from './machine';
import { envInteger, envNumber, progress, runBenchmark, sleep } from './run';
import { round } from './stats';

const DEVICES = envInteger('BENCH_DEVICES', 10_000, 1);
const REGISTER_CONCURRENCY = envInteger('BENCH_REGISTER_CONCURRENCY', 32, 1);
const TIMEOUT_MS = envNumber('BENCH_TIMEOUT_SECONDS', 300, 1) * 1000;
const CLIENT_STREAMS = envInteger('BENCH_CLIENT_STREAMS', 500, 1);
const GOAL_PER_SECOND = 5_000;

interface StandInStats {
  requests: number;
  ok: number;
  tokens: number;
  ids: number;
  repeatedTokens: number;
  statuses: Record<string, number>;
  firstAt: number | null;
  lastAt: number | null;
  sessions: number;
  peakStreams: number;
}

function askStats(child: ChildProcess, since = 0): Promise<StandInStats> {
  return new Promise((resolve) => {
    child.once('message', (message) => resolve(message as StandInStats));
    child.send({ type: 'stats', since });
  });
}

runBenchmark(async (cleanup) => {
  const { url: databaseUrl, machine } = await benchDatabase(cleanup);
  const key = apnsTestKey('B');
  const dir = path.join(os.tmpdir(), `bench-apns-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  cleanup.add('remove the key file', async () => rmSync(dir, { recursive: true, force: true }));
  const keyFile = path.join(dir, 'AuthKey.p8');
  writeFileSync(keyFile, key.keyPem, { mode: 0o600 });

  progress('starting the APNs stand-in (its own process)');
  const standIn = fork(path.join(__dirname, 'apnsStandInProcess.ts'), {
    execArgv: ['--import', 'tsx'],
    env: {
      ...process.env,
      BENCH_APNS_KEY: JSON.stringify({ keyPem: key.keyPem, keyId: key.keyId, teamId: key.teamId, topic: key.topic }),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  cleanup.add('stop the stand-in', async () => void standIn.disconnect());
  const where = await new Promise<{ url: string; caFile: string; ca: string }>((resolve) =>
    standIn.once('message', (message) => resolve(message as { url: string; caFile: string; ca: string })),
  );

  progress('starting herald with HERALD_APNS_* naming the stand-in');
  const { herald, http } = await startHeraldWithClient(
    cleanup,
    databaseUrl,
    { maxSockets: REGISTER_CONCURRENCY },
    {
      env: {
        HERALD_CREDENTIALS_KEY: randomBytes(32).toString('hex'),
        HERALD_APNS_APP: APP_ID,
        HERALD_APNS_KEY_FILE: keyFile,
        HERALD_APNS_KEY_ID: key.keyId,
        HERALD_APNS_TEAM_ID: key.teamId,
        HERALD_APNS_TOPIC: key.topic,
        HERALD_APNS_HOST: where.url,
        HERALD_APNS_CA_FILE: where.caFile,
      },
    },
  );

  progress(`registering ${DEVICES} IOS devices (not connected)`);
  const registerStart = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: REGISTER_CONCURRENCY }, async () => {
      for (let i = next++; i < DEVICES; i = next++) {
        const answer = await http.request(
          'POST',
          '/msgpush/register',
          JSON.stringify({
            alias: `bench-${i}`,
            appId: APP_ID,
            platform: 'IOS',
            nativeToken: randomBytes(32).toString('hex'),
          }),
          { 'content-type': 'application/json' },
        );
        if (answer.status !== 200) throw new Error(`register: HTTP ${answer.status} ${answer.body}`);
      }
    }),
  );
  const registerSeconds = (performance.now() - registerStart) / 1000;
  await sleep(1000);

  const cpu = new CpuSampler(herald.pid, [standIn.pid!]);
  const before = cpu.snapshot();
  const t0 = Date.now();
  progress('one send to ALL');
  const sent = await http.request(
    'POST',
    '/msgpush/send',
    JSON.stringify({
      appId: APP_ID,
      appKey: APP_SECRET,
      platform: 'IOS',
      audienceType: 'ALL',
      alert: 'bench: platform push',
      sound: 'default',
      badge: 1,
      extra: 'bench',
    }),
    { 'content-type': 'application/json' },
  );
  if (sent.status !== 200) throw new Error(`send: HTTP ${sent.status} ${sent.body}`);
  const answeredMs = Date.now() - t0;
  let stats = await askStats(standIn, t0);
  let lastProgress = 0;
  while (stats.tokens < DEVICES && Date.now() - t0 < TIMEOUT_MS) {
    await sleep(100);
    stats = await askStats(standIn, t0);
    if (Date.now() - lastProgress > 5000) {
      progress(`${stats.tokens}/${DEVICES} devices reached APNs`);
      lastProgress = Date.now();
    }
  }
  const after = cpu.snapshot();
  const timedOut = stats.tokens < DEVICES;
  // A little longer: anything sent twice would show now.
  await sleep(2000);
  stats = await askStats(standIn, t0);
  const lastSeconds = ((stats.lastAt ?? Date.now()) - t0) / 1000;
  const endToEnd = {
    devices: DEVICES,
    sendAnsweredMs: answeredMs,
    firstRequestMs: stats.firstAt === null ? null : stats.firstAt - t0,
    timeToLastSeconds: round(lastSeconds, 2),
    requestsPerSecond: lastSeconds > 0 ? Math.round(stats.ok / lastSeconds) : 0,
    lost: DEVICES - stats.tokens,
    repeated: stats.repeatedTokens,
    statuses: stats.statuses,
    sessions: stats.sessions,
    peakStreams: stats.peakStreams,
    timedOut,
    cpu: CpuSampler.between(before, after, stats.ok),
  };
  progress(`end to end: ${JSON.stringify({ ...endToEnd, cpu: undefined })}`);
  await herald.stop();

  progress(`the adapter alone: ${DEVICES} notifications over one connection, ${CLIENT_STREAMS} streams`);
  const connection = new ApnsConnection(
    { keyPem: key.keyPem, keyId: key.keyId, teamId: key.teamId, topic: key.topic, environment: 'sandbox' },
    { host: where.url, ca: where.ca },
    { maxStreams: CLIENT_STREAMS },
  );
  const adapterStart = Date.now();
  const sessionsBefore = (await askStats(standIn)).sessions;
  const cpuStart = process.cpuUsage();
  const outcomes = await Promise.all(
    Array.from({ length: DEVICES }, () =>
      connection.send(
        {
          messageId: randomUUID(),
          appId: APP_ID,
          token: randomBytes(32).toString('hex'),
          alert: 'bench: adapter alone',
          sound: 'default',
          badge: 1,
          extra: 'bench',
          tenantCode: '',
          pushMsgType: 'MSG',
          needConfirm: false,
          expiresAt: new Date(Date.now() + 3600_000),
        },
        AbortSignal.timeout(60_000),
      ),
    ),
  );
  const adapterSeconds = (Date.now() - adapterStart) / 1000;
  const cpuUsed = process.cpuUsage(cpuStart);
  await connection.close();
  const adapterStats = await askStats(standIn, adapterStart);
  const adapterAlone = {
    notifications: DEVICES,
    streams: CLIENT_STREAMS,
    seconds: round(adapterSeconds, 2),
    requestsPerSecond: Math.round(outcomes.filter((o) => o.ok).length / adapterSeconds),
    failed: outcomes.filter((o) => !o.ok).length,
    sessions: adapterStats.sessions - sessionsBefore,
    clientMicrosPerRequest: round((cpuUsed.user + cpuUsed.system) / DEVICES, 1),
  };
  progress(`adapter alone: ${JSON.stringify(adapterAlone)}`);

  return {
    benchmark: 'platformPush',
    machine,
    parameters: { devices: DEVICES, registerConcurrency: REGISTER_CONCURRENCY, clientStreams: CLIENT_STREAMS },
    registerSeconds: round(registerSeconds, 1),
    endToEnd,
    adapterAlone,
    goal: {
      requestsPerSecond: GOAL_PER_SECOND,
      met: !timedOut && endToEnd.lost === 0 && endToEnd.repeated === 0 && endToEnd.requestsPerSecond >= GOAL_PER_SECOND,
    },
  };
});
