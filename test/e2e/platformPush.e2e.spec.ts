import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { Config } from '../../src/config';
import type { DevicePresence } from '../../src/devices/presence';
import type { Herald } from '../../src/herald';
import { apnsTestKey, startApnsStandIn, type ApnsStandIn, type ApnsTestKey } from '../support/apnsStandIn';
import { DeviceSocket } from '../support/deviceSocket';
import { eventually } from '../support/eventually';
import { graphql } from '../support/graphqlClient';
import { issueTicket, startHeraldOn, TestClock } from '../support/herald';
import { onePushClient } from '../support/onePushClient';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { storedEvents } from '../support/storedEvents';

/**
 * ONE-PUSH's `nativeToken` through APNs (shared/seeds/003_834cb051d61fc48e.txt: "ios要使用ios token,用于apns发送
 * 离线消息"): an iOS device with no live connection gets the message through Apple's provider API — here the
 * APNs stand-in (a TEST DOUBLE, test/support/apnsStandIn.ts) over HTTP/2 and TLS, trusted by configuration.
 */
describe('platform push: APNs for iOS devices that are not connected', function () {
  this.timeout(60_000);
  const clock = new TestClock();
  let keyA: ApnsTestKey;
  let keyB: ApnsTestKey;
  let standIn: ApnsStandIn;
  let testDatabase: TestDatabase;
  let herald: Herald;
  let url: string;
  let admin: string;
  let otherAdmin: string;
  const sockets: DeviceSocket[] = [];
  const credentialsKey = randomBytes(32).toString('hex');

  const start = async () => {
    const overrides: Partial<Config> = { credentialsKey, apnsEndpoint: { host: standIn.url, ca: standIn.ca } };
    herald = await startHeraldOn(testDatabase.connectionString, overrides, clock.now);
    url = herald.url;
  };
  const token = () => randomBytes(32).toString('hex');
  const client = onePushClient(() => url);
  const { send } = client;
  const register = (nativeToken: string, alias: string, platform = 'IOS', appId = 'camel') =>
    client.register(nativeToken, alias, platform, appId);
  const SET = `mutation($input: ApnsCredentialsInput!) { setApnsCredentials(input: $input) { configured keyId teamId topic environment } }`;
  const setCredentials = (ticket: string, key: ApnsTestKey, overrides: Record<string, unknown> = {}) =>
    graphql(url, ticket, SET, {
      input: {
        keyPem: key.keyPem,
        keyId: key.keyId,
        teamId: key.teamId,
        topic: key.topic,
        environment: 'SANDBOX',
        ...overrides,
      },
    });
  const requestsTo = (nativeToken: string) => standIn.requests.filter((r) => r.token === nativeToken);
  const eventsOf = (stream: string, ticket = admin) => storedEvents(url, ticket, { stream });

  before(async () => {
    keyA = apnsTestKey('A');
    keyB = apnsTestKey('B');
    standIn = await startApnsStandIn([keyA, keyB]);
    testDatabase = await createTestDatabase();
    await start();
    admin = await issueTicket(url, 'boss', 'admin');
    otherAdmin = await issueTicket(url, 'boss', 'admin', 'other', 'other-secret');
  });
  after(async () => {
    for (const socket of sockets) socket.close();
    await herald?.close();
    await testDatabase?.drop();
    await standIn?.close();
  });

  it('bad credential input is a clear BAD_USER_INPUT and stores nothing; only role admin may set or see them', async () => {
    const SHOW = `{ apnsCredentials { configured keyId teamId topic environment } }`;
    for (const [overrides, field] of [
      [{ keyPem: 'not a key' }, 'keyPem'],
      [{ keyPem: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----' }, 'keyPem'],
      [{ keyPem: `${keyA.keyPem}${'x'.repeat(5000)}` }, 'keyPem'],
      [{ keyId: 'short' }, 'keyId'],
      [{ teamId: 'lower-case' }, 'teamId'],
      [{ topic: 'bad topic/with spaces' }, 'topic'],
    ] as const) {
      const answer = await setCredentials(admin, keyA, overrides);
      expect(answer.errors?.[0]?.extensions?.code, field).to.equal('BAD_USER_INPUT');
      expect(answer.errors?.[0]?.message, field).to.match(new RegExp(`^${field}: `));
      // The key's text is never echoed.
      expect(JSON.stringify(answer)).to.not.include('PRIVATE KEY');
    }
    const wrongEnum = await setCredentials(admin, keyA, { environment: 'STAGING' });
    expect(wrongEnum.errors?.[0]?.extensions?.code).to.equal('BAD_USER_INPUT');
    expect((await graphql(url, admin, SHOW)).data).to.deep.equal({
      apnsCredentials: { configured: false, keyId: null, teamId: null, topic: null, environment: null },
    });
    const user = await issueTicket(url, 'someone');
    expect((await setCredentials(user, keyA)).errors?.[0]?.extensions?.code).to.equal('FORBIDDEN');
    expect((await graphql(url, user, SHOW)).errors?.[0]?.extensions?.code).to.equal('FORBIDDEN');

    const set = await setCredentials(admin, keyA);
    expect(set.data).to.deep.equal({
      setApnsCredentials: {
        configured: true,
        keyId: keyA.keyId,
        teamId: keyA.teamId,
        topic: keyA.topic,
        environment: 'SANDBOX',
      },
    });
    expect(JSON.stringify((await graphql(url, admin, SHOW)).data)).to.not.include('PRIVATE');
    // Nothing of it in the events.
    expect(JSON.stringify(await storedEvents(url, admin))).to.not.include('PRIVATE KEY');
  });

  it("an iOS device that is not connected gets one ONE-PUSH send through APNs, once, with the seed's alert/sound/badge", async () => {
    const offline = token();
    const online = token();
    await register(offline, 'ios-offline');
    const onlineId = await register(online, 'ios-online');
    await register(token(), 'android-offline', 'ANDROID');
    const socket = await DeviceSocket.connect(url, onlineId);
    sockets.push(socket);
    const requestId = await send(['ios-offline', 'ios-online', 'android-offline']);
    await socket.until((s) => s.messages.length === 1, 'the connected device gets it over its socket');
    await eventually(() => expect(requestsTo(offline)).to.have.length(1));
    const [seen] = requestsTo(offline);
    expect(seen!.status).to.equal(200);
    expect(seen!.teamId).to.equal(keyA.teamId);
    expect(seen!.headers).to.deep.include({
      'apns-topic': keyA.topic,
      'apns-push-type': 'alert',
      'apns-priority': '10',
      'apns-id': requestId,
      'apns-collapse-id': requestId,
    });
    expect(seen!.payload).to.deep.include({
      aps: { alert: ' this is a alert', sound: 'default', badge: 1 },
      messageId: requestId,
      extra: 'testmsg',
    });
    // The outcome is an event on the item's stream; after it, the read model has it as sent and no more goes out.
    const sent = await eventually(async () => {
      const events = await eventsOf(`platformpush-${requestId}`);
      expect(events.map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushSent']);
      return events;
    });
    expect(sent[0]!.data).to.include({ why: 'offline', service: 'apns' });
    herald.platformPushes.wake();
    expect(requestsTo(offline)).to.have.length(1);
    expect(requestsTo(online)).to.have.length(0);
    // Only the offline iOS device: nothing requested for the connected one or the Android one.
    expect(new Set(sent.map((e) => e.stream)).size).to.equal(1);

    // The device connects later: it still gets its backlog over the socket, the same message id.
    const later = await DeviceSocket.connect(url, (await register(offline, 'ios-offline'))!);
    sockets.push(later);
    await later.until((s) => s.messages.length === 1, 'the backlog on connect');
    expect(later.messages[0]!.messageId).to.equal(requestId);
  });

  it('a connected iOS device that has not confirmed a needConfirm message by its first re-send gets it through APNs, once', async () => {
    const quiet = token();
    const quietId = await register(quiet, 'ios-quiet');
    const socket = await DeviceSocket.connect(url, quietId);
    sockets.push(socket);
    const requestId = await send(['ios-quiet'], { needConfirm: true, duration: 3600 });
    await socket.until((s) => s.messages.length === 1, 'the first attempt');
    // Connected and written once: not an APNs case yet.
    await eventually(async () =>
      expect((await herald.pushes.status('camel', requestId))?.deliveries).to.include({ delivered: 1 }),
    );
    // The first re-send (10 s after the first attempt), still unconfirmed …
    clock.advance(11_000);
    herald.gateway.wake();
    await socket.until((s) => s.messages.length === 2, 'the first re-send');
    // … so it goes through APNs as well, needConfirm in its payload.
    await eventually(() => expect(requestsTo(quiet)).to.have.length(1));
    expect(requestsTo(quiet)[0]!.payload).to.include({ messageId: requestId, needConfirm: true });
    const [requested] = await eventsOf(`platformpush-${requestId}`);
    expect(requested!.data).to.include({ why: 'unconfirmed' });
    // Later re-sends do not make another.
    clock.advance(21_000);
    herald.gateway.wake();
    await socket.until((s) => s.messages.length === 3, 'the second re-send');
    herald.platformPushes.wake();
    await eventually(async () =>
      expect((await eventsOf(`platformpush-${requestId}`)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushSent',
      ]),
    );
    expect(requestsTo(quiet)).to.have.length(1);
    socket.confirm(requestId);
    await socket.until((s) => s.frames.some((f) => f.confirmed === requestId), 'the confirmation');
  });

  it('a needConfirm message written once to a device that then went away (the app in the background) goes through APNs once its re-send falls due', async () => {
    const away = token();
    const awayId = await register(away, 'ios-away');
    const socket = await DeviceSocket.connect(url, awayId);
    const requestId = await send(['ios-away'], { needConfirm: true, duration: 3600 });
    await socket.until((s) => s.messages.length === 1, 'the first attempt');
    await eventually(async () =>
      expect((await herald.pushes.status('camel', requestId))?.deliveries).to.include({ delivered: 1 }),
    );
    // Gone before its re-send: nothing re-sends it (re-sends are for connected devices), so attempts stay at 1.
    socket.close();
    await eventually(async () => expect([...(await herald.gateway.presence.onlineAmong([awayId]))]).to.deep.equal([]));
    clock.advance(11_000);
    herald.platformPushes.wake();
    await eventually(() => expect(requestsTo(away)).to.have.length(1));
    const [requested] = await eventsOf(`platformpush-${requestId}`);
    expect(requested!.data).to.include({ why: 'unconfirmed' });
    await eventually(async () =>
      expect((await eventsOf(`platformpush-${requestId}`)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushSent',
      ]),
    );
    herald.platformPushes.wake();
    expect(requestsTo(away)).to.have.length(1);
  });

  it('a device connected to another node (the directory holds it) gets no APNs push, though nothing is written to it here', async () => {
    const elsewhere = token();
    const elsewhereId = await register(elsewhere, 'ios-elsewhere');
    const marker = token();
    await register(marker, 'ios-marker-1');
    // What another node's connection leaves in the directory: online, with no socket on this node.
    (herald.gateway.presence as DevicePresence).add(elsewhereId);
    try {
      const requestId = await send(['ios-elsewhere', 'ios-marker-1']);
      await eventually(() => expect(requestsTo(marker)).to.have.length(1));
      // Looked at again after the marker's: still online, still skipped.
      herald.platformPushes.wake();
      await eventually(async () =>
        expect((await eventsOf(`platformpush-${requestId}`)).map((e) => e.type)).to.deep.equal([
          'PlatformPushRequested',
          'PlatformPushSent',
        ]),
      );
      expect(requestsTo(elsewhere)).to.have.length(0);
    } finally {
      (herald.gateway.presence as DevicePresence).remove(elsewhereId);
    }
    // Gone from the directory and still not written: now it is offline, and APNs takes it.
    herald.platformPushes.wake();
    await eventually(() => expect(requestsTo(elsewhere)).to.have.length(1));
  });

  it('a 410 revokes the token: the next send skips APNs until the device registers again', async () => {
    const dead = token();
    const alive = token();
    const deadId = await register(dead, 'ios-dead');
    await register(alive, 'ios-alive');
    standIn.answer(dead, { status: 410, reason: 'Unregistered' });
    const first = await send(['ios-dead', 'ios-alive']);
    await eventually(async () =>
      expect((await eventsOf(`device-${deadId}`)).map((e) => e.type)).to.include('NativeTokenRevoked'),
    );
    const failed = await eventually(async () => {
      const events = await eventsOf(`platformpush-${first}.${deadId}`);
      expect(events.map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushFailed']);
      return events;
    });
    expect(failed[1]!.data).to.include({ error: '410 Unregistered', final: true });

    const second = await send(['ios-dead', 'ios-alive']);
    // The live device's request for the second message has gone through; the dead one's was never made.
    await eventually(() => expect(requestsTo(alive).filter((r) => r.headers['apns-id'] === second)).to.have.length(1));
    await eventually(async () =>
      expect((await eventsOf(`platformpush-${second}`)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushSent',
      ]),
    );
    expect(requestsTo(dead)).to.have.length(1);

    // Registering anew (the same token) clears it: the next message goes out again.
    await register(dead, 'ios-dead');
    const third = await send(['ios-dead']);
    await eventually(() => expect(requestsTo(dead).filter((r) => r.headers['apns-id'] === third)).to.have.length(1));
  });

  it('400 BadDeviceToken fails that message for good but revokes nothing (a wrong environment answers it for every token); a 410 dated before the registration revokes nothing', async () => {
    const wrongEnv = token();
    const wrongEnvId = await register(wrongEnv, 'ios-wrong-env');
    standIn.answer(wrongEnv, { status: 400, reason: 'BadDeviceToken' });
    const first = await send(['ios-wrong-env']);
    const failed = await eventually(async () => {
      const events = await eventsOf(`platformpush-${first}.${wrongEnvId}`);
      expect(events.map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushFailed']);
      return events;
    });
    expect(failed[1]!.data).to.include({ error: '400 BadDeviceToken', final: true });
    expect((await eventsOf(`device-${wrongEnvId}`)).map((e) => e.type)).to.not.include('NativeTokenRevoked');

    // Apple last knew the token valid an hour before the device registered: a stale 410, nothing revoked.
    standIn.answer(wrongEnv, { status: 410, reason: 'Unregistered', timestamp: clock.now().getTime() - 3600_000 });
    const second = await send(['ios-wrong-env']);
    await eventually(async () =>
      expect((await eventsOf(`platformpush-${second}.${wrongEnvId}`)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
      ]),
    );
    expect((await eventsOf(`device-${wrongEnvId}`)).map((e) => e.type)).to.not.include('NativeTokenRevoked');
    // The next message still goes through APNs.
    const third = await send(['ios-wrong-env']);
    await eventually(() =>
      expect(requestsTo(wrongEnv).filter((r) => r.headers['apns-id'] === third && r.status === 200)).to.have.length(1),
    );
  });

  it('a retry is not sent once the device got the message over its socket', async () => {
    const late = token();
    const lateId = await register(late, 'ios-late');
    standIn.answer(late, { status: 503, reason: 'ServiceUnavailable' });
    const requestId = await send(['ios-late']);
    const stream = `platformpush-${requestId}.${lateId}`;
    await eventually(async () =>
      expect((await eventsOf(stream)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
      ]),
    );
    // The device comes back before the retry (5 s later) and gets it over its socket.
    const socket = await DeviceSocket.connect(url, lateId);
    sockets.push(socket);
    await socket.until((s) => s.messages.length === 1, 'the backlog on connect');
    await eventually(async () =>
      expect((await herald.pushes.status('camel', requestId))?.deliveries).to.include({ delivered: 1 }),
    );
    clock.advance(6_000);
    herald.platformPushes.wake();
    const events = await eventually(async () => {
      const all = await eventsOf(stream);
      expect(all.map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
        'PlatformPushFailed',
      ]);
      return all;
    });
    expect(events[2]!.data).to.include({ final: true });
    expect(String(events[2]!.data.error)).to.match(/^AlreadyDelivered/);
    expect(requestsTo(late).map((r) => r.status)).to.deep.equal([503]);
  });

  it('a retry whose delivery stream retention removed is final, not sent (the delivery ended long ago)', async () => {
    const gone = token();
    const goneId = await register(gone, 'ios-gone');
    standIn.answer(gone, { status: 503, reason: 'ServiceUnavailable' });
    const requestId = await send(['ios-gone']);
    const stream = `platformpush-${requestId}.${goneId}`;
    await eventually(async () =>
      expect((await eventsOf(stream)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
      ]),
    );
    const socket = await DeviceSocket.connect(url, goneId);
    sockets.push(socket);
    await socket.until((s) => s.messages.length === 1, 'the backlog on connect');
    await eventually(async () =>
      expect((await herald.pushes.status('camel', requestId))?.deliveries).to.include({ delivered: 1 }),
    );
    // The device got it over its socket (its delivery ended); then the delivery's stream left the store, every
    // event and its `streams` row, as a retention pass's removal leaves it (src/eventStore/postgres/removal.ts).
    const database = testDatabase.open();
    try {
      const { rowCount } = await database.pool.query('DELETE FROM events WHERE stream_name = $1', [
        `delivery-${requestId}.${goneId}`,
      ]);
      expect(rowCount).to.be.greaterThan(0);
      await database.pool.query('DELETE FROM streams WHERE stream_name = $1', [`delivery-${requestId}.${goneId}`]);
      // Its read model row too, as pruning leaves it (which keeps a row while its push is pending, so
      // this is a push left behind): the pusher looks at the row, not the stream.
      const pruned = await database.pool.query('DELETE FROM device_deliveries WHERE push_id = $1 AND device_id = $2', [
        requestId,
        goneId,
      ]);
      expect(pruned.rowCount).to.equal(1);
    } finally {
      await database.close();
    }
    clock.advance(6_000);
    herald.platformPushes.wake();
    const events = await eventually(async () => {
      const all = await eventsOf(stream);
      expect(all.map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
        'PlatformPushFailed',
      ]);
      return all;
    });
    expect(events[2]!.data).to.include({ final: true });
    expect(String(events[2]!.data.error)).to.match(/^AlreadyEnded/);
    expect(requestsTo(gone).map((r) => r.status)).to.deep.equal([503]);
  });

  it('429/5xx are retried with back-off; a restart mid-retry still delivers once', async () => {
    const flaky = token();
    const flakyId = await register(flaky, 'ios-flaky');
    standIn.answer(flaky, { status: 503, reason: 'ServiceUnavailable' }, { status: 429, reason: 'TooManyRequests' });
    const requestId = await send(['ios-flaky']);
    await eventually(async () =>
      expect((await eventsOf(`platformpush-${requestId}.${flakyId}`)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
      ]),
    );
    await herald.close();
    // herald is down past the first retry's time; the next one (another node, the same database) makes it.
    clock.advance(6_000);
    await start();
    const stream = `platformpush-${requestId}.${flakyId}`;
    await eventually(async () =>
      expect((await eventsOf(stream)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
        'PlatformPushFailed',
      ]),
    );
    // The second failure's retry is 30 s later.
    clock.advance(31_000);
    herald.platformPushes.wake();
    await eventually(async () =>
      expect((await eventsOf(stream)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
        'PlatformPushFailed',
        'PlatformPushSent',
      ]),
    );
    expect(requestsTo(flaky).map((r) => r.status)).to.deep.equal([503, 429, 200]);
  });

  it("a send to many offline devices keeps the app's connection full (hundreds of streams at once), each device once", async () => {
    const devices = 400;
    const tokens = Array.from({ length: devices }, token);
    const ids = new Map<string, string>();
    for (let i = 0; i < devices; i += 50)
      await Promise.all(
        tokens.slice(i, i + 50).map(async (t, j) => ids.set(t, await register(t, `ios-many-${i + j}`))),
      );
    // Apple answers nothing until 300 requests are open at once (the outbox's 32 per app never got there).
    standIn.hold(true);
    const peakBefore = standIn.peakStreams;
    const requestId = await send(tokens.map((_, i) => `ios-many-${i}`));
    try {
      await eventually(() => expect(standIn.peakStreams).to.be.at.least(Math.max(peakBefore, 300)), {
        timeoutMs: 20_000,
      });
    } finally {
      standIn.hold(false);
    }
    await eventually(
      () =>
        expect(
          standIn.requests.filter((r) => r.headers['apns-id'] === requestId && r.status === 200).map((r) => r.token),
        ).to.have.members(tokens),
      { timeoutMs: 20_000 },
    );
    // Every outcome recorded (nothing left to retry), then once each.
    for (const t of tokens)
      await eventually(async () =>
        expect((await eventsOf(`platformpush-${requestId}.${ids.get(t)!}`)).map((e) => e.type)).to.deep.equal([
          'PlatformPushRequested',
          'PlatformPushSent',
        ]),
      );
    expect(standIn.requests.filter((r) => r.headers['apns-id'] === requestId)).to.have.length(devices);
  });

  it("one app's credentials never push another app's devices", async () => {
    const othersPhone = token();
    await register(othersPhone, 'ios-other', 'IOS', 'other');
    const first = await send(['ios-other'], {}, ['other', 'other-secret']);
    // No credentials for `other`: nothing is requested (camel's key is not used for it).
    const marker = token();
    await register(marker, 'ios-marker');
    const markerPush = await send(['ios-marker']);
    await eventually(() =>
      expect(requestsTo(marker).filter((r) => r.headers['apns-id'] === markerPush)).to.have.length(1),
    );
    expect(requestsTo(othersPhone)).to.have.length(0);
    expect(await eventsOf(`platformpush-${first}`, otherAdmin)).to.deep.equal([]);

    expect((await setCredentials(otherAdmin, keyB)).data).to.have.nested.property(
      'setApnsCredentials.configured',
      true,
    );
    const second = await send(['ios-other'], {}, ['other', 'other-secret']);
    // Both of its open messages now go out (the first still waits for the device: docs/platform-push.md), with its own key.
    await eventually(() => expect(requestsTo(othersPhone)).to.have.length(2));
    expect(
      requestsTo(othersPhone)
        .map((r) => r.headers['apns-id'])
        .sort(),
    ).to.deep.equal([first, second].sort());
    for (const request of requestsTo(othersPhone)) {
      expect(request).to.include({ teamId: keyB.teamId, status: 200 });
      expect(request.headers).to.include({ 'apns-topic': keyB.topic });
    }
    // And every one of camel's went with camel's key.
    expect(standIn.requests.filter((r) => r.token !== othersPhone).every((r) => r.teamId === keyA.teamId)).to.equal(
      true,
    );
  });
});
