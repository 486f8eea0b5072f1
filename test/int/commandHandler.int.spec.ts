import { EventStoreDBClient } from '@eventstore/db-client';
import { expect } from 'chai';
import * as t from 'io-ts';
import { DomainError, type Decider } from '../../domain/decider';
import {
  CONFLICT_RETRY,
  handleCommand,
  loadState,
  StreamContendedError,
  type Aggregate,
} from '../../src/command/commandHandler';
import { WrongExpectedRevisionError, type EventStore } from '../../src/eventStore/eventStore';
import { EventStoreDbEventStore } from '../../src/eventStore/eventStoreDbEventStore';
import type { Infrastructure } from '../../src/infrastructure';
import { EventStoreDbStandIn } from '../support/eventStoreDbStandIn';
import { openTestInfrastructure } from '../support/infrastructure';

// A counter that may not pass a limit: enough to see fold, decide, conflict retry and idempotency.
const Incremented = t.type({ type: t.literal('Incremented'), data: t.type({ by: t.number }) });
type Incremented = t.TypeOf<typeof Incremented>;
type Increment = { type: 'Increment'; by: number; limit: number };
const counter: Decider<Increment, Incremented, number> = {
  initialState: () => 0,
  evolve: (total, event) => total + event.data.by,
  decide: (command, total) => {
    if (total + command.by > command.limit) throw new DomainError('conflict', `limit ${command.limit} reached`);
    return [{ type: 'Incremented', data: { by: command.by } }];
  },
};
const counterAggregate: Aggregate<Increment, Incremented, number> = { decider: counter, eventCodec: Incremented };

