import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { notificationsProjection } from '../../projections/koalaInbox';
import { SESSION_SETTINGS } from '../../src/postgres/database';
import { migrate } from '../../src/postgres/migrations';
import type { Projection } from '../../src/projection/projection';
import {
  eachLimited,
  Limiter,
  openRebuildDatabase,
  rebuildProjections,
  skipsWal,
} from '../../src/projection/projectionRebuild';
import { eventually } from '../support/eventually';
import { openTestInfrastructure } from '../support/infrastructure';

/**
 * A read model with a primary key, a unique index, a check and secondary indexes, two of them on an
 * expression of a function in the public schema (public.rebuild_probe, see PROBE).
 */
function probed(name: string): Projection {
  return {
    name,
    version: 1,
    tables: [name],
    eventTypes: new Set(['Probed']),
    migrations: [
      {
        id: `test/${name}/001`,
        sql: `CREATE TABLE ${name} (id text PRIMARY KEY, label text NOT NULL, n integer NOT NULL CHECK (n >= 0));
              CREATE UNIQUE INDEX ${name}_label ON ${name} (label);
              CREATE INDEX ${name}_probe_a ON ${name} (public.rebuild_probe(id));
              CREATE INDEX ${name}_probe_b ON ${name} (public.rebuild_probe(label));
              CREATE INDEX ${name}_n ON ${name} (n DESC, label) WHERE n > 1`,
      },
    ],
    async handle(events, tx) {
      for (const event of events) {
        const { n } = event.data as { n: number };
        await tx.query(`INSERT INTO ${name} VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`, [event.id, `l${n}`, n]);
      }
      return [];
    },
  };
}

/**
 * Called for every row an index on it is built from: waits public.rebuild_probe_pause's seconds, then
 * fails if more than two index builds run in the database at that moment (all projections together).
 */
const PROBE = `
  CREATE TABLE public.rebuild_probe_pause (seconds float8 NOT NULL);
  INSERT INTO public.rebuild_probe_pause VALUES (0.05);
  CREATE FUNCTION public.rebuild_probe(value text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
    DECLARE builds integer;
    BEGIN
      PERFORM pg_sleep((SELECT seconds FROM public.rebuild_probe_pause));
      PERFORM pg_stat_clear_snapshot();
      SELECT count(*) INTO builds FROM pg_stat_activity
       WHERE state = 'active' AND query ~ '^CREATE (UNIQUE )?INDEX' AND datname = current_database();
      IF builds > 2 THEN RAISE EXCEPTION '% index builds at once', builds; END IF;
      RETURN value;
    END $$`;

const ROWS = 5;

