import { expect } from 'chai';
import { appendedEvents, appendedSince, TEST_METRICS_TOKEN, type AppendedEvents } from '../support/appendedEvents';
import { DeviceSocket } from '../support/deviceSocket';
import { eventually } from '../support/eventually';
import { issueTicket, startTestHerald, TestClock } from '../support/herald';
import { pushDeliveries } from '../support/pushDeliveries';
import { streamEvents } from '../support/storedEvents';

// topvdn's custom message push on the wire (shared/seeds/002_66d9dfe67c8bed29.txt): client push with a
// device token, server push (proxy 0: a batch to device numbers, proxy 1: on behalf of devices), the
// frames devices receive on /msgpush.ws, flag 2 (tries at 0, 1, 3, 6, 11 s, dropped at 16 s) and flag
// 3 (once), and the errors.

interface Registered {
  id: string;
  clientId: number;
  token: string;
}
interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

const HELLO = Buffer.from('hello').toString('base64');
/** The seed's request_id: 32 lowercase hex digits ("2279fa57f4d644c1b333f5ff5ff7a2b7"). */
const REQUEST_ID = /^[0-9a-f]{32}$/;
/** herald's push id (a UUID, in events and streams) of a topvdn request_id. */
const pushIdOf = (requestId: string) => requestId.replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');

