import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { EventStoreUnavailableError, type EventStore } from '../../src/eventStore/eventStore';
import { EventStoreDbEventStore } from '../../src/eventStore/eventStoreDbEventStore';
import { PostgresEventStore } from '../../src/eventStore/postgres/postgresEventStore';
import { openDatabase } from '../../src/postgres/database';
import { EventStoreDbStandIn } from '../support/eventStoreDbStandIn';
import { freePort } from '../support/postgres';

const anEvent = () => [{ id: randomUUID(), type: 'Probed', data: {} }];

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected the call to fail'),
    (error: unknown) => error,
  );
}

describe('an unreachable event store surfaces as EventStoreUnavailableError', () => {
  it('EventStoreDB adapter: the first call after the server went away, and the ones after it (raw gRPC code 14)', async () => {
    const standIn = await EventStoreDbStandIn.start({ batchAppend: true });
    const store: EventStore = new EventStoreDbEventStore(standIn.connectionString);
    try {
      await store.append(`probe-${randomUUID()}`, anEvent());
      await standIn.stop();
      for (let call = 1; call <= 3; call++) {
        expect(await failure(store.append(`probe-${randomUUID()}`, anEvent())), `call ${call}`).to.be.instanceOf(
          EventStoreUnavailableError,
        );
      }
      expect(await failure(store.readAll({ maxCount: 1 }))).to.be.instanceOf(EventStoreUnavailableError);
    } finally {
      await store.close();
    }
  });

  it('PostgreSQL adapter: nothing listening on the port', async () => {
    const database = openDatabase(`postgres://postgres@127.0.0.1:${await freePort()}/herald`);
    const store = new PostgresEventStore(database);
    try {
      expect(await failure(store.append('probe', anEvent()))).to.be.instanceOf(EventStoreUnavailableError);
      expect(await failure(store.readAll())).to.be.instanceOf(EventStoreUnavailableError);
    } finally {
      await store.close();
      await database.close();
    }
  });
});