describe('projection rebuild (src/projection/projectionRebuild.ts)', () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  const projections = [probed('probed_a'), probed('probed_b'), probed('probed_c')];
  const query = async <R extends pg.QueryResultRow>(sql: string, values?: unknown[]) =>
    (await infrastructure.database.pool.query<R>(sql, values)).rows;

  before(async () => {
    infrastructure = await openTestInfrastructure();
    await query(PROBE);
    await migrate(
      infrastructure.database.pool,
      projections.flatMap((p) => p.migrations),
    );
    for (let n = 0; n < ROWS; n++)
      await infrastructure.store.append(`probe-${n}`, [{ id: randomUUID(), type: 'Probed', data: { n } }]);
  });
  after(() => infrastructure?.close());

  /** The tables' indexes and constraints as PostgreSQL writes them, schema names left out. */
  async function definitions(): Promise<string[]> {
    const names = projections.map((p) => p.name);
    const indexes = await query<{ d: string }>(
      `SELECT tablename || ': ' || replace(indexdef, 'public.' || tablename, tablename) AS d FROM pg_indexes
        WHERE schemaname = 'public' AND tablename = ANY ($1::text[])`,
      [names],
    );
    const constraints = await query<{ d: string }>(
      `SELECT conrelid::regclass || ': ' || conname || ' ' || contype::text || ' ' || pg_get_constraintdef(oid) AS d
         FROM pg_constraint WHERE conrelid::regclass::text = ANY ($1::text[])`,
      [names],
    );
    return [...indexes, ...constraints].map((row) => row.d).sort();
  }

  it('eachLimited reports a failure whatever it was rejected with, undefined too', async () => {
    let failed = false;
    await eachLimited(new Limiter(2), [1, 2, 3], (n) =>
      n === 2 ? Promise.reject(undefined) : Promise.resolve(),
    ).catch(() => (failed = true));
    expect(failed).to.equal(true);
  });

  it("builds two indexes at a time over all projections; the rebuilt tables have the live ones' indexes and constraints", async () => {
    const live = await definitions();
    expect(live.join('\n')).to.include('rebuild_probe').and.include('PRIMARY KEY').and.include('CHECK');
    await rebuildProjections(infrastructure, projections, () => undefined);
    expect(await definitions()).to.deep.equal(live);
    for (const { name } of projections)
      expect((await query<{ count: string }>(`SELECT count(*) FROM ${name}`))[0]!.count).to.equal(String(ROWS));
  });

  it('a statement of a rebuild whose process vanished ends within seconds, not when it is done', async () => {
    const shadow = openRebuildDatabase(infrastructure.database.clientConfig.connectionString!, 'public');
    const client = await shadow.pool.connect();
    client.on('error', () => undefined);
    try {
      const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const running = client.query('SELECT pg_sleep(60)').catch(() => undefined);
      await eventually(async () =>
        expect(
          await query('SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = $2', [pid, 'active']),
        ).to.have.length(1),
      );
      // As when herald is killed: its end of the connection closes, and the server is not told otherwise.
      (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      await eventually(
        async () => expect(await query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).to.have.length(0),
        { timeoutMs: 5_000 },
      );
      await running;
    } finally {
      client.release(true);
      await shadow.close();
    }
  });

  it('an index build whose connection is ended fails the rebuild: nothing swapped in, no connection left', async () => {
    const watcher = new pg.Client(infrastructure.database.clientConfig);
    await watcher.connect();
    const watch = async <R extends pg.QueryResultRow>(sql: string, values?: unknown[]) =>
      (await watcher.query<R>(sql, values)).rows;
    const table = async () => (await watch<{ oid: number }>(`SELECT 'probed_a'::regclass::oid AS oid`))[0]!.oid;
    const checkpoint = () => watch(`SELECT position, version FROM projection_checkpoints WHERE name = 'probed_a'`);
    // The database's sessions beside the watcher, less the test pool's (those are not the rebuild's).
    const others = async () =>
      Number(
        (
          await watch<{ count: string }>(
            `SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
          )
        )[0]!.count,
      ) - infrastructure.database.pool.totalCount;
    try {
      const [tableBefore, checkpointBefore, othersBefore] = [await table(), await checkpoint(), await others()];
      await watch('UPDATE public.rebuild_probe_pause SET seconds = 0.5');
      const rebuild = rebuildProjections(infrastructure, [projections[0]!], () => undefined);
      rebuild.catch(() => undefined);
      const building = await eventually(
        async () => {
          const rows = await watch<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity
              WHERE datname = current_database() AND state = 'active' AND query ~ '^CREATE INDEX .*rebuild_probe'`,
          );
          expect(rows).to.not.be.empty;
          return rows[0]!.pid;
        },
        { timeoutMs: 30_000 },
      );
      await watch('SELECT pg_terminate_backend($1)', [building]);
      const failure = await rebuild.then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(String(failure)).to.match(/terminat/);
      expect(await table(), 'the live table was not replaced').to.equal(tableBefore);
      expect(await checkpoint()).to.deep.equal(checkpointBefore);
      expect(await watch(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'herald_rebuild_%'`)).to.deep.equal([]);
      await eventually(async () => expect(await others(), 'sessions left').to.equal(othersBefore));
    } finally {
      await watch('UPDATE public.rebuild_probe_pause SET seconds = 0.05');
      await watcher.end();
    }
  });

  it('ends the store iterator it read the stream with', async () => {
    const { store } = infrastructure;
    let ended = false;
    const spied: typeof store = Object.assign(Object.create(store) as typeof store, {
      subscribeToAll: (options?: Parameters<typeof store.subscribeToAll>[0]) => {
        const subscription = store.subscribeToAll(options);
        const pages = subscription[Symbol.asyncIterator]();
        return Object.assign(Object.create(subscription) as typeof subscription, {
          close: () => subscription.close(),
          [Symbol.asyncIterator]: () => ({
            next: () => pages.next(),
            return: async () => {
              ended = true;
              return (await pages.return?.()) ?? { done: true as const, value: undefined };
            },
          }),
        });
      },
    });
    await rebuildProjections({ ...infrastructure, store: spied }, [projections[1]!], () => undefined);
    expect(ended).to.equal(true);
  });
});

describe('projection rebuild on a server at wal_level minimal (the embedded one): WAL-free tables', () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  const MESSAGES = 600;
  const RECIPIENTS = 60;

  before(async () => {
    infrastructure = await openTestInfrastructure([notificationsProjection]);
    for (let m = 0; m < MESSAGES; m++) {
      const messageId = randomUUID();
      await infrastructure.store.append(`message-${messageId}`, [
        {
          id: randomUUID(),
          type: 'MessageSent',
          data: {
            messageId,
            appId: 'wal-app',
            sender: 'sender',
            recipients: Array.from({ length: RECIPIENTS }, (_, r) => `user-${(m * 7 + r) % 5000}`),
            title: `title ${m}`,
            content: 'content '.repeat(10),
            props: null,
            expiresAt: null,
            sentAt: new Date().toISOString(),
          },
        },
      ]);
    }
  });
  after(() => infrastructure?.close());

  it('the embedded server is at wal_level minimal; a rebuild there writes far less WAL than its tables hold', async function () {
    const pool = infrastructure.database.pool;
    const walSkip = await skipsWal(pool);
    if (process.env.DATABASE_URL) {
      if (!walSkip) this.skip(); // a server of one's own, at replica: everything is logged, as before
    } else expect(walSkip, 'the embedded server skips WAL').to.equal(true);
    const lsn = async () =>
      (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
    // Files under wal_skip_threshold (2 MB) are logged at commit rather than synced, as were most of
    // these small tables' files: 0 for the rebuild's sessions, so what is logged is what was not skipped.
    await pool.query(
      `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET wal_skip_threshold = 0', current_database()); END $$`,
    );
    const before = await lsn();
    await rebuildProjections(infrastructure, [notificationsProjection], () => undefined);
    const { rows } = await pool.query<{ wal: string; tables: string; notifications: string }>(
      `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn) AS wal,
              pg_total_relation_size('notifications') + pg_total_relation_size('notification_messages')
                + pg_total_relation_size('inbox_counters') AS tables,
              (SELECT count(*) FROM notifications) AS notifications`,
      [before],
    );
    expect(Number(rows[0]!.notifications)).to.equal(MESSAGES * RECIPIENTS);
    // Logged, the rows and their indexes would all be in the WAL (more than the tables hold). What is
    // left: catalog changes and the swap.
    expect(Number(rows[0]!.wal), `WAL bytes against ${rows[0]!.tables} bytes of tables`).to.be.below(
      Number(rows[0]!.tables) / 4,
    );
  });
});

describe("projection rebuild: the notifications derivation's halves uneven", () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  const MESSAGES = 20;
  const HEAVY = 60_000;

  before(async () => {
    infrastructure = await openTestInfrastructure([notificationsProjection]);
    // The split is at the median message_id: the lower half's messages have one recipient each, the
    // upper half's many, so the lower transaction waits for the upper one well past a second.
    for (let m = 0; m < MESSAGES; m++) {
      const heavy = m >= MESSAGES / 2;
      const messageId = `${heavy ? 'f' : '0'}${randomUUID().slice(1)}`;
      await infrastructure.store.append(`message-${messageId}`, [
        {
          id: randomUUID(),
          type: 'MessageSent',
          data: {
            messageId,
            appId: 'uneven-app',
            sender: 'sender',
            recipients: Array.from({ length: heavy ? HEAVY : 1 }, (_, r) => `user-${r}`),
            title: `title ${m}`,
            content: 'content',
            props: null,
            expiresAt: null,
            sentAt: new Date().toISOString(),
          },
        },
      ]);
    }
  });
  after(() => infrastructure?.close());

  it("the rebuild's sessions, idle in their transactions past herald's idle timeout (the lower half waiting for the upper), are not ended", async () => {
    // herald's sessions' idle-in-transaction timeout (a minute) at 1 s: the lower half waits for the upper
    // one longer than that (and the heavy batch is staged in herald for longer, between statements).
    const settings = SESSION_SETTINGS as string[];
    const at = settings.findIndex((setting) => setting.startsWith('idle_in_transaction_session_timeout='));
    const kept = settings[at]!;
    settings[at] = 'idle_in_transaction_session_timeout=1000';
    try {
      await rebuildProjections(infrastructure, [notificationsProjection], () => undefined);
    } finally {
      settings[at] = kept;
    }
    const { rows } = await infrastructure.database.pool.query<{ n: string }>('SELECT count(*) AS n FROM notifications');
    expect(Number(rows[0]!.n)).to.equal((MESSAGES / 2) * (HEAVY + 1));
  });
});
