import webpush from 'web-push';
import { fcmTestAccount, startFcmStandIn } from '../test/support/fcmStandIn';
import { startWebPushService } from '../test/support/webPushService';

/**
 * A push service in a process of its own for bench/platformPushAdapters.ts, so its CPU is not the
 * adapter's: `fcm` — the FCM v1 stand-in (test/support/fcmStandIn.ts, a TEST DOUBLE: token endpoint and
 * messages:send, each checked); `webpush` — web-push-testing (test/support/webPushService.ts: checks each
 * request's VAPID JWT and decrypts its payload). Sends what the adapter needs once listening; answers
 * {type: 'stats'} with the requests it answered, by status.
 */
async function main() {
  const kind = process.argv[2];
  if (kind === 'fcm') {
    const account = fcmTestAccount('bench');
    const standIn = await startFcmStandIn([account]);
    process.on('message', () => {
      const statuses: Record<string, number> = {};
      for (const r of standIn.requests) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      process.send!({ requests: standIn.requests.length, statuses });
    });
    process.send!({
      baseUrl: standIn.url,
      tokenUri: standIn.tokenUri,
      credentials: {
        projectId: account.projectId,
        clientEmail: account.clientEmail,
        privateKey: account.privateKey,
        tokenUri: standIn.tokenUri,
      },
    });
    process.on('disconnect', () => void standIn.close().finally(() => process.exit(0)));
  } else if (kind === 'webpush') {
    const service = await startWebPushService();
    const vapid = webpush.generateVAPIDKeys();
    const subscription = await service.subscribe(vapid.publicKey);
    process.on('message', () => {
      const statuses: Record<string, number> = {};
      for (const r of service.requests) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      process.send!({ requests: service.requests.length, statuses });
    });
    process.send!({
      origin: service.origin,
      vapid: { ...vapid, subject: 'mailto:bench@example.com' },
      subscription: { endpoint: subscription.endpoint, keys: subscription.keys },
    });
    process.on('disconnect', () => void service.close().finally(() => process.exit(0)));
  } else throw new Error(`pushServiceProcess: fcm or webpush, not ${kind}`);
}

void main();
