import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { WrongExpectedRevisionError } from '../../src/eventStore/eventStore';
import { PostgresEventStore } from '../../src/eventStore/postgres/postgresEventStore';
import { postgresEventStoreMigrations } from '../../src/eventStore/postgres/schema/migrations';
import { migrate } from '../../src/postgres/migrations';
import { createTestDatabase, describeTarget } from '../support/postgres';
import { eventStoreContract } from './eventStore.contract';

describe(`event store contract: PostgreSQL adapter on ${describeTarget()}`, () => {
  eventStoreContract(async () => {
    const database = await createTestDatabase();
    const stores: PostgresEventStore[] = [];
    await migrate(database.open().pool, postgresEventStoreMigrations);
    return {
      async open() {
        // Each client gets its own pool, so concurrent writers really are separate committers.
        const store = new PostgresEventStore(database.open());
        stores.push(store);
        return store;
      },
      async teardown() {
        await Promise.all(stores.map((s) => s.close()));
        await database.drop();
      },
    };
  });
});

/**
 * The group commit's set-based path (schema/003-leanGroupAppend.ts) finds retries and repeated ids by
 * the stream's unique index, not by looking each id up first: these are the cases that index decides.
 */
describe('PostgreSQL group commit: retries and repeated ids within one group', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: PostgresEventStore;
  before(async () => {
    database = await createTestDatabase();
    await migrate(database.open().pool, postgresEventStoreMigrations);
    store = new PostgresEventStore(database.open());
  });
  after(async () => {
    await store?.close();
    await database?.drop();
  });
  const event = (type: string) => ({ id: randomUUID(), type, data: { type }, metadata: {} });

  it('answers a retry grouped with new appends as the first time, even though its expected revision has passed', async () => {
    const original = [event('Sent')];
    const first = await store.append('retry-me', original, 'no_stream');
    const [, retried, fresh, other] = await Promise.all([
      store.append('opens-the-group', [event('Opener')], 'no_stream'), // the next three queue behind it: one group
      store.append('retry-me', original, 'no_stream'),
      store.append('fresh', [event('Fresh')], 'no_stream'),
      store.append('retry-me', [event('Late')], 'no_stream').catch((error: unknown) => error),
    ]);
    expect(retried).to.deep.equal(first);
    expect(other).to.be.instanceOf(WrongExpectedRevisionError);
    expect((await store.readStream('fresh')).map((e) => e.position)).to.deep.equal([fresh.position]);
    expect(await store.readStream('retry-me')).to.have.length(1);
  });

  it('answers a retry queued in the same group as its original as the first time (idempotent), storing it once', async () => {
    const events = [event('Sent'), event('Sent')];
    const [, original, retry, fresh] = await Promise.all([
      store.append('opener-3', [event('Opener')], 'no_stream'), // the next three queue behind it: one group
      store.append('sent-twice', events, 'no_stream'),
      store.append('sent-twice', events, 'no_stream'),
      store.append('fresh-3', [event('Fresh')], 'no_stream'),
    ]);
    expect(retry).to.deep.equal(original);
    expect((await store.readStream('sent-twice')).map((e) => e.id)).to.deep.equal(events.map((e) => e.id));
    expect((await store.readStream('fresh-3')).map((e) => e.position)).to.deep.equal([fresh.position]);
  });

  it('stores one id in two streams of the same group as two events, each answered with its own position', async () => {
    const shared = randomUUID();
    const [, a, b, c] = await Promise.all([
      store.append('opener-2', [event('Opener')], 'no_stream'),
      store.append('one', [{ ...event('Shared'), id: shared }], 'no_stream'),
      store.append('two', [{ ...event('Shared'), id: shared }], 'no_stream'),
      store.append('three', [event('Other'), event('Other')], 'no_stream'),
    ]);
    const [one] = await store.readStream('one');
    const [two] = await store.readStream('two');
    const three = await store.readStream('three');
    expect([a.position, b.position, c.position]).to.deep.equal([one!.position, two!.position, three[1]!.position]);
    expect(one!.position).to.not.equal(two!.position);
  });
});
