import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { projections } from '../../projections';
import { emailQueries } from '../../projections/emails';
import { rtioReportQueries } from '../../projections/rtioReports';
import type { Herald } from '../../src/herald';
import type { Viewer } from '../../src/identity/tickets';
import { EventArchive } from '../../src/storage/eventArchive';
import { eventRetentionPass } from '../../src/storage/eventRetention';
import { DeviceSocket } from '../support/deviceSocket';
import { eventually } from '../support/eventually';
import { startTestHerald, TestClock } from '../support/herald';
import { describeTarget } from '../support/postgres';

/**
 * Retention never removes what a seed still promises (issue 26), seen through herald's own services:
 * three weeks on, past the default week of every category, after a pass,
 *  - Koala (000): a message with `expire` 0 (永久有效) and one still inside its `expire` are listed, with
 *    the page's total; one past its expiry is gone and the total does not count it;
 *  - ONE-PUSH (003): needConfirm messages inside their `duration` — one never delivered, one delivered and
 *    not confirmed — reach their device when it connects, and it can confirm them;
 *  - RTIO (004): a report not forwarded (no notify URL) is still pending;
 *  - datahub emails: one not sent (no SMTP server) is still pending.
 */
describe(`retention keeps what the seeds promise (${describeTarget()})`, function () {
  this.timeout(60_000);
  const DAY = 24 * 3600_000;
  const clock = new TestClock();
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let h: Herald;
  const sockets: DeviceSocket[] = [];

  before(async () => {
    test = await startTestHerald({ sendRatePerMinute: 100_000, retentionIntervalSeconds: 86_400 }, clock.now);
    h = test.herald;
  });
  after(async () => {
    for (const socket of sockets) socket.close();
    await test?.stop();
  });

  it('three weeks on, a pass removes what ended and nothing a seed still promises', async () => {
    const viewer = async (userId: string): Promise<Viewer> =>
      (await h.tickets.issue({ appId: 'camel', secret: 'EERWERRRRE', userId, roles: [], now: clock.now() })).viewer;
    const [alice, bob] = [await viewer('alice'), await viewer('bob')];
    const send = (title: string, expireSeconds: number) =>
      h.messaging.send(alice, { to: ['bob'], title, content: 'c', expireSeconds }, clock.now());
    const forever = await send('永久有效', 0);
    const month = await send('a month', 30 * 24 * 3600);
    const minute = await send('a minute', 60);

    const register = async (alias: string) =>
      (
        await h.devices.register(
          { appId: 'camel', alias, platform: 'ANDROID', nativeToken: `native-${alias}`, tags: [] },
          clock.now(),
        )
      ).device;
    const offline = await register('offline');
    const unconfirming = await register('unconfirming');
    const onePush = (alias: string, alert: string) =>
      h.pushes.onePush(
        'camel',
        {
          platform: 'ALL',
          audienceType: 'ALIAS',
          audiences: [alias],
          alert,
          needConfirm: true,
          duration: 30 * 24 * 3600,
        },
        clock.now(),
      );
    const waiting = await onePush('offline', 'waits for its device');
    const socket = await DeviceSocket.connect(test.url, unconfirming.deviceId);
    sockets.push(socket);
    await eventually(async () => expect(await h.gateway.presence.isOnline(unconfirming.deviceId)).to.equal(true));
    const unconfirmed = await onePush('unconfirming', 'delivered, never confirmed');
    await socket.until((s) => s.messages.some((m) => m.messageId === unconfirmed.pushId), 'the first attempt');
    socket.close();
    await eventually(async () => expect(await h.gateway.presence.isOnline(unconfirming.deviceId)).to.equal(false));
    // A push that ends at once (topvdn flag 3 to a device that is not connected: dropped after 5 s).
    const dropped = await h.pushes.topvdnPush(
      'camel',
      { msg: 'aGVsbG8=', flag: 3, from: null, clientIds: [offline.clientId], callback: false },
      clock.now(),
    );

    const rtioDevice = await h.rtio.createDevice('camel', 'retention-nonce-1');
    const report = await h.rtio.report({ deviceId: rtioDevice.deviceId, appId: 'camel' }, 'temperature=21');
    const requested = await fetch(`${test.url}/topics/to_emails.json`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
      body: JSON.stringify({ to: 'zhang3@example.com', subject: 'unsent', content: 'no SMTP server', ishtml: false }),
    });
    expect(requested.status).to.equal(202);
    const { emailid } = (await requested.json()) as { emailid: string };

    // The flag 3 push ends 5 s on; then three weeks pass.
    clock.advance(6_000);
    await eventually(async () => {
      h.gateway.wake();
      expect((await h.pushes.status('camel', dropped.pushId))?.deliveries).to.include({ pending: 0 });
    });
    clock.advance(21 * DAY);
    const passed = await h.retention.runOnce();
    const removed = (table: string) => passed.find((r) => r.table === table)?.removed;
    expect(removed('notification_messages'), 'the message past its expiry').to.equal(1);
    expect(removed('device_deliveries'), 'the dropped delivery').to.equal(1);
    expect(removed('device_pushes'), 'its push').to.equal(1);
    expect(removed('rtio_reports')).to.equal(0);
    expect(removed('emails')).to.equal(0);

    // Koala: the page lists the two messages still promised, and its total counts them alone.
    const page = await h.messaging.inbox(bob, { first: 10, unreadOnly: false }, clock.now());
    expect(page.nodes.map((n) => n.messageId).sort()).to.deep.equal([forever.id, month.id].sort());
    expect(page.total).to.equal(2);
    expect(page.nodes.map((n) => n.messageId)).not.to.include(minute.id);
    expect((await h.messaging.acknowledge(bob, [forever.id], clock.now())).acknowledged).to.equal(1);

    // ONE-PUSH: both needConfirm messages reach their devices on connect, and are confirmed.
    for (const [device, push] of [
      [offline, waiting],
      [unconfirming, unconfirmed],
    ] as const) {
      const again = await DeviceSocket.connect(test.url, device.deviceId);
      sockets.push(again);
      await again.until((s) => s.messages.some((m) => m.messageId === push.pushId), `${push.pushId} on connect`);
      again.confirm(push.pushId);
      await eventually(async () =>
        expect((await h.pushes.status('camel', push.pushId))?.deliveries).to.include({ confirmed: 1 }),
      );
    }

    // RTIO and email: still waiting for their notify URL and SMTP server.
    const { pool } = h.infrastructure.database;
    expect((await rtioReportQueries(pool).byId(report))?.status).to.equal('pending');
    expect((await emailQueries(pool).byId(emailid))?.status).to.equal('pending');
  });

  it('RTIO calls with their nonces, and tickets, leave the event store after their end and retention; a nonce is refused while kept, forgotten after', async () => {
    const { store } = h.infrastructure;
    const { pool } = h.infrastructure.database;
    const archiveDir = await mkdtemp(path.join(tmpdir(), 'herald-archive-'));
    /** A read model pass, then the event store's (archive, then remove); the events removed. */
    const passes = async () => {
      // Every projection past the head (one with nothing to do writes its checkpoint within a second): the
      // event store removes nothing a projection has not passed.
      const head = await store.headPosition();
      await eventually(async () => {
        const { rows } = await pool.query<{ position: string }>('SELECT position FROM projection_checkpoints');
        expect(rows.filter((r) => BigInt(r.position) < head)).to.deep.equal([]);
      });
      await h.retention.runOnce();
      const batches = await eventRetentionPass({
        pool,
        store,
        archive: new EventArchive(archiveDir),
        batchSize: 100,
        projectionNames: projections.map((p) => p.name),
      });
      return batches!.reduce((n, b) => n + b.removed, 0);
    };
    /** The stream of `prefix` whose first event's data has `field` = `value`. */
    const streamOf = async (prefix: string, field: string, value: string) => {
      const all = await store.readAll({ maxCount: 100_000, filter: { streamNamePrefixes: [prefix] } });
      return all.find((e) => (e.data as Record<string, unknown>)[field] === value)!.streamName;
    };
    try {
      const device = await h.rtio.createDevice('camel', 'ends-device');
      // The device is not connected: the call fails at once (offline), its stream ended.
      expect(await h.rtio.call('camel', { nonce: 'ends-call', deviceId: device.deviceId, message: 'm' })).to.deep.equal(
        { kind: 'offline' },
      );
      const ticket = await h.tickets.issue({
        appId: 'camel',
        secret: 'EERWERRRRE',
        userId: 'carol',
        roles: [],
        now: clock.now(),
      });
      const callStream = await streamOf('rtio-call-', 'nonce', 'ends-call');
      const nonceStream = await streamOf('rtio-nonce-', 'nonce', 'ends-call');
      const deviceNonce = await streamOf('rtio-nonce-', 'nonce', 'ends-device');
      const ticketStream = await streamOf('ticket-', 'userId', 'carol');
      await eventually(async () =>
        expect(
          (
            await pool.query('SELECT 1 FROM stream_ends WHERE stream = ANY($1)', [
              [callStream, nonceStream, ticketStream],
            ])
          ).rowCount,
        ).to.equal(3),
      );
      const length = async (stream: string) => (await store.readStream(stream).catch(() => [])).length;

      const refused = (request: () => Promise<unknown>) =>
        request().then(
          () => expect.fail('a used nonce was taken again'),
          (error: Error & { code?: string }) => {
            expect(error.code).to.equal('conflict');
            expect(error.message).to.match(/^nonce: already used/);
          },
        );
      const callAgain = () => h.rtio.call('camel', { nonce: 'ends-call', deviceId: device.deviceId, message: 'm' });

      // Inside its retention (a day for calls, 30 days after the ticket's expiry): nothing of them goes,
      // and the nonce stays refused, whichever request it was used for (004: "每次请求不能相同").
      clock.advance(DAY / 2);
      await passes();
      for (const stream of [callStream, nonceStream, ticketStream])
        expect(await length(stream), stream).to.be.greaterThan(0);
      await refused(callAgain);
      await refused(() => h.rtio.createDevice('camel', 'ends-call'));

      // A day and a half after the call: the call and its nonce go, archived; the device's nonce and the ticket stay.
      clock.advance(DAY);
      expect(await passes()).to.be.greaterThan(0);
      expect(await length(callStream)).to.equal(0);
      expect(await length(nonceStream)).to.equal(0);
      expect(await length(deviceNonce)).to.equal(1);
      expect(await length(ticketStream)).to.equal(1);
      // A device's nonce is kept with its device: refused still.
      await refused(() => h.rtio.createDevice('camel', 'ends-device'));
      // The call's nonce is forgotten with its streams (unique within its retention: docs/api/rtio.md): a
      // call may use it again, and is a call like any other — refused again while kept, retired in its turn.
      expect(await callAgain()).to.deep.equal({ kind: 'offline' });
      expect(await length(callStream)).to.equal(2);
      expect(await length(nonceStream)).to.equal(1);
      await refused(callAgain);
      await eventually(async () =>
        expect(
          (await pool.query('SELECT 1 FROM stream_ends WHERE stream = ANY($1)', [[callStream, nonceStream]])).rowCount,
        ).to.equal(2),
      );

      // The ticket: past its expiry and 30 days more, it goes; presented, it is refused as any expired one.
      clock.advance(Date.parse(ticket.viewer.expiresAt) - clock.now().getTime() + 31 * DAY);
      expect(await passes()).to.be.greaterThan(0);
      expect(await length(ticketStream)).to.equal(0);
      expect(await length(deviceNonce)).to.equal(1);
      await h.tickets.authenticate(ticket.ticket, clock.now()).then(
        () => expect.fail('an expired ticket was taken'),
        (error: Error & { code?: string }) => expect(error.message).to.match(/expired/),
      );
    } finally {
      await rm(archiveDir, { recursive: true, force: true });
    }
  });
});
