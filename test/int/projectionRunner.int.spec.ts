import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import pino from 'pino';
import { notificationsProjection } from '../../projections/koalaInbox';
import { InProcessBus, publication, topic } from '../../src/bus/bus';
import { PostgresEventStore } from '../../src/eventStore/postgres/postgresEventStore';
import { openDatabase } from '../../src/postgres/database';
import { parkedCounts, retryParked } from '../../src/projection/parkedEvents';
import type { Projection } from '../../src/projection/projection';
import { rebuildProjections } from '../../src/projection/projectionRebuild';
import { PROJECTION_LOCK_SPACE, ProjectionRunner, readCheckpoints } from '../../src/projection/projectionRunner';
import { eventually } from '../support/eventually';
import { openTestInfrastructure } from '../support/infrastructure';
import { TcpProxy } from '../support/tcpProxy';

const log = pino({ level: process.env.HERALD_TEST_LOG ?? 'silent' });

/** What the test read model publishes: a stream's new count. */
const tallyTopic = (streamName: string) => topic<{ count: number }>(`tally:${streamName}`);

/** A test read model: per stream, how many `Tallied` events and the sum of their values. */
/** `poison`: values whose event PostgreSQL refuses (the event's own bad data, SQLSTATE class 22). */
function tallyProjection(options: { version?: number; crashOn?: Set<number>; poison?: Set<number> } = {}): Projection {
  return {
    name: 'tally',
    version: options.version ?? 1,
    tables: ['tally'],
    eventTypes: new Set(['Tallied']),
    migrations: [
      {
        id: 'test/tally/001',
        sql: 'CREATE TABLE tally (stream_name text PRIMARY KEY, count integer NOT NULL, sum bigint NOT NULL)',
      },
    ],
    async handle(events, tx) {
      const touched = new Set<string>();
      for (const event of events) {
        if (event.type !== 'Tallied') continue;
        const value = (event.data as { value: number }).value;
        if (options.poison?.has(value)) await tx.query('SELECT $1::integer', [`cannot tally ${value}`]);
        await tx.query(
          `INSERT INTO tally VALUES ($1, 1, $2)
           ON CONFLICT (stream_name) DO UPDATE SET count = tally.count + 1, sum = tally.sum + excluded.sum`,
          [event.streamName, value],
        );
        touched.add(event.streamName);
        // Simulated crash in the middle of a batch, after some of its rows were written: the connection
        // dies with the transaction open, as when the process is killed.
        if (options.crashOn?.delete(value)) await tx.query('SELECT pg_terminate_backend(pg_backend_pid())');
      }
      const { rows } = await tx.query<{ stream_name: string; count: number }>(
        'SELECT stream_name, count FROM tally WHERE stream_name = ANY ($1)',
        [[...touched]],
      );
      return rows.map((r) => publication(tallyTopic(r.stream_name), { count: r.count }));
    },
  };
}

