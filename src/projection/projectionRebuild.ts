import pg from 'pg';
import pino from 'pino';
import type { Bus } from '../bus/bus';
import type { AllSubscription, EventStore, SubscribeToAllOptions } from '../eventStore/eventStore';
import { EventStoreDecorator } from '../eventStore/eventStoreDecorator';
import type { Infrastructure } from '../infrastructure';
import { openDatabase, type Database } from '../postgres/database';
import { withTransaction } from '../postgres/transaction';
import type { Logger } from '../runtime/logger';
import type { Projection } from './projection';
import { PROJECTION_LOCK_SPACE, ProjectionRunner, readCheckpoints } from './projectionRunner';

export interface RebuildProgress {
  readonly projection: string;
  readonly position: string;
  readonly head: string;
  /** Events read from the store so far: positions do not count events (on EventStoreDB they are log offsets). */
  readonly events: number;
  readonly eventsPerSecond: number;
  /** Since this projection's rebuild began. */
  readonly seconds: number;
  readonly done: boolean;
}

const PROGRESS_EVERY_MS = 200;

/** Another process holds the rebuild lock of these projections; nothing was done. */
export class RebuildAlreadyRunningError extends Error {
  override readonly name = 'RebuildAlreadyRunningError';
  constructor(readonly projections: readonly string[]) {
    super(`a rebuild of ${projections.join(', ')} is already running`);
  }
}

/**
 * Rebuilds projections from position 0 beside the live ones, then swaps them in.
 *
 * Each projection is replayed into a schema of its own (`herald_rebuild_<name>`: its migrations run
 * there, with that schema alone on the search path, plus a checkpoint table of its own) while a running
 * herald keeps serving and pushing from the live tables. Nothing is pushed for the replayed history.
 * Secondary indexes are dropped while replaying and built once at the end (a sorted bulk build instead
 * of one random insertion per row), then the tables are analyzed. The swap is one transaction: it holds
 * the live checkpoint row (so the live runner cannot commit a batch meanwhile), replaces the live tables
 * with the rebuilt ones and sets the live checkpoint to where the rebuild got. A running herald's runner
 * then fails its next compare-and-set, and goes on from there with the events that came meanwhile
 * (pushing them again; subscribers drop seqs they already have). Readers see the old tables until the
 * commit, the new ones after it.
 *
 * The rebuild locks of all the projections are taken before anything is touched: if another process
 * holds one, it throws RebuildAlreadyRunningError and leaves everything, that rebuild's schema included,
 * as it was. A projection that fails does not stop the others; the failures are thrown once all ended.
 */
export async function rebuildProjections(
  infrastructure: Infrastructure,
  projections: readonly Projection[],
  onProgress: (progress: RebuildProgress) => void,
  log: Logger = pino({ level: 'silent' }),
): Promise<void> {
  const guards = await lockRebuilds(infrastructure.database, projections);
  try {
    // Side by side: each reads the whole stream, and most skip most of it.
    const outcomes = await Promise.allSettled(
      projections.map((projection, i) => rebuildOne(infrastructure, projection, guards[i]!, onProgress, log)),
    );
    const failures = outcomes.flatMap((outcome, i) =>
      outcome.status === 'rejected' ? [{ projection: projections[i]!.name, error: outcome.reason as Error }] : [],
    );
    if (failures.length === 1) throw failures[0]!.error;
    if (failures.length > 1) throw new Error(failures.map((f) => `${f.projection}: ${f.error.message}`).join('; '));
  } finally {
    await Promise.all(guards.map((guard) => guard.end().catch(() => undefined)));
  }
}

/**
 * One connection per projection holding its rebuild lock, which lives as long as the connection. All or
 * none: a refused lock releases the ones taken.
 */
