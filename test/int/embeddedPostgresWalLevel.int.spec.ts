import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/postgres/embeddedPostgres';
import { freePort } from '../support/postgres';

async function query(connectionString: string, sql: string): Promise<string> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const { rows } = await client.query<{ value: string }>(sql);
    return rows[0]!.value;
  } finally {
    await client.end();
  }
}

// Issue 24 review (H6-2): the embedded server runs at wal_level minimal, where PostgreSQL refuses to start
// a cluster with a replication slot or archiving on; a data dir made before (at replica) may have either.
describe('embedded PostgreSQL with a replication slot or archiving keeps its WAL level', function () {
  this.timeout(180_000);
  let dir: string;
  let server: EmbeddedPostgres | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'herald-wal-level-'));
  });
  afterEach(async () => {
    await server?.stop();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('starts at replica, with a warning saying why, while archiving is on or a slot exists; at minimal once neither is', async () => {
    const port = await freePort();
    const warnings: string[] = [];
    const start = async () =>
      (server = await startEmbeddedPostgres({ dataDir: dir, port, warn: (m) => warnings.push(m) }));
    const walLevel = async () => query(server!.connectionString, 'SELECT current_setting($$wal_level$$) AS value');
    const stop = async () => {
      await server!.stop();
      server = undefined;
    };

    await start();
    expect(await walLevel()).to.equal('minimal');
    expect(warnings).to.deep.equal([]);
    await stop();

    const autoConf = path.join(dir, 'postgres', 'postgresql.auto.conf');
    const made = await readFile(autoConf, 'utf8');
    await appendFile(autoConf, "archive_mode = 'on'\narchive_command = '/bin/true'\n");
    await start();
    expect(await walLevel()).to.equal('replica');
    expect(warnings.at(-1)).to.include('archive_mode = on').and.include('WAL');
    await query(
      server!.connectionString,
      `SELECT slot_name AS value FROM pg_create_physical_replication_slot('herald_test_slot', true)`,
    );
    await stop();

    await writeFile(autoConf, made);
    await start();
    expect(await walLevel()).to.equal('replica');
    expect(warnings.at(-1)).to.include('"herald_test_slot"');
    await query(server!.connectionString, `SELECT pg_drop_replication_slot('herald_test_slot')::text AS value`);
    await stop();

    const warned = warnings.length;
    await start();
    expect(await walLevel()).to.equal('minimal');
    expect(warnings).to.have.length(warned);
  });
});