describe('projection runner', () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  before(async () => {
    infrastructure = await openTestInfrastructure([tallyProjection()]);
  });
  after(() => infrastructure.close());

  async function appendTallies(count: number, streams = 3): Promise<void> {
    for (let i = 0; i < count; i++) {
      await infrastructure.store.append(`tally-s${i % streams}`, [
        { id: randomUUID(), type: 'Tallied', data: { value: i } },
      ]);
    }
  }

  async function readTally(): Promise<Array<{ stream_name: string; count: number; sum: string }>> {
    return (await infrastructure.database.pool.query('SELECT stream_name, count, sum FROM tally ORDER BY stream_name'))
      .rows;
  }

  /** Until the checkpoint of `version` passes `position` (its batch's writes committed with it). */
  async function waitForCheckpoint(position: bigint, version = 1): Promise<void> {
    await eventually(
      async () => {
        const { rows } = await infrastructure.database.pool.query<{ position: string }>(
          "SELECT position FROM projection_checkpoints WHERE name = 'tally' AND version = $1",
          [version],
        );
        const checkpoint = BigInt(rows[0]?.position ?? -1);
        expect(checkpoint >= position, `checkpoint ${checkpoint} of version ${version} reached ${position}`).to.equal(
          true,
        );
      },
      { timeoutMs: 30_000 },
    );
  }

  it('a crash mid-batch applies nothing of that batch; after restart the read model equals a rebuild from 0', async () => {
    await appendTallies(600);
    const crashOn = new Set([250, 420]);
    const runner = new ProjectionRunner({
      ...infrastructure,
      projection: tallyProjection({ crashOn }),
      bus: new InProcessBus(),
      log,
    });
    runner.start();
    await waitForCheckpoint(await infrastructure.store.headPosition());
    await runner.stop();
    expect(crashOn.size, 'both crashes happened').to.equal(0);

    const afterCrashes = await readTally();
    const expected = [0, 1, 2].map((s) => {
      const values = Array.from({ length: 600 }, (_, i) => i).filter((i) => i % 3 === s);
      return { stream_name: `tally-s${s}`, count: values.length, sum: String(values.reduce((a, b) => a + b, 0)) };
    });
    expect(afterCrashes).to.deep.equal(expected);

    await rebuildProjections(infrastructure, [tallyProjection()], () => undefined);
    expect(await readTally()).to.deep.equal(afterCrashes);
  });

  it('stopping and restarting resumes from the checkpoint without double counting', async () => {
    const projection = tallyProjection();
    const first = new ProjectionRunner({ ...infrastructure, projection, bus: new InProcessBus(), log });
    first.start();
    await appendTallies(90);
    await first.stop(); // possibly mid-stream
    await appendTallies(30);
    const second = new ProjectionRunner({ ...infrastructure, projection, bus: new InProcessBus(), log });
    second.start();
    await waitForCheckpoint(await infrastructure.store.headPosition());
    await second.stop();
    const total = (await readTally()).reduce((sum, r) => sum + r.count, 0);
    expect(total).to.equal(600 + 90 + 30);
  });

  it('only one runner per projection is active across processes; the standby takes over when it stops', async () => {
    const projection = tallyProjection();
    // Separate pools stand for separate herald processes on one database.
    const processA = { database: infrastructure.testDatabase.open(), store: infrastructure.store };
    const processB = { database: infrastructure.testDatabase.open(), store: infrastructure.store };
    const a = new ProjectionRunner({ ...processA, projection, bus: new InProcessBus(), log });
    const b = new ProjectionRunner({ ...processB, projection, bus: new InProcessBus(), log });
    a.start();
    await eventually(() => expect(a.state).to.be.oneOf(['catching-up', 'live']));
    b.start();
    await eventually(() => expect(b.state).to.equal('standby'));
    await appendTallies(60);
    await waitForCheckpoint(await infrastructure.store.headPosition());
    expect(b.state).to.equal('standby');

    await a.stop();
    await appendTallies(30);
    await eventually(() => expect(b.state).to.be.oneOf(['catching-up', 'live']), { timeoutMs: 10_000 });
    await waitForCheckpoint(await infrastructure.store.headPosition());
    await b.stop();
    const total = (await readTally()).reduce((sum, r) => sum + r.count, 0);
    expect(total).to.equal(720 + 60 + 30);
  });

  it('when the lock session dies (its host vanished), a standby takes over; one runner stays active', async () => {
    const projection = tallyProjection();
    const a = new ProjectionRunner({
      database: infrastructure.testDatabase.open(),
      store: infrastructure.store,
      projection,
      bus: new InProcessBus(),
      log,
    });
    const b = new ProjectionRunner({
      database: infrastructure.testDatabase.open(),
      store: infrastructure.store,
      projection,
      bus: new InProcessBus(),
      log,
    });
    a.start();
    await eventually(() => expect(a.state).to.be.oneOf(['catching-up', 'live']));
    b.start();
    await eventually(() => expect(b.state).to.equal('standby'));
    try {
      // The server's side of a vanished host: its keepalive probes go unanswered and it ends the session.
      const { rows } = await infrastructure.database.pool.query<{ pid: number }>(
        `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [PROJECTION_LOCK_SPACE],
      );
      expect(rows).to.have.length(1);
      await infrastructure.database.pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      await appendTallies(30);
      await waitForCheckpoint(await infrastructure.store.headPosition());
      await eventually(() => expect([a.state, b.state].filter((s) => s !== 'standby')).to.have.length(1), {
        timeoutMs: 10_000,
      });
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('herald sessions ask the server to notice a vanished peer within ~10 s', async () => {
    // Over TCP: the embedded default is reached over a Unix socket, where keepalives do not apply (they
    // show as 0) and need not: a process on the same host that dies closes its socket.
    const tcp = new URL(infrastructure.database.clientConfig.connectionString!);
    tcp.searchParams.delete('host');
    const client = new pg.Client({ ...infrastructure.database.clientConfig, connectionString: tcp.toString() });
    await client.connect();
    try {
      const show = async (name: string) => (await client.query(`SHOW ${name}`)).rows[0]![name] as string;
      expect([
        await show('tcp_keepalives_idle'),
        await show('tcp_keepalives_interval'),
        await show('tcp_keepalives_count'),
      ]).to.deep.equal(['4', '2', '3']);
      expect(await show('idle_in_transaction_session_timeout')).to.equal('1min');
    } finally {
      await client.end();
    }
  });

  it('publishes after commit: a subscriber that queries on the push already sees the change', async () => {
    const bus = new InProcessBus();
    const seen: Array<{ pushed: number; queried: number }> = [];
    bus.subscribe(tallyTopic('tally-s0'), ({ count: pushed }) => {
      void infrastructure.database.pool
        .query<{ count: number }>("SELECT count FROM tally WHERE stream_name = 'tally-s0'")
        .then(({ rows }) => seen.push({ pushed, queried: rows[0]!.count }));
    });
    const runner = new ProjectionRunner({ ...infrastructure, projection: tallyProjection(), bus, log });
    runner.start();
    await appendTallies(3);
    await eventually(() => expect(seen.length).to.be.at.least(1));
    await runner.stop();
    for (const { pushed, queried } of seen) expect(queried).to.be.at.least(pushed);
  });

  it('a new projection version empties its tables and replays from the start', async () => {
    // The tables as version 1 leaves them at the head: the test before stops its runner at its first push,
    // possibly short of the head (then a replay of every event could never equal them).
    const head = await infrastructure.store.headPosition();
    const current = new ProjectionRunner({
      ...infrastructure,
      projection: tallyProjection(),
      bus: new InProcessBus(),
      log,
    });
    current.start();
    await waitForCheckpoint(head);
    await current.stop();
    const before = await readTally();
    await infrastructure.database.pool.query("UPDATE tally SET count = count + 1000 WHERE stream_name = 'tally-s0'");
    const runner = new ProjectionRunner({
      ...infrastructure,
      projection: tallyProjection({ version: 2 }),
      bus: new InProcessBus(),
      log,
    });
    runner.start();
    try {
      // Version 2's checkpoint (version 1's is at the head already), committed with its batch's writes.
      await waitForCheckpoint(head, 2);
      expect(await readTally()).to.deep.equal(before);
    } finally {
      await runner.stop();
    }
  });
});

describe('projection runner: an event its projection cannot apply', () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  before(async () => {
    infrastructure = await openTestInfrastructure([tallyProjection()]);
  });
  after(() => infrastructure?.close());

  async function append(values: readonly number[]): Promise<void> {
    for (const value of values)
      await infrastructure.store.append(`tally-p${value % 4}`, [
        { id: randomUUID(), type: 'Tallied', data: { value } },
      ]);
  }
  const total = async () =>
    Number(
      (await infrastructure.database.pool.query<{ sum: string }>('SELECT coalesce(sum(sum), 0) AS sum FROM tally'))
        .rows[0]!.sum,
    );

  it('is parked; the next 1,000 events are still projected and pushed; retry applies it once fixed', async () => {
    const poison = new Set([-7]);
    const projection = tallyProjection({ poison });
    const bus = new InProcessBus();
    let pushes = 0;
    for (let stream = 0; stream < 4; stream++) bus.subscribe(tallyTopic(`tally-p${stream}`), () => pushes++);
    const runner = new ProjectionRunner({ ...infrastructure, projection, bus, log });
    runner.start();
    const after = Array.from({ length: 1000 }, (_, i) => 100 + i);
    try {
      await append([1, 2, -7, 3]);
      await append(after);
      // The head as readers see it (it may trail a transaction still settling): the checkpoint passes it.
      const head = await infrastructure.store.headPosition();
      await eventually(async () => expect(await total()).to.equal(1 + 2 + 3 + after.reduce((a, b) => a + b, 0)), {
        timeoutMs: 30_000,
      });
      await eventually(
        async () =>
          expect(((await readCheckpoints(infrastructure.database.pool)).get('tally') ?? -1n) >= head).to.equal(true),
        { timeoutMs: 30_000 },
      );
      expect(pushes, 'the events after the parked one were pushed').to.be.at.least(after.length / 100);
    } finally {
      await runner.stop();
    }

    const { rows } = await infrastructure.database.pool.query(
      'SELECT event_type, stream_name, error, attempts FROM projection_parked',
    );
    expect(rows).to.deep.equal([
      {
        event_type: 'Tallied',
        stream_name: 'tally-p-3',
        error: 'invalid input syntax for type integer: "cannot tally -7"',
        attempts: 3,
      },
    ]);
    expect((await parkedCounts(infrastructure.database.pool)).get('tally')).to.equal(1);

    // Still failing: it stays parked, with the new error. Fixed: it applies, and is no longer parked.
    expect(await retryParked(infrastructure.database.pool, projection)).to.deep.equal({ retried: 0, stillParked: 1 });
    poison.clear();
    expect(await retryParked(infrastructure.database.pool, projection)).to.deep.equal({ retried: 1, stillParked: 0 });
    expect(await total()).to.equal(1 + 2 + 3 - 7 + after.reduce((a, b) => a + b, 0));
    expect((await parkedCounts(infrastructure.database.pool)).size).to.equal(0);
  });

  it('with onError "stop", stops at it and projects nothing after it until it applies', async () => {
    await infrastructure.database.pool.query('TRUNCATE tally');
    await infrastructure.database.pool.query(
      `UPDATE projection_checkpoints SET position = (SELECT max(position) FROM events) WHERE name = 'tally'`,
    );
    const poison = new Set([-9]);
    const runner = new ProjectionRunner({
      ...infrastructure,
      projection: tallyProjection({ poison }),
      bus: new InProcessBus(),
      log,
      onError: 'stop',
    });
    runner.start();
    try {
      await append([5, -9, 6]);
      await eventually(async () => expect(await total()).to.equal(5), { timeoutMs: 10_000 });
      expect((await parkedCounts(infrastructure.database.pool)).size).to.equal(0);
      poison.clear();
      await eventually(async () => expect(await total()).to.equal(5 - 9 + 6), { timeoutMs: 60_000 });
    } finally {
      await runner.stop();
    }
  });
});

describe("projection runner: failures that are not the events' fault (issue 21, items 8 and 10)", () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  before(async () => {
    infrastructure = await openTestInfrastructure([tallyProjection()]);
  });
  after(() => infrastructure?.close());

  let appended = 0;
  async function append(values: readonly number[]): Promise<void> {
    for (const value of values) {
      await infrastructure.store.append(`tally-t${value % 2}`, [
        { id: randomUUID(), type: 'Tallied', data: { value } },
      ]);
      appended += value;
    }
  }
  const total = async () =>
    Number(
      (await infrastructure.database.pool.query<{ sum: string }>('SELECT coalesce(sum(sum), 0) AS sum FROM tally'))
        .rows[0]!.sum,
    );
  const parked = async () => (await parkedCounts(infrastructure.database.pool)).get('tally') ?? 0;

  it('a statement_timeout while it waits on a table lock parks nothing; the event lands once the lock is released', async () => {
    const name = new URL(infrastructure.testDatabase.connectionString).pathname.slice(1);
    await infrastructure.database.pool.query(`ALTER DATABASE ${name} SET statement_timeout = '200ms'`);
    // Sessions opened from now on have the timeout, the runner's among them.
    const runner = new ProjectionRunner({
      database: infrastructure.testDatabase.open(),
      store: infrastructure.store,
      projection: tallyProjection(),
      bus: new InProcessBus(),
      log,
    });
    const holder = new pg.Client(infrastructure.database.clientConfig);
    await holder.connect();
    runner.start();
    try {
      await append([1]);
      await eventually(async () => expect(await total()).to.equal(1));
      await holder.query('BEGIN');
      // SHARE blocks the runner's writes; unlike ACCESS EXCLUSIVE it takes no transaction id, which would
      // hold every event after it back from the catch-up readers (the store's visibility rule).
      await holder.query('LOCK TABLE tally IN SHARE MODE');
      await append([4]);
      // Past the point where the old rule parked it (3 timeouts of the batch, then 3 of the event: ~2 s).
      await eventually(
        async () =>
          expect((runner.failing?.attempts ?? 0) >= 5 || (await parked()) > 0, 'retried 5 times or parked').to.equal(
            true,
          ),
        { timeoutMs: 30_000 },
      );
      expect(await parked(), 'parked events').to.equal(0);
      expect(runner.failing?.error).to.match(/statement timeout/);
      await holder.query('ROLLBACK');
      await eventually(async () => expect(await total()).to.equal(5), { timeoutMs: 10_000 });
      expect(await parked(), 'parked events').to.equal(0);
      expect(runner.failing).to.equal(undefined);
    } finally {
      await holder.end();
      await runner.stop();
      await infrastructure.database.pool.query(`ALTER DATABASE ${name} RESET statement_timeout`);
    }
  });

  it('resumes within ~2 s of the database coming back after an outage', async () => {
    // The runner reaches PostgreSQL through a proxy the test cuts: for the runner the server is gone,
    // while events go on being appended (as by another node).
    const proxy = await TcpProxy.start(infrastructure.testDatabase.connectionString);
    const database = openDatabase(proxy.databaseUrl(infrastructure.testDatabase.connectionString));
    const store = new PostgresEventStore(database);
    const runner = new ProjectionRunner({
      database,
      store,
      projection: tallyProjection(),
      bus: new InProcessBus(),
      log,
    });
    runner.start();
    try {
      await append([10]);
      await eventually(async () => expect(await total()).to.equal(appended), { timeoutMs: 10_000 });
      proxy.cut();
      await append([20]);
      // The outage lasts 9 s: long enough for the old back-off (0.5 s doubling to 30 s) to wait 8 s next.
      await new Promise((resolve) => setTimeout(resolve, 9000));
      proxy.restore();
      const restoredAt = Date.now();
      await eventually(async () => expect(await total()).to.equal(appended), { timeoutMs: 30_000 });
      const resumedMs = Date.now() - restoredAt;
      expect(resumedMs, 'ms from the database back to the event applied').to.be.below(4500);
      expect(await parked()).to.equal(0);
    } finally {
      await runner.stop();
      await store.close();
      await database.close().catch(() => undefined);
      await proxy.close();
    }
  });
});

describe('projection runner: an event its codec refuses (issue 21, item 8)', () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  before(async () => {
    infrastructure = await openTestInfrastructure([notificationsProjection]);
  });
  after(() => infrastructure?.close());

  const messageSent = (messageId: string) => ({
    id: randomUUID(),
    type: 'MessageSent',
    data: {
      messageId,
      appId: 'camel',
      sender: 'alice',
      recipients: ['bob'],
      title: 'hello',
      content: 'hi',
      props: null,
      expiresAt: null,
      sentAt: new Date().toISOString(),
    },
  });

  it('is parked with its error, not skipped; the events after it are projected', async () => {
    const runner = new ProjectionRunner({
      ...infrastructure,
      projection: notificationsProjection,
      bus: new InProcessBus(),
      log,
    });
    runner.start();
    try {
      const refused = randomUUID();
      const after = randomUUID();
      const { title: _title, ...untitled } = messageSent(refused).data;
      await infrastructure.store.append(`message-${refused}`, [{ ...messageSent(refused), data: untitled }]);
      await infrastructure.store.append(`message-${after}`, [messageSent(after)]);
      const listed = async (id: string) =>
        (await infrastructure.database.pool.query('SELECT 1 FROM notification_messages WHERE message_id = $1', [id]))
          .rowCount;
      await eventually(async () => expect(await listed(after)).to.equal(1), { timeoutMs: 30_000 });
      expect(await listed(refused)).to.equal(0);
      const { rows } = await infrastructure.database.pool.query<{
        event_type: string;
        stream_name: string;
        error: string;
      }>('SELECT event_type, stream_name, error FROM projection_parked');
      expect(rows).to.have.length(1);
      expect(rows[0]).to.include({ event_type: 'MessageSent', stream_name: `message-${refused}` });
      expect(rows[0]!.error).to.match(
        /^MessageSent at position \d+ does not match its codec: data\.title: expected string$/,
      );
    } finally {
      await runner.stop();
    }
  });
});

describe('projection rebuild: an event its projection cannot apply', () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  before(async () => {
    infrastructure = await openTestInfrastructure([tallyProjection()]);
  });
  after(() => infrastructure.close());

  it('a rebuild parks an event it cannot apply, as the runner does, and projects the rest of its batch', async () => {
    const tallies = async (values: number[]) => {
      for (const value of values)
        await infrastructure.store.append(`tally-s${value % 3}`, [
          { id: randomUUID(), type: 'Tallied', data: { value } },
        ]);
    };
    await tallies([1, 2, 3, 4, 5]);
    await infrastructure.store.append('tally-poisoned', [{ id: randomUUID(), type: 'Tallied', data: { value: -99 } }]);
    await tallies([6, 7, 8]);
    const parkedTally = async () =>
      (
        await infrastructure.database.pool.query(
          "SELECT stream_name, error FROM projection_parked WHERE projection = 'tally' ORDER BY position",
        )
      ).rows;
    const readTally = async () =>
      (await infrastructure.database.pool.query('SELECT stream_name, count, sum FROM tally ORDER BY stream_name')).rows;
    await rebuildProjections(infrastructure, [tallyProjection()], () => undefined);
    const clean = await readTally();
    expect(clean.map((row) => row.stream_name)).to.include('tally-poisoned');
    try {
      await rebuildProjections(infrastructure, [tallyProjection({ poison: new Set([-99]) })], () => undefined);
      expect(await readTally()).to.deep.equal(clean.filter((row) => row.stream_name !== 'tally-poisoned'));
      expect(await parkedTally()).to.deep.equal([
        { stream_name: 'tally-poisoned', error: 'invalid input syntax for type integer: "cannot tally -99"' },
      ]);
    } finally {
      // A clean rebuild swaps in its own parked events: none.
      await rebuildProjections(infrastructure, [tallyProjection()], () => undefined);
    }
    expect(await parkedTally()).to.deep.equal([]);
  });
});
