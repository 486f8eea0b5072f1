import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import pino from 'pino';
import { emailStreamName } from '../../domain/email/email';
import { broadcastReadStreamName, inboxStreamName } from '../../domain/inbox/inbox';
import { messageStreamName } from '../../domain/message/message';
import { projections, pruning, readModels } from '../../projections';
import { platformPushQueries } from '../../projections/platformPushes';
import { rtioReportQueries } from '../../projections/rtioReports';
import { loadConfig, type Config } from '../../src/config';
import { StreamNotFoundError } from '../../src/eventStore/eventStore';
import { startHerald, type Herald } from '../../src/herald';
import type { Viewer } from '../../src/identity/tickets';
import { rebuildProjections } from '../../src/projection/projectionRebuild';
import { EventArchive } from '../../src/storage/eventArchive';
import { eventRetentionPass } from '../../src/storage/eventRetention';
import { apnsTestKey, startApnsStandIn, type ApnsStandIn } from '../support/apnsStandIn';
import { DeviceSocket } from '../support/deviceSocket';
import { eventually } from '../support/eventually';
import { fcmTestAccount, serviceAccountJson, startFcmStandIn, type FcmStandIn } from '../support/fcmStandIn';
import { startTestHerald, TestClock } from '../support/herald';
import type { TestDatabase } from '../support/postgres';
import { startSmtpPeer, type SmtpPeer } from '../support/smtpPeer';
import { startWebPushService, type WebPushService } from '../support/webPushService';

/**
 * The issue's "done when": a rebuild after a change to a projection yields the same tables as
 * incremental processing. Varied traffic through herald's services and legacy routes fills every table
 * of every projection, one command after another (each waits for its read model, so incremental
 * processing applies small batches); the tables are then read, and must be read again, row for row,
 * after
 *  - `herald projections rebuild` (rebuildProjections, as the CLI calls it) while herald serves: a
 *    replay into a shadow schema in large batches, swapped in; and
 *  - a changed projection version: herald restarted on the same database resets every projection and
 *    replays it in place from position 0.
 */

// Every column is compared: projections compute every column from the events alone (no now(), clock,
// random value or presence). A devices bug found this way: a replay folded registered_at and
// registration_position to a part's last event (fixed in projections/devices.ts).

type Rows = Array<Record<string, unknown>>;
/** Per projection, per table, every row as JSON, in the order of the rows' text. */
type Snapshot = Record<string, Record<string, Rows>>;

/** The tables' indexes and constraints as PostgreSQL writes them, sorted. */
async function indexesAndConstraints(pool: pg.Pool, tables: readonly string[]): Promise<string[]> {
  const { rows } = await pool.query<{ d: string }>(
    `SELECT tablename || ': ' || indexdef AS d FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY ($1::text[])
     UNION ALL
     SELECT conrelid::regclass::text || ': ' || conname || ' ' || contype::text || ' ' || pg_get_constraintdef(oid)
       FROM pg_constraint WHERE conrelid::regclass::text = ANY ($1::text[])`,
    [tables],
  );
  return rows.map((row) => row.d).sort();
}

async function snapshot(pool: pg.Pool): Promise<Snapshot> {
  const tables: Snapshot = {};
  for (const projection of projections) {
    tables[projection.name] = {};
    for (const table of projection.tables) {
      const { rows } = await pool.query<{ row: Record<string, unknown> }>(
        `SELECT to_jsonb(t) AS row FROM ${pg.escapeIdentifier(table)} t ORDER BY to_jsonb(t)::text`,
      );
      tables[projection.name]![table] = rows.map((r) => r.row);
    }
  }
  return tables;
}

/**
 * Waits until every projection's checkpoint, at its current version, has reached the store's head;
 * returns the head. (At start-up a checkpoint of another version is still at the old head until its
 * runner resets it: the version tells a replayed projection from one not yet reset.)
 */
async function caughtUp(herald: Herald): Promise<bigint> {
  const { store, database } = herald.infrastructure;
  return eventually(
    async () => {
      const head = await store.headPosition();
      const { rows } = await database.pool.query<{ name: string; version: number; position: string }>(
        'SELECT name, version, position FROM projection_checkpoints',
      );
      for (const projection of projections) {
        const checkpoint = rows.find((row) => row.name === projection.name);
        expect(checkpoint, `${projection.name}'s checkpoint`).to.not.equal(undefined);
        expect(checkpoint!.version, `${projection.name}'s checkpoint version`).to.equal(projection.version);
        expect(
          BigInt(checkpoint!.position) >= head,
          `${projection.name} at ${checkpoint!.position}, the head at ${head}`,
        ).to.equal(true);
      }
      return head;
    },
    { timeoutMs: 20_000 },
  );
}

/** The tables once every projection has caught up, and the head they were read at (nothing appended while reading). */
async function settledSnapshot(herald: Herald): Promise<{ head: bigint; tables: Snapshot }> {
  const head = await caughtUp(herald);
  const tables = await snapshot(herald.infrastructure.database.pool);
  expect(await herald.infrastructure.store.headPosition(), 'events were appended while the tables were read').to.equal(
    head,
  );
  return { head, tables };
}

