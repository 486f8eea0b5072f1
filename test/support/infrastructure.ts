import { PostgresEventStore } from '../../src/eventStore/postgres/postgresEventStore';
import { postgresEventStoreMigrations } from '../../src/eventStore/postgres/schema/migrations';
import type { Infrastructure } from '../../src/infrastructure';
import { migrate } from '../../src/postgres/migrations';
import type { Projection } from '../../src/projection/projection';
import { projectionRunnerMigrations } from '../../src/projection/projectionRunner';
import { eventRetentionMigrations } from '../../src/storage/eventRetention';
import { createTestDatabase, type TestDatabase } from './postgres';

/** A fresh database with the PostgreSQL event store and the given projections' tables migrated. */
export async function openTestInfrastructure(
  projections: readonly Projection[] = [],
): Promise<Infrastructure & { testDatabase: TestDatabase }> {
  const testDatabase = await createTestDatabase();
  const database = testDatabase.open();
  await migrate(database.pool, [
    ...postgresEventStoreMigrations,
    ...projectionRunnerMigrations,
    ...eventRetentionMigrations,
    ...projections.flatMap((p) => p.migrations),
  ]);
  const store = new PostgresEventStore(database);
  return {
    testDatabase,
    database,
    store,
    async close() {
      await store.close();
      await testDatabase.drop();
    },
  };
}
