import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { NOTIFY_CHANNEL } from '../../src/eventStore/postgres/schema/appendFunctions';
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
