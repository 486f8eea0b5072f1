import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import pg from 'pg';
import { projections } from '../../projections';
import { PROJECTION_LOCK_SPACE } from '../../src/projection/projectionRunner';
import { openTestInfrastructure } from '../support/infrastructure';

const run = promisify(execFile);

/**
 * `herald projections rebuild` and `status` through the command line, as a script runs them (stdout and
 * stderr are pipes, not a terminal, so progress comes as JSON lines; the terminal's bar is not tested
 * here). Formats as in docs/analysts.md.
 */
describe('herald projections rebuild / status (CLI)', function () {
  this.timeout(120_000);
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;

  before(async () => {
    infrastructure = await openTestInfrastructure(projections);
    for (let i = 0; i < 5; i++) await sendMessage(i);
  });
  after(async () => {
    await infrastructure?.close();
  });

  async function sendMessage(i: number): Promise<void> {
    const messageId = randomUUID();
    const data = {
      messageId,
      appId: 'camel',
      sender: 'sender',
      recipients: ['u1', 'u2'],
      title: `title ${i}`,
      content: 'c',
      props: null,
      expiresAt: null,
      sentAt: new Date().toISOString(),
    };
    await infrastructure.store.append(`message-${messageId}`, [
      { id: randomUUID(), type: 'MessageSent', data, metadata: { appId: 'camel', actor: 'test' } },
    ]);
  }

  async function herald(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      cwd: path.resolve(__dirname, '../..'),
      env: { ...process.env, DATABASE_URL: infrastructure.testDatabase.connectionString, LOG_LEVEL: 'warn' },
    }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({
        code: error.code,
        stdout: error.stdout,
        stderr: error.stderr,
      }),
    );
  }

  const jsonLines = (stdout: string) =>
    stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const query = async <T extends pg.QueryResultRow>(sql: string, values: unknown[] = []) =>
    (await infrastructure.database.pool.query<T>(sql, values)).rows;
  const headPosition = async () => (await infrastructure.store.headPosition()).toString();

  it('rebuild: JSON progress lines on stdout, ending with one done line per projection', async () => {
    const result = await herald('projections', 'rebuild');
    expect(result.code, result.stderr).to.equal(0);
    const lines = jsonLines(result.stdout);
    const head = await headPosition();
    for (const { name } of projections) {
      const own = lines.filter((line) => line.projection === name);
      const last = own[own.length - 1];
      expect(last, `the last line of ${name}`).to.include({ done: true, head });
      expect(
        own.filter((line) => line.done),
        `one done line for ${name}`,
      ).to.have.length(1);
      expect(BigInt(last!.position as string) >= BigInt(head)).to.equal(true);
      expect(last!.seconds).to.be.a('number').and.at.least(0);
      expect(last!.eventsPerSecond).to.be.a('number').and.at.least(0);
      expect(last!.events, 'every event in the store was read').to.equal(5);
      for (const line of own)
        expect(Object.keys(line)).to.deep.equal([
          'projection',
          'position',
          'head',
          'events',
          'eventsPerSecond',
          'seconds',
          'done',
        ]);
    }
    expect(await query('SELECT user_id FROM notifications ORDER BY user_id')).to.have.length(10);
  });

  it('status: position, head, lag (head − position) and the last parked event of each projection', async () => {
    expect((await herald('projections', 'rebuild')).code).to.equal(0);
    const caughtUp = jsonLines((await herald('projections', 'status')).stdout);
    expect(caughtUp.map((line) => line.projection)).to.deep.equal(projections.map((p) => p.name));
    const head = await headPosition();
    for (const line of caughtUp) {
      expect(line).to.deep.include({ position: head, head, lag: 0, parked: 0, lastError: null });
      expect(Object.keys(line)).to.deep.equal([
        'projection',
        'version',
        'position',
        'head',
        'lag',
        'parked',
        'lastError',
      ]);
    }

    // No herald serving: nothing moves the checkpoints.
    for (let i = 0; i < 3; i++) await sendMessage(100 + i);
    const behind = jsonLines((await herald('projections', 'status')).stdout);
    for (const line of behind) {
      expect(line.head).to.equal(await headPosition());
      expect(line.lag).to.equal(Number(line.head) - Number(line.position));
      expect(line.lag, 'positions of the PostgreSQL store are contiguous here').to.equal(3);
    }

    const [older, newer] = await query<{ position: string; event_id: string }>(
      'SELECT position::text, event_id FROM events ORDER BY position LIMIT 2',
    );
    const park = (event: { position: string; event_id: string }, error: string, parkedAt: string) =>
      query(
        `INSERT INTO projection_parked (projection, position, event_id, event_type, stream_name, event, error, attempts, parked_at)
         VALUES ('notifications', $1, $2, 'MessageSent', 'message-x', '{}', $3, 3, $4)`,
        [event.position, event.event_id, error, parkedAt],
      );
    await park(newer!, 'the newer failure', '2026-01-02T00:00:00.000Z');
    await park(older!, 'the older failure', '2026-01-01T00:00:00.000Z');
    const parked = jsonLines((await herald('projections', 'status')).stdout);
    expect(parked.find((line) => line.projection === 'notifications')).to.deep.include({
      parked: 2,
      lastError: {
        position: newer!.position,
        eventType: 'MessageSent',
        error: 'the newer failure',
        parkedAt: '2026-01-02T00:00:00.000Z',
      },
    });
    for (const line of parked.filter((l) => l.projection !== 'notifications'))
      expect(line).to.deep.include({ parked: 0, lastError: null });
    await query(`DELETE FROM projection_parked`);
  });

  it('refuses a second rebuild of a projection being rebuilt: a message, exit 1, nothing touched', async () => {
    expect((await herald('projections', 'rebuild')).code, 'live read models and checkpoints to compare').to.equal(0);
    // What a running rebuild of notifications holds: its lock, and a schema it is replaying into.
    const running = new pg.Client({ connectionString: infrastructure.testDatabase.connectionString });
    await running.connect();
    try {
      await running.query('SELECT pg_advisory_lock($1, hashtext($2))', [
        PROJECTION_LOCK_SPACE,
        'rebuild:notifications',
      ]);
      await running.query(
        'CREATE SCHEMA herald_rebuild_notifications; CREATE TABLE herald_rebuild_notifications.in_progress (n int)',
      );
      const liveState = async () => ({
        // A swap replaces a table by another: its oid would change.
        tables: await query(
          `SELECT c.relname, c.oid::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = ANY ($1::text[]) ORDER BY 1`,
          [projections.flatMap((p) => p.tables)],
        ),
        checkpoints: await query(
          'SELECT name, version, position::text, updated_at FROM projection_checkpoints ORDER BY name',
        ),
        notifications: await query('SELECT * FROM notifications ORDER BY app_id, user_id, message_id'),
      });
      const before = await liveState();
      expect(before.checkpoints).to.have.length(projections.length);

      for (const names of [['notifications'], []]) {
        const refused = await herald('projections', 'rebuild', ...names);
        expect(refused.code, refused.stderr).to.equal(1);
        expect(refused.stderr).to.equal('herald: a rebuild of notifications is already running\n');
        expect(refused.stdout).to.equal('');
      }
      expect(await liveState(), 'the live tables and checkpoints are as they were').to.deep.equal(before);
      expect(
        await query(
          `SELECT 1 FROM pg_tables WHERE schemaname = 'herald_rebuild_notifications' AND tablename = 'in_progress'`,
        ),
        'the running rebuild’s schema is left alone',
      ).to.have.length(1);

      // The lock was the reason: once it is released, the same command runs.
      await running.query('SELECT pg_advisory_unlock($1, hashtext($2))', [
        PROJECTION_LOCK_SPACE,
        'rebuild:notifications',
      ]);
      const allowed = await herald('projections', 'rebuild', 'notifications');
      expect(allowed.code, allowed.stderr).to.equal(0);
      expect(jsonLines(allowed.stdout).at(-1)).to.include({ projection: 'notifications', done: true });
    } finally {
      await running.end();
    }
  });
});
