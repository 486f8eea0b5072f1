/**
 * Platform push (issue 25): the FCM and Web Push adapters alone, as bench/platformPush.ts measures the APNs
 * adapter alone — N notifications through the adapter (src/platformPush/fcm.ts, webPush.ts) in this process,
 * C at a time, to the service in its own process on loopback (bench/pushServiceProcess.ts: the FCM v1
 * stand-in, web-push-testing). requests/s and this process's CPU per request (the adapter: FCM's JSON and
 * fetch; Web Push's RFC 8291 encryption, VAPID JWT and POST). No herald, no store.
 *
 *   flock /work/bench.lock node --import tsx bench/platformPushAdapters.ts
 *
 * Parameters (environment):
 *   BENCH_NOTIFICATIONS   per service (default 5,000)
 *   BENCH_CONCURRENCY     notifications in flight (default 64: Web Push keeps 64 connections per host)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { Fcm, type FcmCredentials } from '../src/platformPush/fcm';
import type { PlatformNotification, PlatformPushService } from '../src/platformPush/platformPush';
import { WebPush, type VapidCredentials } from '../src/platformPush/webPush';
import { describeMachine } from './machine';
import { envInteger, progress, runBenchmark, type Cleanup } from './run';
import { round } from './stats';

const NOTIFICATIONS = envInteger('BENCH_NOTIFICATIONS', 5_000, 1);
const CONCURRENCY = envInteger('BENCH_CONCURRENCY', 64, 1);

async function startService<T>(cleanup: Cleanup, kind: 'fcm' | 'webpush'): Promise<{ child: ChildProcess; where: T }> {
  const child = fork(path.join(__dirname, 'pushServiceProcess.ts'), [kind], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  cleanup.add(`stop the ${kind} service`, async () => void child.disconnect());
  const where = await new Promise<T>((resolve) => child.once('message', (message) => resolve(message as T)));
  return { child, where };
}

const statsOf = (child: ChildProcess) =>
  new Promise<{ requests: number; statuses: Record<string, number> }>((resolve) => {
    child.once('message', (message) => resolve(message as { requests: number; statuses: Record<string, number> }));
    child.send({ type: 'stats' });
  });

async function measure(service: PlatformPushService, token: () => string) {
  const notification = (): PlatformNotification => ({
    messageId: randomUUID(),
    appId: 'bench',
    token: token(),
    alert: 'bench: adapter alone',
    sound: 'default',
    badge: 1,
    extra: 'bench',
    tenantCode: '',
    pushMsgType: 'MSG',
    needConfirm: false,
    expiresAt: new Date(Date.now() + 3600_000),
  });
  // One first (a connection, FCM's access token), then the timed run.
  await service.send(notification(), AbortSignal.timeout(30_000));
  let next = 0;
  let sent = 0;
  let failed = 0;
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < NOTIFICATIONS) {
        const outcome = await service.send(notification(), AbortSignal.timeout(30_000));
        if (outcome.ok) sent += 1;
        else failed += 1;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  await service.close();
  return {
    notifications: NOTIFICATIONS,
    concurrency: CONCURRENCY,
    seconds: round(seconds, 2),
    requestsPerSecond: Math.round(sent / seconds),
    failed,
    clientMicrosPerRequest: round((cpu.user + cpu.system) / NOTIFICATIONS, 1),
  };
}

runBenchmark(async (cleanup) => {
  const machine = await describeMachine();

  progress('FCM: the stand-in in its own process');
  const fcm = await startService<{ baseUrl: string; tokenUri: string; credentials: FcmCredentials }>(cleanup, 'fcm');
  const fcmResult = await measure(
    new Fcm(async () => fcm.where.credentials, { baseUrl: fcm.where.baseUrl, tokenUri: fcm.where.tokenUri }),
    () => randomBytes(32).toString('hex'),
  );
  progress(`fcm: ${JSON.stringify(fcmResult)} ${JSON.stringify(await statsOf(fcm.child))}`);

  progress('Web Push: web-push-testing in its own process');
  const web = await startService<{
    origin: string;
    vapid: VapidCredentials;
    subscription: { endpoint: string; keys: { p256dh: string; auth: string } };
  }>(cleanup, 'webpush');
  const subscription = JSON.stringify(web.where.subscription);
  const webResult = await measure(
    new WebPush(async () => web.where.vapid, { allowedOrigins: [web.where.origin] }),
    () => subscription,
  );
  progress(`webpush: ${JSON.stringify(webResult)} ${JSON.stringify(await statsOf(web.child))}`);

  return {
    benchmark: 'platformPushAdapters',
    machine: { ...machine, store: 'none (the adapters alone)' },
    fcm: fcmResult,
    webPush: webResult,
  };
});
