import { EventStoreDBClient } from '@eventstore/db-client';
import { expect } from 'chai';
import { EventStoreDbEventStore } from '../../src/eventStore/eventStoreDbEventStore';
import { EventStoreDbStandIn } from '../support/eventStoreDbStandIn';
import { eventStoreContract, type EventStoreUnderTest } from './eventStore.contract';

// The EventStoreDB adapter, through the real @eventstore/db-client, against the protocol stand-in (a test
// double: see its header) on both append paths — and against a real server when EVENTSTORE_URL is set.
for (const batchAppend of [true, false]) {
  describe(`event store contract: EventStoreDB adapter on the gRPC stand-in (test double), ${batchAppend ? 'BatchAppend' : 'Append'} path`, () => {
    let standIn: EventStoreDbStandIn | undefined;
    eventStoreContract(async () => {
      standIn = await EventStoreDbStandIn.start({ batchAppend });
      const started = standIn;
      return {
        ...storesOn(started.connectionString, () => started.stop()),
        timeOutNextAppends: (count, options) => started.timeOutNextAppends(count, options),
      };
    });
    after('the client took the append path the server advertised', () => {
      expect(standIn?.appendCalls[batchAppend ? 'batchAppend' : 'append']).to.be.greaterThan(0);
      expect(standIn?.appendCalls[batchAppend ? 'append' : 'batchAppend']).to.equal(0);
    });
  });
}

if (process.env.EVENTSTORE_URL) {
  const url = process.env.EVENTSTORE_URL;
  describe('event store contract: EventStoreDB adapter on the server EVENTSTORE_URL names', () => {
    eventStoreContract(async () => storesOn(url, async () => undefined));
  });
}

function storesOn(connectionString: string, stop: () => Promise<void>): EventStoreUnderTest {
  const stores: EventStoreDbEventStore[] = [];
  // The adapter has no delete (herald never deletes); the client can tombstone, on a real server too.
  const admin = EventStoreDBClient.connectionString(connectionString);
  return {
    async tombstone(streamName) {
      await admin.tombstoneStream(streamName);
    },
    async open() {
      const store = new EventStoreDbEventStore(connectionString);
      stores.push(store);
      return store;
    },
    async teardown() {
      await Promise.all([...stores.map((s) => s.close()), admin.dispose()]);
      await stop();
    },
  };
}
