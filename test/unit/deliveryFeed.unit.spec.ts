import { expect } from 'chai';
import { GraphQLError } from 'graphql';
import { DeliveryFeed, MAX_BUFFERED, MAX_REPLAY } from '../../api/graphql/deliveryFeed';
import { InProcessBus, publication, type Topic } from '../../src/bus/bus';
import { inboxTopic } from '../../src/bus/topics';
import type { Viewer } from '../../src/identity/tickets';
import type { DeliveredMessage } from '../../src/messaging/inboxQueries';

const viewer: Viewer = {
  ticketId: 't',
  appId: 'camel',
  userId: 'ann',
  roles: [],
  expiresAt: '2100-01-01T00:00:00.000Z',
};
const topic = inboxTopic(viewer.appId, viewer.userId);
const message = (seq: number): DeliveredMessage => ({
  messageId: `m${seq}`,
  appId: viewer.appId,
  seq: String(seq),
  sender: 'bob',
  title: `title ${seq}`,
  content: 'c',
  props: null,
  sentAt: '2026-11-23T00:00:00.000Z',
  expiresAt: null,
});

/** The real in-process bus, counting its subscribers on the inbox topic. */
class CountingBus extends InProcessBus {
  subscribers = 0;
  override subscribe<T>(subscribedTopic: Topic<T>, listener: (payload: T) => void): () => void {
    const off = super.subscribe(subscribedTopic, listener);
    if (subscribedTopic === topic) this.subscribers++;
    return () => {
      if (subscribedTopic === topic) this.subscribers--;
      off();
    };
  }
}

