import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import webpush from 'web-push';
import type { Config } from '../../src/config';
import type { Herald } from '../../src/herald';
import { eventually } from '../support/eventually';
import { graphql, Terminal } from '../support/graphqlClient';
import { issueTicket, postForm, startHeraldOn, TestClock } from '../support/herald';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { storedEvents } from '../support/storedEvents';
import { startWebPushService, type BrowserSubscription, type WebPushService } from '../support/webPushService';

/**
 * Koala's messages (shared/seeds/000_83e3b79cc88886e5.txt, sent through /koala/api/mas/messages) to a user
 * whose web terminal is closed reach the browser the SDK's subscribeWebPush registered, through Web Push
 * (docs/platform-push.md, "Koala's web terminals"), against web-push-testing (test/support/webPushService.ts:
 * it checks the VAPID JWT against the key the browser subscribed with and decrypts each message).
 */
describe("platform push: Koala's messages to users' closed browsers through Web Push", function () {
  this.timeout(90_000);
  const clock = new TestClock();
  let service: WebPushService;
  let testDatabase: TestDatabase;
  let herald: Herald;
  let url: string;
  let admin: string;
  let otherAdmin: string;
  let sender: string;
  let publicKey: string;
  const othersKey = webpush.generateVAPIDKeys();
  const credentialsKey = randomBytes(32).toString('hex');
  const metricsToken = randomBytes(24).toString('hex');
  const terminals: Terminal[] = [];

  // With REDIS_URL (CI's second pass) the nodes share presence through Redis, as several nodes do.
  const REDIS_URL = process.env.REDIS_URL;
  const overrides = (): Partial<Config> => ({
    credentialsKey,
    metricsToken,
    webPushEndpoint: { allowedOrigins: [service.origin] },
    ...(REDIS_URL !== undefined && { redisUrl: REDIS_URL }),
  });
  const start = async () => {
    herald = await startHeraldOn(testDatabase.connectionString, overrides(), clock.now);
    url = herald.url;
  };
  const SET = `mutation($input: WebPushCredentialsInput!) { setWebPushCredentials(input: $input) { publicKey } }`;
  const eventsOf = (stream: string, ticket = admin) => storedEvents(url, ticket, { stream });
  const requestsTo = (s: BrowserSubscription) => service.requests.filter((r) => r.clientHash === s.clientHash);

  /** The SDK's subscribeWebPush as the user: a WEB device of the ticket's user, its browser subscribed. */
  const subscribedBrowser = async (userId: string, app: 'camel' | 'other' = 'camel') => {
    const ticket = await issueTicket(url, userId, '', app, app === 'camel' ? 'EERWERRRRE' : 'other-secret');
    const nativeToken = `browser-${randomBytes(6).toString('hex')}`;
    const registered = await graphql<{ registerDevice: { device: { id: string } } }>(
      url,
      ticket,
      'mutation($t: String!) { registerDevice(input: { platform: WEB, nativeToken: $t }) { device { id } } }',
      { t: nativeToken },
    );
    expect(registered.errors, JSON.stringify(registered.errors)).to.equal(undefined);
    const deviceId = registered.data!.registerDevice.device.id;
    const browser = await service.subscribe(app === 'camel' ? publicKey : othersKey.publicKey);
    const answer = await graphql(
      url,
      ticket,
      'mutation($d: ID, $s: WebPushSubscriptionInput!) { subscribeWebPush(deviceId: $d, subscription: $s) }',
      { d: deviceId, s: { endpoint: browser.endpoint, expirationTime: null, keys: browser.keys } },
    );
    expect(answer.errors, JSON.stringify(answer.errors)).to.equal(undefined);
    return { deviceId, browser, ticket, nativeToken };
  };
  /** ONE-PUSH's open register (no secret): a WEB device claiming `alias`. */
  const restRegister = async (alias: string, nativeToken: string) => {
    const response = await fetch(`${url}/msgpush/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ appId: 'camel', alias, platform: 'WEB', nativeToken }),
    });
    expect(response.status).to.equal(200);
    return (await response.json()) as { id: string; token: string };
  };
  /** Koala's sendMessage (seed §3.2) from `sender`. */
  const send = async (users: string, fields: Record<string, string> = {}, ticket = sender) => {
    const { body } = await postForm(`${url}/koala/api/mas/messages`, {
      tickets: ticket,
      users,
      title: 'system upgrade',
      content: 'system patching 20:21',
      ...fields,
    });
    expect(body.status, JSON.stringify(body)).to.equal(0);
    return body.result as string;
  };
  const online = async (userId: string) => {
    const terminal = Terminal.connect(url, { ticket: await issueTicket(url, userId), pending: true });
    terminals.push(terminal);
    await eventually(async () => expect((await herald.terminals.onlineAmong('camel', [userId])).size).to.equal(1));
    return terminal;
  };
  before(async () => {
    service = await startWebPushService();
    testDatabase = await createTestDatabase();
    await start();
    admin = await issueTicket(url, 'boss', 'admin');
    otherAdmin = await issueTicket(url, 'boss', 'admin', 'other', 'other-secret');
    sender = await issueTicket(url, 'zhangbin');
    const set = await graphql<{ setWebPushCredentials: { publicKey: string } }>(url, admin, SET, {
      input: { subject: 'mailto:ops@example.com' },
    });
    publicKey = set.data!.setWebPushCredentials.publicKey;
    const other = await graphql(url, otherAdmin, SET, { input: { subject: 'mailto:other@example.com', ...othersKey } });
    expect(other.errors).to.equal(undefined);
  });
  afterEach(async () => {
    for (const terminal of terminals.splice(0)) await terminal.close();
  });
  after(async () => {
    await herald?.close();
    await testDatabase?.drop();
    await service?.close();
  });

  /** Sends to a fresh offline user and waits until it arrives: the looks and attempts before are done. */
  const settled = async () => {
    const userId = `settle-${randomBytes(4).toString('hex')}`;
    const { browser: settler } = await subscribedBrowser(userId);
    const id = await send(userId);
    await eventually(() => expect(service.messages(settler.clientHash).map((m) => m.id)).to.deep.equal([id]));
  };

  it("a message to a user with no open page reaches the user's browser once, decrypted: the socket's Message_t, TTL, Urgency, Topic", async () => {
    const { deviceId, browser } = await subscribedBrowser('jiangxiaoyu');
    const messageId = await send('jiangxiaoyu,zhouyang', { expire: '3600', props: '' });
    await eventually(() => expect(service.messages(browser.clientHash)).to.have.length(1));
    const [pushed] = service.messages(browser.clientHash);
    const stream = `platformpush-${messageId}.${deviceId}`;
    // The outcome is recorded once the push service answered.
    const events = await eventually(async () => {
      const all = await eventsOf(stream);
      expect(all.map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushSent']);
      return all;
    });
    expect(events[0]!.data).to.include({
      pushId: messageId,
      deviceId,
      appId: 'camel',
      service: 'webpush',
      why: 'offline',
      userId: 'jiangxiaoyu',
    });
    // The page that opens later gets the same message over its socket (the SDK's pending replay): same id, same seq.
    const terminal = Terminal.connect(url, { ticket: await issueTicket(url, 'jiangxiaoyu'), pending: true });
    terminals.push(terminal);
    await terminal.until((t) => t.received.some((m) => m.id === messageId), 'the pending message');
    const overSocket = terminal.received.find((m) => m.id === messageId)!;
    expect(pushed).to.deep.equal({
      id: messageId,
      meta: overSocket.meta,
      title: 'system upgrade',
      content: 'system patching 20:21',
      props: {},
      expiresAt: overSocket.expiresAt,
    });
    expect(overSocket.meta).to.include({ realm: 'camel', sender: 'zhangbin' });
    const [request] = requestsTo(browser);
    expect(request).to.include({ status: 201, urgency: 'high', topic: messageId.replace(/-/g, '') });
    expect(Number(request!.ttl)).to.be.within(3500, 3600);
    // Once: later looks and attempts add nothing.
    await settled();
    expect(requestsTo(browser)).to.have.length(1);
    expect((await eventsOf(stream)).map((e) => e.type)).to.deep.equal(['PlatformPushRequested', 'PlatformPushSent']);
    const metrics = await (
      await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })
    ).text();
    expect(metrics).to.match(/herald_platform_pushes_total\{platform="WEB",outcome="sent"\} [1-9]/);
  });

  it("`expire` 0 (forever) is pushed with the push services' maximum TTL, 28 days", async () => {
    const { browser } = await subscribedBrowser('forever');
    await send('forever');
    await eventually(() => expect(requestsTo(browser).map((r) => r.status)).to.deep.equal([201]));
    expect(Number(requestsTo(browser)[0]!.ttl)).to.be.within(28 * 86_400 - 60, 28 * 86_400);
  });

  it('a user with an open `messages` subscription gets it over the socket, not through Web Push', async () => {
    const { browser, deviceId } = await subscribedBrowser('reading');
    const terminal = await online('reading');
    const messageId = await send('reading');
    await terminal.until((t) => t.received.some((m) => m.id === messageId), 'the message');
    await settled();
    expect(requestsTo(browser)).to.have.length(0);
    expect(await eventsOf(`platformpush-${messageId}.${deviceId}`)).to.deep.equal([]);
    // The page closed: the next message goes through Web Push.
    await terminal.close();
    await eventually(async () => expect((await herald.terminals.onlineAmong('camel', ['reading'])).size).to.equal(0));
    const next = await send('reading');
    await eventually(() => expect(service.messages(browser.clientHash).map((m) => m.id)).to.deep.equal([next]));
  });

  it("an alias is only a claim: a browser subscribed with a device token of ONE-PUSH's open register for the user's alias gets none of the user's messages", async () => {
    const victim = await subscribedBrowser('victim');
    // The attacker: no secret, the victim's alias, its own push endpoint and keys, its device token.
    const attacker = await restRegister('victim', `attacker-${randomBytes(6).toString('hex')}`);
    const stolen = await service.subscribe(publicKey);
    const answer = await graphql(
      url,
      attacker.token,
      'mutation($s: WebPushSubscriptionInput!) { subscribeWebPush(subscription: $s) }',
      { s: { endpoint: stolen.endpoint, expirationTime: null, keys: stolen.keys } },
    );
    expect(answer.errors, JSON.stringify(answer.errors)).to.equal(undefined);
    const messageId = await send('victim');
    await eventually(() =>
      expect(service.messages(victim.browser.clientHash).map((m) => m.id)).to.deep.equal([messageId]),
    );
    await settled();
    expect(requestsTo(stolen)).to.have.length(0);
    expect(await eventsOf(`platformpush-${messageId}.${attacker.id}`)).to.deep.equal([]);

    // The victim's own browser registered again over the open register (anyone who learnt its native token):
    // it stays the device's for ONE-PUSH, no more the user's for Koala, until the user subscribes it again.
    await restRegister('victim', victim.nativeToken);
    const next = await send('victim');
    await settled();
    expect(service.messages(victim.browser.clientHash).map((m) => m.id)).to.deep.equal([messageId]);
    expect(await eventsOf(`platformpush-${next}.${victim.deviceId}`)).to.deep.equal([]);
    expect(requestsTo(stolen)).to.have.length(0);
  });

  it("a pending retry stops when the browser is registered for another user (a shared computer): A's message never reaches B", async () => {
    const { browser, deviceId, nativeToken } = await subscribedBrowser('first-user');
    service.answer(browser.clientHash, 503, 1);
    const messageId = await send('first-user');
    const stream = `platformpush-${messageId}.${deviceId}`;
    await eventually(async () =>
      expect((await eventsOf(stream)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
      ]),
    );
    // B logs in on the same browser: the app's server registers it for B (ONE-PUSH's register).
    await restRegister('second-user', nativeToken);
    clock.advance(6_000);
    herald.platformPushes.wake();
    await eventually(async () => {
      const last = (await eventsOf(stream)).at(-1)!;
      expect(last.type).to.equal('PlatformPushFailed');
      expect(last.data).to.include({ final: true });
      expect(last.data.error).to.match(/^NotTheUsersBrowser/);
    });
    expect(requestsTo(browser).map((r) => r.status)).to.deep.equal([503]);
  });

  it('a messages subscription that replays nothing (neither pending nor since) does not hold a push back', async () => {
    const { browser } = await subscribedBrowser('live-only');
    const terminal = Terminal.connect(url, { ticket: await issueTicket(url, 'live-only') });
    terminals.push(terminal);
    // Its feed is live (it gets messages as they arrive) but replays none: sent until one arrives live (the
    // feed has begun; those before it reached nothing but the browser), then one more, pushed too.
    const sent: string[] = [];
    await eventually(
      async () => {
        const id = await send('live-only');
        sent.push(id);
        await terminal.until((t) => t.received.some((m) => m.id === id), 'a message, live', 1_000);
      },
      { timeoutMs: 20_000 },
    );
    const second = await send('live-only');
    sent.push(second);
    await terminal.until((t) => t.received.some((m) => m.id === second), 'the next message, live');
    await eventually(() =>
      expect(service.messages(browser.clientHash).map((m) => m.id))
        .to.have.members(sent)
        .and.have.length(sent.length),
    );
  });

  it('an expired message is not pushed: neither requested once expired, nor attempted after it expired', async () => {
    const { browser, deviceId } = await subscribedBrowser('late');
    // Expired before the leader looked.
    await herald.koalaWebPushes.stop();
    const expired = await send('late', { expire: '5' });
    clock.advance(6_000);
    herald.koalaWebPushes.start();
    await settled();
    expect(requestsTo(browser)).to.have.length(0);
    expect(await eventsOf(`platformpush-${expired}.${deviceId}`)).to.deep.equal([]);

    // Requested, refused once (503: retried after 5 s), expired before the retry: nothing more is sent.
    service.answer(browser.clientHash, 503, 1);
    const retried = await send('late', { expire: '20' });
    const stream = `platformpush-${retried}.${deviceId}`;
    await eventually(async () =>
      expect((await eventsOf(stream)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
      ]),
    );
    clock.advance(21_000);
    herald.platformPushes.wake();
    await eventually(async () =>
      expect((await eventsOf(stream)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
        'PlatformPushFailed',
      ]),
    );
    const last = (await eventsOf(stream)).at(-1)!;
    expect(last.data).to.include({ final: true, error: 'AlreadyEnded: the message expired' });
    expect(requestsTo(browser).map((r) => r.status)).to.deep.equal([503]);
  });

  it("one app's VAPID key never pushes another app's users: the same user id in another app is untouched", async () => {
    const camels = await subscribedBrowser('shared-name');
    const others = await subscribedBrowser('shared-name', 'other');
    const camelMessage = await send('shared-name');
    await eventually(() =>
      expect(service.messages(camels.browser.clientHash).map((m) => m.id)).to.deep.equal([camelMessage]),
    );
    await settled();
    expect(requestsTo(others.browser)).to.have.length(0);
    expect(await eventsOf(`platformpush-${camelMessage}.${others.deviceId}`)).to.deep.equal([]);
    // Its own app's message reaches it, signed with its own key (the push service checks it: camel's would be refused).
    const otherMessage = await send('shared-name', {}, await issueTicket(url, 'someone', '', 'other', 'other-secret'));
    await eventually(() =>
      expect(service.messages(others.browser.clientHash).map((m) => m.id)).to.deep.equal([otherMessage]),
    );
    expect(service.messages(others.browser.clientHash)[0]!.meta).to.include({ realm: 'other' });
    expect(requestsTo(others.browser).map((r) => r.status)).to.deep.equal([201]);
    expect(requestsTo(camels.browser)).to.have.length(1);
  });

  it('a terminal open on another node counts: presence is shared across nodes (Redis)', async function () {
    if (REDIS_URL === undefined) return this.skip();
    const second = await startHeraldOn(testDatabase.connectionString, overrides(), clock.now);
    const leads = async (node: Herald) => (await node.readiness()).checks.leadsBackgroundWork;
    try {
      // The first node leads (it looks and sends); the terminal is on the second.
      expect([await leads(herald), await leads(second)]).to.deep.equal([true, false]);
      const { browser, deviceId } = await subscribedBrowser('elsewhere');
      const terminal = Terminal.connect(second.url, {
        ticket: await issueTicket(second.url, 'elsewhere'),
        pending: true,
      });
      terminals.push(terminal);
      await eventually(async () =>
        expect((await herald.terminals.onlineAmong('camel', ['elsewhere'])).size).to.equal(1),
      );
      const messageId = await send('elsewhere');
      await terminal.until((t) => t.received.some((m) => m.id === messageId), 'the message on the second node');
      await settled();
      expect(requestsTo(browser)).to.have.length(0);
      expect(await eventsOf(`platformpush-${messageId}.${deviceId}`)).to.deep.equal([]);
    } finally {
      for (const terminal of terminals.splice(0)) await terminal.close();
      await second.close();
    }
  });

  it('a restart mid-retry delivers once; the next leader requests nothing again', async () => {
    const { browser, deviceId } = await subscribedBrowser('flaky');
    service.answer(browser.clientHash, 503, 1);
    const messageId = await send('flaky');
    const stream = `platformpush-${messageId}.${deviceId}`;
    await eventually(async () =>
      expect((await eventsOf(stream)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
      ]),
    );
    await herald.close();
    // Down past the retry's time; the next node (the same database) makes it.
    clock.advance(6_000);
    await start();
    admin = await issueTicket(url, 'boss', 'admin');
    sender = await issueTicket(url, 'zhangbin');
    await eventually(async () =>
      expect((await eventsOf(stream)).map((e) => e.type)).to.deep.equal([
        'PlatformPushRequested',
        'PlatformPushFailed',
        'PlatformPushSent',
      ]),
    );
    await settled();
    expect(requestsTo(browser).map((r) => r.status)).to.deep.equal([503, 201]);
    expect(service.messages(browser.clientHash).map((m) => m.id)).to.deep.equal([messageId]);
    expect((await eventsOf(stream)).map((e) => e.type)).to.deep.equal([
      'PlatformPushRequested',
      'PlatformPushFailed',
      'PlatformPushSent',
    ]);
  });
});
