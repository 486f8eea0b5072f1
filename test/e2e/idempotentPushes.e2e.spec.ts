import { expect } from 'chai';
import { deliveryStreamName } from '../../domain/device/delivery';
import { pushIdOfSentId, pushStreamName, type PushRequestedData } from '../../domain/device/push';
import { isDeviceOnline } from '../support/deviceQueries';
import { DeviceSocket } from '../support/deviceSocket';
import { eventually } from '../support/eventually';
import { graphql, graphqlWithAuthorization } from '../support/graphqlClient';
import { issueTicket, startTestHerald } from '../support/herald';
import { storedEvents, streamEventTypes } from '../support/storedEvents';

// Issue 21, item 12: an optional Idempotency-Key on the sending routes whose seed has none — ONE-PUSH's
// POST /msgpush/send (shared/seeds/003_834cb051d61fc48e.txt), topvdn's client and server pushes
// (shared/seeds/002_66d9dfe67c8bed29.txt), GraphQL pushToDevices — so a client that saw a connection
// reset can send again without a second push; and a repeated device confirmation is answered again.
describe('idempotent pushes and confirmations', function () {
  this.timeout(60_000);
  let url: string;
  let stop: () => Promise<void>;
  let admin: string;
  const sockets: DeviceSocket[] = [];

  before(async () => {
    ({ url, stop } = await startTestHerald());
    admin = await issueTicket(url, 'push-auditor', 'admin');
  });
  after(async () => {
    for (const socket of sockets) socket.close();
    await stop();
  });

  const postJson = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  let devices = 0;
  /** A registered device, connected on /msgpush.ws. */
  const connectedDevice = async (alias: string) => {
    const { body } = await postJson('/msgpush/register', {
      appId: 'camel',
      alias,
      platform: 'ANDROID',
      nativeToken: `idempotent-${++devices}`,
    });
    const socket = await DeviceSocket.connect(url, body.id as string);
    sockets.push(socket);
    await eventually(async () => expect(await isDeviceOnline(url, admin, alias, body.id as string)).to.equal(true));
    return { id: body.id as string, alias, clientId: body.clientId as number, token: body.token as string, socket };
  };
  const streamTypes = (streamName: string) => streamEventTypes(url, admin, streamName);
  /** The `msg` of each topvdn push recorded for a device number, in order. */
  const topvdnMessagesTo = async (clientId: number) =>
    (await storedEvents(url, admin, { types: ['PushRequested'] }))
      .map((event) => event.data as unknown as PushRequestedData)
      .filter((push) => push.audience.type === 'CLIENTS' && push.audience.clientIds.includes(clientId))
      .map((push) => (push.message.kind === 'topvdn' ? push.message.msg : undefined));
  /**
   * Exactly these messages reached the device, in order: a marker pushed after them (no key) arrives
   * after any duplicate would have (a device's pushes are written in order), so no fixed wait is needed.
   */
  const expectReceived = async (
    device: Awaited<ReturnType<typeof connectedDevice>>,
    messageIds: readonly string[],
    order: 'in order' | 'in any order' = 'in order',
  ) => {
    const marker = await postJson('/msgpush/send', {
      appId: 'camel',
      appKey: 'EERWERRRRE',
      platform: 'ALL',
      audienceType: 'ALIAS',
      audiences: [device.alias],
      alert: 'marker',
    });
    await device.socket.until((s) => s.messages.some((m) => m.messageId === marker.body.requestId), 'the marker');
    const received = device.socket.messages.map((m) => m.messageId);
    expect(received.at(-1), 'the marker last').to.equal(marker.body.requestId);
    const before = received.slice(0, -1);
    if (order === 'in order') expect(before).to.deep.equal(messageIds);
    else expect([...before].sort(), 'each once').to.deep.equal([...messageIds].sort());
  };

  describe('ONE-PUSH POST /msgpush/send with Idempotency-Key', () => {
    const send = (alias: string, fields: Record<string, unknown> = {}, key?: string) =>
      postJson(
        '/msgpush/send',
        {
          appId: 'camel',
          appKey: 'EERWERRRRE',
          platform: 'ALL',
          audienceType: 'ALIAS',
          audiences: [alias],
          alert: 'hello',
          ...fields,
        },
        key === undefined ? {} : { 'idempotency-key': key },
      );

    it('a retry after the first send succeeded answers the same requestId: one message, one push to the device', async () => {
      const device = await connectedDevice('op-retry');
      const first = await send('op-retry', { needConfirm: true, duration: 600 }, 'send-1');
      expect(first.status).to.equal(200);
      await device.socket.until((s) => s.messages.length === 1, 'the push');
      const retried = await send('op-retry', { needConfirm: true, duration: 600 }, 'send-1');
      expect(retried).to.deep.equal({ status: 200, body: { requestId: first.body.requestId } });
      expect(await streamTypes(pushStreamName(first.body.requestId as string))).to.deep.equal(['PushRequested']);
      // One delivery, written once (its record may trail the write to the socket).
      await eventually(async () =>
        expect(await streamTypes(deliveryStreamName(first.body.requestId as string, device.id))).to.deep.equal([
          'MessageDelivered',
        ]),
      );
      await expectReceived(device, [first.body.requestId as string]);
    });

    it('retries racing each other make one push', async () => {
      const device = await connectedDevice('op-race');
      const answers = await Promise.all(Array.from({ length: 8 }, () => send('op-race', {}, 'send-race')));
      expect(answers.map((a) => a.status)).to.deep.equal(Array(8).fill(200));
      expect(new Set(answers.map((a) => a.body.requestId)).size).to.equal(1);
      await expectReceived(device, [answers[0]!.body.requestId as string]);
    });

    it('the same key with another body is 409 in the Spring envelope, pushing nothing; without a key every send is new (the seed unchanged)', async () => {
      const device = await connectedDevice('op-conflict');
      const first = await send('op-conflict', {}, 'send-conflict');
      const other = await send('op-conflict', { alert: 'something else' }, 'send-conflict');
      expect(other.status).to.equal(409);
      expect(other.body).to.include({
        status: 409,
        error: 'Conflict',
        message: 'this idempotency key was used for a different push',
        path: '/msgpush/send',
      });
      const [a, b] = [await send('op-conflict'), await send('op-conflict')];
      expect(a.body.requestId).to.not.equal(b.body.requestId);
      expect(Object.keys(a.body)).to.deep.equal(['requestId']);
      await expectReceived(device, [
        first.body.requestId as string,
        a.body.requestId as string,
        b.body.requestId as string,
      ]);
    });

    it('a malformed key is 400, pushing nothing', async () => {
      for (const key of ['x'.repeat(129), 'has space', 'é']) {
        const refused = await fetch(`${url}/msgpush/send`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify({
            appId: 'camel',
            appKey: 'EERWERRRRE',
            platform: 'ALL',
            audienceType: 'ALIAS',
            audiences: ['nobody'],
            alert: 'x',
          }),
        });
        expect(refused.status, key).to.equal(400);
        expect(((await refused.json()) as { message: string }).message).to.match(/^Idempotency-Key: /);
      }
    });
  });

  describe('topvdn pushes with Idempotency-Key', () => {
    const app = { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' };

    it('client push: a retry answers the same request_id, one push to the peer; another body under the key is 409', async () => {
      const sender = await connectedDevice('tv-sender');
      const peer = await connectedDevice('tv-peer');
      const body = { msg: 'aGVsbG8=', flag: 3, callback: 0, access_tokens: [peer.token] };
      const headers = { 'x-client-token': sender.token, 'idempotency-key': 'client-1' };
      const first = await postJson('/v2/message/client/push', body, headers);
      expect(first.status).to.equal(200);
      const retried = await postJson('/v2/message/client/push', body, headers);
      expect(retried).to.deep.equal({ status: 200, body: { request_id: first.body.request_id } });
      const other = await postJson('/v2/message/client/push', { ...body, msg: 'd29ybGQ=' }, headers);
      expect(other).to.deep.equal({
        status: 409,
        body: { code: 'conflict', message: 'this idempotency key was used for a different push' },
      });
      // request_id is the push id in topvdn's form (32 hex digits).
      expect(await streamTypes(pushStreamName(pushIdOfSentId(first.body.request_id as string)))).to.deep.equal([
        'PushRequested',
      ]);
      await expectReceived(peer, [first.body.request_id as string]);
    });

    it('server push, batch and proxy: a retry answers the same ids and pushes nothing twice', async () => {
      const from = await connectedDevice('tv-from');
      const to = await connectedDevice('tv-to');
      const batch = { proxy: 0, payload: { msg: 'aGVsbG8=', flag: 3, clients: [to.clientId] } };
      const [batch1, batch2] = [
        await postJson('/v2/message/server/push', batch, { ...app, 'idempotency-key': 'batch-1' }),
        await postJson('/v2/message/server/push', batch, { ...app, 'idempotency-key': 'batch-1' }),
      ];
      expect(batch1.status).to.equal(200);
      expect(batch2).to.deep.equal(batch1);
      const proxy = {
        proxy: 1,
        payload: [
          { from: from.clientId, to: to.clientId, flag: 3, msg: 'b25l' },
          { from: from.clientId, to: to.clientId, flag: 3, msg: 'dHdv' },
        ],
      };
      const [proxy1, proxy2] = [
        await postJson('/v2/message/server/push', proxy, { ...app, 'idempotency-key': 'proxy-1' }),
        await postJson('/v2/message/server/push', proxy, { ...app, 'idempotency-key': 'proxy-1' }),
      ];
      expect(proxy1.status).to.equal(200);
      expect(proxy2).to.deep.equal(proxy1);
      const ids = proxy1.body.request_ids as string[];
      expect(ids).to.have.length(2);
      // A proxy push's items are appended side by side: they reach the device in either order.
      await expectReceived(to, [batch1.body.request_id as string, ...ids], 'in any order');
    });
    it('proxy: items [A,B], then [A′,B,C] under the same key is 409 and appends nothing — no push C, no delivery (issue 21, item 12, review)', async () => {
      const from = await connectedDevice('tv-grow-from');
      const to = await connectedDevice('tv-grow-to');
      const item = (msg: string) => ({ from: from.clientId, to: to.clientId, flag: 3, msg });
      const headers = { ...app, 'idempotency-key': 'proxy-grow' };
      const first = await postJson(
        '/v2/message/server/push',
        { proxy: 1, payload: [item('b25l'), item('dHdv')] },
        headers,
      );
      expect(first.status).to.equal(200);
      const grown = await postJson(
        '/v2/message/server/push',
        { proxy: 1, payload: [item('b3RoZXI='), item('dHdv'), item('dGhyZWU=')] },
        headers,
      );
      expect(grown).to.deep.equal({
        status: 409,
        body: { code: 'conflict', message: 'this idempotency key was used for a different push' },
      });
      // A proxy push's items are appended side by side: in either order.
      expect((await topvdnMessagesTo(to.clientId)).sort(), 'the pushes recorded').to.deep.equal(['b25l', 'dHdv']);
      await expectReceived(to, first.body.request_ids as string[], 'in any order');
    });
  });

  describe('GraphQL pushToDevices with idempotencyKey', () => {
    const PUSH = 'mutation($input: PushToDevicesInput!) { pushToDevices(input: $input) { requestId } }';

    it('a retry answers the same requestId, one push; another input under the key is CONFLICT; a bad key BAD_USER_INPUT', async () => {
      const device = await connectedDevice('gql-push');
      const ticket = await issueTicket(url, 'gql-push');
      const input = {
        platform: 'ALL',
        audienceType: 'ALIAS',
        audiences: ['gql-push'],
        alert: 'hi',
        idempotencyKey: 'gql-1',
      };
      const first = await graphql<{ pushToDevices: { requestId: string } }>(url, ticket, PUSH, { input });
      const retried = await graphql<{ pushToDevices: { requestId: string } }>(url, ticket, PUSH, { input });
      expect(first.errors).to.equal(undefined);
      expect(retried.data).to.deep.equal(first.data);
      const other = await graphql(url, ticket, PUSH, { input: { ...input, alert: 'other' } });
      expect(other.errors?.[0]?.extensions?.code).to.equal('CONFLICT');
      const bad = await graphql(url, ticket, PUSH, { input: { ...input, idempotencyKey: '' } });
      expect(bad.errors?.[0]?.extensions?.code).to.equal('BAD_USER_INPUT');
      await expectReceived(device, [first.data!.pushToDevices.requestId]);
    });
  });

  describe('ONE-PUSH device socket: confirmations', () => {
    it('a confirmation sent again is answered {"confirmed"} again and appends nothing — also on a new connection, as after a crash', async () => {
      const device = await connectedDevice('confirm-again');
      const { body } = await postJson('/msgpush/send', {
        appId: 'camel',
        appKey: 'EERWERRRRE',
        platform: 'ALL',
        audienceType: 'ALIAS',
        audiences: ['confirm-again'],
        alert: 'confirm me',
        needConfirm: true,
        duration: 600,
      });
      const messageId = body.requestId as string;
      await device.socket.until((s) => s.messages.length === 1, 'the push');
      device.socket.confirm(messageId);
      device.socket.confirm(messageId);
      await device.socket.until((s) => s.frames.filter((f) => f.confirmed === messageId).length === 2, 'two answers');
      device.socket.close();
      // The device did not see the answer (a crash, a dropped connection) and confirms again on its next connection.
      const again = await DeviceSocket.connect(url, device.id);
      sockets.push(again);
      again.confirm(messageId);
      await again.until((s) => s.frames.some((f) => f.confirmed === messageId), 'the answer on the new connection');
      expect(again.frames.filter((f) => f.error !== undefined)).to.deep.equal([]);
      expect(again.messages, 'a confirmed message is not sent again').to.deep.equal([]);
      // GraphQL's confirmDelivery of the same delivery, with the device's token: answered true, nothing appended.
      const confirmed = await graphql(
        url,
        device.token,
        'mutation($messageId: ID!) { confirmDelivery(messageId: $messageId) }',
        { messageId },
      );
      expect(confirmed.data).to.deep.equal({ confirmDelivery: true });
      expect(await streamTypes(deliveryStreamName(messageId, device.id))).to.deep.equal([
        'MessageDelivered',
        'DeliveryConfirmed',
      ]);
    });
  });
});