function topvdnClient(url: () => string) {
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> => {
    const response = await fetch(`${url()}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return {
      status: response.status,
      body: (await response.json()) as Record<string, unknown>,
      headers: response.headers,
    };
  };
  let counter = 0;
  return {
    post,
    async register(appId = 'camel'): Promise<Registered> {
      const { status, body } = await post('/msgpush/register', {
        alias: `topvdn-${++counter}`,
        appId,
        platform: 'ANDROID',
        nativeToken: `topvdn-native-${counter}-${Date.now()}`,
      });
      expect(status, JSON.stringify(body)).to.equal(200);
      return body as unknown as Registered;
    },
    clientPush: (token: string | undefined, fields: Record<string, unknown>) =>
      post(
        '/v2/message/client/push',
        { msg: HELLO, callback: 0, access_tokens: [], ...fields },
        token === undefined ? {} : { 'x-client-token': token },
      ),
    serverPush: (body: unknown, app = 'camel', key = 'EERWERRRRE') =>
      post('/v2/message/server/push', body, { 'x-app-id': app, 'x-app-key': key }),
  };
}

describe('topvdn: /v2/message', function () {
  this.timeout(60_000);
  const clock = new TestClock();
  let url: string;
  let stop: () => Promise<void>;
  let herald: Awaited<ReturnType<typeof startTestHerald>>['herald'];
  let admin: string;
  const sockets: DeviceSocket[] = [];
  const { post, register, clientPush, serverPush } = topvdnClient(() => url);

  before(async () => {
    // The seed's own app (its curl example's X-APP-ID / X-APP-Key) beside the test apps.
    const apps = [
      { appId: 'camel', secret: 'EERWERRRRE' },
      { appId: 'other', secret: 'other-secret' },
      { appId: 'Test', secret: 'mock-app-key-use-your-own-pls' },
    ];
    ({ url, stop, herald } = await startTestHerald({ apps, metricsToken: TEST_METRICS_TOKEN }, clock.now));
    admin = await issueTicket(url, 'topvdn-auditor', 'admin');
  });
  after(async () => {
    for (const socket of sockets) socket.close();
    await stop();
  });

  const connect = async (device: Registered) => {
    const socket = await DeviceSocket.connect(url, device.id);
    sockets.push(socket);
    return socket;
  };
  const ids = (socket: DeviceSocket) => socket.messages.map((m) => m.messageId);
  /** herald's timers on a test clock have no public trigger: the test wakes its gateway. */
  const tick = (ms: number) => {
    clock.advance(ms);
    herald.gateway.wake();
  };
  /** A push of the app camel: its deliveries to devices as recorded (no pending count). */
  const deliveries = (requestId: string) => pushDeliveries(url, admin, requestId);
  /** The pushes recorded (PushRequested, any app) since `before`, as GET /metrics counts appends. */
  const pushesSince = async (before: AppendedEvents) => (await appendedSince(url, before)).PushRequested ?? 0;

  it('client push: the peers named by access_tokens receive the message, from the sender, with the request_id as messageId', async () => {
    const [sender, peer1, peer2] = [await register(), await register(), await register()];
    const [socket1, socket2] = [await connect(peer1), await connect(peer2)];
    const { status: code, body } = await clientPush(sender.token, {
      flag: 3,
      callback: 1,
      access_tokens: [peer1.token, peer2.token],
    });
    expect(code, JSON.stringify(body)).to.equal(200);
    expect(Object.keys(body)).to.deep.equal(['request_id']);
    const requestId = body.request_id as string;
    expect(requestId).to.match(REQUEST_ID);
    for (const socket of [socket1, socket2]) {
      await socket.until((s) => s.messages.length === 1, 'the message');
      expect(socket.messages[0]).to.deep.equal({
        messageId: requestId,
        appId: 'camel',
        type: 'topvdn',
        msg: HELLO,
        flag: 3,
        from: sender.clientId,
        needConfirm: false,
      });
    }
    // callback: 1 is recorded on the push.
    const [requested] = await streamEvents(url, admin, `push-${pushIdOf(requestId)}`);
    expect(requested?.data).to.deep.include({
      message: { kind: 'topvdn', msg: HELLO, flag: 3, from: sender.clientId, callback: true },
    });
    // The attempts are recorded just after the frames are written.
    await eventually(async () => expect(await deliveries(requestId)).to.include({ delivered: 2 }));

    // No flag: 2, which asks for a confirmation.
    const byDefault = await clientPush(sender.token, { access_tokens: [peer1.token] });
    expect(byDefault.status).to.equal(200);
    await socket1.until((s) => s.messages.length === 2, 'the flag 2 message');
    expect(socket1.messages[1]).to.include({ messageId: byDefault.body.request_id, flag: 2, needConfirm: true });
    socket1.confirm(byDefault.body.request_id as string);
    await socket1.until((s) => s.frames.some((f) => f.confirmed === byDefault.body.request_id), 'the confirmation');
    await eventually(async () =>
      expect(await deliveries(byDefault.body.request_id as string)).to.include({ confirmed: 1 }),
    );
  });

  it('client push with empty access_tokens answers a request_id and reaches nobody', async () => {
    const [sender, peer] = [await register(), await register()];
    const socket = await connect(peer);
    const { status: code, body } = await clientPush(sender.token, { access_tokens: [] });
    expect(code).to.equal(200);
    expect(body.request_id).to.be.a('string');
    // Nothing recorded for it (a delivery not yet attempted has no event; the peer's next message: below).
    expect(await deliveries(body.request_id as string)).to.deep.equal({
      delivered: 0,
      confirmed: 0,
      dropped: 0,
      expired: 0,
    });
    // The peer's next message is the one sent to it after: nothing came before.
    const next = await clientPush(sender.token, { flag: 3, access_tokens: [peer.token] });
    await socket.until((s) => s.messages.length >= 1, 'the later message');
    expect(ids(socket)).to.deep.equal([next.body.request_id]);
  });

  it("server push, proxy 0: to device numbers of the app, from nobody; unknown numbers and other apps' devices are skipped and listed", async () => {
    const [a, b, foreign] = [await register(), await register(), await register('other')];
    const [socketA, socketB, socketForeign] = [await connect(a), await connect(b), await connect(foreign)];
    const { status: code, body } = await serverPush({
      proxy: 0,
      payload: { msg: HELLO, flag: 3, clients: [a.clientId, b.clientId, 9_999_999, foreign.clientId, 9_999_999] },
    });
    expect(code, JSON.stringify(body)).to.equal(200);
    expect(body).to.deep.equal({ request_id: body.request_id, skipped_clients: [9_999_999, foreign.clientId] });
    const requestId = body.request_id as string;
    for (const socket of [socketA, socketB]) {
      await socket.until((s) => s.messages.length === 1, 'the message');
      expect(socket.messages[0]).to.deep.equal({
        messageId: requestId,
        appId: 'camel',
        type: 'topvdn',
        msg: HELLO,
        flag: 3,
        from: null,
        needConfirm: false,
      });
    }
    await eventually(async () =>
      expect(await deliveries(requestId)).to.deep.equal({
        delivered: 2,
        confirmed: 0,
        dropped: 0,
        expired: 0,
      }),
    );
    // The other app's device: its next message is its own app's.
    const own = await serverPush(
      { proxy: 0, payload: { msg: HELLO, flag: 3, clients: [foreign.clientId] } },
      'other',
      'other-secret',
    );
    expect(own.status).to.equal(200);
    await socketForeign.until((s) => s.messages.length >= 1, "its own app's message");
    expect(ids(socketForeign)).to.deep.equal([own.body.request_id]);
  });

  it('server push, proxy 1: one push per item, from the named device, request_id first of request_ids', async () => {
    const [from, to1, to2] = [await register(), await register(), await register()];
    const [socket1, socket2] = [await connect(to1), await connect(to2)];
    const { status: code, body } = await serverPush({
      proxy: 1,
      payload: [
        { from: from.clientId, to: to1.clientId, flag: 3, msg: HELLO },
        { from: from.clientId, to: to2.clientId, msg: 'AQID' },
      ],
    });
    expect(code, JSON.stringify(body)).to.equal(200);
    const requestIds = body.request_ids as string[];
    expect(requestIds).to.have.length(2);
    expect(body.request_id).to.equal(requestIds[0]);
    await socket1.until((s) => s.messages.length === 1, 'the first item');
    await socket2.until((s) => s.messages.length === 1, 'the second item');
    expect(socket1.messages[0]).to.deep.equal({
      messageId: requestIds[0],
      appId: 'camel',
      type: 'topvdn',
      msg: HELLO,
      flag: 3,
      from: from.clientId,
      needConfirm: false,
    });
    expect(socket2.messages[0]).to.deep.equal({
      messageId: requestIds[1],
      appId: 'camel',
      type: 'topvdn',
      msg: 'AQID',
      flag: 2,
      from: from.clientId,
      needConfirm: true,
    });
    socket2.confirm(requestIds[1]!);
    await socket2.until((s) => s.frames.some((f) => f.confirmed === requestIds[1]), 'the confirmation');
  });

  it('flag 2: tries at 0, 1, 3, 6 and 11 s while unconfirmed, then drops the delivery at 16 s', async () => {
    const [sender, peer] = [await register(), await register()];
    const socket = await connect(peer);
    const { body } = await clientPush(sender.token, { flag: 2, access_tokens: [peer.token] });
    const requestId = body.request_id as string;
    await socket.until((s) => s.messages.length === 1, 'the first attempt');
    for (const [ms, attempts] of [
      [1000, 2],
      [2000, 3],
      [3000, 4],
      [5000, 5],
    ] as const) {
      tick(ms);
      await socket.until((s) => s.messages.length >= attempts, `attempt ${attempts}`);
      expect(ids(socket), `after attempt ${attempts}`).to.deep.equal(Array(attempts).fill(requestId));
    }
    await eventually(async () => expect(await deliveries(requestId)).to.include({ delivered: 1, dropped: 0 }));
    tick(5000);
    await eventually(async () => expect(await deliveries(requestId)).to.include({ delivered: 0, dropped: 1 }));
    // No sixth attempt: the next frame the device gets is a later message.
    const next = await clientPush(sender.token, { flag: 3, access_tokens: [peer.token] });
    await socket.until((s) => s.messages.some((m) => m.messageId === next.body.request_id), 'the later message');
    expect(ids(socket)).to.deep.equal([...Array(5).fill(requestId), next.body.request_id]);
    // Confirming it now is too late.
    socket.confirm(requestId);
    await socket.until(
      (s) => s.frames.some((f) => f.confirm === requestId && typeof f.error === 'object'),
      'the refusal',
    );
  });

  it('flag 2: a device that confirms the first attempt is not tried again', async () => {
    const [sender, confirming, silent] = [await register(), await register(), await register()];
    const [confirmer, control] = [await connect(confirming), await connect(silent)];
    const { body } = await clientPush(sender.token, { access_tokens: [confirming.token, silent.token] });
    const requestId = body.request_id as string;
    await confirmer.until((s) => s.messages.length === 1, 'the first attempt');
    confirmer.confirm(requestId);
    await confirmer.until((s) => s.frames.some((f) => f.confirmed === requestId), 'the confirmation');
    tick(1000);
    // The silent device's second attempt shows the retry was due and made.
    await control.until((s) => s.messages.length === 2, "the silent device's second attempt");
    tick(2000);
    await control.until((s) => s.messages.length === 3, "the silent device's third attempt");
    const next = await clientPush(sender.token, { flag: 3, access_tokens: [confirming.token] });
    await confirmer.until((s) => s.messages.some((m) => m.messageId === next.body.request_id), 'the later message');
    expect(ids(confirmer)).to.deep.equal([requestId, next.body.request_id]);
    await eventually(async () => expect(await deliveries(requestId)).to.include({ confirmed: 1, delivered: 1 }));
  });

  it('flag 3: sent once to a connected device; a device connecting after 5 s gets nothing, its delivery dropped', async () => {
    const [online, offline] = [await register(), await register()];
    const socket = await connect(online);
    const { body } = await serverPush({
      proxy: 0,
      payload: { msg: HELLO, flag: 3, clients: [online.clientId, offline.clientId] },
    });
    const requestId = body.request_id as string;
    await socket.until((s) => s.messages.length === 1, 'the message');
    expect(socket.messages[0]).to.include({ flag: 3, needConfirm: false });
    tick(3000);
    tick(3000);
    await eventually(async () =>
      expect(await deliveries(requestId)).to.deep.equal({
        delivered: 1,
        confirmed: 0,
        dropped: 1,
        expired: 0,
      }),
    );
    const late = await connect(offline);
    const next = await serverPush({
      proxy: 0,
      payload: { msg: 'AA==', flag: 3, clients: [online.clientId, offline.clientId] },
    });
    for (const s of [socket, late])
      await s.until((d) => d.messages.some((m) => m.messageId === next.body.request_id), 'the later message');
    expect(ids(late)).to.deep.equal([next.body.request_id]);
    expect(ids(socket)).to.deep.equal([requestId, next.body.request_id]);
  });

  it("msg in every common base64 form (Android's Base64.DEFAULT, unpadded, URL-safe) is taken; devices receive the standard padded form", async () => {
    const [sender, peer] = [await register(), await register()];
    const socket = await connect(peer);
    const url256 = Buffer.alloc(256, 0xfb);
    // Android: Base64.encodeToString(bytes, Base64.DEFAULT) — lines of 76 characters, each ending with \n.
    const androidDefault = `${url256
      .toString('base64')
      .match(/.{1,76}/g)!
      .join('\n')}\n`;
    const forms: Array<[string, string]> = [
      ['aGVsbG8=\n', 'aGVsbG8='],
      ['aGVsbG8', 'aGVsbG8='],
      ['-_-__g', '+/+//g=='],
      ['-_-__g==', '+/+//g=='],
      [androidDefault, url256.toString('base64')],
    ];
    const sent: string[] = [];
    for (const [msg] of forms) {
      // The seed's request, byte for byte but for msg and the token.
      const body = `{\n    "msg": ${JSON.stringify(msg)},\n    "flag": 3,\n    "callback": 1,\n    "access_tokens": ["${peer.token}"]\n}`;
      const { status: code, body: answer } = await post('/v2/message/client/push', body, {
        'x-client-token': sender.token,
        'cache-control': 'no-cache',
      });
      expect(code, JSON.stringify(msg)).to.equal(200);
      expect(Object.keys(answer)).to.deep.equal(['request_id']);
      sent.push(answer.request_id as string);
    }
    // The server push takes them too.
    const server = await serverPush({ proxy: 0, payload: { msg: 'aGVsbG8=\n', flag: 3, clients: [peer.clientId] } });
    expect(server.status).to.equal(200);
    const proxied = await serverPush({
      proxy: 1,
      payload: [{ from: sender.clientId, to: peer.clientId, flag: 3, msg: 'aGVsbG8' }],
    });
    expect(proxied.status).to.equal(200);
    await socket.until((s) => s.messages.length === forms.length + 2, 'every message');
    expect(socket.messages.map((m) => m.msg)).to.deep.equal([
      ...forms.map(([, standard]) => standard),
      'aGVsbG8=',
      'aGVsbG8=',
    ]);
    expect(ids(socket)).to.deep.equal([...sent, server.body.request_id, proxied.body.request_id]);
  });

  it('client push: a stale or unknown access token is skipped — the valid peers get the message and the answer lists the skipped tokens', async () => {
    const [sender, peer, gone, foreign] = [
      await register(),
      await register(),
      await register(),
      await register('other'),
    ];
    const socket = await connect(peer);
    expect((await post(`/msgpush/unregister/${gone.id}`, {})).status).to.equal(200);
    const { status: code, body } = await clientPush(sender.token, {
      flag: 3,
      callback: 1,
      access_tokens: [gone.token, peer.token, 'not-a-token', foreign.token, gone.token],
    });
    expect(code, JSON.stringify(body)).to.equal(200);
    expect(body).to.have.all.keys('request_id', 'skipped_tokens');
    expect(body.skipped_tokens).to.deep.equal([gone.token, 'not-a-token', foreign.token]);
    await socket.until((s) => s.messages.length === 1, 'the message');
    expect(socket.messages[0]).to.include({ messageId: body.request_id, msg: HELLO, from: sender.clientId });
    await eventually(async () => expect(await deliveries(body.request_id as string)).to.include({ delivered: 1 }));

    // None valid: refused (400, with the list) and nothing pushed — unless callback 1 takes it to the app's server (topvdnCallback.e2e).
    const head = await appendedEvents(url);
    const none = await clientPush(sender.token, { flag: 3, callback: 0, access_tokens: [gone.token, 'not-a-token'] });
    expect(none.status).to.equal(400);
    expect(none.body).to.deep.equal({
      code: 'bad_request',
      message: 'access_tokens: none is a device token of this app; nothing was pushed',
      skipped_tokens: [gone.token, 'not-a-token'],
    });
    expect(await pushesSince(head)).to.equal(0);
    // callback 1 but no callback URL set: it would reach no one either.
    const noUrl = await clientPush(sender.token, { flag: 3, callback: 1, access_tokens: ['not-a-token'] });
    expect(noUrl.status).to.equal(400);
    expect(noUrl.body.skipped_tokens).to.deep.equal(['not-a-token']);
    expect(await pushesSince(head)).to.equal(0);
  });

  it("server push: the seed's example to a number that is no device of the app is refused (400, skipped_clients), nothing pushed; unknown numbers beside known ones are skipped and listed", async () => {
    const head = await appendedEvents(url);
    // The seed's curl, byte for byte: 1003181 is no device of the app "Test".
    const seedBody =
      '{\n    "proxy": 0,\n    "payload": {\n        "msg": "aGVsbG8=",\n        "flag": 3,\n        "clients": [1003181]\n    }\n}';
    const seedHeaders = {
      'Content-Type': 'application/json',
      'X-APP-ID': 'Test',
      'X-APP-Key': 'mock-app-key-use-your-own-pls',
      'Cache-Control': 'no-cache',
    };
    const refused = await post('/v2/message/server/push', seedBody, seedHeaders);
    expect(refused.status, JSON.stringify(refused.body)).to.equal(400);
    expect(refused.body).to.deep.equal({
      code: 'bad_request',
      message: 'payload.clients: no device of this app; nothing was pushed',
      skipped_clients: [1003181],
    });
    expect(await pushesSince(head)).to.equal(0);

    // The same, once 1003181's place is taken by a device of the app beside it: delivered to it, 1003181 listed.
    const [device, from] = [await register('Test'), await register('Test')];
    const socket = await connect(device);
    const mixed = await post(
      '/v2/message/server/push',
      seedBody.replace('[1003181]', `[1003181, ${device.clientId}]`),
      seedHeaders,
    );
    expect(mixed.status, JSON.stringify(mixed.body)).to.equal(200);
    expect(mixed.body).to.deep.equal({ request_id: mixed.body.request_id, skipped_clients: [1003181] });
    await socket.until((s) => s.messages.length === 1, 'the message');
    expect(ids(socket)).to.deep.equal([mixed.body.request_id]);

    // proxy 1: an item whose to or from is no device of the app is skipped; its request_ids entry is null.
    const proxied = await serverPush(
      {
        proxy: 1,
        payload: [
          { from: from.clientId, to: 5003062, flag: 3, msg: HELLO },
          { from: from.clientId, to: device.clientId, flag: 3, msg: HELLO },
          { from: 1003200, to: device.clientId, flag: 3, msg: HELLO },
        ],
      },
      'Test',
      'mock-app-key-use-your-own-pls',
    );
    expect(proxied.status, JSON.stringify(proxied.body)).to.equal(200);
    const pushed = (proxied.body.request_ids as Array<string | null>)[1]!;
    expect(proxied.body).to.deep.equal({
      request_id: pushed,
      request_ids: [null, pushed, null],
      skipped_clients: [5003062, 1003200],
    });
    await socket.until((s) => s.messages.length === 2, 'the proxied message');
    expect(ids(socket)).to.deep.equal([mixed.body.request_id, pushed]);
    // Every item naming an unknown device: refused, nothing pushed.
    const before = await appendedEvents(url);
    const none = await serverPush(
      {
        proxy: 1,
        payload: [
          { from: 1003200, to: 5003062, msg: HELLO },
          { from: from.clientId, to: 5002654, msg: HELLO },
        ],
      },
      'Test',
      'mock-app-key-use-your-own-pls',
    );
    expect(none.status).to.equal(400);
    expect(none.body).to.deep.equal({
      code: 'bad_request',
      message: 'payload: from and to: no device of this app; nothing was pushed',
      skipped_clients: [1003200, 5003062, 5002654],
    });
    expect(await pushesSince(before)).to.equal(0);
  });

  it("answers request_id as the seed's 32 hex digits on both pushes and their Idempotency-Key replays, as the device's messageId; a confirmation takes it with or without dashes", async () => {
    const [sender, peer] = [await register(), await register()];
    const socket = await connect(peer);
    // The seed's client push curl, byte for byte but for the tokens.
    const clientBody = `{\n    "msg": "aGVsbG8=",\n    "flag": 2,\n    "callback": 1,\n    "access_tokens": ["${peer.token}"]\n}`;
    const client = await post('/v2/message/client/push', clientBody, {
      'X-Client-Token': sender.token,
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache',
      'Idempotency-Key': 'hex-1',
    });
    expect(client.status, JSON.stringify(client.body)).to.equal(200);
    expect(Object.keys(client.body)).to.deep.equal(['request_id']);
    expect(client.body.request_id).to.match(REQUEST_ID);
    const replay = await post('/v2/message/client/push', clientBody, {
      'X-Client-Token': sender.token,
      'Idempotency-Key': 'hex-1',
    });
    expect(replay.body).to.deep.equal(client.body);
    const batch = await serverPush({ proxy: 0, payload: { msg: HELLO, flag: 2, clients: [peer.clientId] } });
    expect(batch.body.request_id).to.match(REQUEST_ID);
    const proxy = { proxy: 1, payload: [{ from: sender.clientId, to: peer.clientId, flag: 3, msg: HELLO }] };
    const proxied = await post('/v2/message/server/push', proxy, {
      'x-app-id': 'camel',
      'x-app-key': 'EERWERRRRE',
      'idempotency-key': 'hex-2',
    });
    expect(proxied.body.request_id).to.match(REQUEST_ID);
    expect(proxied.body.request_ids).to.deep.equal([proxied.body.request_id]);
    expect(
      (
        await post('/v2/message/server/push', proxy, {
          'x-app-id': 'camel',
          'x-app-key': 'EERWERRRRE',
          'idempotency-key': 'hex-2',
        })
      ).body,
    ).to.deep.equal(proxied.body);

    await socket.until((s) => s.messages.length === 3, 'the messages');
    expect(ids(socket)).to.deep.equal([client.body.request_id, batch.body.request_id, proxied.body.request_id]);
    // Confirmed as the device received it, and (a device built on the UUID) with dashes.
    const [first, second] = [client.body.request_id as string, batch.body.request_id as string];
    socket.confirm(first);
    socket.confirm(pushIdOf(second));
    await socket.until((s) => s.frames.filter((f) => f.confirmed !== undefined).length === 2, 'the confirmations');
    expect(socket.frames.filter((f) => f.error !== undefined)).to.deep.equal([]);
    for (const id of [first, second])
      await eventually(async () => expect(await deliveries(id)).to.include({ confirmed: 1 }));
  });

  it("reads the body as JSON whatever the Content-Type (none, curl -d's form type, text/plain) and charset (utf8 as PHP and Java write it, GBK)", async () => {
    const [sender, peer] = [await register(), await register()];
    const socket = await connect(peer);
    const sent: unknown[] = [];
    const types = [
      undefined,
      'application/x-www-form-urlencoded',
      'text/plain;charset=UTF-8',
      'application/json;charset=utf8',
      'application/json; charset=GBK',
      'application/json; charset=gb2312',
    ];
    for (const type of types) {
      const response = await fetch(`${url}/v2/message/client/push`, {
        method: 'POST',
        headers: { 'x-client-token': sender.token, ...(type && { 'content-type': type }) },
        body: `{"msg": "aGVsbG8=", "flag": 3, "callback": 1, "access_tokens": ["${peer.token}"]}`,
      });
      const body = (await response.json()) as Record<string, unknown>;
      expect(response.status, `${type}: ${JSON.stringify(body)}`).to.equal(200);
      sent.push(body.request_id);
    }
    const server = await fetch(`${url}/v2/message/server/push`, {
      method: 'POST',
      headers: { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE', 'content-type': 'application/x-www-form-urlencoded' },
      body: JSON.stringify({ proxy: 0, payload: { msg: HELLO, flag: 3, clients: [peer.clientId] } }),
    });
    expect(server.status).to.equal(200);
    sent.push(((await server.json()) as Record<string, unknown>).request_id);
    await socket.until((s) => s.messages.length === types.length + 1, 'every message');
    expect(ids(socket)).to.deep.equal(sent);
    // A charset nobody knows, or a body that is not JSON: 400 in the envelope (the seed lists no 415), each named as what it is.
    for (const [type, body, message] of [
      ['application/json; charset=klingon', '{}', /^unsupported charset "klingon"/],
      ['application/json', '{"msg": ', /^malformed JSON body$/],
      ['application/json', '"text"', /JSON object/],
    ] as const) {
      const refused = await fetch(`${url}/v2/message/client/push`, {
        method: 'POST',
        headers: { 'x-client-token': sender.token, 'content-type': type },
        body,
      });
      expect(refused.status, `${type} ${body}`).to.equal(400);
      const answer = (await refused.json()) as Record<string, unknown>;
      expect(Object.keys(answer)).to.deep.equal(['code', 'message']);
      expect(answer.message, `${type} ${body}`).to.match(message);
    }
  });

  it('takes an empty optional field as absent: flag null or "" is the default, 2', async () => {
    const [sender, peer] = [await register(), await register()];
    const socket = await connect(peer);
    for (const flag of [null, '']) {
      expect((await clientPush(sender.token, { flag, access_tokens: [peer.token] })).status).to.equal(200);
      expect((await serverPush({ proxy: 0, payload: { msg: HELLO, flag, clients: [peer.clientId] } })).status).to.equal(
        200,
      );
      expect(
        (await serverPush({ proxy: 1, payload: [{ from: sender.clientId, to: peer.clientId, flag, msg: HELLO }] }))
          .status,
      ).to.equal(200);
    }
    await socket.until((s) => s.messages.length >= 6, 'six messages');
    expect(socket.messages.slice(0, 6).map((m) => [m.flag, m.needConfirm])).to.deep.equal(Array(6).fill([2, true]));
  });

  it('takes what a Go or PHP server sends: flag 0 (a Go int without omitempty) as the default, 2; numbers as strings of digits', async () => {
    const [sender, peer] = [await register(), await register()];
    const socket = await connect(peer);
    expect((await clientPush(sender.token, { flag: 0, callback: 0, access_tokens: [peer.token] })).status).to.equal(
      200,
    );
    expect(
      (await serverPush({ proxy: 0, payload: { msg: HELLO, flag: 0, clients: [peer.clientId] } })).status,
    ).to.equal(200);
    expect(
      (await serverPush({ proxy: 1, payload: [{ from: sender.clientId, to: peer.clientId, flag: 0, msg: HELLO }] }))
        .status,
    ).to.equal(200);
    // Every number as a string, as a PHP client building the body from a form or a Go one with `,string` tags sends it.
    expect((await clientPush(sender.token, { flag: '3', callback: '0', access_tokens: [peer.token] })).status).to.equal(
      200,
    );
    const batch = await serverPush({
      proxy: '0',
      payload: { msg: HELLO, flag: '3', clients: [String(peer.clientId), '1003181'] },
    });
    expect(batch.status, JSON.stringify(batch.body)).to.equal(200);
    expect(batch.body.skipped_clients).to.deep.equal([1003181]);
    expect(
      (
        await serverPush({
          proxy: '1',
          payload: [{ from: String(sender.clientId), to: String(peer.clientId), flag: '3', msg: HELLO }],
        })
      ).status,
    ).to.equal(200);
    await socket.until((s) => s.messages.length >= 6, 'six messages');
    expect(socket.messages.slice(0, 6).map((m) => m.flag)).to.deep.equal([2, 2, 2, 3, 3, 3]);
    // clients: [] names no one (as access_tokens: []): taken, reaching nobody.
    const nobody = await serverPush({ proxy: 0, payload: { msg: HELLO, clients: [] } });
    expect(nobody).to.deep.include({ status: 200, body: { request_id: nobody.body.request_id } });
  });

  it('client push errors: 401 without a valid device token, 400 for bad input, in the {code, message} envelope, appending nothing', async () => {
    const [sender, peer, foreign] = [await register(), await register(), await register('other')];
    const head = await appendedEvents(url);

    for (const token of [
      undefined,
      '',
      'garbage',
      `${sender.token.slice(0, -1)}${sender.token.endsWith('0') ? '1' : '0'}`,
    ]) {
      const { status: code, body } = await clientPush(token, { access_tokens: [peer.token] });
      expect(code, String(token)).to.equal(401);
      expect(body).to.have.all.keys('code', 'message');
      expect(body.code).to.equal('unauthorized');
    }
    // The token of a device since unregistered.
    const gone = await register();
    expect((await post(`/msgpush/unregister/${gone.id}`, {})).status).to.equal(200);
    expect((await clientPush(gone.token, { access_tokens: [peer.token] })).status).to.equal(401);

    const cases: Array<[Record<string, unknown>, string]> = [
      [{ msg: 'not base64!' }, 'msg'],
      [{ msg: 'aGVsb' }, 'msg'],
      [{ msg: 'aGVsbG8===' }, 'msg'],
      [{ msg: '\n' }, 'msg'],
      [{ msg: Buffer.alloc(257, 7).toString('base64') }, 'msg'],
      [{ msg: '' }, 'msg'],
      [{ msg: 5 }, 'msg'],
      [{ msg: undefined }, 'msg'],
      [{ callback: undefined }, 'callback'],
      [{ callback: 'yes' }, 'callback'],
      [{ callback: 2 }, 'callback'],
      [{ access_tokens: undefined }, 'access_tokens'],
      [{ access_tokens: peer.token }, 'access_tokens'],
      [{ access_tokens: [5] }, 'access_tokens[0]'],
      [{ access_tokens: Array(1001).fill(peer.token) }, 'access_tokens'],
      [{ flag: 4 }, 'flag'],
      [{ flag: 1 }, 'flag'],
      [{ flag: 'two' }, 'flag'],
      [{ flag: 2.5 }, 'flag'],
      [{ access_tokens: ['not-a-token'] }, 'access_tokens: none is a device token of this app'],
      [{ access_tokens: [foreign.token, foreign.token] }, 'access_tokens: none is a device token of this app'],
    ];
    for (const [fields, expected] of cases) {
      const { status: code, body } = await clientPush(sender.token, { access_tokens: [peer.token], ...fields });
      expect(code, JSON.stringify(fields).slice(0, 200)).to.equal(400);
      // A push none of whose tokens names a device lists them (skipped_tokens).
      expect(body).to.have.all.keys(
        'code',
        'message',
        ...(expected.includes('none is a device token') ? ['skipped_tokens'] : []),
      );
      expect(body.code).to.equal('bad_request');
      expect(body.message, JSON.stringify(fields).slice(0, 200)).to.contain(expected);
    }
    const malformed = await post('/v2/message/client/push', '{"msg":', { 'x-client-token': sender.token });
    expect(malformed).to.deep.include({ status: 400, body: { code: 'bad_request', message: 'malformed JSON body' } });
    const notObject = await post('/v2/message/client/push', [1, 2], { 'x-client-token': sender.token });
    expect(notObject.status).to.equal(400);
    expect(await pushesSince(head)).to.equal(0);

    // 256 bytes is the limit, not past it.
    const largest = await clientPush(sender.token, {
      msg: Buffer.alloc(256, 7).toString('base64'),
      access_tokens: [peer.token],
    });
    expect(largest.status, JSON.stringify(largest.body)).to.equal(200);
    expect(await pushesSince(head)).to.equal(1);
  });

  it('server push errors: 401 for a wrong key or unknown app; 400 for bad input; proxy 1 with one bad item pushes nothing', async () => {
    const [from, to] = [await register(), await register()];
    const socket = await connect(to);
    const head = await appendedEvents(url);
    const good = { proxy: 0, payload: { msg: HELLO, clients: [to.clientId] } };

    for (const [app, key] of [
      ['camel', 'wrong'],
      ['nosuchapp', 'EERWERRRRE'],
      ['camel', ''],
      ['', 'EERWERRRRE'],
    ] as const) {
      const { status: code, body } = await serverPush(good, app, key);
      expect(code, `${app}/${key}`).to.equal(401);
      expect(body).to.have.all.keys('code', 'message');
      expect(body.code).to.equal('unauthorized');
    }
    expect((await post('/v2/message/server/push', good)).status).to.equal(401);

    const item = { from: from.clientId, to: to.clientId, msg: HELLO };
    const cases: Array<[unknown, string]> = [
      [{ payload: good.payload }, 'proxy'],
      [{ proxy: 2, payload: good.payload }, 'proxy'],
      [{ proxy: 0 }, 'payload'],
      [{ proxy: 0, payload: 'x' }, 'payload'],
      [{ proxy: 0, payload: { clients: [to.clientId] } }, 'payload.msg'],
      [{ proxy: 0, payload: { msg: 'a', clients: [to.clientId] } }, 'payload.msg'],
      [{ proxy: 0, payload: { msg: Buffer.alloc(257).toString('base64'), clients: [to.clientId] } }, 'payload.msg'],
      [{ proxy: 0, payload: { msg: HELLO } }, 'payload.clients'],
      [{ proxy: 0, payload: { msg: HELLO, clients: to.clientId } }, 'payload.clients'],
      [{ proxy: 0, payload: { msg: HELLO, clients: ['abc'] } }, 'payload.clients[0]'],
      [{ proxy: 0, payload: { msg: HELLO, clients: [0] } }, 'payload.clients'],
      [{ proxy: 0, payload: { msg: HELLO, clients: [-5] } }, 'payload.clients'],
      [{ proxy: 0, payload: { msg: HELLO, clients: Array.from({ length: 1001 }, (_, i) => i + 1) } }, 'at most 1000'],
      [{ proxy: 0, payload: { msg: HELLO, flag: 4, clients: [to.clientId] } }, 'payload.flag'],
      [{ proxy: 1, payload: [] }, 'payload'],
      [{ proxy: 1, payload: item }, 'payload'],
      [{ proxy: 1, payload: Array(101).fill(item) }, 'payload'],
      [{ proxy: 1, payload: [item, { ...item, flag: 4 }] }, 'payload[1].flag'],
      [{ proxy: 1, payload: [item, { ...item, msg: '!!' }] }, 'payload[1].msg'],
      [{ proxy: 1, payload: [item, { to: to.clientId, msg: HELLO }] }, 'payload[1].from'],
      [{ proxy: 1, payload: [item, { ...item, to: 0 }] }, 'payload[1].to'],
      // Bad input is refused even in an item that names no device (it would be skipped otherwise).
      [{ proxy: 1, payload: [item, { ...item, from: 9_999_999, flag: 4 }] }, 'payload[1].flag'],
      [{ proxy: 0, payload: { msg: '!!', clients: [9_999_999] } }, 'payload.msg'],
    ];
    for (const [body, expected] of cases) {
      const reply = await serverPush(body);
      expect(reply.status, JSON.stringify(body).slice(0, 200)).to.equal(400);
      expect(reply.body).to.have.all.keys('code', 'message');
      expect(reply.body.code).to.equal('bad_request');
      expect(reply.body.message, JSON.stringify(body).slice(0, 200)).to.contain(expected);
    }
    const malformed = await post('/v2/message/server/push', '{"proxy": 1, ', {
      'x-app-id': 'camel',
      'x-app-key': 'EERWERRRRE',
    });
    expect(malformed).to.deep.include({ status: 400, body: { code: 'bad_request', message: 'malformed JSON body' } });
    expect(await pushesSince(head)).to.equal(0);

    // The connected device got nothing from the refused requests: its first message is the good one.
    const { body } = await serverPush({ proxy: 1, payload: [{ ...item, flag: 3 }] });
    await socket.until((s) => s.messages.length >= 1, 'the good message');
    expect(ids(socket)).to.deep.equal([body.request_id]);
    expect(body.request_ids).to.deep.equal([body.request_id]);
    expect(await pushesSince(head)).to.equal(1);
  });

  it('answers unknown routes under /v2/message 404, too large bodies 413, in the same envelope', async () => {
    const unknown = await post('/v2/message/nope', {});
    expect(unknown).to.deep.include({ status: 404 });
    expect(unknown.body).to.include({ code: 'not_found' });
    const get = await fetch(`${url}/v2/message/client/push`);
    expect(get.status).to.equal(404);
    expect(await get.json()).to.include({ code: 'not_found' });
    const big = await post(
      '/v2/message/server/push',
      { proxy: 0, payload: { msg: HELLO, clients: [], pad: 'x'.repeat(70 * 1024) } },
      { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
    );
    expect(big.status).to.equal(413);
    expect(big.body).to.include({ code: 'too_large' });
  });
});

describe("topvdn: a device's sends are rate limited", function () {
  this.timeout(60_000);
  let url: string;
  let stop: () => Promise<void>;
  const { register, clientPush, serverPush } = topvdnClient(() => url);

  before(async () => {
    ({ url, stop } = await startTestHerald({ sendRatePerMinute: 2 }));
  });
  after(async () => stop());

  it("answers 429 with Retry-After past the rate; the app's server is not limited", async () => {
    const [sender, peer] = [await register(), await register()];
    for (let i = 0; i < 2; i++)
      expect((await clientPush(sender.token, { access_tokens: [peer.token] })).status).to.equal(200);
    const limited = await clientPush(sender.token, { access_tokens: [peer.token] });
    expect(limited.status).to.equal(429);
    expect(limited.body).to.include({ code: 'too_many_requests' });
    expect(Number(limited.headers.get('retry-after'))).to.be.within(1, 60);
    // Another device has its own budget; the server's pushes have none.
    const other = await register();
    expect((await clientPush(other.token, { access_tokens: [peer.token] })).status).to.equal(200);
    for (let i = 0; i < 3; i++)
      expect((await serverPush({ proxy: 0, payload: { msg: HELLO, clients: [peer.clientId] } })).status).to.equal(200);
  });
});
