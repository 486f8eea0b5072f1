import { createECDH, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import webpush from 'web-push';
import type { Config } from '../../src/config';
import type { Herald } from '../../src/herald';
import { eventually } from '../support/eventually';
import { graphql } from '../support/graphqlClient';
import { issueTicket, startHeraldOn, TestClock } from '../support/herald';
import { onePushClient } from '../support/onePushClient';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { storedEvents } from '../support/storedEvents';
import { startWebPushService, type BrowserSubscription, type WebPushService } from '../support/webPushService';

/**
 * Web Push for WEB devices with no live connection (docs/platform-push.md, Web Push): the browser side is
 * web-push-testing (test/support/webPushService.ts: a local push service that checks the VAPID JWT
 * against the key the browser subscribed with and decrypts each message), reached through
 * HERALD_WEBPUSH_ALLOWED_ORIGINS (it is plain http on loopback, which herald refuses otherwise).
 */
describe('platform push: Web Push for WEB devices that are not connected', function () {
  this.timeout(60_000);
  const clock = new TestClock();
  let service: WebPushService;
  let testDatabase: TestDatabase;
  let herald: Herald;
  let url: string;
  let admin: string;
  let otherAdmin: string;
  let publicKey: string;
  const credentialsKey = randomBytes(32).toString('hex');
  const metricsToken = randomBytes(24).toString('hex');

  const client = onePushClient(() => url);
  const { send } = client;
  const register = (alias: string, appId = 'camel', platform = 'WEB', nativeToken = `browser-${alias}`) =>
    client.register(nativeToken, alias, platform, appId);
  const SET = `mutation($input: WebPushCredentialsInput!) { setWebPushCredentials(input: $input) { configured publicKey subject } }`;
  const SHOW = `{ webPushCredentials { configured publicKey subject } }`;
  const SUBSCRIBE = `mutation($d: ID, $s: WebPushSubscriptionInput!) { subscribeWebPush(deviceId: $d, subscription: $s) }`;
  const asJson = (s: BrowserSubscription) => ({ endpoint: s.endpoint, expirationTime: null, keys: s.keys });
  const subscribe = (ticket: string, deviceId: string | undefined, subscription: unknown) =>
    graphql(url, ticket, SUBSCRIBE, { d: deviceId, s: subscription });
  const eventsOf = (stream: string, ticket = admin) => storedEvents(url, ticket, { stream });
  const typesOf = async (stream: string) => (await eventsOf(stream)).map((e) => e.type);
  const requestsTo = (s: BrowserSubscription) => service.requests.filter((r) => r.clientHash === s.clientHash);
  /** A WEB device of `camel` whose browser subscribed with the app's key. */
  const subscribedDevice = async (alias: string) => {
    const deviceId = await register(alias);
    const browser = await service.subscribe(publicKey);
    const answer = await subscribe(admin, deviceId, asJson(browser));
    expect(answer.errors, JSON.stringify(answer.errors)).to.equal(undefined);
    return { deviceId, browser };
  };

  before(async () => {
    service = await startWebPushService();
    testDatabase = await createTestDatabase();
    const overrides: Partial<Config> = {
      credentialsKey,
      metricsToken,
      webPushEndpoint: { allowedOrigins: [service.origin] },
    };
    herald = await startHeraldOn(testDatabase.connectionString, overrides, clock.now);
    url = herald.url;
    admin = await issueTicket(url, 'boss', 'admin');
    otherAdmin = await issueTicket(url, 'boss', 'admin', 'other', 'other-secret');
  });
  after(async () => {
    await herald?.close();
    await testDatabase?.drop();
    await service?.close();
  });

  it('bad VAPID input is a clear BAD_USER_INPUT and stores nothing; herald makes a pair; only role admin sets or sees it', async () => {
    const pair = webpush.generateVAPIDKeys();
    const other = webpush.generateVAPIDKeys();
    for (const [input, field] of [
      [{ subject: 'ops@example.com' }, 'subject'],
      [{ subject: 'mailto:ops@example.com', publicKey: pair.publicKey }, 'publicKey, privateKey'],
      [{ subject: 'mailto:ops@example.com', publicKey: 'AAAA', privateKey: pair.privateKey }, 'publicKey'],
      [{ subject: 'mailto:ops@example.com', publicKey: other.publicKey, privateKey: pair.privateKey }, 'privateKey'],
      [{ subject: `https://example.com/${'x'.repeat(300)}` }, 'subject'],
    ] as const) {
      const answer = await graphql(url, admin, SET, { input });
      expect(answer.errors?.[0]?.extensions?.code, field).to.equal('BAD_USER_INPUT');
      expect(answer.errors?.[0]?.message, field).to.match(new RegExp(`^${field}: `));
      expect(JSON.stringify(answer)).to.not.include(pair.privateKey);
    }
    expect((await graphql(url, admin, SHOW)).data).to.deep.equal({
      webPushCredentials: { configured: false, publicKey: null, subject: null },
    });
    const user = await issueTicket(url, 'someone');
    expect(
      (await graphql(url, user, SET, { input: { subject: 'mailto:ops@example.com' } })).errors?.[0]?.extensions?.code,
    ).to.equal('FORBIDDEN');
    expect((await graphql(url, user, SHOW)).errors?.[0]?.extensions?.code).to.equal('FORBIDDEN');
    expect((await graphql(url, user, '{ webPushPublicKey }')).data).to.deep.equal({ webPushPublicKey: null });

    const set = await graphql<{ setWebPushCredentials: { publicKey: string } }>(url, admin, SET, {
      input: { subject: 'mailto:ops@example.com' },
    });
    publicKey = set.data!.setWebPushCredentials.publicKey;
    expect(Buffer.from(publicKey, 'base64url')).to.have.length(65);
    expect((await graphql(url, admin, SHOW)).data).to.deep.equal({
      webPushCredentials: { configured: true, publicKey, subject: 'mailto:ops@example.com' },
    });
    // Any user of the app reads the public key (a browser's applicationServerKey); another app's users do not.
    expect((await graphql(url, user, '{ webPushPublicKey }')).data).to.deep.equal({ webPushPublicKey: publicKey });
    expect((await graphql(url, otherAdmin, '{ webPushPublicKey }')).data).to.deep.equal({ webPushPublicKey: null });
  });

  it('bad subscriptions are BAD_USER_INPUT naming the field and change nothing; who may subscribe which device', async () => {
    const deviceId = await register('web-bad');
    const iosId = await register('ios-bad', 'camel', 'IOS');
    const browser = await service.subscribe(publicKey);
    const good = asJson(browser);
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const before = await eventsOf(`device-${deviceId}`);
    for (const [subscription, message] of [
      [{ ...good, endpoint: 'http://push.example.com/x' }, /^subscription\.endpoint: not https/],
      [{ ...good, endpoint: 'https://127.0.0.1:9/x' }, /^subscription\.endpoint: 127\.0\.0\.1 is not a public address/],
      [{ ...good, endpoint: 'https://10.0.0.8/x' }, /^subscription\.endpoint: 10\.0\.0\.8 is not a public address/],
      [{ ...good, endpoint: 'https://u:p@push.example.com/x' }, /^subscription\.endpoint: expected/],
      [{ ...good, endpoint: `https://push.example.com/${'a'.repeat(1100)}` }, /^subscription\.endpoint: expected/],
      [{ ...good, keys: { ...good.keys, p256dh: 'BAAA' } }, /^subscription\.keys\.p256dh: expected/],
      // 65 bytes starting 0x04, but no point of the curve.
      [{ ...good, keys: { ...good.keys, p256dh: Buffer.alloc(65, 4).toString('base64url') } }, /^subscription\.keys: /],
      [{ ...good, keys: { ...good.keys, auth: 'short' } }, /^subscription\.keys\.auth: expected/],
      [{ ...good, expirationTime: -5 }, /^subscription\.expirationTime: expected/],
    ] as const) {
      const answer = await subscribe(admin, deviceId, subscription);
      expect(answer.errors?.[0]?.extensions?.code, String(message)).to.equal('BAD_USER_INPUT');
      expect(answer.errors?.[0]?.message, String(message)).to.match(message);
    }
    // Not a WEB device; no deviceId with a ticket; another app's device; another user's device.
    const notWeb = await subscribe(admin, iosId, good);
    expect(notWeb.errors?.[0]?.extensions?.code).to.equal('BAD_USER_INPUT');
    expect(notWeb.errors?.[0]?.message).to.match(/^subscription: only a WEB device/);
    expect((await subscribe(admin, undefined, good)).errors?.[0]?.extensions?.code).to.equal('BAD_USER_INPUT');
    expect((await subscribe(otherAdmin, deviceId, good)).errors?.[0]?.extensions?.code).to.equal('NOT_FOUND');
    const stranger = await issueTicket(url, 'stranger');
    expect((await subscribe(stranger, deviceId, good)).errors?.[0]?.extensions?.code).to.equal('NOT_FOUND');
    expect(await eventsOf(`device-${deviceId}`)).to.deep.equal(before);

    // The device itself, with its device token (no deviceId, or its own), reads the key and subscribes.
    const registered = await graphql<{ registerDevice: { device: { id: string }; token: string } }>(
      url,
      await issueTicket(url, 'web-token'),
      'mutation { registerDevice(input: { platform: WEB, nativeToken: "browser-token" }) { device { id } token } }',
    );
    const { token, device } = registered.data!.registerDevice;
    expect((await graphql(url, token, '{ webPushPublicKey }')).data).to.deep.equal({ webPushPublicKey: publicKey });
    expect((await subscribe(token, deviceId, good)).errors?.[0]?.extensions?.code).to.equal('FORBIDDEN');
    expect((await subscribe(token, undefined, good)).data).to.deep.equal({ subscribeWebPush: true });
    const bySelf = (await eventsOf(`device-${device.id}`)).at(-1)!;
    expect(bySelf.data.webPush).to.include({ endpoint: good.endpoint });
    expect(bySelf.metadata.actor).to.equal(`device:${device.id}`);
    expect((await graphql(url, token, 'mutation { unsubscribeWebPush }')).data).to.deep.equal({
      unsubscribeWebPush: true,
    });
    expect((await eventsOf(`device-${device.id}`)).at(-1)!.data.webPush).to.equal(null);

    // The user whose device it is (alias = user id) may.
    const owner = await issueTicket(url, 'web-bad');
    expect((await subscribe(owner, deviceId, good)).data).to.deep.equal({ subscribeWebPush: true });
    const last = (await eventsOf(`device-${deviceId}`)).at(-1)!;
    expect(last.type).to.equal('DeviceRegistered');
    // The audit names who acted: the user, not the device.
    expect(last.metadata.actor).to.equal('user:web-bad');
    expect(last.data.webPush).to.deep.equal({
      endpoint: good.endpoint,
      expirationTime: null,
      p256dh: good.keys.p256dh,
      auth: good.keys.auth,
      subscribedAt: last.data.registeredAt,
      // Given with the user's own ticket: that user's browser for Koala's messages too.
      userId: 'web-bad',
    });
  });

  it('an offline WEB device gets a ONE-PUSH send once through its push service, decrypted, with TTL, Urgency and Topic', async () => {
    const { deviceId, browser } = await subscribedDevice('web-offline');
    const requestId = await send(['web-offline']);
    await eventually(() => expect(service.messages(browser.clientHash)).to.have.length(1));
    expect(service.messages(browser.clientHash)[0]).to.deep.equal({
      messageId: requestId,
      appId: 'camel',
      tenantCode: 'xxx',
      alert: ' this is a alert',
      extra: 'testmsg',
      pushMsgType: 'MSG',
      needConfirm: false,
      sound: 'default',
      badge: 1,
    });
    const [request] = requestsTo(browser);
    expect(request).to.include({
      status: 201,
      urgency: 'high',
      topic: requestId.replace(/-/g, ''),
      contentEncoding: 'aes128gcm',
    });
    // 7 days for a message without needConfirm, less the time it took.
    expect(Number(request!.ttl)).to.be.within(7 * 86_400 - 60, 7 * 86_400);
    const events = await eventually(async () => {
      const all = await eventsOf(`platformpush-${requestId}.${deviceId}`);
      expect(all.map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushSent']);
      return all;
    });
    expect(events[0]!.data).to.include({ why: 'offline', service: 'webpush' });
    herald.platformPushes.wake();
    const metrics = await (
      await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })
    ).text();
    expect(metrics).to.match(/herald_platform_pushes_total\{platform="WEB",outcome="sent"\} [1-9]/);

    // CMD (background) is Urgency normal.
    const cmd = await send(['web-offline'], { pushMsgType: 'CMD' });
    await eventually(() => expect(service.messages(browser.clientHash).map((m) => m.messageId)).to.include(cmd));
    expect(requestsTo(browser).find((r) => r.topic === cmd.replace(/-/g, ''))).to.include({ urgency: 'normal' });
    // Once: by the time a later send arrived, the first had not come a second time (the wake above included).
    expect(service.messages(browser.clientHash).map((m) => m.messageId)).to.deep.equal([requestId, cmd]);
  });

  it('a 410 drops the subscription (NativeTokenRevoked); the next send skips it until the browser subscribes again', async () => {
    const dead = await subscribedDevice('web-dead');
    const alive = await subscribedDevice('web-alive');
    service.expire(dead.browser.clientHash);
    const first = await send(['web-dead', 'web-alive']);
    await eventually(async () => expect(await typesOf(`device-${dead.deviceId}`)).to.include('NativeTokenRevoked'));
    const revoked = (await eventsOf(`device-${dead.deviceId}`)).find((e) => e.type === 'NativeTokenRevoked')!;
    expect(revoked.data).to.include({ service: 'webpush' });
    expect(revoked.data.reason).to.match(/^410 /);
    const failed = await eventually(async () => {
      const events = await eventsOf(`platformpush-${first}.${dead.deviceId}`);
      expect(events.map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushFailed']);
      return events;
    });
    expect(failed[1]!.data).to.include({ final: true });
    expect(failed[1]!.data.error).to.match(/^410 /);

    const second = await send(['web-dead', 'web-alive']);
    await eventually(() =>
      expect(service.messages(alive.browser.clientHash).map((m) => m.messageId)).to.include(second),
    );
    await eventually(async () =>
      expect(await typesOf(`platformpush-${second}`)).to.deep.equal(['PlatformPushRequested', 'PlatformPushSent']),
    );
    expect(requestsTo(dead.browser)).to.have.length(1);

    // A re-registration (ONE-PUSH's register at the next login) does not bring the dropped subscription back.
    await register('web-dead');
    const third = await send(['web-dead', 'web-alive']);
    await eventually(() =>
      expect(service.messages(alive.browser.clientHash).map((m) => m.messageId)).to.include(third),
    );
    expect(requestsTo(dead.browser)).to.have.length(1);

    // Subscribing anew does.
    const renewed = await service.subscribe(publicKey);
    expect((await subscribe(admin, dead.deviceId, asJson(renewed))).data).to.deep.equal({ subscribeWebPush: true });
    const fourth = await send(['web-dead']);
    // Its messages still open go out too (as a device's after a revoked token: docs/platform-push.md), each
    // once — not the first, which was requested (and failed) already.
    await eventually(() =>
      expect(service.messages(renewed.clientHash).map((m) => m.messageId)).to.have.members([second, third, fourth]),
    );
  });

  it('a retry goes to no subscription the browser replaced or dropped since; a 410 for the old one never drops the new one', async () => {
    const { deviceId, browser: a } = await subscribedDevice('web-renewed');
    service.answer(a.clientHash, 503, 1);
    const first = await send(['web-renewed']);
    const firstStream = `platformpush-${first}.${deviceId}`;
    await eventually(async () =>
      expect(await typesOf(firstStream)).to.deep.equal(['PlatformPushRequested', 'PlatformPushFailed']),
    );
    // The browser subscribes anew (B); A answers 410 from now on, as a push service does once it is replaced.
    const b = await service.subscribe(publicKey);
    expect((await subscribe(admin, deviceId, asJson(b))).data).to.deep.equal({ subscribeWebPush: true });
    service.expire(a.clientHash);
    clock.advance(60_000);
    herald.platformPushes.wake();
    const retried = await eventually(async () => {
      const events = await eventsOf(firstStream);
      expect(events.map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
        'PlatformPushFailed',
      ]);
      return events[2]!.data as { final: boolean; error: string };
    });
    expect(retried.final).to.equal(true);
    expect(retried.error).to.match(/^SubscriptionReplaced: /);
    expect(requestsTo(a).map((r) => r.status)).to.deep.equal([503]);
    expect(await typesOf(`device-${deviceId}`)).to.not.include('NativeTokenRevoked');
    // B is the device's: it gets the next send (not the first, requested to A already).
    const second = await send(['web-renewed']);
    await eventually(() => expect(service.messages(b.clientHash).map((m) => m.messageId)).to.deep.equal([second]));

    // A logout on a shared computer (unsubscribeWebPush): the retry of a send B answered 503 goes nowhere.
    service.answer(b.clientHash, 503, 1);
    const third = await send(['web-renewed']);
    const thirdStream = `platformpush-${third}.${deviceId}`;
    await eventually(async () =>
      expect(await typesOf(thirdStream)).to.deep.equal(['PlatformPushRequested', 'PlatformPushFailed']),
    );
    const UNSUBSCRIBE = 'mutation($d: ID) { unsubscribeWebPush(deviceId: $d) }';
    expect((await graphql(url, admin, UNSUBSCRIBE, { d: deviceId })).data).to.deep.equal({ unsubscribeWebPush: true });
    clock.advance(60_000);
    herald.platformPushes.wake();
    const dropped = await eventually(async () => {
      const events = await eventsOf(thirdStream);
      expect(events).to.have.length(3);
      return events[2]!.data as { final: boolean; error: string };
    });
    expect(dropped).to.include({ final: true });
    expect(dropped.error).to.match(/^SubscriptionReplaced: /);
    expect(service.messages(b.clientHash).map((m) => m.messageId)).to.deep.equal([second]);
    expect(requestsTo(b).map((r) => r.status)).to.deep.equal([201, 503]);
  });

  it('429 is retried (not before its Retry-After) and then delivered once', async () => {
    const flaky = await subscribedDevice('web-flaky');
    service.answer(flaky.browser.clientHash, 429, 1, 20);
    const requestId = await send(['web-flaky']);
    const stream = `platformpush-${requestId}.${flaky.deviceId}`;
    const failed = await eventually(async () => {
      const events = await eventsOf(stream);
      expect(events.map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushFailed']);
      return events[1]!.data as { failedAt: string; retryAt: string; final: boolean };
    });
    expect(failed.final).to.equal(false);
    expect(Date.parse(failed.retryAt) - Date.parse(failed.failedAt)).to.equal(20_000);
    clock.advance(21_000);
    herald.platformPushes.wake();
    await eventually(async () =>
      expect(await typesOf(stream)).to.deep.equal(['PlatformPushRequested', 'PlatformPushFailed', 'PlatformPushSent']),
    );
    expect(requestsTo(flaky.browser).map((r) => r.status)).to.deep.equal([429, 201]);
    expect(service.messages(flaky.browser.clientHash)).to.have.length(1);
  });

  it('a 403 (VAPID refused) is a final failure with the reason', async () => {
    const refused = await subscribedDevice('web-refused');
    service.answer(refused.browser.clientHash, 403, 1);
    const requestId = await send(['web-refused']);
    const events = await eventually(async () => {
      const all = await eventsOf(`platformpush-${requestId}.${refused.deviceId}`);
      expect(all.map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushFailed']);
      return all;
    });
    expect(events[1]!.data).to.include({ final: true, error: '403 told to' });
    expect(await typesOf(`device-${refused.deviceId}`)).to.not.include('NativeTokenRevoked');
  });

  it("one app's VAPID key never pushes another app's devices", async () => {
    // A WEB device of app `other`, subscribed with a key `other` does not have yet.
    const othersKey = webpush.generateVAPIDKeys();
    const othersDevice = await register('web-other', 'other');
    const othersBrowser = await service.subscribe(othersKey.publicKey);
    expect((await subscribe(otherAdmin, othersDevice, asJson(othersBrowser))).data).to.deep.equal({
      subscribeWebPush: true,
    });
    const first = await send(['web-other'], {}, ['other', 'other-secret']);
    const marker = await subscribedDevice('web-marker');
    const markerId = await send(['web-marker']);
    await eventually(() =>
      expect(service.messages(marker.browser.clientHash).map((m) => m.messageId)).to.deep.equal([markerId]),
    );
    // camel's key was not used for other's device: nothing requested, nothing sent.
    expect(requestsTo(othersBrowser)).to.have.length(0);
    expect(await eventsOf(`platformpush-${first}`, otherAdmin)).to.deep.equal([]);

    // With its own pair, its device gets its messages, signed with its key (the push service checks the
    // JWT against the key the browser subscribed with: camel's would be refused).
    expect(
      (await graphql(url, otherAdmin, SET, { input: { subject: 'mailto:other@example.com', ...othersKey } })).data,
    ).to.deep.equal({
      setWebPushCredentials: { configured: true, publicKey: othersKey.publicKey, subject: 'mailto:other@example.com' },
    });
    await eventually(() => expect(service.messages(othersBrowser.clientHash)).to.have.length(1));
    expect(service.messages(othersBrowser.clientHash)[0]).to.include({ messageId: first, appId: 'other' });
    expect(requestsTo(othersBrowser).map((r) => r.status)).to.deep.equal([201]);
  });
});
