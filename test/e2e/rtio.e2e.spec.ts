import { expect } from 'chai';
import { appendedEvents, appendedSince, TEST_METRICS_TOKEN } from '../support/appendedEvents';
import { eventually } from '../support/eventually';
import { startTestHerald } from '../support/herald';
import { freePort } from '../support/postgres';
import { RtioDevice } from '../support/rtioDevice';

// RTIO (shared/seeds/004_e2f5c37d54658cec.txt) on the wire: every code, the device's own reply, nonces.
describe('RTIO: /manage/create_device and /call/send', function () {
  this.timeout(60_000);
  let url: string;
  let stop: () => Promise<void>;
  let herald: Awaited<ReturnType<typeof startTestHerald>>['herald'];
  const devices: RtioDevice[] = [];
  let nonces = 0;
  const nonce = () => `n${Date.now() % 1e9}-${++nonces}`;

  before(async () => {
    // /metrics on, to count what requests appended.
    ({ url, stop, herald } = await startTestHerald({ metricsToken: TEST_METRICS_TOKEN }));
  });
  after(async () => {
    for (const device of devices) device.socket.close();
    await stop();
  });

  /** As the seed's curl does: `--data '<json>'`, i.e. posted as a form. */
  const post = async (path: string, body: string, init: RequestInit = {}) => {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      ...init,
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const create = async () => {
    const n = nonce();
    const { status, body } = await post('/manage/create_device', JSON.stringify({ nonce: n }));
    expect(status).to.equal(200);
    expect(body).to.include({ nonce: n, code: 1000, desc: 'SUCCESS' });
    expect(body.device_id).to.match(/^[0-9a-f]{32}$/);
    expect(body.device_key).to.be.a('string');
    return body as { device_id: string; device_key: string };
  };
  const connect = async (created: { device_id: string; device_key: string }, answer?: RtioDevice['answer']) => {
    const device = await RtioDevice.connect(
      url,
      { device_id: created.device_id, device_key: created.device_key },
      answer,
    );
    devices.push(device);
    return device;
  };
  const send = (fields: Record<string, unknown>) =>
    post('/call/send', JSON.stringify({ nonce: nonce(), message: 'this dispatch message', ...fields }));

  it("create → the device connects → call/send answers with the device's own code and message", async () => {
    const before = await appendedEvents(url);
    const created = await create();
    const device = await connect(created, (message) => ({
      code: 1234,
      message: `this a device message for ${message}`,
    }));
    const n = nonce();
    const { status, body } = await post(
      '/call/send',
      JSON.stringify({ nonce: n, device_id: created.device_id, message: 'this dispatch message' }),
    );
    expect(status).to.equal(200);
    expect(body).to.deep.equal({
      nonce: n,
      code: 1000,
      desc: 'SUCCESS',
      device_id: created.device_id,
      device_status: 1,
      device_code: 1234,
      device_message: 'this a device message for this dispatch message',
    });
    expect(device.calls[0]).to.include({ message: 'this dispatch message', time_live: 6 });
    // Recorded: the two nonces, the device, the call and the device's reply.
    await eventually(async () =>
      expect(await appendedSince(url, before)).to.deep.equal({
        RtioNonceUsed: 2,
        RtioDeviceCreated: 1,
        RtioDeviceCalled: 1,
        RtioDeviceReplied: 1,
      }),
    );
  });

  it('answers 2305 with device_status 2 at once for an offline device, and 1 when it does not reply within time_live', async () => {
    const offline = await create();
    const atOnce = await send({ device_id: offline.device_id });
    expect(atOnce.body).to.include({ code: 2305, device_id: offline.device_id, device_status: 2 });
    const silent = await create();
    await connect(silent, () => undefined);
    const started = Date.now();
    const late = await send({ device_id: silent.device_id, time_live: 1 });
    expect(late.body).to.include({ code: 2305, device_status: 1 });
    expect(Date.now() - started).to.be.at.least(900);
  });

  it('answers a call whose device drops its connection at once as offline (2305, device_status 2), not at time_live', async () => {
    const created = await create();
    const device = await connect(created);
    device.answer = () => {
      device.socket.close();
      return undefined;
    };
    const started = Date.now();
    const dropped = await send({ device_id: created.device_id, time_live: 20 });
    expect(dropped.body).to.include({ code: 2305, device_status: 2 });
    expect(Date.now() - started).to.be.below(10_000);
  });

  it('refuses a reply after time_live: the device is told no call is waiting', async () => {
    const created = await create();
    const device = await connect(created, () => undefined);
    const late = await send({ device_id: created.device_id, time_live: 1 });
    expect(late.body).to.include({ code: 2305, device_status: 1 });
    const callId = device.calls[0]!.call_id;
    device.socket.send(JSON.stringify({ call_id: callId, code: 1000, message: 'too late' }));
    await device.until((d) => d.frames.some((f) => f.call_id === callId && typeof f.error === 'object'), 'the refusal');
  });

  it('refuses bad input with its code, echoing the nonce, appending nothing', async () => {
    const created = await create();
    const before = await appendedEvents(url);
    const cases: Array<[string, string, number]> = [
      [
        '/call/send',
        '{"nonce": "x1", "device_id": "' + created.device_id + '", "message": "' + 'm'.repeat(513) + '"}',
        1604,
      ],
      [
        '/call/send',
        '{"nonce": "x2", "device_id": "' + created.device_id + '", "message": "m", "time_live": -1}',
        1604,
      ],
      [
        '/call/send',
        '{"nonce": "x3", "device_id": "' + created.device_id + '", "message": "m", "time_live": 1.5}',
        1604,
      ],
      [
        '/call/send',
        '{"nonce": "x3b", "device_id": "' + created.device_id + '", "message": "m", "time_live": "six"}',
        1604,
      ],
      ['/call/send', '{"nonce": "x4", "device_id": "' + created.device_id + '"}', 1604],
      ['/call/send', `{"nonce": "${'n'.repeat(33)}", "device_id": "${created.device_id}", "message": "m"}`, 1604],
      ['/call/send', '{"nonce": "x5", "device_id": "0123456789abcdef0123456789abcdef", "message": "m"}', 1605],
      ['/call/send', '{"nonce": "x6", "device_id": "' + 'd'.repeat(65) + '", "message": "m"}', 1604],
      ['/call/send', '{"nonce": "x7", "device_id": 7, "message": "m"}', 1604],
      ['/call/send', '{"nonce": "x8", ', 1603],
      ['/call/send', '', 1601],
      ['/call/send', '[1]', 1601],
      ['/manage/create_device', '{}', 1604],
      ['/manage/create_device', '{"nonce": true}', 1604],
      ['/manage/create_device', '{"nonce": -5}', 1604],
      ['/manage/nope', '{"nonce": "x9"}', 1600],
    ];
    for (const [path, body, code] of cases) {
      const answer = await post(path, body);
      expect(answer.status, `${path} ${body.slice(0, 60)}`).to.equal(200);
      expect(answer.body.code, `${path} ${body.slice(0, 60)}`).to.equal(code);
    }
    expect((await post('/call/send', '{"nonce": "x10", "message": "m"}')).body.nonce).to.equal('x10');
    const get = await fetch(`${url}/call/send`);
    expect(((await get.json()) as Record<string, unknown>).code).to.equal(1602);
    expect(await appendedSince(url, before), 'nothing appended').to.deep.equal({});
  });

  it('answers 2705 (HTTP 500) when herald cannot create the device, and 2305 when it cannot record a call; nothing is appended', async () => {
    const created = await create();
    const { store } = herald.infrastructure;
    const append = store.append.bind(store);
    // The event store failing (a test double for a store that is down: its one failing method). herald
    // has no public switch for a store that refuses writes while it answers reads.
    store.append = () => Promise.reject(new Error('the store is down'));
    try {
      const before = await appendedEvents(url);
      const failedCreate = await post('/manage/create_device', JSON.stringify({ nonce: 'store-down-1' }));
      expect(failedCreate.status).to.equal(500);
      expect(failedCreate.body).to.include({ nonce: 'store-down-1', code: 2705 });
      const failedCall = await post(
        '/call/send',
        JSON.stringify({ nonce: 'store-down-2', device_id: created.device_id, message: 'm' }),
      );
      expect(failedCall.status).to.equal(500);
      expect(failedCall.body).to.include({ nonce: 'store-down-2', code: 2305 });
      expect(JSON.stringify(failedCall.body)).to.not.contain('store is down');
      expect(await appendedSince(url, before), 'nothing appended').to.deep.equal({});
    } finally {
      store.append = append;
    }
  });

  it('refuses a nonce used before (1604), appending nothing: one nonce space for create_device and call/send', async () => {
    const created = await create();
    const device = await connect(created);
    const n = nonce();
    expect((await send({ nonce: n, device_id: created.device_id })).body.code).to.equal(1000);
    const before = await appendedEvents(url);
    const again = await send({ nonce: n, device_id: created.device_id });
    expect(again.body).to.include({ nonce: n, code: 1604 });
    expect(again.body.desc).to.match(/nonce/);
    // The seed: every request's nonce differs ("每次请求不能相同"), whichever request it was used for.
    const createAgain = await post('/manage/create_device', JSON.stringify({ nonce: n }));
    expect(createAgain.body).to.include({ nonce: n, code: 1604 });
    expect(createAgain.body.desc).to.match(/nonce: already used/);
    // The seed's own create example, then its call example with the nonce create used.
    const seedNonce = `1724578899-${n}`;
    const seedCreate = await post('/manage/create_device', `{"nonce":"${seedNonce}"}`);
    expect(seedCreate.body).to.include({ nonce: seedNonce, code: 1000 });
    const reused = await post(
      '/call/send',
      `{"nonce":"${seedNonce}", "device_id": "${created.device_id}", "message":"this dispatch message"}`,
    );
    expect(reused.body).to.include({ nonce: seedNonce, code: 1604, device_id: created.device_id });
    expect(device.calls).to.have.length(1);
    // Only the seed's create appended: its nonce and its device.
    expect(await appendedSince(url, before)).to.deep.equal({ RtioNonceUsed: 1, RtioDeviceCreated: 1 });
  });

  it('a request refused for its fields or an unknown device takes no nonce: sent again, right, it goes through', async () => {
    const created = await create();
    await connect(created);
    const n = nonce();
    expect((await send({ nonce: n, device_id: '0123456789abcdef0123456789abcdef' })).body.code).to.equal(1605);
    expect((await send({ nonce: n, device_id: created.device_id, message: 'bell\u0007' })).body.code).to.equal(1604);
    expect((await send({ nonce: n, device_id: created.device_id })).body).to.include({ nonce: n, code: 1000 });
  });

  it('closes a device socket with a wrong key (4401); a device of another app is unknown (1605)', async () => {
    const created = await create();
    const wrong = await RtioDevice.connect(url, { device_id: created.device_id, device_key: 'nope' });
    expect(wrong.closeCode).to.equal(4401);
    const other = await fetch(`${url}/manage/create_device`, {
      method: 'POST',
      body: JSON.stringify({ nonce: nonce() }),
      headers: { 'x-app-id': 'other', 'x-app-key': 'other-secret' },
    });
    const otherDevice = (await other.json()) as { device_id: string };
    expect((await send({ device_id: otherDevice.device_id })).body.code).to.equal(1605);
  });

  it("answers a caller outside the trusted networks without app credentials in the seed's envelope: HTTP 200, code 1606, naming its address", async () => {
    const closed = await startTestHerald({ rtioTrustedCidrs: [] });
    try {
      // The seed's own example, from a network not in RTIO_TRUSTED_CIDRS.
      const refused = await fetch(`${closed.url}/manage/create_device`, {
        method: 'POST',
        body: '{"nonce":"1724578899"}',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(refused.status).to.equal(200);
      const body = (await refused.json()) as Record<string, unknown>;
      expect(Object.keys(body).sort()).to.deep.equal(['code', 'desc', 'nonce']);
      expect(body).to.include({ nonce: '1724578899', code: 1606 });
      expect(body.desc)
        .to.match(/RTIO_TRUSTED_CIDRS/)
        .and.to.match(/127\.0\.0\.1/);
      const call = await fetch(`${closed.url}/call/send`, {
        method: 'POST',
        body: '{"nonce":"157789243", "device_id": "4ffffb282b774b1fa1942b76445131d7", "message":"this dispatch message"}',
      });
      expect(call.status).to.equal(200);
      expect(await call.json()).to.include({
        nonce: '157789243',
        code: 1606,
        device_id: '4ffffb282b774b1fa1942b76445131d7',
      });
      const wrongKey = await fetch(`${closed.url}/manage/create_device`, {
        method: 'POST',
        body: '{"nonce":"t2"}',
        headers: { 'x-app-id': 'camel', 'x-app-key': 'nope' },
      });
      expect(wrongKey.status).to.equal(200);
      expect(await wrongKey.json()).to.include({ nonce: 't2', code: 1606 });
      // Refused callers took no nonce: the same nonce from a trusted app goes through.
      const allowed = await fetch(`${closed.url}/manage/create_device`, {
        method: 'POST',
        body: '{"nonce":"t2"}',
        headers: { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
      });
      expect(await allowed.json()).to.deep.include({ nonce: 't2', code: 1000 });
    } finally {
      await closed.stop();
    }
  });

  it('refuses a browser request trusted by network alone (Origin, Sec-Fetch-Site: a page from anywhere) with 1606, appending nothing; app credentials still go through', async () => {
    const before = await appendedEvents(url);
    const n = nonce();
    // What a page on another origin can send from a browser inside the trusted network: a simple POST, text/plain.
    const browsers: Array<Record<string, string>> = [
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' },
      { 'sec-fetch-site': 'same-site' },
    ];
    for (const headers of browsers) {
      const created = await post('/manage/create_device', JSON.stringify({ nonce: n }), {
        headers: { 'content-type': 'text/plain', ...headers },
      });
      expect([created.status, created.body.code], JSON.stringify(headers)).to.deep.equal([200, 1606]);
      expect(created.body).to.include({ nonce: n });
      expect(created.body.desc).to.match(/browser/);
      const called = await post(
        '/call/send',
        JSON.stringify({ nonce: n, device_id: '4ffffb282b774b1fa1942b76445131d7', message: 'this dispatch message' }),
        { headers: { 'content-type': 'text/plain', ...headers } },
      );
      expect(called.body).to.include({ nonce: n, code: 1606, device_id: '4ffffb282b774b1fa1942b76445131d7' });
    }
    expect(await appendedSince(url, before), 'nothing appended').to.deep.equal({});
    // No nonce was taken; a server's client (Node's fetch sends Sec-Fetch-Mode only) goes through.
    expect((await post('/manage/create_device', JSON.stringify({ nonce: n }))).body).to.include({
      nonce: n,
      code: 1000,
    });
    const withCredentials = await post('/manage/create_device', JSON.stringify({ nonce: nonce() }), {
      headers: {
        origin: 'https://evil.example',
        'sec-fetch-site': 'cross-site',
        'x-app-id': 'camel',
        'x-app-key': 'EERWERRRRE',
      },
    });
    expect(withCredentials.body).to.include({ code: 1000 });
  });

  it("also serves the seed's ports when configured: /manage on RTIO_MANAGE_PORT, /call on RTIO_CALL_PORT", async () => {
    const managePort = await freePort();
    const callPort = await freePort(managePort);
    const ported = await startTestHerald({ rtioManagePort: managePort, rtioCallPort: callPort });
    try {
      const on = async (port: number, path: string, body: unknown) =>
        (await (
          await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body: JSON.stringify(body) })
        ).json()) as Record<string, unknown>;
      const created = await on(managePort, '/manage/create_device', { nonce: 'p1' });
      expect(created).to.include({ nonce: 'p1', code: 1000 });
      expect(
        await on(managePort, '/call/send', { nonce: 'p2', device_id: created.device_id, message: 'm' }),
      ).to.include({ code: 1600 });
      expect(await on(callPort, '/call/send', { nonce: 'p3', device_id: created.device_id, message: 'm' })).to.include({
        code: 2305,
        device_status: 2,
      });
      expect(await on(callPort, '/manage/create_device', { nonce: 'p4' })).to.include({ code: 1600 });
    } finally {
      await ported.stop();
    }
  });

  it("answers every request on the seed's ports in its envelope: an unknown URI (the seed's own /api?seq=123459) 1600, a wrong method 1602, a bad body 1601, bad JSON 1603", async () => {
    const managePort = await freePort();
    const callPort = await freePort(managePort);
    const ported = await startTestHerald({ rtioManagePort: managePort, rtioCallPort: callPort });
    try {
      const on = async (port: number, path: string, init: RequestInit = {}) => {
        const response = await fetch(`http://127.0.0.1:${port}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          ...init,
        });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      // The seed's win10 example: curl.exe --data '{\"deviceid\":\"device001\"}' "http://…:8090/api?seq=123459"
      for (const port of [callPort, managePort]) {
        const seedExample = await on(port, '/api?seq=123459', { body: '{"deviceid":"device001"}' });
        expect(seedExample.status, `port ${port}`).to.equal(200);
        expect(seedExample.body, `port ${port}`).to.deep.equal({ nonce: '', code: 1600, desc: 'invalid URI' });
        expect((await on(port, '/', { method: 'GET' })).body).to.include({ code: 1600 });
        expect((await on(port, '/api/x', { body: '{"nonce": "u1"}' })).body).to.include({ nonce: 'u1', code: 1600 });
        // The URI first: a body that cannot be read (over 16 KB) does not make an unknown URI a bad body.
        expect((await on(port, '/api?seq=123459', { body: 'x'.repeat(20_000) })).body).to.include({ code: 1600 });
      }
      expect((await on(callPort, '/call/send', { method: 'GET' })).body).to.include({ code: 1602 });
      expect(
        (await on(managePort, '/manage/create_device', { method: 'PUT', body: '{"nonce": "m1"}' })).body,
      ).to.include({ nonce: 'm1', code: 1602 });
      expect((await on(callPort, '/call/send', { body: '' })).body).to.include({ code: 1601, device_id: '' });
      expect((await on(callPort, '/call/send', { body: '"text"' })).body).to.include({ code: 1601 });
      expect((await on(callPort, '/call/send/', { body: 'x'.repeat(20_000) })).body).to.include({ code: 1601 });
      expect((await on(managePort, '/manage/create_device', { body: '{"nonce": ' })).body).to.include({ code: 1603 });
      expect((await on(callPort, '/call/send', { body: '{"nonce": "j1", ' })).body).to.include({ code: 1603 });
      // herald's probes stay on every port it listens on.
      expect((await fetch(`http://127.0.0.1:${callPort}/healthz`)).status).to.equal(200);
    } finally {
      await ported.stop();
    }
  });

  it('takes an empty optional field as absent: time_live null or "" is the default, 6 s', async () => {
    const created = await create();
    const device = await connect(created);
    for (const timeLive of ['null', '""', '" "']) {
      const n = nonce();
      const answer = await post(
        '/call/send',
        `{"nonce":"${n}", "device_id": "${created.device_id}", "message":"this dispatch message", "time_live": ${timeLive}}`,
      );
      expect(answer.body, timeLive).to.include({ nonce: n, code: 1000 });
    }
    expect(device.calls.map((call) => call.time_live)).to.deep.equal([6, 6, 6]);
  });

  it("keeps the seed's lengths in bytes: desc at most 128, device_id echoed on every call/send answer", async () => {
    const created = await create();
    // A key of 300 characters holding text that is not Unicode: the refusal names it, cut to 128 bytes.
    const long = await post(
      '/call/send',
      `{"nonce": "d1", "device_id": "${created.device_id}", "message": "m", "${'键'.repeat(300)}": "\\ud800"}`,
    );
    expect(long.body).to.include({ nonce: 'd1', code: 1604, device_id: created.device_id });
    expect(Buffer.byteLength(long.body.desc as string, 'utf8')).to.be.within(100, 128);
    // A message of 170 Chinese characters is 510 bytes (within 512); 171 are 513.
    const device = await connect(created, () => ({ code: 1000, message: 'ok' }));
    expect((await send({ device_id: created.device_id, message: '消'.repeat(170) })).body).to.include({ code: 1000 });
    expect((await send({ device_id: created.device_id, message: '消'.repeat(171) })).body).to.include({
      code: 1604,
      device_id: created.device_id,
    });
    expect(device.calls).to.have.length(1);
    expect((await send({ device_id: created.device_id, time_live: -1 })).body).to.include({
      code: 1604,
      device_id: created.device_id,
    });
  });

  it('takes a nonce sent as a whole number (PHP time(), a Go int64) as its digits, echoed as sent; the same digits as text are the same nonce', async () => {
    const n = 1_700_000_000 + (Date.now() % 1e8);
    const created = await post('/manage/create_device', `{"nonce": ${n}}`);
    expect(created.body).to.include({ nonce: n, code: 1000 });
    const again = await post(
      '/call/send',
      `{"nonce": "${n}", "device_id": "${created.body.device_id as string}", "message": "m"}`,
    );
    expect(again.body).to.include({ nonce: String(n), code: 1604 });
    for (const bad of ['-1', '1.5', '1e40'])
      expect((await post('/manage/create_device', `{"nonce": ${bad}}`)).body, bad).to.include({
        nonce: '',
        code: 1604,
      });
  });

  it('takes time_live 0 (a Go struct without omitempty) as the default 6 s, clamps one above 30 to 30, reads "6" as 6', async () => {
    const created = await create();
    const device = await connect(created, () => ({ code: 1000, message: 'ok' }));
    for (const timeLive of ['0', '31', '3600', '"6"', '"0"']) {
      const n = nonce();
      const answer = await post(
        '/call/send',
        `{"nonce":"${n}", "device_id": "${created.device_id}", "message":"this dispatch message", "time_live": ${timeLive}}`,
      );
      expect(answer.body, timeLive).to.include({ nonce: n, code: 1000 });
    }
    expect(device.calls.map((call) => call.time_live)).to.deep.equal([6, 30, 30, 6, 6]);
  });
});
