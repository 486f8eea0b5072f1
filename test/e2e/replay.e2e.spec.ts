import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { openTestInfrastructure } from '../support/infrastructure';

const run = promisify(execFile);

/**
 * `herald replay` through its command line, on a known history: the JSON Lines must be byte for byte
 * what the events table holds, in the documented form (docs/analysts.md), filters included. The
 * expected lines are built here from the table by SQL, not by herald's code.
 */
describe('herald replay (CLI)', function () {
  this.timeout(120_000);
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  let dir: string;

  before(async () => {
    infrastructure = await openTestInfrastructure();
    dir = await mkdtemp(path.join(os.tmpdir(), 'herald-replay-'));
    const { store } = infrastructure;
    const append = (stream: string, type: string, data: unknown, appId: string) =>
      store.append(stream, [
        { id: randomUUID(), type, data, metadata: { correlationId: 'c', causationId: 'c', appId, actor: 'test' } },
      ]);
    await append('message-1', 'MessageSent', { title: '你好', n: 1 }, 'camel');
    await append('message-1', 'MessageAcknowledged', { by: 'u1' }, 'camel');
    await append('message-2', 'MessageSent', { title: 'quote " and \\\\ backslash', n: 2 }, 'other');
    await append('device-9', 'DeviceRegistered', { alias: 'a' }, 'camel');
    await append('message-3', 'MessageSentLater', { n: 3 }, 'camel');
  });
  after(async () => {
    await infrastructure?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The documented line of each row, in position order, for rows passing `where`. */
  async function expected(where: string, values: unknown[] = []): Promise<string> {
    const { rows } = await infrastructure.database.pool.query<{
      position: string;
      stream_name: string;
      revision: string;
      event_type: string;
      data: string;
      metadata: string;
      created_at: Date;
    }>(
      `SELECT position::text, stream_name, revision::text, event_type, data::text, metadata::text, created_at FROM events WHERE ${where} ORDER BY position`,
      values,
    );
    return rows
      .map(
        (r) =>
          `{"position":"${r.position}","stream":${JSON.stringify(r.stream_name)},"revision":"${r.revision}","type":${JSON.stringify(r.event_type)},"time":"${r.created_at.toISOString()}","data":${r.data},"metadata":${r.metadata}}\n`,
      )
      .join('');
  }

  async function replay(...args: string[]): Promise<{ stdout: string; stderr: string }> {
    return run(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'replay', ...args], {
      cwd: path.resolve(__dirname, '../..'),
      env: { ...process.env, DATABASE_URL: infrastructure.testDatabase.connectionString, LOG_LEVEL: 'warn' },
    });
  }

  it('writes every event, byte for byte, to stdout', async () => {
    const { stdout } = await replay();
    expect(stdout).to.equal(await expected('true'));
    // Each line is JSON, and its data is what was appended.
    const lines = stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { data: unknown; metadata: { appId: string } });
    expect(lines.map((line) => line.data)).to.deep.equal([
      { title: '你好', n: 1 },
      { by: 'u1' },
      { title: 'quote " and \\\\ backslash', n: 2 },
      { alias: 'a' },
      { n: 3 },
    ]);
    expect(lines.map((line) => line.metadata.appId)).to.deep.equal(['camel', 'camel', 'other', 'camel', 'camel']);
  });

  it('filters by exact type (repeatable), stream prefix, app and position, into --out with progress on stderr', async () => {
    const out = path.join(dir, 'sent.jsonl');
    const { stdout, stderr } = await replay(
      '--type',
      'MessageSent',
      '--type',
      'DeviceRegistered',
      '--app',
      'camel',
      '--out',
      out,
    );
    expect(stdout).to.equal('');
    expect(await readFile(out, 'utf8')).to.equal(
      await expected(`event_type IN ('MessageSent', 'DeviceRegistered') AND metadata->>'appId' = 'camel'`),
    );
    expect(stderr).to.match(/"done":true/);
    const { stdout: byStream } = await replay('--stream', 'message-', '--type', 'MessageSent');
    expect(byStream).to.equal(await expected(`stream_name LIKE 'message-%' AND event_type = 'MessageSent'`));
    const { rows } = await infrastructure.database.pool.query<{ position: string }>(
      'SELECT position::text FROM events ORDER BY position',
    );
    const [, second, third] = rows.map((r) => r.position);
    const { stdout: window } = await replay('--from', second!, '--to', third!);
    expect(window).to.equal(await expected('position BETWEEN $1 AND $2', [second, third]));
  });

  it('takes quotes and wildcards in filters as text, not SQL', async () => {
    for (const args of [
      ['--stream', "x'; DROP TABLE events; --"],
      ['--type', "O'Brien"],
      ['--app', "\\' OR '1'='1"],
      ['--stream', '%'],
      ['--stream', 'message_'],
    ]) {
      expect((await replay(...args)).stdout, args.join(' ')).to.equal('');
    }
    expect((await infrastructure.database.pool.query('SELECT count(*)::int AS n FROM events')).rows[0].n).to.equal(5);
  });

  it('filters by time, and refuses a bound that is neither a position nor a time (exit 2)', async () => {
    const { stdout } = await replay('--from', '2000-01-01T00:00:00Z', '--to', '2999-01-01T00:00:00Z');
    expect(stdout).to.equal(await expected('true'));
    const { stdout: none } = await replay('--to', '2000-01-01T00:00:00Z');
    expect(none).to.equal('');
    // A bound at an event's own time (to the millisecond, as lines print it) includes that event.
    const { rows } = await infrastructure.database.pool.query<{ position: string; created_at: Date }>(
      'SELECT position::text, created_at FROM events ORDER BY position',
    );
    const bound = rows[2]!.created_at;
    const since = rows.filter((r) => r.created_at >= bound).map((r) => r.position);
    const until = rows.filter((r) => r.created_at <= bound).map((r) => r.position);
    expect((await replay('--from', bound.toISOString())).stdout).to.equal(
      await expected('position = ANY ($1::bigint[])', [since]),
    );
    expect((await replay('--to', bound.toISOString())).stdout).to.equal(
      await expected('position = ANY ($1::bigint[])', [until]),
    );
    const refused = await replay('--from', 'yesterday').then(
      () => expect.fail('expected exit 2'),
      (error: { code: number; stderr: string }) => error,
    );
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.contain('--from');
  });
});
