import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { projections } from '../../projections';
import type { StorageStatus } from '../../src/storage/storageStatus';
import { openTestInfrastructure } from '../support/infrastructure';
import { describeTarget } from '../support/postgres';

const run = promisify(execFile);

/**
 * `herald storage status` through the command line (docs/operations.md, "Retention"): what each read
 * model table and event category holds, and what the next pruning pass would remove under the
 * configured retention. Beside a serving embedded herald: test/e2e/embeddedOwner.e2e.spec.ts.
 */
describe(`herald storage status (CLI, ${describeTarget()})`, function () {
  this.timeout(120_000);
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  const hoursAgo = (h: number) => new Date(Date.now() - h * 3600_000);

  before(async () => {
    infrastructure = await openTestInfrastructure(projections);
    for (let i = 0; i < 3; i++) {
      const messageId = randomUUID();
      await infrastructure.store.append(`message-${messageId}`, [
        {
          id: randomUUID(),
          type: 'MessageSent',
          data: {
            messageId,
            appId: 'camel',
            sender: 'sender',
            recipients: ['u1'],
            title: `title ${i}`,
            content: 'c',
            props: null,
            expiresAt: null,
            sentAt: new Date().toISOString(),
          },
          metadata: { appId: 'camel', actor: 'test' },
        },
      ]);
    }
    // Emails sent 3 h and 30 min ago, and one pending from 3 h ago: with a 1 h retention, one is removable.
    for (const [status, at] of [
      ['sent', hoursAgo(3)],
      ['sent', hoursAgo(0.5)],
      ['pending', hoursAgo(3)],
    ] as const)
      await infrastructure.database.pool.query(
        `INSERT INTO emails (email_id, app_id, recipients, subject, is_html, status, attempts, requested_at, updated_at, position)
         VALUES ($1, 'camel', ARRAY['a@example.com'], 's', false, $2, 1, $3, $3, 1)`,
        [randomUUID(), status, at],
      );
  });
  after(async () => {
    await infrastructure?.close();
  });

  async function herald(
    env: Record<string, string>,
    ...args: string[]
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      cwd: path.resolve(__dirname, '../..'),
      env: { ...process.env, DATABASE_URL: infrastructure.testDatabase.connectionString, LOG_LEVEL: 'warn', ...env },
    }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({
        code: error.code,
        stdout: error.stdout,
        stderr: error.stderr,
      }),
    );
  }

  it('--json --exact: every read model table, the event categories, and what the next pass removes', async () => {
    const result = await herald({ HERALD_RETENTION_EMAILS: '1h' }, 'storage', 'status', '--json', '--exact');
    expect(result.code, result.stderr).to.equal(0);
    const status = JSON.parse(result.stdout) as StorageStatus;
    expect(status.retention).to.include({ emails: '1h', messages: '7d', deliveries: '7d' });
    expect(status.databaseBytes).to.be.greaterThan(0);
    expect(status.readModels.map((t) => t.table).sort()).to.deep.equal(projections.flatMap((p) => p.tables).sort());
    const table = (name: string) => status.readModels.find((t) => t.table === name)!;
    expect(status.exactRows).to.equal(true);
    expect(table('emails')).to.include({ projection: 'emails', rows: 3, removableNextPass: 1 });
    expect(table('device_deliveries')).to.include({ rows: 0 });
    expect(table('emails').bytes).to.be.greaterThan(0);
    expect(table('device_deliveries')).to.include({ projection: 'devices', removableNextPass: 0 });
    // Not pruned by retention (datahub has no end in its seed; apps and devices do not end).
    expect(table('datahub_notifications').removableNextPass).to.equal(null);
    expect(status.events).to.include({ store: 'postgresql', oldestPosition: '1' });
    expect(status.events.bytes).to.be.greaterThan(0);
    expect(status.events.categories).to.deep.equal([
      {
        prefix: 'message',
        category: 'messages',
        events: 3,
        bytes: status.events.categories![0]!.bytes,
        oldestPosition: '1',
      },
    ]);
    expect(status.events.categories![0]!.bytes).to.be.greaterThan(0);
  });

  it('without --json: one line per table and per event category; a category kept forever has nothing removable', async () => {
    const result = await herald({ HERALD_RETENTION_EMAILS: 'forever' }, 'storage', 'status');
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/^retention messages=7d deliveries=7d .* emails=forever/m);
    expect(result.stdout).to.match(/^emails +emails +\d+ +[\d.]+ KiB +-$/m);
    expect(result.stdout).to.match(/^message +7d +3 /m);
  });

  it("shows each app's own retention of what never ends and counts it in the next pass (issue 26)", async () => {
    const { pool } = infrastructure.database;
    const status = async (env: Record<string, string> = {}) => {
      const result = await herald(env, 'storage', 'status', '--json', '--exact');
      expect(result.code, result.stderr).to.equal(0);
      const parsed = JSON.parse(result.stdout) as StorageStatus;
      return {
        appRetention: parsed.appRetention,
        messages: parsed.readModels.find((t) => t.table === 'notification_messages')!.removableNextPass,
      };
    };
    // Three messages without expiry, sent an hour ago, and one still scheduled (never removable): kept
    // forever unless the deployment or their app says otherwise.
    await pool.query(
      `INSERT INTO notification_messages (message_id, app_id, sender, title, content, recipients, status, seq, sent_at, release_at)
       SELECT gen_random_uuid(), 'camel', 's', 't', 'c', ARRAY['u1'], s, CASE WHEN s = 'delivered' THEN 1000 + i END,
              CASE WHEN s = 'delivered' THEN now() - interval '1 hour' END, CASE WHEN s = 'scheduled' THEN now() END
         FROM unnest(ARRAY['delivered', 'delivered', 'delivered', 'scheduled']) WITH ORDINALITY AS u(s, i)`,
    );
    expect(await status()).to.deep.equal({ appRetention: [], messages: 0 });
    expect(await status({ HERALD_RETENTION_UNEXPIRING_MESSAGES: '0' })).to.deep.include({ messages: 3 });
    await pool.query(
      `INSERT INTO apps (app_id, secret_hash, registered_at, updated_at, retention)
       VALUES ('camel', 'scrypt:x', now(), now(), '{"unexpiringMessages": "0", "datahubNotifications": null}')`,
    );
    try {
      expect(await status()).to.deep.equal({
        appRetention: [{ appId: 'camel', unexpiringMessages: '0', datahubNotifications: null }],
        messages: 3,
      });
      // Another app's setting is not camel's.
      await pool.query(`UPDATE apps SET app_id = 'llama'`);
      expect(await status()).to.deep.include({ messages: 0 });
      const text = await herald({}, 'storage', 'status');
      expect(text.stdout).to.include('app llama: unexpiringMessages=0 datahubNotifications=forever (default)');
    } finally {
      await pool.query(`DELETE FROM apps`);
      await pool.query(`DELETE FROM notification_messages`);
    }
  });

  it('storage prune archives and removes what was retired; status shows the archive; replay --archive prints the original', async () => {
    const archiveDir = await mkdtemp(path.join(tmpdir(), 'herald-archive-'));
    try {
      const env = { HERALD_ARCHIVE_DIR: archiveDir, HERALD_RETENTION_EMAILS: '1h' };
      const before = await herald(env, 'replay');
      expect(before.code, before.stderr).to.equal(0);
      const [retired] = (await infrastructure.store.readAll({ maxCount: 1 })).map((e) => e.streamName);
      await infrastructure.database.pool.query('INSERT INTO retired_streams (stream_name) VALUES ($1)', [retired]);
      const queued = JSON.parse((await herald(env, 'storage', 'status', '--json')).stdout) as StorageStatus;
      // The stream queued by hand, and the email the read model pass will retire has no events.
      expect(queued.events).to.include({ retiredStreams: 1, removableEvents: 1 });

      const pruned = await herald(env, 'storage', 'prune');
      expect(pruned.code, pruned.stderr).to.equal(0);
      const result = JSON.parse(pruned.stdout) as { readModels: unknown[]; eventStore: Array<{ removed: number }> };
      expect(result.eventStore.reduce((n, b) => n + b.removed, 0)).to.equal(1);

      const status = JSON.parse((await herald(env, 'storage', 'status', '--json')).stdout) as StorageStatus;
      expect(status.archive).to.include({ directory: archiveDir, files: 1, events: 1, firstPosition: '1' });
      expect(status.events).to.include({ retiredStreams: 0, removableEvents: 0, oldestPosition: '2' });
      const text = await herald(env, 'storage', 'status');
      expect(text.stdout).to.match(/^archive .*: 1 files, 1 events, .* positions 1\.\.1$/m);

      const after = await herald(env, 'replay');
      expect(after.stdout).to.not.equal(before.stdout);
      const merged = await herald(env, 'replay', '--archive');
      expect(merged.code, merged.stderr).to.equal(0);
      expect(merged.stdout).to.equal(before.stdout);
      // A rebuild reads them back too (the in-process check of what it reads: eventRetention.int.spec.ts).
      const rebuilt = await herald(env, 'projections', 'rebuild', 'notifications', '--archive');
      expect(rebuilt.code, rebuilt.stderr).to.equal(0);
      expect(rebuilt.stdout).to.match(/"done":true/);
    } finally {
      await rm(archiveDir, { recursive: true, force: true });
    }
  });

  it('a bad retention setting stops the command naming the variable (exit 2)', async () => {
    const result = await herald({ HERALD_RETENTION_DELIVERIES: 'a week' }, 'storage', 'status');
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('HERALD_RETENTION_DELIVERIES: expected a duration');
  });
});
