import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { deviceStreamName } from '../../domain/device/device';
import { broadcastReadStreamName, inboxStreamName } from '../../domain/inbox/inbox';
import { broadcastReadAggregate, deviceAggregate, inboxAggregate } from '../../src/command/aggregates';
import { handleCommand, loadState, newStream } from '../../src/command/commandHandler';
import { StreamNotFoundError, type EventStore, type NewEvent } from '../../src/eventStore/eventStore';
import { EventStoreDbEventStore } from '../../src/eventStore/eventStoreDbEventStore';
import { EventStoreDbStandIn } from '../support/eventStoreDbStandIn';
import { openTestInfrastructure } from '../support/infrastructure';
import { countStreamReads, type StreamReads } from '../support/streamReads';

// Issue 26, "Long streams": loading any aggregate reads a bounded number of events. An inbox written before
// the change (5,000 broadcast reads and clears in the one stream, as earlier versions appended them) and a
// device registered and unregistered at each of 1,000 logins are loaded for each decision; the events the
// store hands back are counted (test/support/streamReads.ts).

const HISTORY = 5_000;
const BATCH = 500;

const legacyInbox = (appId: string, userId: string): NewEvent[] =>
  Array.from({ length: HISTORY }, (_, i) => ({
    id: randomUUID(),
    // Every tenth a clear, the rest reads of distinct broadcasts: what an inbox held before issue 26.
    ...(i % 10 === 9
      ? { type: 'NotificationStatsCleared', data: { appId, userId, clearedAt: '2026-01-01T00:00:00.000Z' } }
      : {
          type: 'NotificationRead',
          data: { notificationId: randomUUID(), appId, userId, readAt: '2026-01-01T00:00:00.000Z' },
        }),
    metadata: { correlationId: 'legacy', causationId: 'legacy' },
  }));

async function appendInBatches(store: EventStore, streamName: string, events: readonly NewEvent[]): Promise<void> {
  for (let i = 0; i < events.length; i += BATCH) await store.append(streamName, events.slice(i, i + BATCH));
}

