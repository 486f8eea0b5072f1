import { expect } from 'chai';
import pino from 'pino';
import { RedisDirectory } from '../../src/nodes/directory';
import { eventually } from '../support/eventually';
import { RedisServer } from '../support/redisServer';

/**
 * Issue 21 item 7 (RTIO and ONE-PUSH presence): the directory of which node holds which device lives in
 * Redis. A Redis restarted without persistence has lost it; each node writes its entries back as soon as
 * it reconnects, not at its next renewal (every 10 s), so its devices are not offline to the other nodes.
 */
describe('Redis directory: Redis restarted', function () {
  this.timeout(30_000);
  const log = pino({ level: process.env.HERALD_TEST_LOG ?? 'silent' });
  let server: RedisServer;

  before(async () => {
    server = await RedisServer.start();
  });
  after(async () => {
    await server?.kill();
  });

  it('a node writes the connections it holds back as soon as it reconnects', async () => {
    const one = await RedisDirectory.connect(server.url, log);
    const two = await RedisDirectory.connect(server.url, log);
    try {
      await one.add('rtio:device-a');
      expect(await two.holder('rtio:device-a')).to.equal(one.nodeId);
      await server.kill();
      await server.restart();
      // Well before the first renewal, 10 s after the node connected.
      await eventually(async () => expect(await two.holder('rtio:device-a')).to.equal(one.nodeId), {
        timeoutMs: 4000,
        intervalMs: 100,
      });
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  // Found by the bus helper: a ONE-PUSH send with smsMessage while Redis was down answered 500 after its
  // push was recorded (the SMS fallback asks who is online). A node answers from what it knows itself.
  it("while Redis is down, answers at once from this node's own connections instead of failing", async () => {
    const one = await RedisDirectory.connect(server.url, log);
    const two = await RedisDirectory.connect(server.url, log);
    try {
      await one.add('device:here');
      await two.add('device:there');
      await eventually(async () =>
        expect([...(await one.held(['device:here', 'device:there']))]).to.have.members(['device:here', 'device:there']),
      );
      await server.kill();
      const started = Date.now();
      expect([...(await one.held(['device:here', 'device:there', 'device:nowhere']))]).to.deep.equal(['device:here']);
      expect(await one.holder('device:here')).to.equal(one.nodeId);
      expect(await one.holder('device:there'), 'held by a node it cannot ask: offline').to.equal(undefined);
      expect(Date.now() - started, 'no wait for Redis').to.be.below(2000);
    } finally {
      await server.restart();
      await Promise.all([one.close(), two.close()]);
    }
  });
});
