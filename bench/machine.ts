/**
 * The machine a benchmark runs on, and the fresh database each run gets on the test server.
 *
 *   DATABASE_URL   a PostgreSQL server to create the benchmark's database on (default: an embedded
 *                  PostgreSQL, started for the run; test/support/postgres.ts)
 */
import os from 'node:os';
import pg from 'pg';
import { createTestDatabase, describeTarget, stopTestServer } from '../test/support/postgres';
import { type Cleanup } from './run';
import { round } from './stats';

export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGb: number;
  readonly loadAverage1m: number;
  readonly node: string;
  readonly platform: string;
  readonly store: string;
  readonly postgres: string | null;
}

export async function describeMachine(databaseUrl?: string): Promise<Machine> {
  let postgres: string | null = null;
  if (databaseUrl) {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      postgres =
        (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? null;
    } finally {
      await client.end();
    }
  }
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: round(os.totalmem() / 2 ** 30, 1),
    loadAverage1m: round(os.loadavg()[0] ?? 0),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    store: describeTarget(),
    postgres,
  };
}

/** A fresh database on the test server for this run, dropped (and the server stopped) by `cleanup`. */
export async function benchDatabase(cleanup: Cleanup): Promise<{ url: string; machine: Machine }> {
  cleanup.add('stop the test PostgreSQL server', stopTestServer);
  const database = await createTestDatabase();
  cleanup.add('drop the test database', () => database.drop());
  return { url: database.connectionString, machine: await describeMachine(database.connectionString) };
}
