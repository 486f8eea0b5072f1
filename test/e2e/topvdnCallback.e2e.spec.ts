import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { APP_CALLBACK_TARGET, deliveryStreamName } from '../../domain/device/delivery';
import { pushIdOfSentId } from '../../domain/device/push';
import { eventually } from '../support/eventually';
import { issueTicket, startTestHerald, TestClock } from '../support/herald';
import { streamEvents } from '../support/storedEvents';

/** A delivery's status as its last recorded event says it (the statuses of `Push.deliveries`). */
const STATUS_OF_LAST_EVENT: Record<string, string> = {
  MessageDelivered: 'delivered',
  DeliveryRetried: 'delivered',
  DeliveryConfirmed: 'confirmed',
  DeliveryDropped: 'dropped',
};
/** The events of a topvdn push's delivery to the app's callback URL, read by the app's admin (GraphQL `events`). */
const callbackEvents = (baseUrl: string, admin: string, requestId: string) =>
  streamEvents(baseUrl, admin, deliveryStreamName(pushIdOfSentId(requestId), APP_CALLBACK_TARGET));
const callbackStatus = async (baseUrl: string, admin: string, requestId: string) =>
  STATUS_OF_LAST_EVENT[(await callbackEvents(baseUrl, admin, requestId)).at(-1)?.type ?? ''];

