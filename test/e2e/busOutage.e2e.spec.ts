import { expect } from 'chai';
import { DeviceSocket } from '../support/deviceSocket';
import { eventually } from '../support/eventually';
import { GraphqlSocket } from '../support/graphqlClient';
import { HeraldProcess } from '../support/heraldProcess';
import { createTestDatabase, freePort, type TestDatabase } from '../support/postgres';
import { RedisServer } from '../support/redisServer';

/**
 * Issue 21 item 7: a Redis outage lost live messages on the other nodes, silently, and /readyz said 200
 * throughout. Two herald nodes on a Redis of this test's own; a graphql-ws subscriber and a ONE-PUSH
 * device on node 2; messages sent through node 1 every ~100 ms while Redis is killed for 5 s. Every
 * acknowledged message reaches the subscriber and the device exactly once, with no client action, and
 * both nodes are unready while the bus is down.
 */
describe('two herald nodes: Redis down for 5 s', function () {
  this.timeout(240_000);
  let testDatabase: TestDatabase;
  let redis: RedisServer;
  const nodes: HeraldProcess[] = [];

  before(async () => {
    testDatabase = await createTestDatabase();
    redis = await RedisServer.start();
  });
  after(async () => {
    for (const node of nodes) node.kill('SIGKILL');
    await Promise.all(nodes.map((node) => node.exitCode()));
    await redis?.kill();
    await testDatabase?.drop();
  });

  async function startNode(): Promise<string> {
    const port = await freePort();
    const node = HeraldProcess.start({
      PORT: String(port),
      DATABASE_URL: testDatabase.connectionString,
      REDIS_URL: redis.url,
      HERALD_APPS: 'camel:EERWERRRRE',
    });
    nodes.push(node);
    const url = `http://127.0.0.1:${port}`;
    await node.waitForHttp(`${url}/readyz`);
    return url;
  }

  const ticket = async (url: string, userId: string, roles = '') => {
    const response = await fetch(`${url}/koala/api/mas/tickets`, {
      method: 'POST',
      body: new URLSearchParams({ app_key: 'camel', secret_key: 'EERWERRRRE', user_id: userId, user_roles: roles }),
    });
    return ((await response.json()) as { result: string }).result;
  };
  const post = async (url: string, path: string, body: unknown) =>
    (
      await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
    ).json() as Promise<Record<string, unknown>>;

  it('every message acknowledged during and after the outage reaches the subscriber and the device on node 2 once; /readyz is 503 meanwhile', async () => {
    const one = await startNode();
    const two = await startNode();
    const sender = await ticket(one, 'bus-outage-sender');

    const socket = GraphqlSocket.connect(two, { ticket: await ticket(two, 'bus-outage-reader') });
    const live = socket.subscribe<{ messages: { title: string; seq: string } }>(
      'subscription { messages { title seq } }',
    );
    const stats = socket.subscribe<{ notificationStats: { admin_message: number } }>(
      'subscription { notificationStats { admin_message } }',
    );
    await socket.until(() => socket.isConnected, 'node 2 connected');
    const registered = await post(one, '/msgpush/register', {
      appId: 'camel',
      alias: 'bus-outage-phone',
      platform: 'ANDROID',
      nativeToken: `bus-outage-${Date.now()}`,
    });
    const device = await DeviceSocket.connect(two, registered.id as string);

    try {
      // Koala sends through node 1; what it answered status 0 for was acknowledged and must arrive.
      const acknowledged: string[] = [];
      let sent = 0;
      const send = async () => {
        const title = `m${++sent}`;
        const response = await fetch(`${one}/koala/api/mas/messages`, {
          method: 'POST',
          body: new URLSearchParams({ ticket: sender, users: 'bus-outage-reader', title, content: 'c' }),
        });
        if (((await response.json()) as { status: number }).status === 0) acknowledged.push(title);
      };
      const pushed: string[] = [];
      const push = async () => {
        const answer = await post(one, '/msgpush/send', {
          appId: 'camel',
          appKey: 'EERWERRRRE',
          platform: 'ALL',
          audienceType: 'ALIAS',
          audiences: ['bus-outage-phone'],
          alert: `p${sent}`,
        });
        if (typeof answer.requestId === 'string') pushed.push(answer.requestId);
      };
      // The subscription starts on the server a moment after connecting: send until one arrives.
      await eventually(
        async () => {
          await send();
          expect(live.results.length).to.be.greaterThan(0);
        },
        { timeoutMs: 20_000, intervalMs: 200 },
      );
      // What was sent before the subscription started on the server is not owed to it; all after is.
      const warmUp = acknowledged.length;
      const readiness: Record<string, number[]> = { [one]: [], [two]: [] };
      let sending = true;
      const traffic = (async () => {
        for (let n = 0; sending; n++) {
          await send();
          if (n % 5 === 0) await push();
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      const probing = (async () => {
        while (sending) {
          for (const url of [one, two]) readiness[url]!.push((await fetch(`${url}/readyz`)).status);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();

      await eventually(() => expect(acknowledged.length).to.be.greaterThan(warmUp + 10), {
        timeoutMs: 20_000,
        intervalMs: 50,
      });
      await redis.kill();
      // A datahub notification committed while the bus is down: its change of the unread counts is lost on it.
      const notified = await fetch(`${one}/notifications`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Token ${await ticket(one, 'bus-outage-admin', 'admin')}`,
        },
        body: JSON.stringify({
          type: 'admin_message',
          receiver: 'bus-outage-reader',
          data: { content: 'during the outage' },
        }),
      });
      expect(notified.status, await notified.clone().text()).to.be.lessThan(300);
      // The outage itself: 5 s of a fault, not a wait for a result.
      await new Promise((resolve) => setTimeout(resolve, 5000));
      await redis.restart();
      // A little traffic after the bus is back, then stop.
      const ackedAtRestart = acknowledged.length;
      await eventually(() => expect(acknowledged.length).to.be.greaterThan(ackedAtRestart + 10), {
        timeoutMs: 20_000,
        intervalMs: 50,
      });
      sending = false;
      await Promise.all([traffic, probing]);

      // Every acknowledged message reached the subscriber, once, in seq order, with no client action.
      const owed = acknowledged.slice(warmUp);
      const titlesPushed = () => live.results.map((r) => r.messages.title);
      await eventually(
        () => {
          const missing = owed.filter((title) => !titlesPushed().includes(title));
          expect(missing, `acknowledged but never pushed to node 2's subscriber (of ${owed.length})`).to.deep.equal([]);
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      const titles = titlesPushed();
      expect(titles.length, 'no message pushed twice').to.equal(new Set(titles).size);
      const seqs = live.results.map((r) => BigInt(r.messages.seq));
      expect(
        seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!),
        'pushed in seq order',
      ).to.equal(true);
      expect(socket.isConnected, 'the subscriber was not disconnected').to.equal(true);
      expect(live.errors).to.deep.equal([]);
      // The unread counts were read again after the gap: the notification of the outage is counted.
      await eventually(() => expect(stats.results.at(-1)?.notificationStats.admin_message).to.equal(1), {
        timeoutMs: 15_000,
        intervalMs: 100,
      });
      expect(stats.errors).to.deep.equal([]);

      // Both nodes were unready while their bus was down, and are ready again.
      expect(readiness[one], `${one}/readyz`).to.include(503);
      expect(readiness[two], `${two}/readyz`).to.include(503);
      await eventually(
        async () => {
          for (const url of [one, two])
            expect((await fetch(`${url}/readyz`)).status, `${url}/readyz after the outage`).to.equal(200);
        },
        { timeoutMs: 20_000, intervalMs: 100 },
      );

      // Every push acknowledged to the app reached the device on node 2, once.
      await device.until(
        (d) => pushed.every((id) => d.messages.some((m) => m.messageId === id)),
        'every acknowledged push',
        30_000,
      );
      const ids = device.messages.map((m) => m.messageId);
      expect(ids.length, 'no push written twice').to.equal(new Set(ids).size);
    } finally {
      device.close();
      await socket.close();
    }
  });
});
