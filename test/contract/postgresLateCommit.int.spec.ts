import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { PostgresEventStore } from '../../src/eventStore/postgres/postgresEventStore';
import { postgresEventStoreMigrations } from '../../src/eventStore/postgres/schema/migrations';
import { migrate } from '../../src/postgres/migrations';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// The PostgreSQL adapter's catch-up rule, tested directly: a row with a lower position whose transaction
// commits late is waited for, never skipped. (herald's own appenders also serialise on an advisory lock;
// the transaction below bypasses it on purpose, as any other writer to the table could.)
describe('PostgreSQL event store: a late commit of a lower position is not skipped', () => {
  let testDatabase: TestDatabase;
  let store: PostgresEventStore;
  let slowWriter: pg.Client;

  before(async () => {
    testDatabase = await createTestDatabase();
    const database = testDatabase.open();
    await migrate(database.pool, postgresEventStoreMigrations);
    store = new PostgresEventStore(database);
    slowWriter = new pg.Client({ connectionString: testDatabase.connectionString });
    await slowWriter.connect();
  });
  after(async () => {
    await slowWriter.end();
    await store.close();
    await testDatabase.drop();
  });

  it('holds back later positions until the earlier transaction commits, then delivers both in order', async () => {
    await slowWriter.query('BEGIN');
    const { rows } = await slowWriter.query<{ position: string }>(
      `INSERT INTO events (event_id, stream_name, revision, event_type, data, metadata)
       VALUES ($1, 'late-1', 0, 'Late', '{}', '{}') RETURNING position`,
      [randomUUID()],
    );
    const latePosition = BigInt(rows[0]!.position);

    const fast = await store.append('fast-1', [{ id: randomUUID(), type: 'Fast', data: {} }]);
    expect(fast.position > latePosition, 'the committed event has the higher position').to.equal(true);
    expect(await store.readAll(), 'nothing is readable past the open transaction').to.deep.equal([]);

    await slowWriter.query('COMMIT');
    const all = await store.readAll();
    expect(all.map((e) => [e.type, e.position])).to.deep.equal([
      ['Late', latePosition],
      ['Fast', fast.position],
    ]);
  });
});
