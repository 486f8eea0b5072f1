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

export function openDatabase(
  connectionString: string,
  options: { readonly maxConnections?: number; readonly onConnectionError?: (error: Error) => void; readonly searchPath?: string } = {},
): Database {
  const clientConfig: pg.ClientConfig = {
    connectionString,
    application_name: 'herald',
    // A rebuild writes a projection's tables in a schema of its own (projectionRebuild.ts).
    ...(options.searchPath !== undefined && { options: `-c search_path=${options.searchPath}` }),
  };
  const pool = new pg.Pool({ ...clientConfig, max: options.maxConnections ?? 10 });
  // A client whose connection dies emits 'error' — idle ones on the pool, checked-out ones on themselves.
  // Unheard, either would crash the process; the query in flight fails on its own and is handled there.
  pool.on('error', (error) => options.onConnectionError?.(error));
  pool.on('connect', (client) => client.on('error', (error) => options.onConnectionError?.(error)));
  return {
    pool,
    clientConfig,
    close: () => pool.end(),
  };
}