async function lockRebuilds(database: Database, projections: readonly Projection[]): Promise<pg.Client[]> {
  const guards: pg.Client[] = [];
  const refused: string[] = [];
  try {
    for (const projection of projections) {
      const guard = new pg.Client(database.clientConfig);
      // Losing the connection loses the lock; the guard's next query then fails, which ends that rebuild.
      guard.on('error', () => undefined);
      await guard.connect();
      guards.push(guard);
      const { rows } = await guard.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked',
        [PROJECTION_LOCK_SPACE, `rebuild:${projection.name}`],
      );
      if (!rows[0]?.locked) refused.push(projection.name);
    }
  } catch (error) {
    await Promise.all(guards.map((guard) => guard.end().catch(() => undefined)));
    throw error;
  }
  if (refused.length > 0) {
    await Promise.all(guards.map((guard) => guard.end().catch(() => undefined)));
    throw new RebuildAlreadyRunningError(refused);
  }
  return guards;
}

async function rebuildOne(
  infrastructure: Infrastructure,
  projection: Projection,
  guard: pg.Client,
  onProgress: (progress: RebuildProgress) => void,
  log: Logger,
): Promise<void> {
  const { database, store } = infrastructure;
  const schema = `herald_rebuild_${projection.name.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`;
  const quotedSchema = pg.escapeIdentifier(schema);
  const started = Date.now();
  const read = { events: 0 };
  const report = (position: bigint, head: bigint, done: boolean) => {
    const seconds = (Date.now() - started) / 1000;
    onProgress({
      projection: projection.name,
      position: position.toString(),
      head: head.toString(),
      events: read.events,
      eventsPerSecond: Math.round(read.events / Math.max(seconds, 0.001)),
      seconds: Number(seconds.toFixed(2)),
      done,
    });
  };
  try {
    const secondaryIndexes = await prepareSchema(guard, schema, projection);
    const shadow = openDatabase(database.clientConfig.connectionString!, { searchPath: quotedSchema });
    try {
      const head = await store.headPosition();
      const runner = new ProjectionRunner({
        database: shadow,
        store: new CountingReads(store, read),
        projection: { ...projection, name: shadowName(projection) },
        bus: silentBus,
        log,
        replay: true,
      });
      runner.start();
      let position = -1n;
      try {
        for (let reported: bigint | undefined; ; reported = position) {
          position = (await readCheckpoints(shadow.pool)).get(shadowName(projection)) ?? -1n;
          if (position >= head) break;
          if (position !== reported) report(position, head, false);
          await new Promise((resolve) => setTimeout(resolve, PROGRESS_EVERY_MS));
        }
      } finally {
        await runner.stop();
      }
      position = (await readCheckpoints(shadow.pool)).get(shadowName(projection)) ?? position;
      if (projection.finishReplay) await withTransaction(shadow.pool, (tx) => projection.finishReplay!(tx));
      for (const indexSql of secondaryIndexes) await guard.query(indexSql);
      if (projection.tables.length > 0)
        await guard.query(
          `ANALYZE ${projection.tables.map((t) => `${quotedSchema}.${pg.escapeIdentifier(t)}`).join(', ')}`,
        );
      await swapIn(database.pool, schema, projection, position);
      report(position, head, true);
    } finally {
      await shadow.close();
    }
  } finally {
    await guard.query(`DROP SCHEMA IF EXISTS ${quotedSchema} CASCADE`).catch(() => undefined);
  }
}

/** The store as a rebuild's runner reads it, counting the events of each batch it hands out. */
class CountingReads extends EventStoreDecorator {
  constructor(
    store: EventStore,
    private readonly read: { events: number },
  ) {
    super(store);
  }

  override subscribeToAll(options?: SubscribeToAllOptions): AllSubscription {
    const subscription = this.store.subscribeToAll(options);
    const read = this.read;
    return {
      close: () => subscription.close(),
      async *[Symbol.asyncIterator]() {
        for await (const batch of subscription) {
          read.events += batch.events.length;
          yield batch;
        }
      },
    };
  }
}

const shadowName = (projection: Projection) => `${projection.name}.rebuild`;

/** Publications of a replay go nowhere: subscribers saw these changes when they happened. */
const silentBus: Bus = {
  publish: async () => undefined,
  subscribe: () => () => undefined,
  onGap: () => () => undefined,
  resync: async () => undefined,
  healthy: () => true,
  close: async () => undefined,
};

