import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDatabase, type Database } from '../../src/postgres/database';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/postgres/embeddedPostgres';

/**
 * The PostgreSQL server the tests use: the one DATABASE_URL names (CI runs the suites once that way,
 * against the machine's server) or, when it is unset, an embedded one started once per test run.
 * Each test suite gets a database of its own on it.
 */
let server: Promise<{ url: URL; embedded?: EmbeddedPostgres; dataDir?: string }> | undefined;

function testServer() {
  server ??= (async () => {
    if (process.env.DATABASE_URL) return { url: new URL(process.env.DATABASE_URL) };
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-test-'));
    const embedded = await startEmbeddedPostgres({ dataDir, port: await freePort() });
    return { url: new URL(embedded.connectionString), embedded, dataDir };
  })();
  return server;
}

export function describeTarget(): string {
  return process.env.DATABASE_URL ? 'PostgreSQL server (DATABASE_URL)' : 'embedded PostgreSQL';
}

export interface TestDatabase {
  readonly connectionString: string;
  open(options?: { maxConnections?: number }): Database;
  drop(): Promise<void>;
}

/** A fresh, empty database on the test server. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const { url } = await testServer();
  const name = `herald_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const databaseUrl = new URL(url.toString());
  databaseUrl.pathname = `/${name}`;
  const opened: Database[] = [];
  return {
    connectionString: databaseUrl.toString(),
    open(options) {
      const database = openDatabase(databaseUrl.toString(), options);
      opened.push(database);
      return database;
    },
    async drop() {
      await Promise.all(opened.map((d) => d.close().catch(() => undefined)));
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

export async function stopTestServer(): Promise<void> {
  if (!server) return;
  const { embedded, dataDir } = await server;
  server = undefined;
  await embedded?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}

/**
 * A port nothing listens on now, other than `taken` (the OS may hand the port it just freed out again: two
 * calls in a row can answer the same port, for two servers that are then both to listen on it).
 */
export async function freePort(...taken: number[]): Promise<number> {
  for (;;) {
    const port = await unusedPort();
    if (!taken.includes(port)) return port;
  }
}

function unusedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
