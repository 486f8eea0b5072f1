import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import pino from 'pino';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { PostgresEventStore } from '../../src/eventStore/postgres/postgresEventStore';
import { NOTIFY_CHANNEL } from '../../src/eventStore/postgres/schema/appendFunctions';
import { openDatabase } from '../../src/postgres/database';
import { CHECKPOINT_CHANNEL, ProjectionProgress } from '../../src/projection/projectionProgress';
import { withCheckpointStep } from '../../src/projection/projectionRunner';
import { eventually } from '../support/eventually';
import { openTestInfrastructure } from '../support/infrastructure';
import { describeTarget } from '../support/postgres';

/**
 * src/postgres/notices.ts: a commit sends no NOTIFY while no other process listens (it would take the
 * notification queue's lock through the append's WAL flush); this process's subscriptions are told
 * directly, and another process's listener is notified once it is seen.
 */
describe(`notices: NOTIFY only for other processes (${describeTarget()})`, () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  const clients: pg.Client[] = [];
  beforeEach(async () => {
    infrastructure = await openTestInfrastructure();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
    await infrastructure.close();
  });

  /** A session of "another process" LISTENing with `statement`; what it was notified of. */
  async function listener(statement: string): Promise<{ client: pg.Client; payloads: string[] }> {
    const client = new pg.Client({ connectionString: infrastructure.testDatabase.connectionString });
    clients.push(client);
    const payloads: string[] = [];
    client.on('notification', (message) => payloads.push(message.payload ?? ''));
    await client.connect();
    await client.query(statement);
    return { client, payloads };
  }

  const append = (stream: string) =>
    infrastructure.store.append(stream, [{ id: randomUUID(), type: 'Noticed', data: {} }]);

  it('an append notifies nobody while only this process listens, wakes its subscriptions at once, and notifies another process once it listens', async () => {
    const { store, database } = infrastructure;
    // A session that ran another statement after its LISTEN shows no LISTEN: it overhears unseen (and polls).
    const overhearing = await listener(`LISTEN "${NOTIFY_CHANNEL}"`);
    await overhearing.client.query('SELECT 1');
    const seen: RecordedEvent[] = [];
    const subscription = store.subscribeToAll();
    let caughtUp = false;
    void (async () => {
      for await (const batch of subscription) {
        seen.push(...batch.events);
        caughtUp ||= batch.caughtUp;
      }
    })();
    try {
      await eventually(() => expect(caughtUp).to.equal(true));
      await eventually(() => expect(database.notices.othersListen(NOTIFY_CHANNEL)).to.equal(false));

      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        const { position } = await append(`quiet-${i}`);
        // Told directly: well inside the subscriptions' 1 s poll.
        await eventually(() => expect(seen.at(-1)?.position).to.equal(position));
        expect(Date.now() - started, 'woken without a NOTIFY').to.be.below(500);
      }
      // A notification committed before this round trip is delivered before its answer.
      await overhearing.client.query('SELECT 1');
      expect(overhearing.payloads, 'notifications sent with no other process listening').to.deep.equal([]);

      // Another process listens: from when it is seen, appends notify it.
      const other = await listener(`listen "${NOTIFY_CHANNEL}";`);
      await eventually(() => expect(database.notices.othersListen(NOTIFY_CHANNEL)).to.equal(true));
      const { position } = await append('heard');
      await eventually(() => expect(other.payloads).to.include(position.toString()));
      expect(overhearing.payloads).to.include(position.toString());
    } finally {
      await subscription.close();
    }
  });
});

/**
 * Two herald "processes" on one database (two Databases on different connection strings, so they share
 * no in-process wake-ups): each sees the other's named listeners, and a commit in one wakes the other
 * well inside its poll (subscriptions 1 s, read-your-writes waiters 200 ms).
 */
