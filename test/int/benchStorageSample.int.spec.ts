import { expect } from 'chai';
import pg from 'pg';
import { storageSample } from '../../bench/support';
import { createTestDatabase, describeTarget, type TestDatabase } from '../support/postgres';

/**
 * The storage soak's sample (bench/support.ts storageSample): every table counted with its bytes, a
 * partitioned table as one (its partitions summed into it: the event store may partition `events`), and
 * the Koala rows of messages without expiry apart.
 */
describe(`bench storage sample (${describeTarget()})`, function () {
  this.timeout(60_000);
  let testDatabase: TestDatabase;
  let client: pg.Client;

  before(async () => {
    testDatabase = await createTestDatabase();
    client = new pg.Client({ connectionString: testDatabase.connectionString });
    await client.connect();
    await client.query(`
      CREATE TABLE plain (id int PRIMARY KEY, body text);
      INSERT INTO plain SELECT i, repeat('x', 200) FROM generate_series(1, 500) AS i;
      CREATE TABLE parted (position bigint NOT NULL, body text) PARTITION BY RANGE (position);
      CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
      CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (1000) TO (2000);
      INSERT INTO parted SELECT i, repeat('y', 200) FROM generate_series(0, 1499) AS i;
      CREATE TABLE notification_messages (message_id int PRIMARY KEY, expires_at timestamptz);
      CREATE TABLE notifications (message_id int, user_id text, expires_at timestamptz);
      INSERT INTO notification_messages VALUES (1, NULL), (2, now()), (3, NULL);
      INSERT INTO notifications VALUES (1, 'a', NULL), (1, 'b', NULL), (2, 'a', now()), (3, 'a', NULL);`);
  });

  after(async () => {
    await client?.end();
    await testDatabase?.drop();
  });

  it('counts every table, partitions summed into their parent, with bytes', async () => {
    const sample = await storageSample(client);
    expect(Object.keys(sample.tables).sort()).to.deep.equal([
      'notification_messages',
      'notifications',
      'parted',
      'plain',
    ]);
    expect(sample.tables.plain!.rows).to.equal(500);
    expect(sample.tables.parted!.rows).to.equal(1500);
    // 500 rows of 200 bytes and 1,500 of them: heap and indexes, never the parent's own 0 bytes.
    expect(sample.tables.plain!.bytes).to.be.greaterThan(100_000);
    expect(sample.tables.parted!.bytes).to.be.greaterThan(300_000);
    expect(sample.databaseBytes).to.be.greaterThan(sample.tables.plain!.bytes + sample.tables.parted!.bytes);
    expect(sample.koalaKept).to.deep.equal({ messages: 2, notifications: 3 });
  });
});
