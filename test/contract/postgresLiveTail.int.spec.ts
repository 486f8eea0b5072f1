import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type pg from 'pg';
import type { AllSubscription, NewEvent, RecordedEvent, SubscribeToAllOptions } from '../../src/eventStore/eventStore';
import { PostgresEventStore } from '../../src/eventStore/postgres/postgresEventStore';
import { postgresEventStoreMigrations } from '../../src/eventStore/postgres/schema/migrations';
import { migrate } from '../../src/postgres/migrations';
import { eventually } from '../support/eventually';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// The PostgreSQL subscriptions' shared live tail (subscription.ts: LiveTail): at the live edge, one read
// of the stream serves every subscription of the store; each still sees every event once, in order,
// whether it joins the tail, reads on its own behind it, or filters.
describe('PostgreSQL event store: subscriptions share one read of the live tail', () => {
  let testDatabase: TestDatabase;
  let store: PostgresEventStore;
  let globalReads = 0;
  const subscriptions: AllSubscription[] = [];

  beforeEach(async () => {
    testDatabase = await createTestDatabase();
    const database = testDatabase.open();
    await migrate(database.pool, postgresEventStoreMigrations);
    countGlobalReads(database.pool, () => globalReads++);
    store = new PostgresEventStore(database);
  });
  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.close()));
    await store.close();
    await testDatabase.drop();
  });

  /** A running subscription and what it has seen so far. */
  function follow(options: SubscribeToAllOptions = {}): { seen: RecordedEvent[]; caughtUp: () => boolean } {
    const subscription = store.subscribeToAll(options);
    subscriptions.push(subscription);
    const seen: RecordedEvent[] = [];
    let caughtUp = false;
    void (async () => {
      for await (const batch of subscription) {
        seen.push(...batch.events);
        caughtUp ||= batch.caughtUp;
      }
    })();
    return { seen, caughtUp: () => caughtUp };
  }

  it('reads once per append for six subscriptions at the live edge, not six times', async () => {
    await store.append('s-0', [event('First')]);
    const followers = Array.from({ length: 6 }, () => follow());
    await eventually(() => expect(followers.every((f) => f.caughtUp())).to.equal(true));

    for (let i = 1; i <= 5; i++) {
      const reads = globalReads;
      const { position } = await store.append(`s-${i}`, [event('Live')]);
      await eventually(() =>
        expect(followers.map((f) => f.seen.at(-1)?.position)).to.deep.equal(followers.map(() => position)),
      );
      // One read brings it; a second may find nothing new (a subscription's poll coming due meanwhile).
      expect(globalReads - reads, `reads for append ${i}`).to.be.at.most(2);
    }
  });

  it('delivers every event once, in order, to subscriptions that start behind, at the edge, filtered or late, under concurrent writers', async function () {
    this.timeout(120_000);
    await store.append('w0-history', [event('Old'), event('Old')]);
    const fromStart = follow();
    const filtered = follow({ filter: { streamNamePrefixes: ['w1-'] } });
    await eventually(() => expect(fromStart.caughtUp()).to.equal(true));
    const writers = Array.from({ length: 4 }, (_, w) => w);
    let late: ReturnType<typeof follow> | undefined;
    let lateAfter = -1n;
    await Promise.all(
      writers.map(async (w) => {
        for (let i = 0; i < 150; i++) {
          await store.append(`w${w}-s`, [event('Wrote', { w, i })], i === 0 ? 'no_stream' : BigInt(i - 1));
          // A subscription starting from a position in the middle of the traffic.
          if (w === 0 && i === 50) {
            lateAfter = (await store.readAll({ direction: 'backwards', maxCount: 1 }))[0]!.position;
            late = follow({ after: lateAfter });
          }
        }
      }),
    );
    const all = await store.readAll({ maxCount: 10_000 });
    expect(all).to.have.length(2 + 4 * 150);
    const lateStart = late!;
    await eventually(() => {
      expect(fromStart.seen.map((e) => e.position)).to.deep.equal(all.map((e) => e.position));
      expect(filtered.seen.map((e) => e.position)).to.deep.equal(
        all.filter((e) => e.streamName.startsWith('w1-')).map((e) => e.position),
      );
      expect(lateStart.seen.map((e) => e.position)).to.deep.equal(
        all.map((e) => e.position).filter((p) => p > lateAfter),
      );
    });
  });

  it('lets a subscription that falls behind the tail read on its own, and rejoin', async function () {
    this.timeout(120_000);
    await store.append('first', [event('First')]);
    const driver = follow();
    await eventually(() => expect(driver.caughtUp()).to.equal(true));
    // Paused: it takes one batch, then waits until let go.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const paused = store.subscribeToAll();
    subscriptions.push(paused);
    const pausedSeen: RecordedEvent[] = [];
    const pausedDone = (async () => {
      let first = true;
      for await (const batch of paused) {
        pausedSeen.push(...batch.events);
        if (first) await released;
        first = false;
        if (pausedSeen.length >= 12_001) break;
      }
    })();
    // More than the tail keeps in memory (2,048), read by the driver while the paused one waits.
    for (let k = 0; k < 24; k++)
      await store.append(
        `bulk-${k}`,
        Array.from({ length: 500 }, (_, i) => event('Bulk', { k, i })),
      );
    await eventually(() => expect(driver.seen).to.have.length(12_001));
    release();
    await pausedDone;
    const all = await store.readAll({ maxCount: 20_000 });
    expect(pausedSeen.map((e) => e.position)).to.deep.equal(all.map((e) => e.position));
    expect(driver.seen.map((e) => e.position)).to.deep.equal(all.map((e) => e.position));
  });
});

function event(type: string, data: Record<string, unknown> = {}): NewEvent {
  return { id: randomUUID(), type, data };
}

/** Counts the pool's reads of the global order (readGlobal's query), the live tail's and the subscriptions' own. */
function countGlobalReads(pool: pg.Pool, count: () => void): void {
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const sql = typeof args[0] === 'string' ? args[0] : '';
    if (sql.includes('FROM events') && sql.includes('ORDER BY position')) count();
    return query(...args);
  };
}
