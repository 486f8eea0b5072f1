import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { eventually } from '../support/eventually';
import { graphql, graphqlWithAuthorization, GraphqlSocket, type LiveOperation } from '../support/graphqlClient';
import { issueTicket, startTestHerald } from '../support/herald';
import { RtioDevice } from '../support/rtioDevice';

// RTIO devices (shared/seeds/004_e2f5c37d54658cec.txt) on GraphQL: a device authenticated by its
// device_id and device_key receives /call/send's calls as `deviceCalls`, answers them with
// `replyToCall`, and reports with `report` — forwarded to the notify URL as the seed's notification.
describe('GraphQL: RTIO devices (deviceCalls, replyToCall, report)', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let notifyServer: http.Server;
  const notified: Array<{ nonce: string; device_id: string; device_message: string }> = [];
  const sockets: GraphqlSocket[] = [];
  const rtioSockets: RtioDevice[] = [];
  let nonces = 0;
  const nonce = () => `g${Date.now() % 1e9}-${++nonces}`;

  before(async () => {
    notifyServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const request = JSON.parse(body) as { nonce: string; device_id: string; device_message: string };
        notified.push(request);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ nonce: request.nonce, code: 1000 }));
      });
    });
    await new Promise<void>((resolve) => notifyServer.listen(0, '127.0.0.1', resolve));
    test = await startTestHerald({
      rtioNotifyUrl: `http://127.0.0.1:${(notifyServer.address() as AddressInfo).port}/notify`,
    });
  });
  after(async () => {
    for (const socket of sockets) await socket.close();
    for (const device of rtioSockets) device.socket.close();
    await test?.stop();
    await new Promise((resolve) => notifyServer.close(resolve));
  });

  const post = async (path: string, body: Record<string, unknown>) => {
    const response = await fetch(`${test.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
    return (await response.json()) as Record<string, unknown>;
  };
  const create = async () => {
    const created = await post('/manage/create_device', { nonce: nonce() });
    expect(created.code).to.equal(1000);
    return created as { device_id: string; device_key: string };
  };
  const socket = (connectionParams: Record<string, unknown>) => {
    const s = GraphqlSocket.connect(test.url, connectionParams);
    sockets.push(s);
    return s;
  };
  const deviceSocket = async (device: { device_id: string; device_key: string }) => {
    const s = socket({ rtioDeviceId: device.device_id, rtioDeviceKey: device.device_key });
    await s.until(() => s.isConnected || s.closedWith !== undefined, 'the connection');
    expect(s.isConnected, `closed with ${s.closedWith}`).to.equal(true);
    return s;
  };
  const callsOf = async (s: GraphqlSocket, deviceId: string) => {
    const calls = s.subscribe<{ deviceCalls: { callId: string; message: string; timeLive: number } }>(
      'subscription { deviceCalls { callId message timeLive } }',
    );
    // The subscription is the device's connection: it is online once herald ran it.
    await eventually(() => expect(test.herald.rtio.isOnline(deviceId)).to.equal(true));
    return calls;
  };
  const codeOf = (result: { errors?: Array<{ extensions?: { code?: string } }> }) =>
    result.errors?.[0]?.extensions?.code;
  const REPLY =
    'mutation Reply($callId: ID!, $code: Int!, $message: String!) { replyToCall(callId: $callId, code: $code, message: $message) }';
  const REPORT = 'mutation Report($message: String!) { report(message: $message) }';
  const reportedCount = async () =>
    (await test.herald.infrastructure.store.readAll({ filter: { eventTypePrefixes: ['RtioDeviceReported'] } })).length;

  it("call/send answers with the device's own code and message, replied over graphql-ws", async () => {
    const device = await create();
    const s = await deviceSocket(device);
    const calls = await callsOf(s, device.device_id);
    const n = nonce();
    const answer = post('/call/send', {
      nonce: n,
      device_id: device.device_id,
      message: 'open the door',
      time_live: 10,
    });
    await s.until(() => calls.results.length === 1 || calls.completed, 'the call');
    const call = calls.results[0]!.deviceCalls;
    expect(call).to.include({ message: 'open the door', timeLive: 10 });
    expect(call.callId).to.be.a('string');
    const replied = await s.request(REPLY, { callId: call.callId, code: 1234, message: 'door opened' });
    expect(replied).to.deep.equal({ data: { replyToCall: true } });
    expect(await answer).to.deep.equal({
      nonce: n,
      code: 1000,
      desc: 'SUCCESS',
      device_id: device.device_id,
      device_status: 1,
      device_code: 1234,
      device_message: 'door opened',
    });
    // The call was answered: replying again finds nothing waiting.
    expect(codeOf(await s.request(REPLY, { callId: call.callId, code: 1, message: 'again' }))).to.equal('NOT_FOUND');
    const events = await test.herald.infrastructure.store.readAll({ filter: { eventTypePrefixes: ['Rtio'] } });
    expect(
      events
        .filter(
          (e) => (e.data as { deviceId?: string }).deviceId === device.device_id || e.type === 'RtioDeviceReplied',
        )
        .map((e) => e.type),
    ).to.include.members(['RtioDeviceCalled', 'RtioDeviceReplied']);
  });

  it('a report is recorded and forwarded to the notify URL as {nonce, device_id, device_message}; also over HTTP', async () => {
    const device = await create();
    const s = await deviceSocket(device);
    const reported = await s.request<{ report: string }>(REPORT, { message: 'battery low: 14%' });
    expect(reported.errors).to.equal(undefined);
    expect(reported.data?.report).to.match(/^[0-9a-f-]{36}$/);
    await eventually(() =>
      expect(notified.find((r) => r.device_message === 'battery low: 14%')).to.include({ device_id: device.device_id }),
    );
    expect(notified.find((r) => r.device_message === 'battery low: 14%')!.nonce).to.match(/^\d+$/);

    const overHttp = await graphqlWithAuthorization<{ report: string }>(
      test.url,
      `RtioDevice ${device.device_id}:${device.device_key}`,
      REPORT,
      { message: 'door closed' },
    );
    expect(overHttp.status).to.equal(200);
    expect(overHttp.data?.report).to.match(/^[0-9a-f-]{36}$/);
    await eventually(() =>
      expect(notified.find((r) => r.device_message === 'door closed')).to.include({ device_id: device.device_id }),
    );
  });

  it('refuses an oversize or unstorable report and reply (BAD_USER_INPUT), recording nothing; an unknown call is NOT_FOUND', async () => {
    const device = await create();
    const s = await deviceSocket(device);
    const before = await reportedCount();
    expect(codeOf(await s.request(REPORT, { message: 'r'.repeat(1025) }))).to.equal('BAD_USER_INPUT');
    expect(codeOf(await s.request(REPORT, { message: '好'.repeat(342) }))).to.equal('BAD_USER_INPUT'); // 1,026 bytes
    expect(codeOf(await s.request(REPORT, { message: 'nul \u0000' }))).to.equal('BAD_USER_INPUT');
    expect((await s.request(REPORT, { message: 'r'.repeat(1024) })).errors).to.equal(undefined);
    expect(await reportedCount()).to.equal(before + 1);
    const unknown = '0123456789abcdef0123456789abcdef';
    expect(codeOf(await s.request(REPLY, { callId: unknown, code: 1000, message: 'ok' }))).to.equal('NOT_FOUND');
    expect(codeOf(await s.request(REPLY, { callId: unknown, code: 1000, message: 'm'.repeat(513) }))).to.equal(
      'BAD_USER_INPUT',
    );
    expect(codeOf(await s.request(REPLY, { callId: unknown, code: 1000, message: 'bell \u0007' }))).to.equal(
      'BAD_USER_INPUT',
    );
    expect(s.isConnected, 'refusals leave the socket open').to.equal(true);
  });

  it("a device cannot reply to another device's call (NOT_FOUND)", async () => {
    const [called, other] = [await create(), await create()];
    const s = await deviceSocket(called);
    const calls = await callsOf(s, called.device_id);
    const o = await deviceSocket(other);
    const answer = post('/call/send', {
      nonce: nonce(),
      device_id: called.device_id,
      message: 'who are you',
      time_live: 10,
    });
    await s.until(() => calls.results.length === 1, 'the call');
    const { callId } = calls.results[0]!.deviceCalls;
    expect(codeOf(await o.request(REPLY, { callId, code: 1, message: 'not me' }))).to.equal('NOT_FOUND');
    expect((await s.request(REPLY, { callId, code: 2, message: 'me' })).data).to.deep.equal({ replyToCall: true });
    expect(await answer).to.include({ code: 1000, device_code: 2, device_message: 'me' });
  });

  it('closes the socket (4403) for a wrong key, half a pair, or more than one kind of credential; HTTP answers 401', async () => {
    const device = await create();
    const ticket = await issueTicket(test.url, 'rtio-user');
    const cases: Array<Record<string, unknown>> = [
      { rtioDeviceId: device.device_id, rtioDeviceKey: 'wrong' },
      { rtioDeviceId: device.device_id },
      { rtioDeviceKey: device.device_key },
      { rtioDeviceId: device.device_id, rtioDeviceKey: 42 },
      { rtioDeviceId: device.device_id, rtioDeviceKey: device.device_key, ticket },
      {
        rtioDeviceId: device.device_id,
        rtioDeviceKey: device.device_key,
        deviceToken: '1_1_1_0123456789abcdef0123456789abcdef',
      },
    ];
    for (const params of cases) {
      const s = socket(params);
      await s.until(() => s.closedWith !== undefined, `the refusal of ${JSON.stringify(params)}`);
      expect(s.closedWith, JSON.stringify(params)).to.equal(4403);
    }
    for (const authorization of [
      `RtioDevice ${device.device_id}:wrong`,
      `RtioDevice ${device.device_id}`,
      `RtioDevice :${device.device_key}`,
    ]) {
      const result = await graphqlWithAuthorization(test.url, authorization, REPORT, { message: 'x' });
      expect(result.status, authorization).to.equal(401);
      expect(codeOf(result), authorization).to.equal('UNAUTHENTICATED');
    }
  });

  it('refuses tickets and ONE-PUSH device tokens on the RTIO fields, and an RTIO device on user and device fields (FORBIDDEN)', async () => {
    const device = await create();
    const ticket = await issueTicket(test.url, 'rtio-user');
    // A ONE-PUSH device (shared/seeds/003_834cb051d61fc48e.txt): its token from POST /msgpush/register.
    const registration = await fetch(`${test.url}/msgpush/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        appId: 'camel',
        alias: 'rtio-user',
        platform: 'ANDROID',
        nativeToken: `rtio-test-${nonce()}`,
      }),
    });
    const registered = (await registration.json()) as { token: string };
    const refused = async (s: GraphqlSocket, query: string, variables?: Record<string, unknown>) => {
      const operation: LiveOperation<unknown> = s.subscribe(query, variables);
      await s.until(() => operation.completed, `the refusal of ${query}`);
      return operation.errors[0]?.extensions?.code;
    };
    for (const params of [{ ticket }, { deviceToken: registered.token }]) {
      const s = socket(params);
      expect(await refused(s, 'subscription { deviceCalls { callId } }'), JSON.stringify(params)).to.equal('FORBIDDEN');
      expect(await refused(s, REPLY, { callId: 'x', code: 1, message: 'm' })).to.equal('FORBIDDEN');
      expect(await refused(s, REPORT, { message: 'm' })).to.equal('FORBIDDEN');
      expect(s.isConnected).to.equal(true);
    }
    expect(codeOf(await graphql(test.url, ticket, REPORT, { message: 'm' }))).to.equal('FORBIDDEN');
    expect(codeOf(await graphql(test.url, registered.token, REPORT, { message: 'm' }))).to.equal('FORBIDDEN');

    const s = await deviceSocket(device);
    for (const query of [
      '{ me { userId } }',
      '{ notifications { total } }',
      '{ notificationStats { site_broadcast } }',
      '{ devices { nodes { id } } }',
      'subscription { messages { id } }',
      'subscription { notificationStats { site_broadcast } }',
      'subscription { deviceMessages { messageId } }',
      'mutation { confirmDelivery(messageId: "x") }',
      'mutation { sendMessage(input: { to: ["a"], title: "t", content: "c" }) { id } }',
    ]) {
      expect(await refused(s, query), query).to.equal('FORBIDDEN');
    }
    expect(s.isConnected, 'refusals leave the socket open').to.equal(true);
    const overHttp = await graphqlWithAuthorization(
      test.url,
      `RtioDevice ${device.device_id}:${device.device_key}`,
      '{ me { userId } }',
    );
    expect(codeOf(overHttp)).to.equal('FORBIDDEN');
  });

  it('is offline once the subscription ends or the socket closes; a newer connection ends the older one (REPLACED)', async () => {
    const device = await create();
    const s = await deviceSocket(device);
    const calls = await callsOf(s, device.device_id);
    calls.stop();
    await eventually(() => expect(test.herald.rtio.isOnline(device.device_id)).to.equal(false));
    expect(await post('/call/send', { nonce: nonce(), device_id: device.device_id, message: 'anyone?' })).to.include({
      code: 2305,
      device_status: 2,
    });

    const again = await callsOf(s, device.device_id);
    // The same device on /rtio.ws replaces the subscription.
    const plain = await RtioDevice.connect(test.url, { device_id: device.device_id, device_key: device.device_key });
    rtioSockets.push(plain);
    await s.until(() => again.completed, 'the replaced subscription to end');
    expect(again.errors[0]?.extensions?.code).to.equal('REPLACED');
    expect(test.herald.rtio.isOnline(device.device_id)).to.equal(true);
    expect(await post('/call/send', { nonce: nonce(), device_id: device.device_id, message: 'plain' })).to.include({
      code: 1000,
      device_message: 'echo plain',
    });

    // …and a subscription replaces /rtio.ws (closed 4409).
    const third = await callsOf(s, device.device_id);
    await plain.until((d) => d.closeCode !== undefined, 'the plain socket closed');
    expect(plain.closeCode).to.equal(4409);
    expect(third.completed).to.equal(false);
    await s.close();
    await eventually(() => expect(test.herald.rtio.isOnline(device.device_id)).to.equal(false));
  });
});
