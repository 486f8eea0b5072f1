import { expect } from 'chai';
import pino from 'pino';
import { DeliveryFeed } from '../../api/graphql/deliveryFeed';
import { notificationsProjection, notificationQueries } from '../../projections/koalaInbox';
import type { Bus, Topic } from '../../src/bus/bus';
import { RedisBus } from '../../src/bus/redisBus';
import type { Viewer } from '../../src/identity/tickets';
import { Messaging, SendAllowance } from '../../src/messaging/messaging';
import { ProjectionRunner } from '../../src/projection/projectionRunner';
import { eventually } from '../support/eventually';
import { openTestInfrastructure } from '../support/infrastructure';
import { RedisServer } from '../support/redisServer';

const log = pino({ level: process.env.HERALD_TEST_LOG ?? 'silent' });

/**
 * Node A's bus as a kill -9 between a projection's commit and its publish leaves it: once `dead`, what
 * its runner hands it goes nowhere, and is not numbered either, so no node sees a skipped `seq`.
 */
class DyingBus implements Bus {
  dead = false;
  dropped = 0;
  constructor(private readonly bus: Bus) {}
  async publish(publications: Parameters<Bus['publish']>[0]): Promise<void> {
    if (this.dead) this.dropped++;
    else await this.bus.publish(publications);
  }
  subscribe<T>(topic: Topic<T>, listener: (payload: T) => void): () => void {
    return this.bus.subscribe(topic, listener);
  }
  onGap(listener: () => void): () => void {
    return this.bus.onGap(listener);
  }
  resync(): Promise<void> {
    return this.bus.resync();
  }
  healthy(): boolean {
    return this.bus.healthy();
  }
  close(): Promise<void> {
    return this.bus.close();
  }
}

/**
 * Issue 21 item 7 (review): the node running the notifications projection committed a batch — its sender
 * already answered — and was killed before publishing it. The standby took the projection over from the
 * committed checkpoint, so that batch was never published, and no `seq` showed it: a subscriber on a
 * surviving node never got the message. Two nodes on one database and a Redis of this test's own; node A
 * holds the projection and "dies" after its commit; node B takes over, and B's subscriber gets the
 * message from the store, once, with no client action.
 */
describe('a projection taken over from a runner that died between its commit and its publish', function () {
  this.timeout(90_000);
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  let redis: RedisServer;
  const closing: Array<() => Promise<unknown>> = [];

  before(async () => {
    infrastructure = await openTestInfrastructure([notificationsProjection]);
    redis = await RedisServer.start();
  });
  after(async () => {
    for (const close of closing.reverse()) await close();
    await redis?.kill();
    await infrastructure?.close();
  });

  /** A herald node's parts: its own pool, its bus, and a runner of the notifications projection. */
  async function node(wrap: (bus: Bus) => Bus = (bus) => bus) {
    const database = infrastructure.testDatabase.open();
    const bus = wrap(await RedisBus.connect(redis.url, log));
    const runner = new ProjectionRunner({
      database,
      store: infrastructure.store,
      projection: notificationsProjection,
      bus,
      log,
    });
    closing.push(
      () => database.close(),
      () => bus.close(),
      () => runner.stop(),
    );
    return { database, bus, runner };
  }

  it("every node catches up from the store: node B's subscriber gets the message node A committed and never published", async () => {
    let dying: DyingBus | undefined;
    const a = await node((bus) => (dying = new DyingBus(bus)));
    const b = await node();
    a.runner.start();
    await eventually(() => expect(a.runner.state).to.be.oneOf(['catching-up', 'live']));
    b.runner.start();
    await eventually(() => expect(b.runner.state).to.equal('standby'));

    const viewer = (userId: string): Viewer => ({
      ticketId: 't',
      appId: 'camel',
      userId,
      roles: [],
      expiresAt: '2100-01-01T00:00:00.000Z',
    });
    const messaging = new Messaging({
      store: infrastructure.store,
      inbox: notificationQueries(b.database.pool),
      readYourWrites: async () => undefined,
      sendAllowance: new SendAllowance(1000),
      // The reader has no message yet: everything in its inbox is owed to the subscriber.
      inboxPosition: () => -1n,
    });
    const send = (title: string) =>
      messaging.send(viewer('sender'), { to: ['reader'], title, content: 'c', expireSeconds: 0 }, new Date());
    // A graphql-ws `messages` subscriber on node B.
    const feed = new DeliveryFeed({ bus: b.bus, messaging, clock: () => new Date() }, viewer('reader'), undefined);
    const received: string[] = [];
    const reading = (async () => {
      for await (const message of feed) received.push(message.title);
    })();
    try {
      await send('before');
      await eventually(() => expect(received).to.deep.equal(['before']));

      // Node A commits the next batch, then dies before publishing it.
      dying!.dead = true;
      await send('lost');
      await eventually(() => expect(dying!.dropped).to.equal(1));
      await a.runner.stop();

      await eventually(() => expect(b.runner.state).to.be.oneOf(['catching-up', 'live']));
      await eventually(() => expect(received).to.deep.equal(['before', 'lost']), { timeoutMs: 15_000 });
      // And node B, now the projection's, publishes what comes after.
      await send('after');
      await eventually(() => expect(received).to.deep.equal(['before', 'lost', 'after']));
    } finally {
      await feed.return();
      await reading;
    }
  });
});