describe('command handler (PostgreSQL event store)', () => {
  let infrastructure: Infrastructure;
  let store: EventStore;
  let n = 0;
  const stream = () => `counter-${++n}-${Date.now()}`;

  before(async () => {
    infrastructure = await openTestInfrastructure();
    store = infrastructure.store;
  });
  after(() => infrastructure.close());

  it('folds the stream, decides and appends with correlation and causation ids in the metadata', async () => {
    const name = stream();
    await handleCommand(
      store,
      counterAggregate,
      name,
      { type: 'Increment', by: 2, limit: 10 },
      { correlationId: 'corr-1', appId: 'camel', actor: 'user:zhangbin' },
    );
    const result = await handleCommand(store, counterAggregate, name, { type: 'Increment', by: 3, limit: 10 });
    expect(result.state).to.equal(5);
    expect(result.revision).to.equal(1n);
    const [first] = await store.readStream(name);
    expect(first!.metadata).to.deep.include({
      correlationId: 'corr-1',
      causationId: 'corr-1',
      appId: 'camel',
      actor: 'user:zhangbin',
    });
  });

  it('refuses with the domain error and appends nothing', async () => {
    const name = stream();
    await handleCommand(store, counterAggregate, name, { type: 'Increment', by: 9, limit: 10 });
    const refused = await handleCommand(store, counterAggregate, name, { type: 'Increment', by: 2, limit: 10 }).catch(
      (e: unknown) => e,
    );
    expect(refused).to.be.instanceOf(DomainError);
    expect(await store.readStream(name)).to.have.length(1);
  });

  it('retries on a concurrent write and decides again on fresh state: 20 racing commands respect the limit', async () => {
    const name = stream();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, () =>
        handleCommand(store, counterAggregate, name, { type: 'Increment', by: 1, limit: 12 }),
      ),
    );
    const events = await store.readStream(name);
    const total = events.reduce((sum, e) => sum + (e.data as { by: number }).by, 0);
    expect(total).to.be.at.most(12);
    const refused = outcomes
      .filter((o) => o.status === 'rejected')
      .map((o) => (o as PromiseRejectedResult).reason as unknown);
    // Every refusal is the limit (20 writers are well within the retry bound) — never a silent lost update.
    for (const reason of refused) expect(reason).to.be.instanceOf(DomainError);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).to.have.length(total);
    expect(total).to.equal(12);
  });

  it('32 writers racing on one stream all append (issue 21, item 4: 2-5 of 80 failed with 5 attempts)', async () => {
    const name = stream();
    await Promise.all(
      Array.from({ length: 32 }, () =>
        handleCommand(store, counterAggregate, name, { type: 'Increment', by: 1, limit: 100 }),
      ),
    );
    expect(await store.readStream(name)).to.have.length(32);
  });

  it('past the retry bound (another writer always wins) answers StreamContendedError, bounded in attempts and time, appending nothing', async () => {
    const name = stream();
    let appends = 0;
    const alwaysBeaten: EventStore = Object.assign(Object.create(store) as EventStore, {
      append: (streamName: string) => {
        appends++;
        return Promise.reject(new WrongExpectedRevisionError(streamName, 'no_stream', 0n));
      },
    });
    const started = Date.now();
    const refused = await handleCommand(alwaysBeaten, counterAggregate, name, {
      type: 'Increment',
      by: 1,
      limit: 10,
    }).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(StreamContendedError);
    expect(refused).to.include({ streamName: name, retryAfterSeconds: 1 });
    expect(appends).to.be.within(2, CONFLICT_RETRY.maxAttempts);
    expect(Date.now() - started).to.be.below(CONFLICT_RETRY.maxElapsedMs + 1_000);
    expect(await store.readStream(name).catch(() => [])).to.have.length(0);
  });

  it('answers a command that knew a stream retention removed since as "not found" at once, not "busy" after retrying; one that knew nothing starts it anew (issue 26)', async () => {
    const name = stream();
    await handleCommand(store, counterAggregate, name, { type: 'Increment', by: 1, limit: 10 });
    const known = await loadState(store, counterAggregate, name);
    await store.removeStreamEvents!([name], await store.headPosition());
    const started = Date.now();
    const refused = await handleCommand(
      store,
      counterAggregate,
      name,
      { type: 'Increment', by: 1, limit: 10 },
      {},
      known,
    ).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(DomainError);
    expect((refused as DomainError).code).to.equal('not_found');
    expect((refused as Error).message).to.match(/removed by retention/);
    expect(Date.now() - started).to.be.below(CONFLICT_RETRY.maxElapsedMs);
    // A removed stream is no stream: decided on from the initial state, as a name never used.
    const loading = await loadState(store, counterAggregate, name);
    expect(loading.revision).to.equal(-1n);
    await handleCommand(store, counterAggregate, name, { type: 'Increment', by: 2, limit: 10 });
    expect((await store.readStream(name)).map((e) => e.data)).to.have.length(1);
  });

  it('a retried command (same commandId) appends nothing twice', async () => {
    const name = stream();
    await handleCommand(
      store,
      counterAggregate,
      name,
      { type: 'Increment', by: 1, limit: 10 },
      { commandId: 'request-42' },
    );
    // The client resends: the decider decides again, but the event ids derive from the commandId.
    await handleCommand(
      store,
      counterAggregate,
      name,
      { type: 'Increment', by: 1, limit: 10 },
      { commandId: 'request-42' },
    );
    expect(await store.readStream(name)).to.have.length(1);
    await handleCommand(
      store,
      counterAggregate,
      name,
      { type: 'Increment', by: 1, limit: 10 },
      { commandId: 'request-43' },
    );
    expect(await store.readStream(name)).to.have.length(2);
  });
});

describe('command handler (EventStoreDB adapter on the gRPC stand-in, a test double)', () => {
  let standIn: EventStoreDbStandIn;
  let store: EventStoreDbEventStore;
  let admin: EventStoreDBClient;

  before(async () => {
    standIn = await EventStoreDbStandIn.start({ batchAppend: true });
    store = new EventStoreDbEventStore(standIn.connectionString);
    admin = EventStoreDBClient.connectionString(standIn.connectionString);
  });
  after(async () => {
    await Promise.all([store.close(), admin.dispose()]);
    await standIn.stop();
  });

  it('answers a command on a deleted stream as "not found", not as a failure', async () => {
    await handleCommand(store, counterAggregate, 'counter-deleted', { type: 'Increment', by: 1, limit: 10 });
    await admin.tombstoneStream('counter-deleted');
    const refused = await handleCommand(store, counterAggregate, 'counter-deleted', {
      type: 'Increment',
      by: 1,
      limit: 10,
    }).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(DomainError);
    expect((refused as DomainError).code).to.equal('not_found');
  });
});