// The sending rate (HERALD_SEND_RATE_PER_MINUTE, here 2) and idempotency keys, per sender: a retry that
// pushes nothing new takes nothing from the budget; a user, a device and an RTIO device are told apart
// by kind, not by their ids — a ticket's user id may be `device:<id>` or `rtio-device:<id>`.
describe('idempotent pushes: sending rate and senders', function () {
  this.timeout(60_000);
  let url: string;
  let stop: () => Promise<void>;

  before(async () => ({ url, stop } = await startTestHerald({ sendRatePerMinute: 2 })));
  after(async () => stop());

  const postJson = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  let devices = 0;
  const registered = async () => {
    const { status, body } = await postJson('/msgpush/register', {
      appId: 'camel',
      alias: `limited-${++devices}`,
      platform: 'ANDROID',
      nativeToken: `limited-${devices}`,
    });
    expect(status).to.equal(200);
    return { id: body.id as string, token: body.token as string };
  };
  /** topvdn's client push (shared/seeds/002_66d9dfe67c8bed29.txt): the device's sends count against its rate. */
  const clientPush = (sender: { token: string }, peer: { token: string }, key?: string) =>
    postJson(
      '/v2/message/client/push',
      { msg: 'aGVsbG8=', flag: 3, callback: 0, access_tokens: [peer.token] },
      { 'x-client-token': sender.token, ...(key !== undefined && { 'idempotency-key': key }) },
    );
  const PUSH = 'mutation($input: PushToDevicesInput!) { pushToDevices(input: $input) { requestId } }';
  const pushAsUser = (ticket: string, idempotencyKey?: string) =>
    graphql<{ pushToDevices: { requestId: string } }>(url, ticket, PUSH, {
      input: {
        platform: 'ALL',
        audienceType: 'ALIAS',
        audiences: ['nobody'],
        alert: 'hi',
        ...(idempotencyKey !== undefined && { idempotencyKey }),
      },
    });

  it('a retry at the rate limit answers the same request_id, not 429; a new push is still 429 (issue 21, item 12, review)', async () => {
    const [sender, peer] = [await registered(), await registered()];
    const first = await clientPush(sender, peer, 'at-limit-1');
    expect(first.status).to.equal(200);
    expect((await clientPush(sender, peer, 'at-limit-2')).status).to.equal(200);
    expect(await clientPush(sender, peer, 'at-limit-1')).to.deep.equal(first);
    expect((await clientPush(sender, peer, 'at-limit-3')).status).to.equal(429);
  });

  it('a user named device:<id> shares neither the idempotency keys nor the sending rate of device <id> (issue 21, item 12, review)', async () => {
    const [device, peer] = [await registered(), await registered()];
    const impostor = await issueTicket(url, `device:${device.id}`);
    const pushed = await clientPush(device, peer, 'shared-key');
    expect(pushed.status).to.equal(200);
    const keyed = await pushAsUser(impostor, 'shared-key');
    expect(keyed.errors, "the same key is the user's own").to.equal(undefined);
    expect(keyed.data!.pushToDevices.requestId).to.not.equal(pushed.body.request_id);
    expect((await clientPush(device, peer)).status).to.equal(200);
    expect((await clientPush(device, peer)).status, 'the device has used its rate').to.equal(429);
    expect((await pushAsUser(impostor)).errors, 'the user has a rate of its own').to.equal(undefined);
  });

  it('a user named rtio-device:<id> does not share the sending rate of RTIO device <id> (issue 21, item 12, review)', async () => {
    // shared/seeds/004_e2f5c37d54658cec.txt: a device of the app camel, reporting with GraphQL's `report`.
    const created = (await (
      await fetch(`${url}/manage/create_device`, {
        method: 'POST',
        headers: { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
        body: JSON.stringify({ nonce: 'limited-rtio' }),
      })
    ).json()) as Record<string, string>;
    expect(created.code).to.equal(1000);
    const report = () =>
      graphqlWithAuthorization(
        url,
        `RtioDevice ${created.device_id}:${created.device_key}`,
        'mutation { report(message: "hello") }',
      );
    for (let i = 0; i < 2; i++) expect((await report()).errors).to.equal(undefined);
    expect((await report()).errors?.[0]?.extensions?.code, 'the device has used its rate').to.equal('RATE_LIMITED');
    const impostor = await issueTicket(url, `rtio-device:${created.device_id}`);
    expect((await pushAsUser(impostor)).errors).to.equal(undefined);
    expect((await pushAsUser(impostor)).errors).to.equal(undefined);
  });
});