describe(`notices: another process is woken by NOTIFY (${describeTarget()})`, () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  let other: ReturnType<typeof openDatabase>;
  before(async () => {
    infrastructure = await openTestInfrastructure();
    const url = new URL(infrastructure.testDatabase.connectionString);
    url.searchParams.set('connect_timeout', '17'); // another connection string: another process's wake-ups
    other = openDatabase(url.toString());
    await infrastructure.database.pool.query(
      `INSERT INTO projection_checkpoints (name, version, position) VALUES ('elsewhere', 1, 0)`,
    );
  });
  after(async () => {
    await other?.close();
    await infrastructure?.close();
  });

  it('an append and a checkpoint move in one process wake the other at once', async () => {
    const { database, store } = infrastructure;
    const otherStore = new PostgresEventStore(other);
    const seen: bigint[] = [];
    let caughtUp = false;
    const subscription = otherStore.subscribeToAll();
    void (async () => {
      for await (const batch of subscription) {
        seen.push(...batch.events.map((e) => e.position));
        caughtUp ||= batch.caughtUp;
      }
    })();
    const progress = new ProjectionProgress({ database: other, log: pino({ level: 'silent' }) });
    try {
      await progress.start();
      await eventually(() => expect(caughtUp).to.equal(true));
      await eventually(() => expect(database.notices.othersListen(NOTIFY_CHANNEL)).to.equal(true));
      await eventually(() => expect(database.notices.othersListen(CHECKPOINT_CHANNEL)).to.equal(true));

      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        const { position } = await store.append(`elsewhere-${i}`, [{ id: randomUUID(), type: 'Noticed', data: {} }]);
        await eventually(() => expect(seen).to.include(position), { timeoutMs: 3000 });
        expect(Date.now() - started, 'woken by NOTIFY, not its 1 s poll').to.be.below(400);
      }
      for (let to = 1n; to <= 3n; to++) {
        const waited = progress.waitFor(['elsewhere'], to, 150);
        const move = {
          name: 'elsewhere-noop',
          text: 'WITH v AS (SELECT 1 AS one) SELECT one FROM v',
          values: [] as unknown[],
        };
        await database.pool.query(
          withCheckpointStep(move, 'elsewhere', to - 1n, to, database.notices.othersListen(CHECKPOINT_CHANNEL)),
        );
        expect(await waited, 'woken by NOTIFY, before its 200 ms re-read').to.equal(true);
      }
    } finally {
      await progress.close();
      await subscription.close();
    }
  });
});

/** ProjectionRunner.applyBatch: a batch in one statement carries the checkpoint's compare-and-set as a step. */
describe(`projection batch statement with the checkpoint step (${describeTarget()})`, () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  before(async () => {
    infrastructure = await openTestInfrastructure();
    await infrastructure.database.pool.query(`CREATE TABLE stepped (value integer NOT NULL)`);
    await infrastructure.database.pool.query(
      `INSERT INTO projection_checkpoints (name, version, position) VALUES ('stepped', 1, 5)`,
    );
  });
  after(() => infrastructure.close());

  const batch = (value: number) => ({
    name: 'stepped-insert',
    text: `WITH v AS (SELECT $1::integer AS value) INSERT INTO stepped SELECT value FROM v RETURNING value`,
    values: [value],
  });
  const state = async () => {
    const { pool } = infrastructure.database;
    const rows = (await pool.query<{ value: number }>('SELECT value FROM stepped ORDER BY value')).rows;
    const checkpoint = await pool.query<{ position: string }>(
      `SELECT position FROM projection_checkpoints WHERE name = 'stepped'`,
    );
    return { values: rows.map((r) => r.value), checkpoint: checkpoint.rows[0]!.position };
  };

  it('writes nothing and fails with HR001 when the checkpoint is not where the runner left it', async () => {
    const { pool } = infrastructure.database;
    const failure = await pool.query(withCheckpointStep(batch(1), 'stepped', 3n, 9n, false)).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect((failure as { code?: string } | undefined)?.code).to.equal('HR001');
    expect(await state()).to.deep.equal({ values: [], checkpoint: '5' });
  });

  it('writes nothing and fails with HR001 when the checkpoint row is missing', async () => {
    const { pool } = infrastructure.database;
    const failure = await pool.query(withCheckpointStep(batch(3), 'unknown-projection', 5n, 9n, false)).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect((failure as { code?: string } | undefined)?.code).to.equal('HR001');
    expect(await state()).to.deep.equal({ values: [], checkpoint: '5' });
  });

  it('moves the checkpoint with the batch, in one statement', async () => {
    const { pool } = infrastructure.database;
    const { rows } = await pool.query(withCheckpointStep(batch(2), 'stepped', 5n, 9n, false));
    expect(rows).to.deep.equal([{ value: 2 }]);
    expect(await state()).to.deep.equal({ values: [2], checkpoint: '9' });
    // Replayed (a crash before the runner heard the answer): the compare-and-set refuses it.
    const replayed = await pool.query(withCheckpointStep(batch(2), 'stepped', 5n, 9n, false)).catch((e: unknown) => e);
    expect((replayed as { code?: string }).code).to.equal('HR001');
    expect(await state()).to.deep.equal({ values: [2], checkpoint: '9' });
  });
});
