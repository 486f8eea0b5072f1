import { expect } from 'chai';
import pg from 'pg';
import { loadConfig } from '../../src/config';
import { startHerald, type Herald } from '../../src/herald';
import { createLogger } from '../../src/runtime/logger';
import { eventually } from '../support/eventually';
import { issueTicket, postForm } from '../support/herald';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { createRtioDevice, RtioDevice } from '../support/rtioDevice';
import { TcpProxy } from '../support/tcpProxy';

/**
 * Issue 21, items 10 and 11: what clients and a load balancer see while PostgreSQL is unreachable or a
 * projection is blocked, and that herald comes back by itself. herald reaches its database through a
 * proxy the test cuts (for herald the server is gone; the machine's server is never touched).
 */
describe('herald when its database fails (issue 21, items 10 and 11)', function () {
  this.timeout(120_000);
  let testDatabase: TestDatabase;
  let proxy: TcpProxy;
  let herald: Herald;
  const logLines: string[] = [];

  before(async () => {
    testDatabase = await createTestDatabase();
    proxy = await TcpProxy.start(testDatabase.connectionString);
    const config = {
      ...loadConfig({}),
      port: 0,
      host: '127.0.0.1',
      databaseUrl: proxy.databaseUrl(testDatabase.connectionString),
      apps: [{ appId: 'camel', secret: 'EERWERRRRE' }],
      readyMaxLagSeconds: 1,
      readYourWritesTimeoutMs: 500,
    };
    // herald's own logger (its serializers), writing here.
    herald = await startHerald(config, createLogger('info', { write: (line: string) => void logLines.push(line) }));
  });
  after(async () => {
    await herald?.close();
    await proxy?.close();
    await testDatabase?.drop();
  });

  const readyz = async () => {
    const response = await fetch(`${herald.url}/readyz`);
    return {
      status: response.status,
      body: (await response.json()) as { status: string; notReady?: Record<string, string> },
    };
  };
  const graphql = (ticket: string, query: string) =>
    fetch(`${herald.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ticket}` },
      body: JSON.stringify({ query }),
    });

  it('/readyz is 503 naming the projection while a table lock blocks it, 200 once the lock is released', async () => {
    await eventually(async () => expect((await readyz()).status).to.equal(200), { timeoutMs: 30_000 });
    const sender = await issueTicket(herald.url, 'locked-sender');
    const holder = new pg.Client({ connectionString: testDatabase.connectionString });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      // SHARE blocks the projection's writes without taking a transaction id (which would hold back every projection).
      await holder.query('LOCK TABLE notification_messages IN SHARE MODE');
      const sent = await postForm(`${herald.url}/koala/api/mas/messages`, {
        ticket: sender,
        users: 'locked-receiver',
        title: 'held',
        content: 'by a lock',
      });
      expect(sent.body).to.include({ status: 0 });
      const notReady = await eventually(
        async () => {
          const { status, body } = await readyz();
          expect(status).to.equal(503);
          return body;
        },
        { timeoutMs: 20_000 },
      );
      expect(notReady.status).to.equal('not ready');
      expect(notReady.notReady?.projections).to.match(/notifications is \d+ s behind the store/);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
    await eventually(async () => expect((await readyz()).status).to.equal(200), { timeoutMs: 20_000 });
  });

  it('while the database is unreachable: GraphQL 503 JSON with Retry-After, shims in their envelopes, /readyz 503, /healthz 200, small log lines; all back after', async () => {
    const ticket = await issueTicket(herald.url, 'outage-reader');
    expect((await graphql(ticket, '{ notifications(first: 1) { total } }')).status).to.equal(200);
    const created = await createRtioDevice(herald.url, 'outage-device', { appId: 'camel', secret: 'EERWERRRRE' });
    const device = await RtioDevice.connect(herald.url, created);
    const logsBefore = logLines.length;
    proxy.cut();
    try {
      await eventually(async () => expect((await readyz()).status).to.equal(503), { timeoutMs: 20_000 });

      const answer = await graphql(ticket, '{ notifications(first: 1) { total } }');
      expect(answer.status).to.equal(503);
      expect(answer.headers.get('retry-after')).to.equal('2');
      expect(answer.headers.get('content-type')).to.match(/^application\/json/);
      expect(await answer.json()).to.deep.equal({
        errors: [
          {
            message: 'the store is unavailable; retry shortly',
            extensions: { code: 'SERVICE_UNAVAILABLE', retryAfterSeconds: 2 },
          },
        ],
      });

      // The legacy shims answer in their own envelopes, as their seeds document a failure of the server.
      const koala = await fetch(`${herald.url}/koala/api/mas/messages`, {
        method: 'POST',
        body: new URLSearchParams({ ticket, users: 'x', title: 't', content: 'c' }),
      });
      expect(koala.headers.get('content-type')).to.match(/^application\/json/);
      expect(await koala.json()).to.include({ status: 2001, errcode: 2001 });
      const datahub = await fetch(`${herald.url}/notifications?type=admin_message`, {
        headers: { accept: 'application/json', authorization: `Token ${ticket}` },
      });
      expect(datahub.status).to.equal(500);
      expect(await datahub.json()).to.deep.equal({ code: 'internal', message: 'internal error' });
      const json = (path: string, body: unknown, headers: Record<string, string> = {}) =>
        fetch(`${herald.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify(body),
        });
      const onePush = await json('/msgpush/send', {
        appId: 'camel',
        appKey: 'EERWERRRRE',
        platform: 'ALL',
        audienceType: 'ALL',
        alert: 'hello',
      });
      expect(onePush.status).to.equal(500);
      expect(await onePush.json()).to.include({
        status: 500,
        error: 'Internal Server Error',
        message: 'internal error',
        path: '/msgpush/send',
      });
      const topvdn = await json(
        '/v2/message/server/push',
        { proxy: 0, payload: [{ to: 'c1', msg: 'aGk=' }] },
        { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
      );
      expect(topvdn.status).to.equal(500);
      expect(await topvdn.json()).to.deep.equal({ code: 'internal', message: 'internal error' });
      const rtio = await json('/manage/create_device', { nonce: 'outage-1' });
      expect(rtio.status).to.equal(500);
      expect(await rtio.json()).to.deep.equal({ nonce: 'outage-1', code: 2705, desc: 'device create failed' });

      // A device's report while the store is down: answered, the socket kept (it was closed 1011).
      device.socket.send(JSON.stringify({ report: 'during the outage' }));
      await device.until(
        (d) => d.frames.some((f) => f.error !== undefined) || d.closeCode !== undefined,
        'the answer to the report',
      );
      expect(device.frames.find((f) => f.error !== undefined)?.error).to.deep.equal({
        code: 'internal',
        message: 'internal error; report again',
      });
      expect(device.closeCode, 'the device keeps its socket').to.equal(undefined);

      const { body: down } = await readyz();
      expect(down.notReady?.eventStore, 'names the store').to.match(/unavailable/);
      expect(down.notReady?.projections, 'names the read models').to.match(/does not answer/);
      expect((await fetch(`${herald.url}/healthz`)).status, '/healthz is liveness only').to.equal(200);
    } finally {
      proxy.restore();
    }
    await eventually(async () => expect((await readyz()).status).to.equal(200), { timeoutMs: 30_000 });
    expect((await graphql(ticket, '{ notifications(first: 1) { total } }')).status).to.equal(200);
    // Reporting again on the same socket, once the store is back, is recorded.
    device.socket.send(JSON.stringify({ report: 'after the outage' }));
    await device.until((d) => d.frames.some((f) => typeof f.reported === 'string'), 'the report recorded');
    device.socket.close();

    const outageLines = logLines.slice(logsBefore);
    expect(outageLines.length, 'the outage was logged').to.be.above(0);
    const longest = Math.max(...outageLines.map((line) => line.length));
    expect(
      longest,
      `longest log line: ${outageLines.find((line) => line.length === longest)?.slice(0, 300)}`,
    ).to.be.below(2048);
    expect(outageLines.join('\n')).not.to.match(/"client":| {4}at /);
  });
});