describe('the messages subscription’s source (DeliveryFeed)', () => {
  let bus: CountingBus;
  let missed: DeliveredMessage[];
  let inboxPosition: bigint;
  let reads: number;
  /** Seqs of `missed` the user acknowledged: not pending. */
  let acknowledged: Set<string>;
  const pendingSince = async (_viewer: Viewer, sinceSeq: bigint, limit: number) => {
    reads++;
    const pending = missed.filter((m) => BigInt(m.seq) > sinceSeq && !acknowledged.has(m.seq));
    return pending.slice(Math.max(0, pending.length - limit));
  };
  const feed = (since?: unknown, pending?: unknown) =>
    new DeliveryFeed(
      {
        bus,
        clock: () => new Date(),
        messaging: {
          deliveredSince: async (_viewer, sinceSeq, limit) =>
            (reads++, missed).filter((m) => BigInt(m.seq) > sinceSeq).slice(0, limit),
          pendingSince,
          deliveredPosition: () => inboxPosition,
        },
      },
      viewer,
      since,
      pending,
    );
  const publish = (...seqs: number[]) => bus.publish(seqs.map((seq) => publication(topic, message(seq))));
  const seqsOf = async (source: DeliveryFeed, count: number) => {
    const seqs: string[] = [];
    for (let i = 0; i < count; i++) {
      const next = await source.next();
      if (next.done) break;
      seqs.push(next.value.seq);
    }
    return seqs;
  };
  const failureOf = async (promise: Promise<unknown>) => {
    try {
      await promise;
    } catch (error) {
      return error;
    }
    return expect.fail('it did not fail');
  };

  beforeEach(() => {
    bus = new CountingBus();
    missed = [];
    inboxPosition = 0n;
    reads = 0;
    acknowledged = new Set();
  });

  it('hands over live messages in order, also one that arrives while next() waits', async () => {
    const source = feed();
    await publish(1, 2);
    expect(await seqsOf(source, 2)).to.deep.equal(['1', '2']);
    const waiting = source.next();
    await publish(3);
    expect((await waiting).value).to.deep.include({ seq: '3' });
  });

  it('replays what was missed since `since` first, then live messages, skipping seqs already handed over', async () => {
    missed = [message(5), message(6), message(7)];
    const source = feed('5');
    await publish(7, 8); // arrives during the replay: 7 is in both
    expect(await seqsOf(source, 3)).to.deep.equal(['6', '7', '8']);
  });

  it('return() ends it at once: a waiting next() is done, and its bus listener is gone', async () => {
    const source = feed();
    expect(bus.subscribers).to.equal(1);
    const waiting = source.next();
    await source.return();
    expect(await waiting).to.deep.equal({ done: true, value: undefined });
    expect(bus.subscribers).to.equal(0);
    await publish(1);
    expect(await source.next()).to.deep.equal({ done: true, value: undefined });
  });

  it('fails with REPLAY_LIMIT_EXCEEDED when more than MAX_REPLAY were missed, and unsubscribes', async () => {
    missed = Array.from({ length: MAX_REPLAY + 1 }, (_, i) => message(i + 1));
    const error = await failureOf(feed(0).next());
    expect(error).to.be.instanceOf(GraphQLError);
    expect((error as GraphQLError).extensions.code).to.equal('REPLAY_LIMIT_EXCEEDED');
    expect(bus.subscribers).to.equal(0);
  });

  it('fails with BAD_USER_INPUT for a `since` that is not a seq', async () => {
    for (const since of [-1, 1.5, 'abc', {}]) {
      const error = await failureOf(feed(since).next());
      expect((error as GraphQLError).extensions.code, JSON.stringify(since)).to.equal('BAD_USER_INPUT');
    }
    expect(bus.subscribers).to.equal(0);
  });

  it('cuts off a subscriber that lets more than MAX_BUFFERED pile up (SUBSCRIBER_TOO_SLOW), and unsubscribes', async () => {
    const source = feed();
    expect(await seqsOf(source, 0)).to.deep.equal([]);
    await publish(...Array.from({ length: MAX_BUFFERED + 1 }, (_, i) => i + 1));
    const error = await failureOf(source.next());
    expect((error as GraphQLError).extensions.code).to.equal('SUBSCRIBER_TOO_SLOW');
    expect(bus.subscribers).to.equal(0);
  });

  // Issue 21 item 7: a gap on the bus (Redis down, a publisher's message lost) is healed from the store.
  describe('a gap on the bus', () => {
    it('catches up from the last seq handed over, holding the live messages until then: each once, in order', async () => {
      const source = feed();
      await publish(1, 2);
      expect(await seqsOf(source, 2)).to.deep.equal(['1', '2']);
      // 3 to 5 were lost on the bus; 6 comes live after it is back, before the store has been read.
      missed = [1, 2, 3, 4, 5, 6].map(message);
      const before = reads;
      bus.gap();
      await publish(6);
      expect(await seqsOf(source, 4)).to.deep.equal(['3', '4', '5', '6']);
      expect(reads).to.equal(before + 1);
      await publish(7);
      expect((await source.next()).value).to.deep.include({ seq: '7' });
    });

    it('without anything handed over yet, catches up from where the inbox stood when it subscribed', async () => {
      inboxPosition = 10n;
      const source = feed();
      missed = [9, 10, 11, 12].map(message); // 9 and 10 were there before it subscribed
      bus.gap();
      expect(await seqsOf(source, 2)).to.deep.equal(['11', '12']);
    });

    it('a gap while a catch-up reads reads again, and a waiting next() gets what the reads found', async () => {
      const source = feed();
      const waiting = source.next();
      missed = [message(1)];
      bus.gap();
      missed = [message(1), message(2)];
      bus.gap();
      expect((await waiting).value).to.deep.include({ seq: '1' });
      expect((await source.next()).value).to.deep.include({ seq: '2' });
    });

    it('a failed catch-up fails the operation at its next next() (the client resubscribes with since), and unsubscribes', async () => {
      const failing = new DeliveryFeed(
        {
          bus,
          clock: () => new Date(),
          messaging: {
            deliveredSince: () => Promise.reject(new Error('the database is gone')),
            pendingSince,
            deliveredPosition: () => 0n,
          },
        },
        viewer,
        undefined,
      );
      const waiting = failing.next();
      bus.gap();
      expect(((await failureOf(waiting)) as Error).message).to.equal('the database is gone');
      expect(bus.subscribers).to.equal(0);
    });

    it('an ended feed ignores gaps', async () => {
      const source = feed();
      await source.return();
      const before = reads;
      bus.gap();
      expect(reads).to.equal(before);
      expect(await source.next()).to.deep.equal({ done: true, value: undefined });
    });
  });

  // Issue 22: a Koala page opens without `since`; what was sent while it was closed and not acknowledged is owed to it.
  describe('a first connect with `pending` (no since)', () => {
    it('replays the unacknowledged ones oldest first, then live ones, each once', async () => {
      inboxPosition = 3n;
      missed = [1, 2, 3].map(message);
      acknowledged = new Set(['2']);
      const source = feed(undefined, true);
      await publish(3, 4); // 3 arrives live too: pushed after the feed subscribed, before the read
      expect(await seqsOf(source, 3)).to.deep.equal(['1', '3', '4']);
      await publish(5);
      expect((await source.next()).value).to.deep.include({ seq: '5' });
    });

    it('skips a live message the inbox already showed when it subscribed and the user acknowledged', async () => {
      inboxPosition = 3n;
      missed = [1, 2, 3].map(message);
      acknowledged = new Set(['3']);
      const source = feed(undefined, true);
      await publish(3, 4);
      expect(await seqsOf(source, 3)).to.deep.equal(['1', '2', '4']);
    });

    it('beyond MAX_REPLAY pending, hands over the newest MAX_REPLAY without failing, then live ones', async () => {
      const count = MAX_REPLAY + 5;
      inboxPosition = BigInt(count);
      missed = Array.from({ length: count }, (_, i) => message(i + 1));
      const source = feed(undefined, true);
      const seqs = await seqsOf(source, MAX_REPLAY);
      expect(seqs[0]).to.equal('6');
      expect(seqs.at(-1)).to.equal(String(count));
      await publish(count + 1);
      expect((await source.next()).value).to.deep.include({ seq: String(count + 1) });
    });

    it('a gap during the pending replay reads the pending ones after the last handed over: none twice, none lost', async () => {
      inboxPosition = 3n;
      missed = [1, 2, 3].map(message);
      const source = feed(undefined, true);
      expect(await seqsOf(source, 1)).to.deep.equal(['1']);
      missed = [1, 2, 3, 4].map(message); // 4 was lost on the bus
      bus.gap();
      expect(await seqsOf(source, 3)).to.deep.equal(['2', '3', '4']);
    });

    it('`since` wins: it replays every delivered message after it, acknowledged or not', async () => {
      inboxPosition = 3n;
      missed = [1, 2, 3].map(message);
      acknowledged = new Set(['2']);
      expect(await seqsOf(feed('1', true), 2)).to.deep.equal(['2', '3']);
    });

    it('without `pending` or `since`, replays nothing (GraphQL clients that want only live messages)', async () => {
      inboxPosition = 2n;
      missed = [1, 2].map(message);
      const source = feed(undefined, false);
      await publish(3);
      expect(await seqsOf(source, 1)).to.deep.equal(['3']);
      expect(reads).to.equal(0);
    });

    it('fails with BAD_USER_INPUT for a `pending` that is not a boolean, and unsubscribes', async () => {
      const error = await failureOf(feed(undefined, 'yes').next());
      expect(error).to.be.instanceOf(GraphQLError);
      expect((error as GraphQLError).extensions.code).to.equal('BAD_USER_INPUT');
      expect(bus.subscribers).to.equal(0);
    });
  });
  it('counts its user online (a terminal) from its start until it ends, only when it replays (since or pending)', async () => {
    const online = new Map<string, number>();
    const terminals = {
      add: (appId: string, userId: string) =>
        online.set(`${appId}/${userId}`, (online.get(`${appId}/${userId}`) ?? 0) + 1),
      remove: (appId: string, userId: string) =>
        online.set(`${appId}/${userId}`, online.get(`${appId}/${userId}`)! - 1),
    };
    const withTerminals = (since?: unknown, pending?: unknown) =>
      new DeliveryFeed(
        {
          bus,
          clock: () => new Date(),
          terminals,
          messaging: { deliveredSince: async () => [], pendingSince, deliveredPosition: () => inboxPosition },
        },
        viewer,
        since,
        pending,
      );
    const one = withTerminals(undefined, true);
    const two = withTerminals('0');
    expect(online.get('camel/ann')).to.equal(2);
    await one.return();
    await one.return();
    expect(online.get('camel/ann')).to.equal(1);
    // A feed that replays nothing (neither `since` nor `pending`) would never get a message delivered just
    // before it opened: not a terminal, or that message would go neither way. Nor one that fails.
    const live = withTerminals();
    const bad = withTerminals(undefined, 'yes');
    expect(online.get('camel/ann')).to.equal(1);
    await failureOf(bad.next());
    await live.return();
    expect(online.get('camel/ann')).to.equal(1);
    await two.return();
    expect(online.get('camel/ann')).to.equal(0);
  });
});