describe('rebuilt projections equal incrementally built ones', function () {
  this.timeout(120_000);
  const clock = new TestClock();
  const log = pino({ level: process.env.HERALD_TEST_LOG ?? 'silent' });
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let herald: Herald | undefined;
  let testDatabase: TestDatabase | undefined;
  let smtp: SmtpPeer;
  let apns: ApnsStandIn;
  const apnsKey = apnsTestKey('R');
  let fcm: FcmStandIn;
  const fcmAccount = fcmTestAccount('r');
  let webPush: WebPushService;
  let overrides: Partial<Config>;
  let incremental: { head: bigint; tables: Snapshot };
  const sockets: DeviceSocket[] = [];

  // The apps' own server: topvdn callbacks (answered 200) and RTIO's notify URL (answered as queued, an ack when none).
  const notifyAnswers: Array<'ack' | 'http500'> = [];
  const appServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      if (req.url !== '/notify') return void res.end();
      const { nonce } = JSON.parse(body) as { nonce: string };
      const answer = notifyAnswers.shift() ?? 'ack';
      res.statusCode = answer === 'http500' ? 500 : 200;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ nonce, code: 1000 }));
    });
  });

  before(async () => {
    await new Promise<void>((resolve) => appServer.listen(0, '127.0.0.1', resolve));
    const appServerUrl = `http://127.0.0.1:${(appServer.address() as AddressInfo).port}`;
    smtp = await startSmtpPeer();
    apns = await startApnsStandIn([apnsKey]);
    fcm = await startFcmStandIn([fcmAccount]);
    webPush = await startWebPushService();
    overrides = {
      webPushEndpoint: { allowedOrigins: [webPush.origin] },
      credentialsKey: '5a'.repeat(32),
      apnsEndpoint: { host: apns.url, ca: apns.ca },
      fcmEndpoint: { baseUrl: fcm.url, tokenUri: fcm.tokenUri },
      sendRatePerMinute: 100_000,
      smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
      mailFrom: 'noreply@herald.example',
      callbackPrivateNetworks: 'allow',
      rtioNotifyUrl: `${appServerUrl}/notify`,
      // Retention passes run when this test says (herald.retention.runOnce), not on their own.
      retentionIntervalSeconds: 86_400,
    };
    test = await startTestHerald(overrides, clock.now);
    herald = test.herald;
    testDatabase = test.testDatabase;
    await makeTraffic(test.herald, test.url, `${appServerUrl}/callback`);
    incremental = await settledSnapshot(test.herald);
  });

  after(async () => {
    for (const socket of sockets) socket.close();
    await herald?.close();
    await testDatabase?.drop();
    await smtp?.close();
    await apns?.close();
    await fcm?.close();
    await webPush?.close();
    await new Promise((resolve) => appServer.close(resolve));
  });

  async function makeTraffic(h: Herald, url: string, callbackUrl: string): Promise<void> {
    const now = () => clock.now();
    const viewer = async (
      userId: string,
      roles: string[] = [],
      app = { appId: 'camel', secret: 'EERWERRRRE' },
    ): Promise<Viewer> => (await h.tickets.issue({ ...app, userId, roles, now: now() })).viewer;
    const [alice, bob, carol, admin] = [
      await viewer('alice'),
      await viewer('bob'),
      await viewer('carol'),
      await viewer('admin', ['admin']),
    ];
    const otherUser = await viewer('olga', [], { appId: 'other', secret: 'other-secret' });

    // Koala: sent (with props, with an expiry), scheduled (released, expired before its release, still
    // scheduled), acknowledged, in two apps.
    const m1 = await h.messaging.send(
      alice,
      { to: ['bob', 'carol'], title: 'hello', content: 'to both', props: { kind: 'greeting' }, expireSeconds: 0 },
      now(),
    );
    const m2 = await h.messaging.send(
      alice,
      { to: ['bob'], title: 'expiring', content: 'in an hour', expireSeconds: 3600 },
      now(),
    );
    const m3 = await h.messaging.send(
      bob,
      { to: ['alice', 'carol'], title: 'reply', content: 'from bob', expireSeconds: 0 },
      now(),
    );
    await h.messaging.send(
      otherUser,
      { to: ['olga', 'oscar'], title: 'other app', content: 'elsewhere', expireSeconds: 0 },
      now(),
    );
    // Text that COPY's text format and array literals read specially (the notifications rebuild stages by
    // COPY); recipients hold no blanks or commas (domain/message).
    await h.messaging.send(
      alice,
      {
        to: ['a"b', 'c\\d', 'NULL', '{g}', '\\N', 'x\\'],
        title: 'tab\there, new\nline, back\\slash \\N',
        content: 'cr\rhere "quoted" {braced} \\.',
        props: { path: 'C:\\dir\\file', quote: '"q"', tab: '\t' },
        expireSeconds: 0,
      },
      now(),
    );
    const released = await h.messaging.send(
      alice,
      {
        to: ['bob', 'carol'],
        title: 'later',
        content: 'released',
        expireSeconds: 0,
        executeAt: new Date(now().getTime() + 30_000),
      },
      now(),
    );
    const expired = await h.messaging.send(
      alice,
      {
        to: ['carol'],
        title: 'too late',
        content: 'expires first',
        expireSeconds: 1,
        executeAt: new Date(now().getTime() + 30_000),
      },
      now(),
    );
    await h.messaging.send(
      alice,
      {
        to: ['bob'],
        title: 'next hour',
        content: 'still scheduled',
        expireSeconds: 0,
        executeAt: new Date(now().getTime() + 3600_000),
      },
      now(),
    );
    await h.messaging.acknowledge(bob, [m1.id, m2.id], now());
    await h.messaging.acknowledge(carol, [m3.id], now());
    // Released 40 s on: the first due, the second past its expiry (its 1 s after the release time).
    clock.advance(40_000);
    const typesOf = async (streamName: string) =>
      (await h.infrastructure.store.readStream(streamName)).map((e) => e.type);
    await eventually(async () => expect(await typesOf(messageStreamName(released.id))).to.include('MessageReleased'));
    await eventually(async () => expect(await typesOf(messageStreamName(expired.id))).to.include('MessageExpired'));
    await eventually(async () =>
      expect((await h.messaging.acknowledge(carol, [released.id], now())).acknowledged).to.equal(1),
    );

    // datahub: notifications of several types, in one list or both, site broadcasts, subscriptions, an
    // item event to the subscribers, a whitelist application, reads, a stats clear and sends after it.
    const both = { level: 0, forBrowser: true, forClient: true };
    await h.datahub.send(
      admin,
      { type: 'admin_message', receivers: ['bob', 'carol'], data: { text: 'maintenance' }, ...both, level: 50 },
      now(),
    );
    await h.datahub.send(
      alice,
      {
        type: 'private_message',
        receivers: ['bob'],
        data: { text: 'hi bob' },
        level: 0,
        forBrowser: true,
        forClient: false,
      },
      now(),
    );
    await h.datahub.sendFromService(
      'camel',
      {
        sender: '',
        type: 'comment_reply',
        receivers: ['bob', 'alice'],
        data: { comment: 'nice' },
        level: 0,
        forBrowser: true,
        forClient: false,
      },
      now(),
    );
    await h.datahub.sendFromService(
      'camel',
      {
        sender: '',
        type: 'vip_remind',
        receivers: ['carol'],
        data: { days: 3 },
        level: 0,
        forBrowser: false,
        forClient: true,
      },
      now(),
    );
    await h.datahub.sendFromService(
      'camel',
      {
        sender: 'shop',
        type: 'subsapply_event',
        receivers: ['alice'],
        data: { repname: 'rep', itemname: 'item' },
        ...both,
      },
      now(),
    );
    await h.datahub.send(
      admin,
      { type: 'site_broadcast', receivers: [], data: { text: 'first broadcast' }, ...both },
      now(),
    );
    // A broadcast to the whole app with the time its sender gave, kept as written (issue 22).
    await h.datahub.send(
      admin,
      {
        type: 'site_broadcast',
        receivers: [],
        data: { text: 'second broadcast' },
        level: 0,
        forBrowser: true,
        forClient: false,
        time: '2015-11-10t15:06:09.5-05:30',
      },
      now(),
    );
    // A broadcast naming its receiver, with the time its sender gave (issue 22).
    await h.datahub.send(
      admin,
      {
        type: 'site_broadcast',
        receivers: ['carol'],
        data: { text: 'to carol only' },
        level: 0,
        forBrowser: true,
        forClient: false,
        time: '2015-11-10T15:06:09Z08:00',
      },
      now(),
    );
    await h.datahub.sendFromService(
      'camel',
      {
        sender: '',
        type: 'subs_event',
        receivers: ['bob', 'carol'],
        data: { repname: 'rep', itemname: 'item', phase: 1 },
        level: 0,
        forBrowser: true,
        forClient: false,
      },
      now(),
    );
    await h.datahub.sendFromService(
      'camel',
      {
        sender: '',
        type: 'subs_event',
        receivers: ['carol'],
        data: { repname: 'rep', itemname: 'item', phase: 5 },
        level: 0,
        forBrowser: true,
        forClient: false,
      },
      now(),
    );
    expect(
      await h.datahub.announceItemEvent(
        'camel',
        { repname: 'rep', itemname: 'item' },
        { event: 'updated' },
        undefined,
        'item-updated-1',
        now(),
      ),
    ).to.equal(1);
    await h.datahub.applyWhitelist(bob, { repname: 'rep', itemname: 'item', owner: 'alice' }, now());
    // Applications that name no owner wait for the one the app registers (one owner removed again).
    const itemOwner = async (method: string, item: string, owner?: string) => {
      const response = await fetch(`${url}/items/rep/${item}`, {
        method,
        headers: { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
        ...(owner && { body: JSON.stringify({ owner }) }),
      });
      expect(response.status, await response.text()).to.equal(200);
    };
    await h.datahub.applyWhitelist(carol, { repname: 'rep', itemname: 'waiting' }, now());
    await h.datahub.applyWhitelist(bob, { repname: 'rep', itemname: 'waiting' }, now());
    await itemOwner('PUT', 'waiting', 'alice');
    await itemOwner('PUT', 'gone', 'carol');
    await itemOwner('DELETE', 'gone');
    await h.datahub.applyWhitelist(alice, { repname: 'rep', itemname: 'gone' }, now());
    // An application that waited until its applicant named the owner (WhitelistOwnerNamed).
    await h.datahub.applyWhitelist(carol, { repname: 'rep', itemname: 'named-later' }, now());
    await h.datahub.applyWhitelist(carol, { repname: 'rep', itemname: 'named-later', owner: 'alice' }, now());
    await eventually(async () =>
      expect(
        (
          await h.datahub.list(alice, {
            forClient: false,
            status: 'either',
            type: 'apply_whitelist',
            page: 1,
            size: 10,
          })
        ).total,
      ).to.equal(4),
    );
    const listOf = async (who: Viewer, forClient = false) =>
      (await h.datahub.list(who, { forClient, status: 'either', page: 1, size: 100 })).results;
    const bobs = await listOf(bob);
    const messageIdOf = (list: typeof bobs, type: string) => list.find((n) => n.type === type)!.messageId;
    await h.datahub.markRead(bob, messageIdOf(bobs, 'admin_message'), now());
    await h.datahub.markRead(bob, messageIdOf(bobs, 'site_broadcast'), now());
    await h.datahub.markRead(carol, messageIdOf(await listOf(carol, true), 'vip_remind'), now());
    await h.datahub.clearStats(bob, now());
    await h.datahub.send(
      alice,
      {
        type: 'private_message',
        receivers: ['bob'],
        data: { text: 'after the clear' },
        level: 0,
        forBrowser: true,
        forClient: false,
      },
      now(),
    );
    await h.datahub.send(
      admin,
      { type: 'site_broadcast', receivers: [], data: { text: 'third broadcast' }, ...both },
      now(),
    );
    const third = (await listOf(bob)).filter((n) => n.type === 'site_broadcast')[0]!;
    await h.datahub.markRead(bob, third.messageId, now());
    // carol read it before issue 26: herald then appended the read to her inbox's stream (stream bounds).
    const thirdId = (
      await h.datahub.list(carol, { forClient: false, status: 'either', page: 1, size: 100 })
    ).results.find((n) => n.messageId === third.messageId)!.notificationId;
    await h.infrastructure.store.append(inboxStreamName('camel', 'carol'), [
      {
        id: randomUUID(),
        type: 'NotificationRead',
        data: { notificationId: thirdId, appId: 'camel', userId: 'carol', readAt: now().toISOString() },
        metadata: { correlationId: 'before-issue-26', causationId: 'before-issue-26', appId: 'camel' },
      },
    ]);
    await eventually(async () =>
      expect((await listOf(carol)).find((n) => n.messageId === third.messageId)?.read).to.equal(true),
    );
    // Read again now: that earlier read counts, nothing is appended.
    await h.datahub.markRead(carol, third.messageId, now());
    expect(
      await h.infrastructure.store
        .readStream(broadcastReadStreamName('camel', thirdId, 'carol'))
        .then((events) => events.length)
        .catch((error: unknown) => (error instanceof StreamNotFoundError ? 0 : Promise.reject(error))),
    ).to.equal(0);

    // Emails: one sent at once, one refused once and sent at its retry a minute later.
    const requestEmail = async (body: Record<string, unknown>) => {
      const response = await fetch(`${url}/topics/to_emails.json`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
        body: JSON.stringify(body),
      });
      expect(response.status).to.equal(202);
      return ((await response.json()) as { emailid: string }).emailid;
    };
    const sent = await requestEmail({
      to: 'zhang3@example.com',
      subject: 'approved',
      content: 'you may download',
      ishtml: false,
    });
    await eventually(async () =>
      expect(await typesOf(emailStreamName(sent))).to.deep.equal(['EmailRequested', 'EmailSent']),
    );
    smtp.refuse = true;
    const retried = await requestEmail({
      to: 'li4@example.com,wang5@example.com',
      subject: 'retried',
      content: '<p>later</p>',
      ishtml: true,
    });
    await eventually(async () =>
      expect(await typesOf(emailStreamName(retried))).to.deep.equal(['EmailRequested', 'EmailFailed']),
    );
    smtp.refuse = false;
    clock.advance(61_000);
    await eventually(async () =>
      expect(await typesOf(emailStreamName(retried))).to.deep.equal(['EmailRequested', 'EmailFailed', 'EmailSent']),
    );

    // Devices and pushes: registered, registered again with other details, unregistered (and one back
    // again), pushed to by alias, tag and number, confirmed, delivered, dropped, and an app callback.
    await h.appCallbacks.setUrl('camel', callbackUrl, now());
    const phone = (
      await h.devices.register(
        {
          appId: 'camel',
          alias: 'phone',
          platform: 'ANDROID',
          nativeToken: 'native-phone',
          mobile: '13700001111',
          tags: ['news', 'sz'],
        },
        now(),
      )
    ).device;
    await h.devices.register(
      {
        appId: 'camel',
        alias: 'phone-renamed',
        platform: 'ANDROID',
        nativeToken: 'native-phone',
        mobile: '13700002222',
        tags: ['news'],
      },
      now(),
    );
    const tablet = (
      await h.devices.register(
        { appId: 'camel', alias: 'tablet', platform: 'IOS', nativeToken: 'native-tablet', tags: ['news'] },
        now(),
      )
    ).device;
    const gone = (
      await h.devices.register(
        { appId: 'camel', alias: 'gone', platform: 'ANDROID', nativeToken: 'native-gone' },
        now(),
      )
    ).device;
    await h.devices.unregister(gone.deviceId, now());
    const back = (
      await h.devices.register(
        { appId: 'camel', alias: 'back', platform: 'ANDROID', nativeToken: 'native-back' },
        now(),
      )
    ).device;
    await h.devices.unregister(back.deviceId, now());
    await h.devices.register(
      { appId: 'camel', alias: 'back-again', platform: 'ANDROID', nativeToken: 'native-back' },
      now(),
    );
    const socket = await DeviceSocket.connect(url, phone.deviceId);
    sockets.push(socket);
    await eventually(async () => expect(await h.gateway.presence.isOnline(phone.deviceId)).to.equal(true));

    const confirmed = await h.pushes.onePush(
      'camel',
      {
        platform: 'ALL',
        audienceType: 'ALIAS',
        audiences: ['phone-renamed'],
        alert: 'confirm me',
        needConfirm: true,
        duration: 3600,
      },
      now(),
    );
    await socket.until((s) => s.messages.some((m) => m.messageId === confirmed.pushId), 'the message to confirm');
    socket.confirm(confirmed.pushId);
    await eventually(async () =>
      expect((await h.pushes.status('camel', confirmed.pushId))?.deliveries).to.include({ confirmed: 1 }),
    );
    const byTag = await h.pushes.onePush(
      'camel',
      {
        platform: 'ALL',
        audienceType: 'TAG',
        audiences: ['news'],
        alert: 'news\nsecond line',
        tenantCode: 't1',
        extra: { orderId: 7, lines: ['a', { b: null }] },
      },
      now(),
    );
    await eventually(async () =>
      expect((await h.pushes.status('camel', byTag.pushId))?.deliveries).to.include({ delivered: 1, pending: 1 }),
    );
    const once = await h.pushes.topvdnPush(
      'camel',
      { msg: 'aGVsbG8=', flag: 3, from: null, clientIds: [phone.clientId, tablet.clientId], callback: true },
      now(),
    );
    await eventually(async () =>
      expect(await h.pushes.status('camel', once.pushId)).to.deep.include({ callback: 'delivered' }),
    );
    await eventually(async () =>
      expect((await h.pushes.status('camel', once.pushId))?.deliveries).to.include({ delivered: 1, pending: 1 }),
    );
    // flag 2: the app's callback answers 200, which confirms it.
    const untilConfirmed = await h.pushes.topvdnPush(
      'camel',
      { msg: 'd29ybGQ=', flag: 2, from: phone.clientId, clientIds: [tablet.clientId], callback: true },
      now(),
    );
    await eventually(async () =>
      expect(await h.pushes.status('camel', untilConfirmed.pushId)).to.deep.include({ callback: 'confirmed' }),
    );
    // The tablet is not connected: past the 16 s of a flag 2 message (5 s of flag 3), its deliveries end undelivered.
    clock.advance(17_000);
    h.gateway.wake();
    await eventually(async () =>
      expect((await h.pushes.status('camel', once.pushId))?.deliveries).to.include({ delivered: 1, pending: 0 }),
    );
    await eventually(async () =>
      expect((await h.pushes.status('camel', untilConfirmed.pushId))?.deliveries).to.include({ pending: 0 }),
    );
    socket.close();

    // RTIO: a device's reports, one forwarded at once, one after a failed try.
    const rtioDevice = await h.rtio.createDevice('camel', 'rebuild-nonce-1');
    const reports = rtioReportQueries(h.infrastructure.database.pool);
    const first = await h.rtio.report({ deviceId: rtioDevice.deviceId, appId: 'camel' }, 'temperature=21');
    await eventually(async () => expect((await reports.byId(first))?.status).to.equal('forwarded'));
    notifyAnswers.push('http500');
    const second = await h.rtio.report({ deviceId: rtioDevice.deviceId, appId: 'camel' }, 'temperature=22');
    await eventually(async () => expect(await reports.byId(second)).to.include({ status: 'pending', attempts: 1 }));
    clock.advance(3_000);
    h.reportForwarder!.wake();
    await eventually(async () => expect((await reports.byId(second))?.status).to.equal('forwarded'));

    // Platform push (APNs) for the other app's offline iOS devices: one sent, one whose token is dead (revoked).
    await h.platformCredentials.setApns(
      'other',
      {
        keyPem: apnsKey.keyPem,
        keyId: apnsKey.keyId,
        teamId: apnsKey.teamId,
        topic: apnsKey.topic,
        environment: 'sandbox',
      },
      now(),
    );
    const [liveToken, deadToken] = ['1a'.repeat(32), '2b'.repeat(32)];
    apns.answer(deadToken, { status: 410, reason: 'Unregistered' });
    const iphones: string[] = [];
    for (const [alias, nativeToken] of [
      ['iphone-live', liveToken],
      ['iphone-dead', deadToken],
    ] as const)
      iphones.push(
        (await h.devices.register({ appId: 'other', alias, platform: 'IOS', nativeToken }, now())).device.deviceId,
      );
    const apnsPush = await h.pushes.onePush(
      'other',
      { platform: 'IOS', audienceType: 'ALIAS', audiences: ['iphone-live', 'iphone-dead'], alert: 'apns' },
      now(),
    );
    const platformPushes = platformPushQueries(h.infrastructure.database.pool);
    await eventually(async () => {
      expect((await platformPushes.statusOf(apnsPush.pushId, iphones[0]!))?.status).to.equal('sent');
      expect((await platformPushes.statusOf(apnsPush.pushId, iphones[1]!))?.status).to.equal('failed');
    });

    // FCM for its offline Android devices the same way (service fcm): one sent, one UNREGISTERED (revoked).
    await h.platformCredentials.setFcm('other', serviceAccountJson(fcmAccount, fcm.tokenUri), now());
    const [liveAndroid, deadAndroid] = ['fcm-live-token', 'fcm-dead-token'];
    fcm.answer(deadAndroid, { status: 404, errorCode: 'UNREGISTERED' });
    const androids: string[] = [];
    for (const [alias, nativeToken] of [
      ['android-live', liveAndroid],
      ['android-dead', deadAndroid],
    ] as const)
      androids.push(
        (await h.devices.register({ appId: 'other', alias, platform: 'ANDROID', nativeToken }, now())).device.deviceId,
      );
    const fcmPush = await h.pushes.onePush(
      'other',
      { platform: 'ANDROID', audienceType: 'ALIAS', audiences: ['android-live', 'android-dead'], alert: 'fcm' },
      now(),
    );
    await eventually(async () => {
      expect((await platformPushes.statusOf(fcmPush.pushId, androids[0]!))?.status).to.equal('sent');
      expect((await platformPushes.statusOf(fcmPush.pushId, androids[1]!))?.status).to.equal('failed');
    });

    // Web Push for its offline WEB devices whose browser subscribed (service webpush): one sent, one 410 (dropped).
    const { publicKey } = await h.platformCredentials.setVapid('other', { subject: 'mailto:ops@example.com' }, now());
    const browsers: string[] = [];
    for (const alias of ['browser-live', 'browser-dead']) {
      const { device } = await h.devices.register(
        { appId: 'other', alias, platform: 'WEB', nativeToken: alias },
        now(),
      );
      const subscription = await webPush.subscribe(publicKey!);
      await h.devices.subscribeWebPush(device, { endpoint: subscription.endpoint, keys: subscription.keys }, now(), {
        actor: `device:${device.deviceId}`,
      });
      if (alias === 'browser-dead') webPush.expire(subscription.clientHash);
      browsers.push(device.deviceId);
    }
    const webPushed = await h.pushes.onePush(
      'other',
      { platform: 'WEB', audienceType: 'ALIAS', audiences: ['browser-live', 'browser-dead'], alert: 'webpush' },
      now(),
    );
    await eventually(async () => {
      expect((await platformPushes.statusOf(webPushed.pushId, browsers[0]!))?.status).to.equal('sent');
      expect((await platformPushes.statusOf(webPushed.pushId, browsers[1]!))?.status).to.equal('failed');
    });
  }

  it('the incremental tables have rows in every table, of every kind the traffic made', async () => {
    const { tables } = incremental;
    for (const projection of projections) {
      for (const table of projection.tables)
        expect(tables[projection.name]![table], `rows of ${table}`).to.not.be.empty;
    }
    const values = (projection: string, table: string, column: string) =>
      new Set(tables[projection]![table]!.map((row) => row[column]));
    expect([...values('notifications', 'notification_messages', 'status')]).to.have.members([
      'delivered',
      'scheduled',
      'expired',
    ]);
    expect([...values('devices', 'device_deliveries', 'status')]).to.include.members([
      'confirmed',
      'delivered',
      'pending',
    ]);
    expect(
      [...values('devices', 'device_deliveries', 'status')].some(
        (status) => status === 'dropped' || status === 'expired',
      ),
      'an undelivered end',
    ).to.equal(true);
    expect([...values('devices', 'devices', 'active')]).to.have.members([true, false]);
    expect([...values('datahub', 'datahub_notifications', 'type')]).to.include.members([
      'admin_message',
      'private_message',
      'comment_reply',
      'vip_remind',
      'subsapply_event',
      'subs_event',
      'item_event',
      'apply_whitelist',
    ]);
    expect([...values('emails', 'emails', 'status')]).to.deep.equal(['sent']);
    expect([...values('emails', 'emails', 'last_error')]).to.have.length(2);
    expect([...values('rtio', 'rtio_reports', 'status')]).to.deep.equal(['forwarded']);
    expect([...values('apps', 'apps', 'push_callback_url')]).to.have.length(2);
    expect([...values('platform-pushes', 'platform_pushes', 'service')]).to.have.members(['apns', 'fcm', 'webpush']);
    expect([...values('platform-pushes', 'platform_pushes', 'status')]).to.have.members(['sent', 'failed']);
    const { rows: parked } = await herald!.infrastructure.database.pool.query(
      'SELECT projection, event_type, error FROM projection_parked',
    );
    expect(parked, 'events no projection could apply').to.deep.equal([]);
  });

  describe('herald projections rebuild, while herald serves', () => {
    let rebuilt: { head: bigint; tables: Snapshot };
    let definitions: { live: string[]; rebuilt: string[] };

    before(async () => {
      const { pool } = herald!.infrastructure.database;
      const tables = projections.flatMap((p) => p.tables);
      const tableIds = async () =>
        (await pool.query<{ id: number }>('SELECT unnest($1::text[])::regclass::oid::int AS id', [tables])).rows.map(
          (row) => row.id,
        );
      const live = await tableIds();
      const liveDefinitions = await indexesAndConstraints(pool, tables);
      await rebuildProjections(herald!.infrastructure, projections, () => undefined);
      definitions = { live: liveDefinitions, rebuilt: await indexesAndConstraints(pool, tables) };
      const swappedIn = await tableIds();
      expect(
        swappedIn.filter((id) => live.includes(id)),
        'tables the rebuild did not replace',
      ).to.deep.equal([]);
      rebuilt = await settledSnapshot(herald!);
      expect(rebuilt.head, 'events were appended after the traffic settled').to.equal(incremental.head);
    });

    it("the rebuilt tables have the live ones' indexes and constraints (pg_indexes, pg_constraint)", () => {
      expect(definitions.live.join('\n')).to.include('PRIMARY KEY').and.include('UNIQUE INDEX');
      expect(definitions.rebuilt).to.deep.equal(definitions.live);
    });

    for (const projection of projections) {
      for (const table of projection.tables) {
        it(`${projection.name}: ${table}`, () => {
          expect(rebuilt.tables[projection.name]![table]).to.deep.equal(incremental.tables[projection.name]![table]);
        });
      }
    }
  });

  describe('a changed projection, replayed in place when herald starts', () => {
    let replayed: { head: bigint; tables: Snapshot };

    before(async () => {
      await herald!.close();
      herald = undefined;
      // Every projection sees a checkpoint of another version than its own: it is reset and replayed.
      const database = testDatabase!.open();
      await database.pool.query('UPDATE projection_checkpoints SET version = version + 1000');
      await database.close();
      const config: Config = {
        ...loadConfig({}),
        port: 0,
        host: '127.0.0.1',
        databaseUrl: testDatabase!.connectionString,
        apps: [
          { appId: 'camel', secret: 'EERWERRRRE' },
          { appId: 'other', secret: 'other-secret' },
        ],
        ...overrides,
      };
      herald = await startHerald(config, log, { clock: clock.now });
      replayed = await settledSnapshot(herald);
      expect(replayed.head, 'events were appended after the traffic settled').to.equal(incremental.head);
    });

    for (const projection of projections) {
      for (const table of projection.tables) {
        it(`${projection.name}: ${table}`, () => {
          expect(replayed.tables[projection.name]![table]).to.deep.equal(incremental.tables[projection.name]![table]);
        });
      }
    }
  });

  describe('retention: a rebuild, pruned before its swap, equals the live tables a pass pruned (issue 26)', () => {
    const DAY = 24 * 3600_000;
    const pruned = [
      'notification_messages',
      'notifications',
      'device_deliveries',
      'device_pushes',
      'emails',
      'rtio_reports',
      'datahub_notifications',
    ];
    /**
     * A counter's rows, less those at zero: pruning leaves a counter at zero where a rebuild of what is
     * kept has none, and both answer the same (a missing counter reads as 0).
     */
    const COUNTERS: Readonly<Record<string, readonly string[]>> = {
      inbox_counters: ['total', 'unread'],
      datahub_stats: ['unread'],
      datahub_list_counts: ['total', 'unread'],
    };
    const compared = (table: string, rows: ReadonlyArray<Record<string, unknown>> | undefined) =>
      COUNTERS[table] === undefined
        ? rows
        : rows?.filter((row) => COUNTERS[table]!.some((column) => Number(row[column]) !== 0));
    let ended: { head: bigint; tables: Snapshot };
    let live: { head: bigint; tables: Snapshot };
    let rebuilt: { head: bigint; tables: Snapshot };
    const rowsOf = (s: Snapshot, table: string) =>
      Object.values(s).find((tables) => tables[table] !== undefined)![table]!;

    before(async () => {
      // Eight days on, past the default week: what was open ends (the still scheduled message is released,
      // the tablet's ONE-PUSH delivery expires), and what ended is past retention.
      clock.advance(8 * DAY);
      const { pool } = herald!.infrastructure.database;
      // camel keeps its records that never end a week (issue 26): its Koala messages with expire 0 and its
      // datahub notifications go too; the other app keeps them (the default, forever).
      await herald!.appRetention.set(
        'camel',
        'user:admin',
        { unexpiringMessages: '7d', datahubNotifications: '7d' },
        clock.now(),
      );
      await eventually(
        async () => {
          herald!.gateway.wake();
          const { rows } = await pool.query<{ open: number }>(
            `SELECT (SELECT count(*) FROM device_deliveries WHERE status = 'pending' OR (status = 'delivered' AND needs_confirm))
                  + (SELECT count(*) FROM notification_messages WHERE status = 'scheduled') AS open`,
          );
          expect(Number(rows[0]!.open), 'deliveries and messages still open').to.equal(0);
        },
        { timeoutMs: 30_000 },
      );
      ended = await settledSnapshot(herald!);
      await herald!.retention.runOnce();
      // Then the event store's pass: what the read models retired leaves the store (archived aside), so the
      // rebuild below replays only what is kept — and must still equal the pruned live tables (a push's
      // delivery streams leave with its push's, never before: one replayed alone would come back open).
      const archiveDir = await mkdtemp(path.join(tmpdir(), 'herald-archive-'));
      try {
        const batches = await eventRetentionPass({
          pool,
          store: herald!.infrastructure.store,
          archive: new EventArchive(archiveDir),
          batchSize: 50,
          projectionNames: projections.map((p) => p.name),
        });
        expect(
          batches!.reduce((n, b) => n + b.removed, 0),
          'events removed from the store',
        ).to.be.greaterThan(0);
      } finally {
        await rm(archiveDir, { recursive: true, force: true });
      }
      live = await settledSnapshot(herald!);
      // As `herald projections rebuild` does: the rebuilt tables are pruned before they are swapped in.
      await rebuildProjections(herald!.infrastructure, projections, () => undefined, undefined, {
        prunablesOn: pruning,
        policy: loadConfig({}).retention,
        appRetentions: readModels(herald!.infrastructure.database.pool).apps.retentions,
        clock: clock.now,
        batchSize: 2,
      });
      rebuilt = await settledSnapshot(herald!);
      expect(rebuilt.head, 'events were appended by the rebuild').to.equal(live.head);
    });

    it('the pass removed rows of every table retention prunes, and kept what the seeds promise', () => {
      for (const table of pruned)
        expect(rowsOf(live.tables, table).length, table).to.be.lessThan(rowsOf(ended.tables, table).length);
      // Koala's expire 0 (永久有效): kept while the app wants it — the other app's are all there; camel's
      // are gone but for the one released since (sent a moment ago: a scheduled one counts from its release).
      const unexpiring = rowsOf(ended.tables, 'notification_messages').filter((m) => m.expires_at === null);
      const others = unexpiring.filter((m) => m.app_id !== 'camel');
      expect(others).to.not.be.empty;
      expect(rowsOf(live.tables, 'notification_messages')).to.deep.include.members(others);
      const camels = rowsOf(live.tables, 'notification_messages').filter(
        (m) => m.app_id === 'camel' && m.expires_at === null,
      );
      expect(unexpiring.filter((m) => m.app_id === 'camel').length).to.be.greaterThan(camels.length);
      expect(rowsOf(live.tables, 'datahub_notifications').filter((n) => n.app_id === 'camel')).to.deep.equal([]);
      // Who subscribes to an item stays: a subs_event's stream is kept (its rows pruned again by the rebuild).
      expect(rowsOf(live.tables, 'datahub_item_subscribers')).to.deep.equal(
        rowsOf(ended.tables, 'datahub_item_subscribers'),
      );
      // Emails failed for good and reports not forwarded would stay; here every one was sent / forwarded.
      expect(rowsOf(live.tables, 'emails')).to.deep.equal([]);
    });

    for (const projection of projections) {
      for (const table of projection.tables) {
        it(`${projection.name}: ${table}`, () => {
          expect(compared(table, rebuilt.tables[projection.name]![table])).to.deep.equal(
            compared(table, live.tables[projection.name]![table]),
          );
        });
      }
    }
  });
});
