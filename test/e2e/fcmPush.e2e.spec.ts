import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { Config } from '../../src/config';
import type { Herald } from '../../src/herald';
import { eventually } from '../support/eventually';
import {
  fcmTestAccount,
  serviceAccountJson,
  startFcmStandIn,
  type FcmStandIn,
  type FcmTestAccount,
} from '../support/fcmStandIn';
import { graphql } from '../support/graphqlClient';
import { issueTicket, startHeraldOn, TestClock } from '../support/herald';
import { onePushClient } from '../support/onePushClient';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { storedEvents } from '../support/storedEvents';

/**
 * FCM HTTP v1 for ANDROID devices with no live connection (docs/platform-push.md, FCM): the FCM stand-in
 * (a TEST DOUBLE, test/support/fcmStandIn.ts: an OAuth2 token endpoint verifying the service account's
 * RS256 assertion, and messages:send) reached by configuration.
 */
describe('platform push: FCM for ANDROID devices that are not connected', function () {
  this.timeout(60_000);
  const clock = new TestClock();
  let accountA: FcmTestAccount;
  let accountB: FcmTestAccount;
  let standIn: FcmStandIn;
  let testDatabase: TestDatabase;
  let herald: Herald;
  let url: string;
  let admin: string;
  let otherAdmin: string;
  const credentialsKey = randomBytes(32).toString('hex');
  const metricsToken = randomBytes(24).toString('hex');

  const token = () => `fcm:${randomBytes(60).toString('base64url')}`;
  const client = onePushClient(() => url);
  const { send } = client;
  const register = (nativeToken: string, alias: string, platform = 'ANDROID', appId = 'camel') =>
    client.register(nativeToken, alias, platform, appId);
  const SET = `mutation($input: FcmCredentialsInput!) { setFcmCredentials(input: $input) { configured projectId clientEmail tokenUri } }`;
  const SHOW = `{ fcmCredentials { configured projectId clientEmail tokenUri } }`;
  const setCredentials = (ticket: string, serviceAccount: string) =>
    graphql(url, ticket, SET, { input: { serviceAccount } });
  const requestsTo = (nativeToken: string) => standIn.requests.filter((r) => r.token === nativeToken);
  const eventsOf = (stream: string, ticket = admin) => storedEvents(url, ticket, { stream });
  const typesOf = async (stream: string) => (await eventsOf(stream)).map((e) => e.type);

  before(async () => {
    accountA = fcmTestAccount('a');
    accountB = fcmTestAccount('b');
    standIn = await startFcmStandIn([accountA, accountB]);
    testDatabase = await createTestDatabase();
    const overrides: Partial<Config> = {
      credentialsKey,
      metricsToken,
      fcmEndpoint: { baseUrl: standIn.url, tokenUri: standIn.tokenUri },
    };
    herald = await startHeraldOn(testDatabase.connectionString, overrides, clock.now);
    url = herald.url;
    admin = await issueTicket(url, 'boss', 'admin');
    otherAdmin = await issueTicket(url, 'boss', 'admin', 'other', 'other-secret');
  });
  after(async () => {
    await herald?.close();
    await testDatabase?.drop();
    await standIn?.close();
  });

  it('bad credential input is a clear BAD_USER_INPUT and stores nothing; only role admin may set or see them', async () => {
    const good = serviceAccountJson(accountA, standIn.tokenUri);
    for (const [input, field] of [
      ['not json', 'serviceAccount'],
      ['x'.repeat(17_000), 'serviceAccount'],
      [serviceAccountJson(accountA, standIn.tokenUri, { type: 'authorized_user' }), 'serviceAccount.type'],
      [serviceAccountJson(accountA, standIn.tokenUri, { project_id: '' }), 'serviceAccount.project_id'],
      [serviceAccountJson(accountA, standIn.tokenUri, { client_email: 42 }), 'serviceAccount.client_email'],
      [serviceAccountJson(accountA, 'file:///etc/passwd'), 'serviceAccount.token_uri'],
      [
        serviceAccountJson(accountA, standIn.tokenUri, {
          private_key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----',
        }),
        'serviceAccount.private_key',
      ],
    ] as const) {
      const answer = await setCredentials(admin, input);
      expect(answer.errors?.[0]?.extensions?.code, field).to.equal('BAD_USER_INPUT');
      expect(answer.errors?.[0]?.message, field).to.match(new RegExp(`^${field.replace('.', '\\.')}: `));
      expect(JSON.stringify(answer)).to.not.include('PRIVATE KEY');
    }
    expect((await graphql(url, admin, SHOW)).data).to.deep.equal({
      fcmCredentials: { configured: false, projectId: null, clientEmail: null, tokenUri: null },
    });
    const user = await issueTicket(url, 'someone');
    expect((await setCredentials(user, good)).errors?.[0]?.extensions?.code).to.equal('FORBIDDEN');
    expect((await graphql(url, user, SHOW)).errors?.[0]?.extensions?.code).to.equal('FORBIDDEN');

    const set = await setCredentials(admin, good);
    const shown = {
      configured: true,
      projectId: accountA.projectId,
      clientEmail: accountA.clientEmail,
      tokenUri: standIn.tokenUri,
    };
    expect(set.data).to.deep.equal({ setFcmCredentials: shown });
    expect((await graphql(url, admin, SHOW)).data).to.deep.equal({ fcmCredentials: shown });
    expect(JSON.stringify(await storedEvents(url, admin))).to.not.include('PRIVATE KEY');
  });

  it('an ANDROID device that is not connected gets one ONE-PUSH send through FCM, once, with the fields', async () => {
    const offline = token();
    await register(offline, 'android-offline');
    const iosToken = randomBytes(32).toString('hex');
    await register(iosToken, 'ios-offline', 'IOS');
    const requestId = await send(['android-offline', 'ios-offline']);
    await eventually(() => expect(requestsTo(offline)).to.have.length(1));
    const [seen] = requestsTo(offline);
    expect(seen).to.include({ status: 200, projectId: accountA.projectId, clientEmail: accountA.clientEmail });
    expect(seen!.message).to.deep.include({
      token: offline,
      notification: { body: ' this is a alert' },
      data: {
        messageId: requestId,
        appId: 'camel',
        tenantCode: 'xxx',
        alert: ' this is a alert',
        extra: 'testmsg',
        pushMsgType: 'MSG',
        needConfirm: 'false',
      },
    });
    const android = seen!.message.android as { ttl: string; collapse_key: string; priority: string };
    expect(android).to.include({ collapse_key: requestId, priority: 'HIGH' });
    // 7 days for a message without needConfirm (docs/platform-push.md), less the time it took.
    expect(Number(android.ttl.slice(0, -1))).to.be.within(7 * 86_400 - 60, 7 * 86_400);
    const sent = await eventually(async () => {
      const events = await eventsOf(`platformpush-${requestId}`);
      expect(events.map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushSent']);
      return events;
    });
    expect(sent[0]!.data).to.include({ why: 'offline', service: 'fcm' });
    // The iOS device of an app without APNs credentials: nothing, and not through FCM.
    expect(new Set(sent.map((e) => e.stream)).size).to.equal(1);
    expect(requestsTo(iosToken)).to.have.length(0);
    herald.platformPushes.wake();
    const metrics = await (
      await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })
    ).text();
    expect(metrics).to.match(/herald_platform_pushes_total\{platform="ANDROID",outcome="sent"\} [1-9]/);
    expect(requestsTo(offline)).to.have.length(1);
  });

  it('UNREGISTERED revokes the token: the next send skips FCM until the device registers again', async () => {
    const dead = token();
    const alive = token();
    const deadId = await register(dead, 'android-dead');
    await register(alive, 'android-alive');
    standIn.answer(dead, { status: 404, errorCode: 'UNREGISTERED' });
    const first = await send(['android-dead', 'android-alive']);
    await eventually(async () => expect(await typesOf(`device-${deadId}`)).to.include('NativeTokenRevoked'));
    const revoked = (await eventsOf(`device-${deadId}`)).find((e) => e.type === 'NativeTokenRevoked')!;
    expect(revoked.data).to.include({ service: 'fcm', reason: '404 UNREGISTERED' });
    const failed = await eventually(async () => {
      const events = await eventsOf(`platformpush-${first}.${deadId}`);
      expect(events.map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushFailed']);
      return events;
    });
    expect(failed[1]!.data).to.include({ error: '404 UNREGISTERED', final: true });

    const second = await send(['android-dead', 'android-alive']);
    await eventually(() =>
      expect(
        requestsTo(alive).filter((r) => (r.message.data as { messageId: string }).messageId === second),
      ).to.have.length(1),
    );
    await eventually(async () =>
      expect(await typesOf(`platformpush-${second}`)).to.deep.equal(['PlatformPushRequested', 'PlatformPushSent']),
    );
    expect(requestsTo(dead)).to.have.length(1);

    // Registering anew (the same token) clears it: the next message goes out again.
    await register(dead, 'android-dead');
    const third = await send(['android-dead']);
    await eventually(() =>
      expect(
        requestsTo(dead).filter((r) => (r.message.data as { messageId: string }).messageId === third),
      ).to.have.length(1),
    );
  });

  it("503 is retried (not before FCM's Retry-After) and then delivered once", async () => {
    const flaky = token();
    const flakyId = await register(flaky, 'android-flaky');
    standIn.answer(flaky, { status: 503, errorCode: 'UNAVAILABLE', retryAfter: 20 });
    const requestId = await send(['android-flaky']);
    const stream = `platformpush-${requestId}.${flakyId}`;
    const failed = await eventually(async () => {
      const events = await eventsOf(stream);
      expect(events.map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushFailed']);
      return events[1]!.data as { failedAt: string; retryAt: string; final: boolean };
    });
    expect(failed.final).to.equal(false);
    // The schedule says 5 s; FCM said 20.
    expect(Date.parse(failed.retryAt) - Date.parse(failed.failedAt)).to.equal(20_000);
    clock.advance(21_000);
    herald.platformPushes.wake();
    await eventually(async () =>
      expect(await typesOf(stream)).to.deep.equal(['PlatformPushRequested', 'PlatformPushFailed', 'PlatformPushSent']),
    );
    expect(requestsTo(flaky).map((r) => r.status)).to.deep.equal([503, 200]);
  });

  it("one app's service account never pushes another app's devices", async () => {
    const othersPhone = token();
    await register(othersPhone, 'android-other', 'ANDROID', 'other');
    const first = await send(['android-other'], {}, ['other', 'other-secret']);
    const marker = token();
    await register(marker, 'android-marker');
    await send(['android-marker']);
    await eventually(() => expect(requestsTo(marker)).to.have.length(1));
    expect(requestsTo(othersPhone)).to.have.length(0);
    expect(await eventsOf(`platformpush-${first}`, otherAdmin)).to.deep.equal([]);
    // camel's service account is not other's.
    expect((await graphql(url, otherAdmin, SHOW)).data).to.deep.include({
      fcmCredentials: { configured: false, projectId: null, clientEmail: null, tokenUri: null },
    });

    expect(
      (await setCredentials(otherAdmin, serviceAccountJson(accountB, standIn.tokenUri))).data,
    ).to.have.nested.property('setFcmCredentials.configured', true);
    await send(['android-other'], {}, ['other', 'other-secret']);
    await eventually(() => expect(requestsTo(othersPhone)).to.have.length(2));
    for (const request of requestsTo(othersPhone))
      expect(request).to.include({ projectId: accountB.projectId, clientEmail: accountB.clientEmail, status: 200 });
    expect(
      standIn.requests.filter((r) => r.token !== othersPhone).every((r) => r.clientEmail === accountA.clientEmail),
    ).to.equal(true);
  });
});
