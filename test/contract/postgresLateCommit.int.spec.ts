import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { PostgresEventStore } from '../../src/eventStore/postgres/postgresEventStore';
import { postgresEventStoreMigrations } from '../../src/eventStore/postgres/schema/migrations';
import { migrate } from '../../src/postgres/migrations';
import { eventually } from '../support/eventually';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// The PostgreSQL adapter's catch-up rule, tested directly: positions commit in order because every
// writer of `events` holds the append lock until it ends — herald_append_batch takes it, and a trigger
// takes it for any other writer (the slow writer below inserts by hand) — so a plain read by position
// never passes over a lower position that commits later.
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

  it('makes an append wait for a writer that bypasses herald_append_batch, so both arrive in order', async () => {
    const subscription = store.subscribeToAll();
    const seen: RecordedEvent[] = [];
    const consumer = (async () => {
      for await (const batch of subscription) {
        seen.push(...batch.events);
        if (seen.length >= 2) break;
      }
    })();

    await slowWriter.query('BEGIN');
    const { rows } = await slowWriter.query<{ position: string }>(
      `INSERT INTO events (event_id, stream_name, revision, event_type, data, metadata)
       VALUES ($1, 'late-1', 0, 'Late', '{}', '{}') RETURNING position`,
      [randomUUID()],
    );
    const latePosition = BigInt(rows[0]!.position);

    let appended = false;
    const fast = store.append('fast-1', [{ id: randomUUID(), type: 'Fast', data: {} }]).then((result) => {
      appended = true;
      return result;
    });
    // The append is queued behind the slow writer's lock: it holds no position yet.
    await eventually(async () => {
      const { rows: waiting } = await slowWriter.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`,
      );
      expect(Number(waiting[0]!.n)).to.equal(1);
    });
    expect(appended).to.equal(false);
    expect(await store.readAll(), 'nothing is readable past the open transaction').to.deep.equal([]);
    expect(seen).to.deep.equal([]);

    await slowWriter.query('COMMIT');
    expect((await fast).position > latePosition, 'the append commits after, with a higher position').to.equal(true);
    await consumer;
    const all = await store.readAll();
    expect(all.map((e) => [e.type, e.position])).to.deep.equal([
      ['Late', latePosition],
      ['Fast', (await fast).position],
    ]);
    expect(seen.map((e) => e.position)).to.deep.equal(all.map((e) => e.position));
  });

  it('is not held back by a transaction that writes no events (a projection batch)', async () => {
    const head = await store.headPosition();
    // A transaction with an id, still running: the old rule (transaction_id < xmin of the snapshot)
    // hid every event appended after it began.
    await slowWriter.query('BEGIN');
    await slowWriter.query('CREATE TEMP TABLE busy (x int)');
    await slowWriter.query('INSERT INTO busy VALUES (1)');
    try {
      const { position } = await store.append('fast-2', [{ id: randomUUID(), type: 'Fast', data: {} }]);
      expect((await store.readAll({ after: head })).map((e) => e.position)).to.deep.equal([position]);
    } finally {
      await slowWriter.query('ROLLBACK');
    }
  });
});
