import { createHash } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import { Notices, sessionName, type NoticesLog } from './notices';

/**
 * One PostgreSQL database: a pool for queries and transactions, and the settings for the few dedicated
 * connections (LISTEN, advisory-lock holders) that must not be taken from the pool.
 */
export interface Database {
  readonly pool: pg.Pool;
  readonly clientConfig: pg.ClientConfig;
  /** Wake-ups between this process's sessions, and a NOTIFY only for other processes (notices.ts). */
  readonly notices: Notices;
  close(): Promise<void>;
}

/**
 * Every herald session tells the server to probe it after 4 s of silence, every 2 s, giving up after 3
 * missed probes: when a herald host vanishes without closing its connections, the server ends its
 * sessions within ~10 s, and with them the advisory locks they held, so a standby takes the projections
 * over (the default is hours). A session left idle inside a transaction (a hung process) is ended after
 * a minute, so it cannot hold locks (the append lock among them) for long.
 */
const KEEPALIVE_IDLE_SECONDS = 4;
export const SESSION_SETTINGS: readonly string[] = [
  `tcp_keepalives_idle=${KEEPALIVE_IDLE_SECONDS}`,
  'tcp_keepalives_interval=2',
  'tcp_keepalives_count=3',
  'idle_in_transaction_session_timeout=60000',
];

/**
 * The pool's size when HERALD_DATABASE_POOL_SIZE is unset, from what holds its connections at once under
 * load: 8 for the background work (the group commit's one statement, each projection runner's batch
 * transaction, the delivery and outbox workers' reads) and 4 per core for requests' reads — more in
 * flight than that only queue inside the server instead of in the pool. 16 on two cores; at most 32,
 * whatever the host's core count (a container's CPU quota does not show in it, and PostgreSQL allows 100
 * connections by default, shared by every node and a rebuild).
 */
export function defaultPoolSize(cores: number = os.availableParallelism()): number {
  return Math.min(32, 8 + 4 * cores);
}

export function openDatabase(
  connectionString: string,
  options: {
    readonly maxConnections?: number;
    readonly onConnectionError?: (error: Error) => void;
    /** Settings of these sessions beyond SESSION_SETTINGS (`name=value`), e.g. a rebuild's search_path. */
    readonly settings?: readonly string[];
    /** Where another process's listener being seen or gone is told. */
    readonly log?: NoticesLog;
  } = {},
): Database {
  const settings = [...SESSION_SETTINGS, ...(options.settings ?? [])];
  const clientConfig: pg.ClientConfig = {
    connectionString,
    // Tells other processes which sessions are this one's (notices.ts).
    application_name: sessionName(connectionString),
    // herald's side: notice a server (or a path to it) that vanished without closing the connection.
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_IDLE_SECONDS * 1000,
    options: settings.map((setting) => `-c ${setting}`).join(' '),
  };
  const pool = new pg.Pool({ ...clientConfig, max: options.maxConnections ?? defaultPoolSize() });
  // A client whose connection dies emits 'error' — idle ones on the pool, checked-out ones on themselves.
  // Unheard, either would crash the process; the query in flight fails on its own and is handled there.
  pool.on('error', (error) => options.onConnectionError?.(error));
  pool.on('connect', (client) => client.on('error', (error) => options.onConnectionError?.(error)));
  const notices = new Notices(pool, connectionString, options.log);
  return {
    pool,
    clientConfig,
    notices,
    close: () => {
      notices.close();
      return pool.end();
    },
  };
}

/**
 * A query whose text is built from a few fixed variants (a filter's column, a status clause), as a named
 * statement: each connection plans each variant once, instead of on every request.
 */
export function prepared(text: string, values: readonly unknown[]): { name: string; text: string; values: unknown[] } {
  return { name: `q-${createHash('sha1').update(text).digest('hex').slice(0, 20)}`, text, values: [...values] };
}