// topvdn `callback: 1` (shared/seeds/002_66d9dfe67c8bed29.txt): the message also goes to the app's own
// server, at the URL it set with PUT /v2/message/callback (docs/delivery.md); a 2xx confirms it.
describe('topvdn: app callbacks', function () {
  this.timeout(60_000);
  const clock = new TestClock();
  let url: string;
  let stop: () => Promise<void>;
  let herald: Awaited<ReturnType<typeof startTestHerald>>['herald'];
  let admin: string;
  // The app's server: records each POST, answers with the next status queued (200 when none).
  const received: Array<Record<string, unknown>> = [];
  const answers: number[] = [];
  let appServer: http.Server;
  let callbackUrl: string;

  before(async () => {
    ({ url, stop, herald } = await startTestHerald({ callbackPrivateNetworks: 'allow' }, clock.now));
    admin = await issueTicket(url, 'callback-auditor', 'admin');
    appServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        received.push(JSON.parse(body) as Record<string, unknown>);
        res.statusCode = answers.shift() ?? 200;
        res.end();
      });
    });
    await new Promise<void>((resolve) => appServer.listen(0, '127.0.0.1', resolve));
    callbackUrl = `http://127.0.0.1:${(appServer.address() as AddressInfo).port}/topvdn`;
  });
  after(async () => {
    await stop();
    await new Promise((resolve) => appServer.close(resolve));
  });

  const app = { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' };
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = app) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const sender = async () => {
    const { body } = await call(
      'POST',
      '/msgpush/register',
      { alias: 'cb', appId: 'camel', platform: 'ANDROID', nativeToken: `cb-${Date.now()}-${Math.random()}` },
      {},
    );
    return body as { token: string };
  };
  const clientPush = async (token: string, flag: number) =>
    (
      await call(
        'POST',
        '/v2/message/client/push',
        { msg: 'aGVsbG8=', flag, callback: 1, access_tokens: [] },
        { 'x-client-token': token },
      )
    ).body.request_id as string;

  it('sets, reads and removes the URL; refuses a bad one (400) and a wrong key (401)', async () => {
    expect(await call('GET', '/v2/message/callback')).to.deep.equal({ status: 200, body: { url: null } });
    expect(await call('PUT', '/v2/message/callback', { url: callbackUrl })).to.deep.equal({
      status: 200,
      body: { url: callbackUrl },
    });
    expect((await call('GET', '/v2/message/callback')).body.url).to.equal(callbackUrl);
    expect((await call('PUT', '/v2/message/callback', { url: 'ftp://example.com/' })).status).to.equal(400);
    expect((await call('PUT', '/v2/message/callback', { url: 7 })).status).to.equal(400);
    expect(
      (await call('PUT', '/v2/message/callback', { url: callbackUrl }, { 'x-app-id': 'camel', 'x-app-key': 'wrong' }))
        .status,
    ).to.equal(401);
    expect(
      (await call('GET', '/v2/message/callback', undefined, { 'x-app-id': 'other', 'x-app-key': 'other-secret' })).body
        .url,
    ).to.equal(null);
  });

  it('flag 2: POSTs the message to the app until it answers 2xx, at the retry schedule', async () => {
    await call('PUT', '/v2/message/callback', { url: callbackUrl });
    const { token } = await sender();
    answers.push(500);
    const before = received.length;
    const id = await clientPush(token, 2);
    await eventually(() => expect(received.length).to.equal(before + 1));
    expect(received[before]).to.deep.include({ request_id: id, msg: 'aGVsbG8=', flag: 2 });
    // The seed's request_id form, as the sender was answered: 32 hex digits.
    expect(received[before]!.request_id).to.match(/^[0-9a-f]{32}$/);
    expect(received[before]!.from).to.be.a('number');
    // The attempt is recorded once the app has answered (500: not confirmed).
    await eventually(async () => expect(await callbackStatus(url, admin, id)).to.equal('delivered'));
    clock.advance(1000);
    // herald's timers run on its own clock: the test wakes the sender after advancing it (no public way),
    // again while waiting, as the sender reads what is due from a read model that may trail the event.
    await eventually(async () => {
      herald.appCallbacks.wake();
      expect(await callbackStatus(url, admin, id)).to.equal('confirmed');
    });
    expect(received.length).to.equal(before + 2);
    // Confirmed: no more POSTs, however much time passes.
    clock.advance(20_000);
    herald.appCallbacks.wake();
    const next = await clientPush(token, 3);
    await eventually(() => expect(received.map((r) => r.request_id)).to.include(next));
    expect(received.filter((r) => r.request_id === id)).to.have.length(2);
  });

  it('flag 3: one POST whatever the answer; an app without a URL gets none and the delivery is dropped', async () => {
    const { token } = await sender();
    answers.push(503);
    const before = received.length;
    const once = await clientPush(token, 3);
    await eventually(() => expect(received.length).to.equal(before + 1));
    clock.advance(6000);
    herald.appCallbacks.wake();
    herald.gateway.wake();
    await eventually(async () => expect(await callbackStatus(url, admin, once)).to.equal('delivered'));
    expect(received.filter((r) => r.request_id === once)).to.have.length(1);

    await call('PUT', '/v2/message/callback', { url: null });
    const nowhere = await clientPush(token, 2);
    await eventually(async () => expect(await callbackStatus(url, admin, nowhere)).to.equal('dropped'));
    const events = await callbackEvents(url, admin, nowhere);
    expect(events.map((e) => [e.type, (e.data as { reason?: string }).reason])).to.deep.equal([
      ['DeliveryDropped', 'no_callback_url'],
    ]);
    expect(received.map((r) => r.request_id)).to.not.include(nowhere);
  });

  it("callback 1 with every access token stale: taken (the app's server gets it), msg POSTed in the standard form", async () => {
    await call('PUT', '/v2/message/callback', { url: callbackUrl });
    const { token } = await sender();
    const before = received.length;
    // hello as Android's Base64.DEFAULT writes it, to a peer token that names no device.
    const answer = await call(
      'POST',
      '/v2/message/client/push',
      { msg: 'aGVsbG8=\n', flag: 3, callback: 1, access_tokens: ['1_1_1_stale'] },
      { 'x-client-token': token },
    );
    expect(answer.status).to.equal(200);
    expect(answer.body.skipped_tokens).to.deep.equal(['1_1_1_stale']);
    await eventually(() => expect(received.length).to.equal(before + 1));
    expect(received[before]).to.deep.include({ request_id: answer.body.request_id, msg: 'aGVsbG8=', flag: 3 });
  });

  it('by default, POSTs to no loopback, private or link-local address (HERALD_CALLBACK_PRIVATE_NETWORKS)', async () => {
    const guarded = await startTestHerald({}, clock.now);
    try {
      const headers = { 'content-type': 'application/json', 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' };
      await fetch(`${guarded.url}/v2/message/callback`, {
        method: 'PUT',
        headers,
        body: JSON.stringify({ url: callbackUrl }),
      });
      const device = (await (
        await fetch(`${guarded.url}/msgpush/register`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ alias: 'cb', appId: 'camel', platform: 'ANDROID', nativeToken: 'guarded' }),
        })
      ).json()) as { token: string };
      const before = received.length;
      const answer = await fetch(`${guarded.url}/v2/message/client/push`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-client-token': device.token },
        body: JSON.stringify({ msg: 'aGVsbG8=', flag: 3, callback: 1, access_tokens: [] }),
      });
      const id = ((await answer.json()) as { request_id: string }).request_id;
      // The attempt is made and fails (no connection): recorded, and nothing reached the app's server.
      const guardedAdmin = await issueTicket(guarded.url, 'callback-auditor', 'admin');
      await eventually(async () => expect(await callbackStatus(guarded.url, guardedAdmin, id)).to.equal('delivered'));
      expect(received.length).to.equal(before);
    } finally {
      await guarded.stop();
    }
  });
});
