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