/**
 * A fresh schema with the projection's tables (its migrations, run there), a checkpoint table and a
 * parked-events table. Returns the definitions of the secondary indexes, dropped until the replay ends;
 * primary keys stay, as the projection's upserts need them.
 */
async function prepareSchema(client: pg.Client, schema: string, projection: Projection): Promise<string[]> {
  const quoted = pg.escapeIdentifier(schema);
  await client.query(`DROP SCHEMA IF EXISTS ${quoted} CASCADE`);
  await client.query(`CREATE SCHEMA ${quoted}`);
  await withTransaction(client, async (tx) => {
    // Only the rebuild's schema on the path: the migrations cannot touch a live table.
    await tx.query(`SET LOCAL search_path = ${quoted}`);
    for (const migration of projection.migrations) await tx.query(migration.sql);
    await tx.query(`CREATE TABLE projection_checkpoints (LIKE public.projection_checkpoints INCLUDING ALL)`);
    await tx.query(`CREATE TABLE projection_parked (LIKE public.projection_parked INCLUDING ALL)`);
  });
  const { rows } = await client.query<{ name: string; definition: string }>(
    `SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_class t ON t.oid = i.indrelid
      WHERE n.nspname = $1 AND NOT i.indisprimary AND t.relname = ANY ($2::text[])`,
    [schema, projection.tables],
  );
  for (const row of rows) await client.query(`DROP INDEX ${quoted}.${pg.escapeIdentifier(row.name)}`);
  return rows.map((row) => row.definition);
}

// The swap waits at most this long for a lock, then gives way and tries again (see swapIn).
const SWAP_LOCK_TIMEOUT_MS = 100;
const SWAP_ATTEMPTS = 200;

/**
 * One transaction: the rebuilt tables replace the live ones, and the live checkpoint moves to the
 * rebuild's. Readers lock the tables in their own order, so a swap that waited for its locks could
 * deadlock with them, and PostgreSQL might abort the reader. Instead the swap waits at most
 * SWAP_LOCK_TIMEOUT_MS for each lock (long before deadlock detection), rolls back and tries again: a
 * reader waits for a swap at most that long, and never fails because of it.
 */
async function swapIn(pool: pg.Pool, schema: string, projection: Projection, position: bigint): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await swapOnce(pool, schema, projection, position);
    } catch (error) {
      if ((error as { code?: string }).code !== LOCK_NOT_AVAILABLE || attempt >= SWAP_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 50));
    }
  }
}

const LOCK_NOT_AVAILABLE = '55P03';

async function swapOnce(pool: pg.Pool, schema: string, projection: Projection, position: bigint): Promise<void> {
  const quoted = pg.escapeIdentifier(schema);
  await withTransaction(pool, async (tx) => {
    await tx.query(`SET LOCAL lock_timeout = ${SWAP_LOCK_TIMEOUT_MS}`);
    await tx.query(
      'INSERT INTO projection_checkpoints (name, version, position) VALUES ($1, $2, -1) ON CONFLICT (name) DO NOTHING',
      [projection.name, projection.version],
    );
    // Holding the checkpoint row keeps the live runner from committing a batch to the old tables meanwhile.
    await tx.query('SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE', [projection.name]);
    for (const table of projection.tables) {
      await tx.query(`DROP TABLE IF EXISTS public.${pg.escapeIdentifier(table)}`);
      await tx.query(`ALTER TABLE ${quoted}.${pg.escapeIdentifier(table)} SET SCHEMA public`);
    }
    await tx.query(
      'UPDATE projection_checkpoints SET position = $2, version = $3, updated_at = now() WHERE name = $1',
      [projection.name, position.toString(), projection.version],
    );
    await tx.query('DELETE FROM projection_parked WHERE projection = $1', [projection.name]);
    await tx.query(
      `INSERT INTO projection_parked (projection, position, event_id, event_type, stream_name, event, error, attempts, parked_at)
       SELECT $1, position, event_id, event_type, stream_name, event, error, attempts, parked_at FROM ${quoted}.projection_parked`,
      [projection.name],
    );
  });
}
