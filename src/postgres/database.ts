import pg from 'pg';

/**
 * One PostgreSQL database: a pool for queries and transactions, and the settings for the few dedicated
 * connections (LISTEN, advisory-lock holders) that must not be taken from the pool.
 */
export interface Database {
  readonly pool: pg.Pool;
  readonly clientConfig: pg.ClientConfig;
  close(): Promise<void>;
}

export function openDatabase(connectionString: string, options: { readonly maxConnections?: number } = {}): Database {
  const clientConfig: pg.ClientConfig = { connectionString, application_name: 'herald' };
  const pool = new pg.Pool({ ...clientConfig, max: options.maxConnections ?? 10 });
  // An idle client that loses its connection emits here; without a listener node would crash.
  pool.on('error', () => undefined);
  return {
    pool,
    clientConfig,
    close: () => pool.end(),
  };
}
