import type { Config } from './config';
import type { EventStore } from './eventStore/eventStore';
import { PostgresEventStore } from './eventStore/postgres/postgresEventStore';
import { postgresEventStoreMigrations } from './eventStore/postgres/schema/migrations';
import { UpcastingEventStore } from './eventStore/upcastingEventStore';
import { openDatabase, type Database } from './postgres/database';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './postgres/embeddedPostgres';
import { migrate, type Migration } from './postgres/migrations';
import type { Logger } from './runtime/logger';

/** The stores herald runs on: the read-model database, and the event store (the same database, or EventStoreDB). */
export interface Infrastructure {
  readonly database: Database;
  readonly store: EventStore;
  readonly embedded?: EmbeddedPostgres;
  close(): Promise<void>;
}

/**
 * `migrations`: the migration registry (projections/index.ts), applied after the event store's own.
 * `onStoreLost`: the embedded PostgreSQL died and could not be restarted. `whenEmbeddedOwned`: what to do when
 * another live herald owns the embedded store (embeddedPostgresOwner.ts): `serve` refuses, a maintenance
 * command joins it.
 */
export async function openInfrastructure(
  config: Config,
  log: Logger,
  options: {
    readonly migrations: readonly Migration[];
    readonly onStoreLost?: (error: Error) => void;
    readonly whenEmbeddedOwned?: 'join' | 'refuse';
  },
): Promise<Infrastructure> {
  let embedded: EmbeddedPostgres | undefined;
  let connectionString = config.databaseUrl;
  if (!connectionString) {
    log.info(
      { dataDir: config.dataDir, port: config.embeddedPostgresPort },
      'DATABASE_URL unset: starting embedded PostgreSQL',
    );
    embedded = await startEmbeddedPostgres({
      dataDir: config.dataDir,
      port: config.embeddedPostgresPort,
      whenOwned: options.whenEmbeddedOwned,
      log: (message) => log.debug({ component: 'embedded-postgres' }, message),
      warn: (message) => log.warn({ component: 'embedded-postgres' }, message),
      onRestart: (message, error) =>
        error
          ? log.error({ err: error, component: 'embedded-postgres' }, message)
          : log.warn({ component: 'embedded-postgres' }, message),
      onFatal: (error) => {
        log.fatal({ err: error }, 'the embedded PostgreSQL is gone');
        options.onStoreLost?.(error);
      },
    });
    connectionString = embedded.connectionString;
    if (embedded.joined)
      log.info(
        { ownerPid: embedded.joined.pid, port: embedded.joined.port },
        'the embedded PostgreSQL runs in a live herald: using it',
      );
  }
  const database = openDatabase(connectionString, {
    ...(config.databasePoolSize !== undefined && { maxConnections: config.databasePoolSize }),
    onConnectionError: (error) => log.warn({ err: error }, 'a PostgreSQL connection failed'),
    log,
  });
  try {
    // EventStoreDB's client (gRPC) is loaded only where it is used: the CLI's commands start faster.
    const store: EventStore = config.eventStoreUrl
      ? new (await import('./eventStore/eventStoreDbEventStore.js')).EventStoreDbEventStore(config.eventStoreUrl)
      : new PostgresEventStore(database);
    const applied = await migrate(database.pool, [
      ...(store.kind === 'postgresql' ? postgresEventStoreMigrations : []),
      ...options.migrations,
    ]);
    if (applied.length > 0) log.info({ migrations: applied }, 'applied migrations');
    log.info({ eventStore: store.kind, embeddedPostgres: Boolean(embedded) }, 'stores ready');
    return {
      database,
      // Every reader (commands, projections, rebuilds, the analysts' feed) sees events upcast on read.
      store: new UpcastingEventStore(store),
      ...(embedded && { embedded }),
      async close() {
        await store.close().catch((error: unknown) => log.warn({ err: error }, 'closing the event store failed'));
        await database.close().catch((error: unknown) => log.warn({ err: error }, 'closing the database pool failed'));
        await embedded?.stop();
      },
    };
  } catch (error) {
    await database.close().catch(() => undefined);
    await embedded?.stop();
    throw error;
  }
}
