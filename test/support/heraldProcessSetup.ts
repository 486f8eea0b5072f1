import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, freePort, type TestDatabase } from './postgres';

/** What a herald process under test runs with: its data directory, environment and base URL. */
export interface HeraldProcessSetup {
  readonly dataDir: string;
  /** The database herald uses when DATABASE_URL is set; undefined: its embedded PostgreSQL. */
  readonly testDatabase: TestDatabase | undefined;
  readonly env: Record<string, string>;
  readonly base: string;
  /** Drops the database and deletes the data directory. */
  remove(): Promise<void>;
}

/**
 * A fresh data directory, free ports and the seed's demo app for a herald process. With DATABASE_URL
 * (CI's second run) herald gets a fresh database on that server; otherwise it starts its embedded
 * PostgreSQL, as after `npm start` on a fresh machine.
 */
export async function heraldProcessSetup(dataDirPrefix: string): Promise<HeraldProcessSetup> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), dataDirPrefix));
  const port = await freePort();
  const env: Record<string, string> = {
    PORT: String(port),
    HERALD_DATA_DIR: dataDir,
    HERALD_EMBEDDED_POSTGRES_PORT: String(await freePort(port)),
    HERALD_APPS: 'camel:EERWERRRRE',
  };
  const testDatabase = process.env.DATABASE_URL ? await createTestDatabase() : undefined;
  if (testDatabase) env.DATABASE_URL = testDatabase.connectionString;
  return {
    dataDir,
    testDatabase,
    env,
    base: `http://127.0.0.1:${port}`,
    async remove() {
      await testDatabase?.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