function streamBounds(open: () => Promise<{ store: EventStore; close: () => Promise<void> }>): void {
  let store: EventStore;
  let reads: StreamReads;
  let close: () => Promise<void>;
  let n = 0;
  const user = () => `user-${++n}-${Date.now()}`;

  before(async function () {
    this.timeout(120_000);
    const opened = await open();
    store = opened.store;
    reads = countStreamReads(store);
    close = opened.close;
  });
  after(() => close());

  const clear = (appId: string, userId: string, now: string) =>
    reads.during(async () => {
      const streamName = inboxStreamName(appId, userId);
      const loaded = await loadState(store, inboxAggregate, streamName);
      const command = {
        type: 'ClearNotificationStats' as const,
        appId,
        userId,
        clearsSeen: loaded.state.statsClears,
        now,
      };
      return handleCommand(store, inboxAggregate, streamName, command, {}, loaded);
    });

  it(`clears the stats of an inbox of ${HISTORY} earlier reads and clears reading one event`, async function () {
    this.timeout(120_000);
    const userId = user();
    await appendInBatches(store, inboxStreamName('camel', userId), legacyInbox('camel', userId));
    const { result, eventsRead } = await clear('camel', userId, '2026-01-02T00:00:00.000Z');
    expect(result.events.map((e) => e.type)).to.deep.equal(['NotificationStatsCleared']);
    expect(result.revision).to.equal(BigInt(HISTORY));
    expect(eventsRead).to.equal(1);
  });

  it('concurrent clears of a long inbox append once, each reading only its revision and what the others wrote', async function () {
    this.timeout(120_000);
    const userId = user();
    const streamName = inboxStreamName('camel', userId);
    await appendInBatches(store, streamName, legacyInbox('camel', userId));
    // All arrive before any appends: each loads the same revision first.
    const loaded = await Promise.all(Array.from({ length: 8 }, () => loadState(store, inboxAggregate, streamName)));
    const before = reads.eventsRead;
    const results = await Promise.all(
      loaded.map((known) =>
        handleCommand(
          store,
          inboxAggregate,
          streamName,
          { type: 'ClearNotificationStats', appId: 'camel', userId, clearsSeen: known.state.statsClears, now: 't' },
          {},
          known,
        ),
      ),
    );
    // Each loser read the one clear the winner appended.
    expect(reads.eventsRead - before).to.equal(results.length - 1);
    expect(results.flatMap((r) => r.events)).to.have.length(1);
    expect((await store.readStream(streamName, { fromRevision: BigInt(HISTORY) })).length).to.equal(1);
  });

  it('reads a broadcast once per user, on a stream of at most one event, however many reads the inbox holds', async function () {
    this.timeout(120_000);
    const userId = user();
    await appendInBatches(store, inboxStreamName('camel', userId), legacyInbox('camel', userId));
    const notificationId = randomUUID();
    const streamName = broadcastReadStreamName('camel', notificationId, userId);
    const markRead = () =>
      handleCommand(
        store,
        broadcastReadAggregate,
        streamName,
        { type: 'MarkBroadcastRead', appId: 'camel', userId, notificationId, now: 't' },
        {},
        newStream(broadcastReadAggregate),
      );
    const { result: results, eventsRead } = await reads.during(() => Promise.all([markRead(), markRead(), markRead()]));
    expect(results.flatMap((r) => r.events)).to.have.length(1);
    expect(eventsRead).to.be.at.most(2);
    expect(await store.readStream(streamName)).to.have.length(1);
    const again = await reads.during(markRead);
    expect(again.result.events).to.deep.equal([]);
    expect(again.eventsRead).to.equal(1);
  });

  it('loads a device registered and unregistered at each of 1,000 logins from its last three events (the window: a registration, a token revocation, an unregister)', async function () {
    this.timeout(120_000);
    const deviceId = randomUUID().replace(/-/g, '');
    const streamName = deviceStreamName(deviceId);
    const registration = (i: number) => ({
      deviceId,
      appId: 'camel',
      clientId: 7,
      alias: `alias-${i % 3}`,
      platform: 'ANDROID',
      nativeToken: 'token',
      mobile: null,
      tags: [],
      registration: i + 1,
    });
    const events: NewEvent[] = Array.from({ length: 2_000 }, (_, j) => {
      const i = Math.floor(j / 2);
      return {
        id: randomUUID(),
        ...(j % 2 === 0
          ? { type: 'DeviceRegistered', data: { ...registration(i), registeredAt: 't' } }
          : {
              type: 'DeviceUnregistered',
              data: { deviceId, appId: 'camel', registration: i + 1, unregisteredAt: 't' },
            }),
        metadata: { correlationId: 'c', causationId: 'c' },
      };
    });
    await appendInBatches(store, streamName, events);
    const loaded = await reads.during(() => loadState(store, deviceAggregate, streamName));
    expect(loaded.eventsRead).to.equal(3);
    expect(loaded.result.state).to.deep.include({ status: 'unregistered', registration: 1_000, alias: 'alias-0' });
    // And a command on it, from `newStream` (the caller thought it new): the conflict loads the window too.
    const registered = await reads.during(() =>
      handleCommand(
        store,
        deviceAggregate,
        streamName,
        {
          type: 'RegisterDevice',
          deviceId,
          appId: 'camel',
          clientId: 9,
          alias: 'back',
          platform: 'IOS',
          nativeToken: 'token',
          now: 't2',
        },
        {},
        newStream(deviceAggregate),
      ),
    );
    expect(registered.result.events).to.have.length(1);
    expect(registered.result.state).to.deep.include({ status: 'registered', registration: 1_001, clientId: 7 });
    expect(registered.eventsRead).to.equal(3);
  });

  it('a windowed load of a stream that does not exist reads nothing and is the initial state', async () => {
    const streamName = deviceStreamName(randomUUID().replace(/-/g, ''));
    await store.readStream(streamName).then(
      () => expect.fail('no such stream'),
      (error: unknown) => expect(error).to.be.instanceOf(StreamNotFoundError),
    );
    const loaded = await reads.during(() => loadState(store, deviceAggregate, streamName));
    expect(loaded.result).to.deep.equal({ state: { status: 'none' }, revision: -1n });
    expect(loaded.eventsRead).to.equal(0);
  });
}

describe('stream bounds: loading reads a bounded number of events (PostgreSQL event store)', () => {
  streamBounds(async () => {
    const infrastructure = await openTestInfrastructure();
    return { store: infrastructure.store, close: () => infrastructure.close() };
  });
});

describe('stream bounds: loading reads a bounded number of events (EventStoreDB adapter on the gRPC stand-in, a test double)', () => {
  streamBounds(async () => {
    const standIn = await EventStoreDbStandIn.start({ batchAppend: true });
    const store = new EventStoreDbEventStore(standIn.connectionString);
    return {
      store,
      close: async () => {
        await store.close();
        await standIn.stop();
      },
    };
  });
});

if (process.env.EVENTSTORE_URL) {
  const url = process.env.EVENTSTORE_URL;
  describe('stream bounds: loading reads a bounded number of events (EventStoreDB server EVENTSTORE_URL names)', () => {
    streamBounds(async () => {
      const store = new EventStoreDbEventStore(url);
      return { store, close: () => store.close() };
    });
  });
}
