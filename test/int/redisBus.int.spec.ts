import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import pino from 'pino';
import { RedisBus } from '../../src/bus/redisBus';
import { eventually } from '../support/eventually';

/**
 * The bus between herald nodes on a real Redis (REDIS_URL: the machine's server in CI). Two RedisBus
 * instances are two nodes; each test uses a channel of its own, so runs do not hear each other.
 */
const REDIS_URL = process.env.REDIS_URL;

describe('Redis bus: publications between nodes', function () {
  this.timeout(30_000);
  const log = pino({ level: process.env.HERALD_TEST_LOG ?? 'silent' });
  const opened: RedisBus[] = [];
  let admin: Redis;

  before(function () {
    if (!REDIS_URL) {
      // eslint-disable-next-line no-console
      console.log('      (skipped: REDIS_URL is unset; .ci/run sets it to the machine\'s Redis)');
      this.skip();
    }
    admin = new Redis(REDIS_URL!);
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((bus) => bus.close()));
  });
  after(async () => {
    await admin?.quit();
  });

  async function nodes(count: number): Promise<RedisBus[]> {
    const channel = `herald:test:${randomUUID()}`;
    const buses = await Promise.all(Array.from({ length: count }, () => RedisBus.connect(REDIS_URL!, log, channel)));
    opened.push(...buses);
    return buses;
  }

  it('a batch published on one node reaches the listeners of every node, a shared payload as one object', async () => {
    const [one, two] = await nodes(2);
    const received: Array<{ node: string; topic: string; payload: unknown }> = [];
    for (const [node, bus] of [['one', one!], ['two', two!]] as const) {
      for (const topic of ['inbox:camel:a', 'inbox:camel:b']) bus.subscribe(topic, (payload) => received.push({ node, topic, payload }));
    }
    const push = { messageId: 'm1', title: '你好', props: null, seq: '12' };
    await one!.publish([
      { topic: 'inbox:camel:a', payload: push },
      { topic: 'inbox:camel:b', payload: push },
      { topic: 'inbox:camel:nobody', payload: { other: true } },
    ]);
    await eventually(() => expect(received).to.have.length(4));
    expect(received.map((r) => `${r.node} ${r.topic}`).sort()).to.deep.equal(['one inbox:camel:a', 'one inbox:camel:b', 'two inbox:camel:a', 'two inbox:camel:b']);
    for (const r of received) expect(r.payload).to.deep.equal(push);
    // Parsed once per node: both topics of a node hold the same object (GraphQL executes it once).
    const onTwo = received.filter((r) => r.node === 'two');
    expect(onTwo[0]!.payload).to.equal(onTwo[1]!.payload);
  });

  it('keeps order, stops at unsubscribe, and one failing listener does not keep a message from the others', async () => {
    const [one, two] = await nodes(2);
    const seen: number[] = [];
    two!.subscribe('t', () => {
      throw new Error('a broken subscriber');
    });
    const stop = two!.subscribe('t', (payload) => seen.push((payload as { n: number }).n));
    for (let n = 0; n < 50; n++) await one!.publish([{ topic: 't', payload: { n } }]);
    await eventually(() => expect(seen).to.have.length(50));
    expect(seen).to.deep.equal(Array.from({ length: 50 }, (_, n) => n));
    stop();
    await one!.publish([{ topic: 't', payload: { n: 50 } }]);
    // A marker on another topic: once it arrives, the unsubscribed message would have too.
    const marker: unknown[] = [];
    two!.subscribe('marker', (payload) => marker.push(payload));
    await eventually(async () => {
      await one!.publish([{ topic: 'marker', payload: 1 }]);
      expect(marker.length).to.be.greaterThan(0);
    }, { intervalMs: 100 });
    expect(seen).to.have.length(50);
  });

  it('resubscribes after its connection to Redis is dropped', async () => {
    const [one, two] = await nodes(2);
    const seen: unknown[] = [];
    two!.subscribe('after-drop', (payload) => seen.push(payload));
    // Every subscriber connection on the server goes; ioredis reconnects and subscribes again.
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await eventually(async () => {
      await one!.publish([{ topic: 'after-drop', payload: 'again' }]);
      expect(seen).to.include('again');
    }, { timeoutMs: 15_000, intervalMs: 200 });
  });

  it('publishes while its publishing connection is gone: this node still gets it, once, and nothing throws', async () => {
    const [one] = await nodes(1);
    const seen: unknown[] = [];
    one!.subscribe('during-drop', (payload) => seen.push(payload));
    const clients = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'normal'));
    const publishers = [...clients.matchAll(/id=(\d+) .*name=herald-bus-publisher/g)].map((m) => m[1]!);
    expect(publishers.length).to.be.greaterThan(0);
    for (const id of publishers) await admin.call('CLIENT', 'KILL', 'ID', id);
    await one!.publish([{ topic: 'during-drop', payload: 'kept' }]);
    await eventually(() => expect(seen).to.deep.equal(['kept']));
    // Reconnected, the bus carries the next one; the first is still there once.
    await eventually(async () => {
      await one!.publish([{ topic: 'during-drop', payload: 'next' }]);
      expect(seen).to.include('next');
    }, { timeoutMs: 15_000, intervalMs: 200 });
    expect(seen.filter((p) => p === 'kept')).to.have.length(1);
  });

  it('refuses to start when Redis cannot be reached (a misconfiguration, not an outage)', async () => {
    const error = await RedisBus.connect('redis://127.0.0.1:1', log).then(
      () => expect.fail('connected to nothing'),
      (e: unknown) => e as Error,
    );
    expect(error.message).to.match(/ECONNREFUSED|connect/i);
  });
});
