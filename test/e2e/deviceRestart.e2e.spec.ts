import { expect } from 'chai';
import type { Herald } from '../../src/herald';
import { DeviceSocket } from '../support/deviceSocket';
import { eventually } from '../support/eventually';
import { startHeraldOn, TestClock } from '../support/herald';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// Delivery timers live in the read model, not in memory: what was open when herald stopped is tried
// again, and closed at its expiry, by the next herald on the same database (docs/delivery.md).
describe('device deliveries across a restart', function () {
  this.timeout(60_000);
  const clock = new TestClock();
  let testDatabase: TestDatabase;
  let running: Herald | undefined;
  const sockets: DeviceSocket[] = [];

  before(async () => {
    testDatabase = await createTestDatabase();
  });
  after(async () => {
    for (const socket of sockets) socket.close();
    await running?.close();
    await testDatabase.drop();
  });

  const start = async () => (running = await startHeraldOn(testDatabase.connectionString, {}, clock.now));
  const post = async (herald: Herald, path: string, body: unknown) =>
    (await (
      await fetch(`${herald.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
    ).json()) as Record<string, string>;
  const connect = async (herald: Herald, deviceId: string) => {
    const socket = await DeviceSocket.connect(herald.url, deviceId);
    sockets.push(socket);
    return socket;
  };

  it('re-sends an unconfirmed message after a restart, and drops an expired topvdn one that herald was down for', async () => {
    const first = await start();
    const phone = await post(first, '/msgpush/register', {
      alias: 'restart',
      appId: 'camel',
      platform: 'ANDROID',
      nativeToken: 'restart-phone',
    });
    const offline = await post(first, '/msgpush/register', {
      alias: 'away',
      appId: 'camel',
      platform: 'ANDROID',
      nativeToken: 'restart-away',
    });
    const socket = await connect(first, phone.id!);
    const confirmMe = (
      await post(first, '/msgpush/send', {
        appId: 'camel',
        appKey: 'EERWERRRRE',
        platform: 'ALL',
        audienceType: 'ALIAS',
        audiences: ['restart'],
        alert: 'confirm me',
        needConfirm: true,
        duration: 3600,
      })
    ).requestId!;
    await socket.until((s) => s.messages.length === 1, 'the first attempt');
    // A flag 2 message to a device that is not connected: open until 16 s after the request.
    const serverPush = await fetch(`${first.url}/v2/message/server/push`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
      body: JSON.stringify({ proxy: 0, payload: { msg: 'aGVsbG8=', flag: 2, clients: [Number(offline.clientId)] } }),
    });
    const topvdnId = ((await serverPush.json()) as { request_id: string }).request_id;
    await first.close();
    running = undefined;
    await socket.until((s) => s.closeCode !== undefined, 'the socket closing with herald');

    // Time passes while herald is down: the topvdn message's 16 s run out.
    clock.advance(20_000);
    const second = await start();
    await eventually(async () =>
      expect((await second.pushes.status('camel', topvdnId))?.deliveries).to.include({ dropped: 1, pending: 0 }),
    );
    const again = await connect(second, phone.id!);
    await again.until((s) => s.messages.length === 1, 'the unconfirmed message again');
    expect(again.messages[0]).to.include({ messageId: confirmMe, alert: 'confirm me' });
    again.confirm(confirmMe);
    await again.until((s) => s.frames.some((f) => f.confirmed === confirmMe), 'the confirmation');
    const status = await second.pushes.status('camel', confirmMe);
    expect(status?.deliveries.confirmed).to.equal(1);
  });
});
