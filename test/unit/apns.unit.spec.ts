import net from 'node:net';
import { expect } from 'chai';
import {
  Apns,
  APNS_PAYLOAD_LIMIT_BYTES,
  ApnsConnection,
  apnsKey,
  apnsOutcome,
  apnsRequest,
  PROVIDER_TOKEN_REFRESH_MS,
  type ApnsCredentials,
} from '../../src/platformPush/apns';
import type { PlatformNotification } from '../../src/platformPush/platformPush';
import { apnsTestKey, startApnsStandIn, type ApnsStandIn, type ApnsTestKey } from '../support/apnsStandIn';
import { eventually } from '../support/eventually';

/** The APNs adapter against the stand-in (test/support/apnsStandIn.ts): Apple's provider API over HTTP/2 + TLS. */
describe('APNs client', function () {
  const TOKEN = 'a'.repeat(64);
  const notification = (overrides: Partial<PlatformNotification> = {}): PlatformNotification => ({
    messageId: '7d3c5a1e-0000-4000-8000-000000000001',
    appId: 'testapp1',
    token: TOKEN,
    alert: ' this is a alert',
    sound: 'default',
    badge: 1,
    extra: 'testmsg',
    tenantCode: 'xxx',
    pushMsgType: 'MSG',
    needConfirm: false,
    expiresAt: new Date('2030-01-01T00:00:00.000Z'),
    ...overrides,
  });
  let key: ApnsTestKey;
  let standIn: ApnsStandIn;
  let credentials: ApnsCredentials;
  const open: ApnsConnection[] = [];
  const connection = (options: { now?: () => number; maxStreams?: number } = {}) => {
    const made = new ApnsConnection(credentials, { host: standIn.url, ca: standIn.ca }, options);
    open.push(made);
    return made;
  };
  const signal = () => AbortSignal.timeout(5000);
  /** A TCP relay to the stand-in that can stop relaying: the peer goes silent, the socket stays open. */
  const relayToStandIn = async () => {
    const relayed = { frozen: false };
    const sockets = new Set<net.Socket>();
    const port = Number(new URL(standIn.url).port);
    const relay = net.createServer((client) => {
      const upstream = net.connect(port, '127.0.0.1');
      sockets.add(client).add(upstream);
      client.on('data', (chunk) => relayed.frozen || upstream.write(chunk));
      upstream.on('data', (chunk) => relayed.frozen || client.write(chunk));
      client.on('error', () => undefined);
      upstream.on('error', () => undefined);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    return Object.assign(relayed, {
      url: `https://127.0.0.1:${(relay.address() as net.AddressInfo).port}`,
      async close() {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => relay.close(resolve));
      },
    });
  };

  before(async () => {
    key = apnsTestKey('A');
    standIn = await startApnsStandIn([key]);
    credentials = {
      keyPem: key.keyPem,
      keyId: key.keyId,
      teamId: key.teamId,
      topic: key.topic,
      environment: 'sandbox',
    };
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    standIn.requests.length = 0;
    standIn.answerAll(undefined);
    standIn.hold(false);
  });
  after(() => standIn.close());

  describe('the request (pure)', () => {
    it("puts the seed's iOS fields in aps and the frame's others beside it; headers from the message", () => {
      const request = apnsRequest(notification(), 'com.example.a')!;
      expect(request.path).to.equal(`/3/device/${TOKEN}`);
      expect(request.headers).to.deep.include({
        'apns-topic': 'com.example.a',
        'apns-push-type': 'alert',
        'apns-priority': '10',
        'apns-expiration': String(Date.parse('2030-01-01T00:00:00.000Z') / 1000),
        'apns-id': '7d3c5a1e-0000-4000-8000-000000000001',
        'apns-collapse-id': '7d3c5a1e-0000-4000-8000-000000000001',
      });
      expect(JSON.parse(request.body)).to.deep.equal({
        aps: { alert: ' this is a alert', sound: 'default', badge: 1 },
        messageId: '7d3c5a1e-0000-4000-8000-000000000001',
        appId: 'testapp1',
        tenantCode: 'xxx',
        extra: 'testmsg',
        pushMsgType: 'MSG',
        needConfirm: false,
      });
    });

    it('leaves out sound and badge the sender did not give', () => {
      const body = JSON.parse(apnsRequest(notification({ sound: null, badge: null }), 't')!.body) as { aps: object };
      expect(body.aps).to.deep.equal({ alert: ' this is a alert' });
    });

    it('sends a CMD message as a background notification: content-available, priority 5, nothing shown', () => {
      const request = apnsRequest(notification({ pushMsgType: 'CMD' }), 't')!;
      expect(request.headers['apns-push-type']).to.equal('background');
      expect(request.headers['apns-priority']).to.equal('5');
      const body = JSON.parse(request.body) as { aps: object; alert: string };
      expect(body.aps).to.deep.equal({ 'content-available': 1 });
      expect(body.alert).to.equal(' this is a alert');
    });

    it('refuses a payload over 4 KB (counted in bytes), takes one at the limit', () => {
      const base = apnsRequest(notification({ extra: '' }), 't')!.body.length;
      expect(apnsRequest(notification({ extra: 'x'.repeat(APNS_PAYLOAD_LIMIT_BYTES - base) }), 't')).to.not.equal(
        undefined,
      );
      expect(apnsRequest(notification({ extra: 'x'.repeat(APNS_PAYLOAD_LIMIT_BYTES - base + 1) }), 't')).to.equal(
        undefined,
      );
      // 1,024 three-byte characters and a 4 KB extra: within herald's limits, over Apple's.
      expect(apnsRequest(notification({ alert: '消'.repeat(1024), extra: 'x'.repeat(1200) }), 't')).to.equal(undefined);
    });

    it('takes each documented answer as Apple documents it', () => {
      expect(apnsOutcome(200, undefined)).to.deep.equal({ ok: true });
      // A wrong environment (a sandbox token sent to production) answers BadDeviceToken for every token: revokes nothing.
      expect(apnsOutcome(400, 'BadDeviceToken')).to.include({ retry: false, tokenDead: false });
      expect(apnsOutcome(400, 'DeviceTokenNotForTopic')).to.include({ retry: false, tokenDead: false });
      expect(apnsOutcome(403, 'InvalidProviderToken')).to.include({ retry: false, tokenDead: false });
      expect(apnsOutcome(410, 'Unregistered')).to.include({ retry: false, tokenDead: true });
      expect(apnsOutcome(413, 'PayloadTooLarge')).to.include({ retry: false, tokenDead: false });
      expect(apnsOutcome(429, 'TooManyRequests')).to.include({ retry: true, tokenDead: false });
      expect(apnsOutcome(500, 'InternalServerError')).to.include({ retry: true });
      expect(apnsOutcome(503, 'ServiceUnavailable')).to.include({ retry: true });
      expect(apnsOutcome(410, 'Unregistered')).to.include({ reason: '410 Unregistered' });
      expect(apnsOutcome(410, 'Unregistered', 1_700_000_000_000)).to.include({ deadSince: 1_700_000_000_000 });
    });

    it('takes only EC P-256 keys, without quoting the key in its error', () => {
      expect(() => apnsKey('-----BEGIN PRIVATE KEY-----\nnotakey\n-----END PRIVATE KEY-----')).to.throw(
        'not a PEM private key',
      );
      expect(apnsKey(apnsTestKey().keyPem).asymmetricKeyType).to.equal('ec');
    });
  });

  describe('over HTTP/2 to the stand-in', () => {
    it('delivers with a provider token the stand-in verifies (ES256, kid, iss, iat), the headers and the payload', async () => {
      expect(await connection().send(notification(), signal())).to.deep.equal({ ok: true });
      const [seen] = standIn.delivered();
      expect(seen?.token).to.equal(TOKEN);
      expect(seen?.teamId).to.equal(key.teamId);
      expect(seen?.headers['apns-topic']).to.equal(key.topic);
      expect(seen?.payload).to.deep.include({ aps: { alert: ' this is a alert', sound: 'default', badge: 1 } });
    });

    it('answers each documented failure: 400, 403, 410, 429, 500, 503', async () => {
      const c = connection();
      const cases = [
        [400, 'BadDeviceToken', false, false],
        [400, 'DeviceTokenNotForTopic', false, false],
        [410, 'Unregistered', false, true],
        [429, 'TooManyRequests', true, false],
        [500, 'InternalServerError', true, false],
        [503, 'ServiceUnavailable', true, false],
      ] as const;
      for (const [status, reason, retry, tokenDead] of cases) {
        standIn.answer(TOKEN, { status, reason });
        expect(await c.send(notification(), signal())).to.deep.equal({
          ok: false,
          reason: `${status} ${reason}`,
          retry,
          tokenDead,
        });
      }
      // All over one connection.
      expect(standIn.requests).to.have.length(cases.length);
    });

    it('a payload over 4 KB never reaches Apple', async () => {
      const outcome = await connection().send(notification({ extra: 'x'.repeat(5000) }), signal());
      expect(outcome).to.deep.include({ ok: false, retry: false });
      expect(standIn.requests).to.have.length(0);
    });

    it('reuses its provider token, makes a new one at 50 minutes', async () => {
      let now = Date.now() - PROVIDER_TOKEN_REFRESH_MS - 60_000;
      const c = connection({ now: () => now });
      await c.send(notification(), signal());
      await c.send(notification(), signal());
      now += PROVIDER_TOKEN_REFRESH_MS + 1;
      await c.send(notification(), signal());
      // The stand-in saw three requests, all accepted: the first two under a token 51 minutes old by the
      // third, which went under a new one (an hour-old token would be ExpiredProviderToken).
      expect(standIn.requests.map((r) => r.status)).to.deep.equal([200, 200, 200]);
      const [a, b, c3] = standIn.requests.map((r) => r.issuedAt);
      expect(b).to.equal(a);
      expect(c3! - a!).to.be.greaterThanOrEqual(PROVIDER_TOKEN_REFRESH_MS / 1000);
    });

    it('on 403 ExpiredProviderToken makes a new token and tries once more', async () => {
      // A token dated 2 hours back: the stand-in refuses it as expired; the retry's new token (now) passes.
      const clock = [Date.now() - 2 * 3600_000];
      const c = connection({ now: () => clock.shift() ?? Date.now() });
      expect(await c.send(notification(), signal())).to.deep.equal({ ok: true });
      expect(standIn.requests.map((r) => [r.status, r.reason])).to.deep.equal([
        [403, 'ExpiredProviderToken'],
        [200, undefined],
      ]);
    });

    it('a 403 that stays is a failure, not a loop', async () => {
      standIn.answer(
        TOKEN,
        { status: 403, reason: 'InvalidProviderToken' },
        { status: 403, reason: 'InvalidProviderToken' },
      );
      expect(await connection().send(notification(), signal())).to.deep.include({ ok: false, retry: false });
      expect(standIn.requests).to.have.length(2);
    });

    it('a key that is not the one Apple knows is refused (InvalidProviderToken)', async () => {
      const other = apnsTestKey('B');
      const c = new ApnsConnection({ ...credentials, keyPem: other.keyPem }, { host: standIn.url, ca: standIn.ca });
      open.push(c);
      expect(await c.send(notification(), signal())).to.deep.include({ ok: false, reason: '403 InvalidProviderToken' });
    });

    it('bounds its streams: 200 notifications at once over one session, at most maxStreams open', async () => {
      const c = connection({ maxStreams: 8 });
      const sessionsBefore = standIn.sessions;
      standIn.hold(true);
      const sends = Array.from({ length: 200 }, (_, i) =>
        c.send(notification({ messageId: `7d3c5a1e-0000-4000-8000-${String(i).padStart(12, '0')}` }), signal()),
      );
      await eventually(() => expect(standIn.heldCount()).to.equal(8));
      standIn.hold(false);
      const outcomes = await Promise.all(sends);
      expect(outcomes.every((o) => o.ok)).to.equal(true);
      expect(standIn.delivered()).to.have.length(200);
      expect(new Set(standIn.delivered().map((r) => r.headers['apns-id'])).size).to.equal(200);
      expect(standIn.peakStreams).to.equal(8);
      expect(standIn.sessions - sessionsBefore).to.equal(1);
    });

    it('32 requests refused together with ExpiredProviderToken share one new token', async () => {
      // The first 32 reads of the clock (each request's token) are 2 hours back; every later read is a second later.
      let reads = 0;
      const old = Date.now() - 2 * 3600_000;
      const c = connection({ now: () => (++reads <= 32 ? old : Date.now() + (reads - 32) * 1000) });
      const outcomes = await Promise.all(Array.from({ length: 32 }, () => c.send(notification(), signal())));
      expect(outcomes.every((o) => o.ok)).to.equal(true);
      expect(standIn.requests.filter((r) => r.reason === 'ExpiredProviderToken')).to.have.length(32);
      expect(new Set(standIn.delivered().map((r) => r.issuedAt)).size).to.equal(1);
    });

    it('a waiter whose signal aborted leaves the queue: a release wakes the live one behind it', async () => {
      const c = connection({ maxStreams: 1 });
      standIn.hold(true);
      const first = c.send(notification(), signal());
      await eventually(() => expect(standIn.heldCount()).to.equal(1));
      const gone = new AbortController();
      const aborted = c.send(notification(), gone.signal).then(
        () => 'sent',
        () => 'aborted',
      );
      const live = c.send(notification(), signal());
      gone.abort();
      expect(await aborted).to.equal('aborted');
      standIn.hold(false);
      expect(await first).to.deep.equal({ ok: true });
      expect(await live).to.deep.equal({ ok: true });
    });

    it('wakes waiting requests when Apple raises its stream limit', async () => {
      const c = connection({ maxStreams: 8 });
      await c.send(notification(), signal());
      standIn.maxStreams(2);
      // The SETTINGS frame comes before this answer on the connection: the client has it after.
      await c.send(notification(), signal());
      standIn.hold(true);
      const sends = Array.from({ length: 6 }, () => c.send(notification(), signal()));
      await eventually(() => expect(standIn.heldCount()).to.equal(2));
      standIn.maxStreams(8);
      await eventually(() => expect(standIn.heldCount()).to.equal(6));
      standIn.hold(false);
      expect((await Promise.all(sends)).every((o) => o.ok)).to.equal(true);
    });

    it('a stream reset without an answer (RST_STREAM NO_ERROR) fails at once, retryable (a throw)', async () => {
      standIn.answer(TOKEN, { status: 0 });
      const started = Date.now();
      const error = await connection()
        .send(notification(), signal())
        .then(
          () => undefined,
          (e: Error) => e,
        );
      expect(error?.message).to.match(/without an answer \(rstCode 0\)/);
      expect(Date.now() - started).to.be.below(2000);
    });

    it('an attempt that timed out on a healthy session fails alone: its sibling streams are answered, same session', async () => {
      const c = new ApnsConnection(credentials, { host: standIn.url, ca: standIn.ca }, { probeTimeoutMs: 300 });
      open.push(c);
      expect(await c.send(notification(), signal())).to.deep.equal({ ok: true });
      const before = standIn.sessions;
      standIn.hold(true);
      const siblings = Array.from({ length: 8 }, () => c.send(notification(), signal()));
      const slow = c.send(notification(), AbortSignal.timeout(300)).catch((e: unknown) => e);
      await eventually(() => expect(standIn.heldCount()).to.equal(9));
      expect(await slow).to.be.instanceOf(Error);
      // The probe's ping is answered within its deadline (a wait past it: nothing must happen).
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(c.connected).to.equal(true);
      standIn.hold(false);
      expect(await Promise.all(siblings)).to.deep.equal(siblings.map(() => ({ ok: true })));
      expect(await c.send(notification(), signal())).to.deep.equal({ ok: true });
      expect(standIn.sessions).to.equal(before);
    });

    it('an attempt that timed out on a peer that stopped answering gets the session replaced', async () => {
      const relay = await relayToStandIn();
      try {
        // No idle ping within the test: only the timed-out attempt's probe can find the hung peer.
        const c = new ApnsConnection(
          credentials,
          { host: relay.url, ca: standIn.ca },
          { pingIntervalMs: 60_000, probeTimeoutMs: 300 },
        );
        open.push(c);
        expect(await c.send(notification(), signal())).to.deep.equal({ ok: true });
        const before = standIn.sessions;
        relay.frozen = true;
        expect(await c.send(notification(), AbortSignal.timeout(300)).catch((e: unknown) => e)).to.be.instanceOf(Error);
        await eventually(() => expect(c.connected).to.equal(false), { timeoutMs: 3000 });
        relay.frozen = false;
        expect(await c.send(notification(), signal())).to.deep.equal({ ok: true });
        expect(standIn.sessions).to.equal(before + 1);
      } finally {
        await relay.close();
      }
    });

    it('an idle session that stops answering (pings unanswered) is destroyed', async () => {
      const relay = await relayToStandIn();
      try {
        const c = new ApnsConnection(
          credentials,
          { host: relay.url, ca: standIn.ca },
          { pingIntervalMs: 100, pingTimeoutMs: 300 },
        );
        open.push(c);
        expect(await c.send(notification(), signal())).to.deep.equal({ ok: true });
        // Answered pings keep it (a few ping rounds; a check that nothing happens, not a wait for a result).
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(c.connected).to.equal(true);
        relay.frozen = true;
        await eventually(() => expect(c.connected).to.equal(false), { timeoutMs: 3000 });
      } finally {
        await relay.close();
      }
    });

    it('a connect that never finishes its TLS handshake fails at the connect deadline, not the attempt timeout', async () => {
      const silent = net.createServer(() => undefined);
      const sockets = new Set<net.Socket>();
      silent.on('connection', (socket) => sockets.add(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const c = new ApnsConnection(
          credentials,
          { host: `https://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, ca: standIn.ca },
          { connectTimeoutMs: 200 },
        );
        open.push(c);
        const started = Date.now();
        const error = await c.send(notification(), AbortSignal.timeout(5000)).catch((e: Error) => e);
        expect(error).to.be.instanceOf(Error);
        expect(Date.now() - started).to.be.below(2000);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });

    it('connects again after a GOAWAY', async () => {
      const c = connection();
      await c.send(notification(), signal());
      const before = standIn.sessions;
      standIn.goAway();
      // The next send after the GOAWAY arrives (polled, not slept) goes over a new session.
      const deadline = Date.now() + 5000;
      let outcome = await c.send(notification(), signal()).catch((error: Error) => error);
      while (!(outcome instanceof Error) && standIn.sessions === before && Date.now() < deadline)
        outcome = await c.send(notification(), signal()).catch((error: Error) => error);
      if (outcome instanceof Error) outcome = await c.send(notification(), signal());
      expect(outcome).to.deep.equal({ ok: true });
      expect(standIn.sessions).to.be.greaterThan(before);
    });

    it('a host that does not answer fails the attempt at its signal (a throw: retried)', async () => {
      const c = new ApnsConnection(credentials, { host: 'https://127.0.0.1:1', ca: standIn.ca });
      open.push(c);
      let error: unknown;
      await c.send(notification(), AbortSignal.timeout(2000)).catch((e: unknown) => (error = e));
      expect(error).to.be.instanceOf(Error);
    });

    it("each app's notifications go with that app's own key; an app without credentials is not sent", async () => {
      const b = apnsTestKey('B');
      const both = await startApnsStandIn([key, b]);
      const apns = new Apns(
        async (appId) =>
          appId === 'appA'
            ? credentials
            : appId === 'appB'
              ? { keyPem: b.keyPem, keyId: b.keyId, teamId: b.teamId, topic: b.topic, environment: 'sandbox' }
              : undefined,
        { host: both.url, ca: both.ca },
      );
      try {
        expect(await apns.send(notification({ appId: 'appA' }), signal())).to.deep.equal({ ok: true });
        expect(await apns.send(notification({ appId: 'appB' }), signal())).to.deep.equal({ ok: true });
        expect(await apns.send(notification({ appId: 'appC' }), signal())).to.deep.include({ ok: false, retry: false });
        expect(both.requests.map((r) => [r.teamId, r.headers['apns-topic']])).to.deep.equal([
          [key.teamId, key.topic],
          [b.teamId, b.topic],
        ]);
      } finally {
        await apns.close();
        await both.close();
      }
    });
  });
});
