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
      await eventually(async () => expect(await two.holder('rtio:device-a')).to.equal(one.nodeId), { timeoutMs: 4000, intervalMs: 100 });
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });
});
