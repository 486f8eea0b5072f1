import pg from 'pg';
import pino from 'pino';
import type { EventStore, RecordedEvent } from '../eventStore/eventStore';
import type { Infrastructure } from '../infrastructure';
import { openDatabase, type Database } from '../postgres/database';
import { withTransaction } from '../postgres/transaction';
import type { Logger } from '../runtime/logger';
import { holdRetentionPasses } from '../storage/eventRetention';
import { prunePass, type PruningTerms, type Prunable } from '../storage/retention';
import type { Projection } from './projection';
import { isEventsFault, PROJECTION_LOCK_SPACE } from './projectionRunner';

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

/**
 * Retention applied to the rebuilt tables before they are swapped in (docs/operations.md, "Retention"),
 * so that what a pass removed from the live tables does not come back with the swap: `prunablesOn` makes
 * the prunables on the rebuild's pool (its schema alone on the search path).
 */
export type RebuildRetention = Omit<PruningTerms, 'prunables' | 'onPruned'> & {
  readonly prunablesOn: (pool: pg.Pool) => readonly Prunable[];
};

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
 * there, with that schema alone on the search path) while a running herald keeps serving and pushing
 * from the live tables. Nothing is pushed for the replayed history. The stream is read once, in position
 * order, and each page goes to every projection being rebuilt (only the events of the types it reads), in
 * large batches, each projection on its own connection so PostgreSQL applies them side by side while the
 * next page is read. The tables a projection writes batch by batch are unlogged while they fill (nothing
 * of them need survive a crash: the rebuild is run again) and logged before the swap; a projection that
 * stages its replay (startReplay) writes its tables once, in finishReplay (on two connections if it
 * likes) and finishReplayBeside, where they stay logged (one pass over the rows, not a rewrite after).
 * On a server at `wal_level = minimal` (the embedded one; see skipsWal) none of this writes WAL: SET
 * LOGGED and index builds write new files, and finishReplay truncates what it fills. Indexes are dropped
 * while replaying (the secondary ones; the primary keys too where the tables are written by
 * finishReplay alone) and built once at the end, a sorted bulk build instead of one random insertion per
 * row, beside finishReplayBeside (the indexes of its tables after it); then, given `retention`, what is past it
 * is pruned as the live tables are (src/storage/retention.ts); then the tables are analyzed. The swap is
 * one transaction: it holds the live checkpoint row (so the live runner cannot commit a batch meanwhile),
 * replaces the live tables with the rebuilt ones and sets the live checkpoint to where the rebuild got. A
 * running herald's runner then fails its next compare-and-set, and goes on from there with the events
 * that came meanwhile (pushing them again; subscribers drop seqs they already have). Readers see the old
 * tables until the commit, the new ones after it. Each projection's last progress line (`done`) gives the
 * events read ÷ the seconds until it was swapped in.
 *
 * An event a projection cannot apply (its data refused: isEventsFault) is parked as the live runner parks
 * it, and the replay goes on; the parked events replace the live projection's at the swap.
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
  retention?: RebuildRetention,
): Promise<void> {
  const guards = await lockRebuilds(infrastructure.database, projections);
  // No event store pass while the history is read (src/storage/eventRetention.ts).
  const releasePasses = await holdRetentionPasses(infrastructure.database.pool).catch(async (error: unknown) => {
    await Promise.all(guards.map((guard) => guard.end().catch(() => undefined)));
    throw error;
  });
  const started = Date.now();
  const read = { events: 0 };
  const walSkip = await skipsWal(infrastructure.database.pool).catch(async (error: unknown) => {
    await releasePasses().catch(() => undefined);
    await Promise.all(guards.map((guard) => guard.end().catch(() => undefined)));
    throw error;
  });
  // One for every projection: their ends run side by side, and each index build may take INDEX_BUILD_MEMORY.
  const sorts = new Limiter(INDEX_BUILDERS);
  const builds = projections.map(
    (projection, i) => new Build(infrastructure, projection, guards[i]!, log, sorts, retention, walSkip),
  );
  try {
    await settleEach(builds, (build) => build.prepare());
    const head = await infrastructure.store.headPosition();
    const report = (build: Build, done: boolean) => {
      const seconds = (Date.now() - started) / 1000;
      onProgress({
        projection: build.projection.name,
        position: build.position.toString(),
        head: head.toString(),
        events: read.events,
        eventsPerSecond: Math.round(read.events / Math.max(seconds, 0.001)),
        seconds: Number(seconds.toFixed(2)),
        done,
      });
    };
    for (const build of builds) if (!build.failure) report(build, false);
    const reporter = setInterval(() => {
      for (const build of builds) if (!build.failure) report(build, false);
    }, PROGRESS_EVERY_MS);
    try {
      await replayOnce(infrastructure.store, builds, head, read);
    } finally {
      clearInterval(reporter);
    }
    await settleEach(builds, async (build) => {
      await build.finish();
      report(build, true);
    });
    const failures = builds.flatMap((build) =>
      build.failure ? [{ projection: build.projection.name, error: build.failure }] : [],
    );
    if (failures.length === 1) throw failures[0]!.error;
    if (failures.length > 1) throw new Error(failures.map((f) => `${f.projection}: ${f.error.message}`).join('; '));
  } finally {
    await Promise.all(builds.map((build) => build.close()));
    await releasePasses().catch(() => undefined);
    await Promise.all(guards.map((guard) => guard.end().catch(() => undefined)));
  }
}

/** Runs `step` for every build not failed yet, side by side; one that throws is failed, the others go on. */
async function settleEach(builds: readonly Build[], step: (build: Build) => Promise<void>): Promise<void> {
  await Promise.all(
    builds.map(async (build) => {
      if (build.failure) return;
      await step(build).catch((error: unknown) => build.fail(error));
    }),
  );
}

/**
 * One read of the stream, from the start to `head` (and the rest of the page that reaches it), handed to
 * every build. The next page is asked for before this one is handed over, so PostgreSQL reads it while
 * herald decodes and sends this one. The read waits for a build that has more than BATCHES_AHEAD batches
 * queued, so memory stays bounded by the slowest projection.
 */
async function replayOnce(store: EventStore, builds: readonly Build[], head: bigint, read: { events: number }) {
  const subscription = store.subscribeToAll();
  const pages = subscription[Symbol.asyncIterator]();
  let reached = -1n;
  try {
    let next = prefetch(pages);
    for (let page = await next; !page.done; page = await next) {
      const { events } = page.value;
      read.events += events.length;
      const last = events[events.length - 1];
      if (last) reached = last.position;
      const more = reached < head && !builds.every((build) => build.failure);
      if (more) next = prefetch(pages);
      for (const build of builds) build.take(events, reached);
      if (!more) break;
      await Promise.all(builds.map((build) => build.caughtUpTo(BATCHES_AHEAD)));
    }
  } finally {
    await subscription.close();
    // As a for-await would: the store's iterator ends (a page asked for and not awaited ends with it).
    await pages.return?.();
  }
  await Promise.all(builds.map((build) => build.flush(reached)));
}

/** The next page, already on its way; a failure is kept for whoever awaits it, not reported unhandled. */
function prefetch<T>(pages: AsyncIterator<T>): Promise<IteratorResult<T>> {
  const next = pages.next();
  next.catch(() => undefined);
  return next;
}

// A projection applies its events in batches of about this many (a page cut at no event in particular:
// projections give the same tables however a history is batched).
const BATCH_EVENTS = 20_000;
const BATCHES_AHEAD = 2;
const INDEX_BUILD_MEMORY = '1GB';
// Index builds and ANALYZEs at once, of all the projections together: PostgreSQL's CPU-bound sorts, two
// cores' worth, and at most INDEX_BUILDERS × INDEX_BUILD_MEMORY of maintenance_work_mem.
const INDEX_BUILDERS = 2;

/** Runs at most `slots` tasks at once; the others wait their turn, first come first served. */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly slots: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running < this.slots) this.running++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      // The slot goes straight to the next in line, if any.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/**
 * Runs `work` on every item, each in its turn of `limiter`; once one fails, the items not started yet
 * are left out, and that failure is thrown once the started ones have ended (whatever it was rejected
 * with: `undefined` too).
 */
export async function eachLimited<T>(
  limiter: Limiter,
  items: readonly T[],
  work: (item: T) => Promise<unknown>,
): Promise<void> {
  let failed = false;
  let failure: unknown;
  await Promise.all(
    items.map((item) =>
      limiter.run(async () => {
        if (failed) return;
        await work(item).catch((error: unknown) => {
          if (failed) return;
          failed = true;
          failure = error;
        });
      }),
    ),
  );
  if (failed) throw failure;
}

/** An index dropped for the replay: what builds it, and for a primary key, what makes that index the key. */
interface DroppedIndex {
  readonly table: string;
  readonly create: string;
  readonly primaryKey?: string;
}

/**
 * The connections a projection's rebuild writes its schema with: that schema alone on the search path,
 * one connection for the batches while replaying, up to INDEX_BUILDERS for the index builds at the end.
 * The server checks every second that herald is still there while a statement runs: a rebuild killed
 * during an index build or the notifications' derivation would otherwise leave that statement running
 * to its end (minutes), holding its schema, and the next rebuild's DROP SCHEMA would wait for it.
 * No idle-in-transaction timeout (herald's sessions have a minute, database.ts): these sessions lock
 * only the rebuild's own schema, and may rightly sit idle in a transaction for minutes — the
 * notifications' lower range waits for the upper one (koalaInbox.ts; the split is by messages, the work
 * by recipients), a batch of large broadcasts is staged in herald between statements. Ended there, the
 * rebuild failed, and again on every rerun of the same store. A vanished herald is still noticed: its
 * socket closes or the keepalives end the session. The swap runs on herald's own pool, timeout kept.
 */
export function openRebuildDatabase(connectionString: string, schema: string): Database {
  return openDatabase(connectionString, {
    settings: [
      `search_path=${pg.escapeIdentifier(schema)}`,
      'client_connection_check_interval=1000',
      'idle_in_transaction_session_timeout=0',
    ],
    maxConnections: INDEX_BUILDERS,
  });
}

/** One projection's rebuild: its schema, the batches it applies there, and the swap. */
class Build {
  readonly schema: string;
  private readonly quotedSchema: string;
  private shadow: Database | undefined;
  /** The indexes dropped for the replay, to be built once it is over. */
  private indexes: DroppedIndex[] = [];
  private pending: RecordedEvent[] = [];
  /** The batches taken and not applied yet, oldest first, applied one after the other. */
  private readonly queue: Promise<void>[] = [];
  /** Where the rebuilt tables are: every event up to here is applied (or parked). */
  position = -1n;
  failure: Error | undefined;

  constructor(
    private readonly infrastructure: Infrastructure,
    readonly projection: Projection,
    private readonly guard: pg.Client,
    private readonly log: Logger,
    private readonly sorts: Limiter,
    private readonly retention: RebuildRetention | undefined,
    private readonly walSkip: boolean,
  ) {
    this.schema = `herald_rebuild_${projection.name.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`;
    this.quotedSchema = pg.escapeIdentifier(this.schema);
  }

  fail(error: unknown): void {
    this.failure ??= error instanceof Error ? error : new Error(String(error));
    this.pending = [];
  }

  async prepare(): Promise<void> {
    this.indexes = await prepareSchema(this.guard, this.schema, this.projection);
    this.shadow = openRebuildDatabase(this.infrastructure.database.clientConfig.connectionString!, this.schema);
    const { startReplay } = this.projection;
    if (startReplay) await withTransaction(this.shadow.pool, (tx) => startReplay(tx));
  }

  /** The events of a page it reads, up to `position`; a full batch goes to be applied. */
  take(events: readonly RecordedEvent[], position: bigint): void {
    if (this.failure) return;
    for (const event of events) if (this.projection.eventTypes.has(event.type)) this.pending.push(event);
    if (this.pending.length >= BATCH_EVENTS) this.applyPending(position);
    else if (this.pending.length === 0 && this.queue.length === 0) this.position = position;
  }

  /** Resolves once at most `batches` batches wait to be applied. */
  async caughtUpTo(batches: number): Promise<void> {
    while (this.queue.length > batches) await this.queue[0];
  }

  async flush(position: bigint): Promise<void> {
    if (!this.failure) this.applyPending(position);
    await this.drained();
  }

  private drained(): Promise<void> {
    return this.queue[this.queue.length - 1] ?? Promise.resolve();
  }

  private applyPending(position: bigint): void {
    const batch = this.pending;
    this.pending = [];
    const applied = this.drained().then(async () => {
      try {
        if (!this.failure && batch.length > 0) await this.apply(batch);
        if (!this.failure) this.position = position;
      } catch (error) {
        this.fail(error);
      } finally {
        this.queue.shift();
      }
    });
    this.queue.push(applied);
  }

  /** A batch in one transaction; if its events' data is refused, event by event, parking each refused one. */
  private async apply(events: readonly RecordedEvent[]): Promise<void> {
    try {
      await this.applyInTransaction(events);
    } catch (error) {
      if (!isEventsFault(error)) throw error;
      this.log.warn(
        { err: error, projection: this.projection.name },
        'a rebuild batch failed; applying its events one by one',
      );
      for (const event of events) await this.applyInTransaction([event]).catch((e: unknown) => this.park(event, e));
    }
  }

  private applyInTransaction(events: readonly RecordedEvent[]): Promise<unknown> {
    // Not waiting for the disk: the tables are unlogged until the end anyway.
    return withTransaction(
      this.shadow!.pool,
      (tx) => this.projection.handle(events, tx, { replay: true }),
      'SET LOCAL synchronous_commit = off',
    );
  }

  /** As the live runner parks it (projectionRunner.ts), in the rebuild's own projection_parked. */
  private async park(event: RecordedEvent, error: unknown): Promise<void> {
    if (!isEventsFault(error)) throw error;
    const message = error instanceof Error ? error.message : String(error);
    const recorded = JSON.stringify(event, (_key, value: unknown) =>
      typeof value === 'bigint' ? value.toString() : value,
    );
    await this.shadow!.pool.query(
      `INSERT INTO projection_parked (projection, position, event_id, event_type, stream_name, event, error, attempts)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 1) ON CONFLICT (projection, position) DO NOTHING`,
      [
        this.projection.name,
        event.position.toString(),
        event.id,
        printable(event.type),
        printable(event.streamName),
        recorded,
        printable(message),
      ],
    );
    this.log.error(
      { err: error, projection: this.projection.name, position: String(event.position), eventId: event.id },
      'parked an event the projection cannot apply; `herald projections retry` re-applies it',
    );
  }

  /** What the replay left out, the indexes, statistics, logged tables; then the swap. */
  async finish(): Promise<void> {
    const { projection, guard, quotedSchema } = this;
    let since = Date.now();
    const lap = (phase: string) => {
      this.log.debug({ projection: projection.name, phase, ms: Date.now() - since }, 'rebuild phase done');
      since = Date.now();
    };
    if (projection.finishReplay) await projection.finishReplay({ pool: this.shadow!.pool, walSkip: this.walSkip });
    lap('finishReplay');
    const tables = projection.tables.map((t) => `${quotedSchema}.${pg.escapeIdentifier(t)}`);
    if (!projection.startReplay) for (const table of tables) await guard.query(`ALTER TABLE ${table} SET LOGGED`);
    lap('logged');
    await this.buildIndexes();
    lap('indexes');
    if (this.retention) {
      // Its indexes built, so each batch finds what ended by them; nobody reads these tables yet.
      const own = this.retention.prunablesOn(this.shadow!.pool).filter((p) => projection.tables.includes(p.table));
      // One pass at a time with the live ones: its rows retire into the live queues.
      await prunePass({ ...this.retention, prunables: own, pool: this.shadow!.pool });
      lap('retention');
    }
    await eachLimited(this.sorts, tables, (table) => this.shadow!.pool.query(`ANALYZE ${table}`));
    lap('analyze');
    await swapIn(this.infrastructure.database.pool, this.schema, projection, this.position);
  }

  /**
   * The indexes dropped for the replay, each on a connection of its own, INDEX_BUILDERS at a time with
   * those of the other projections (the shared `sorts`): builds
   * of one table take a SHARE lock, which does not conflict with another build, so PostgreSQL sorts them
   * side by side (each in memory, with parallel workers where its table is large enough). A primary key
   * is built as a unique index and then made the key (USING INDEX: no second build) once all are done,
   * as ADD CONSTRAINT takes a lock no other build could share.
   */
  private async buildIndexes(): Promise<void> {
    const pool = this.shadow!.pool;
    // Those of the largest tables first, so that the last build to start is a short one.
    const { rows } = await pool.query<{ table: string; bytes: string }>(
      `SELECT relname AS table, pg_relation_size(oid) AS bytes FROM pg_class
        WHERE relnamespace = $1::regnamespace AND relname = ANY ($2::text[])`,
      [this.quotedSchema, this.projection.tables],
    );
    const bytes = new Map(rows.map((row) => [row.table, Number(row.bytes)]));
    const largestFirst = [...this.indexes].sort((a, b) => (bytes.get(b.table) ?? 0) - (bytes.get(a.table) ?? 0));
    const build = (index: DroppedIndex) =>
      withTransaction(pool, (tx) => tx.query(index.create), `SET LOCAL maintenance_work_mem = '${INDEX_BUILD_MEMORY}'`);
    // What the projection derives beside the builds takes its turn after theirs (a short one, last), and
    // the indexes of its tables are built once it is done.
    const beside = this.projection.finishReplayBeside;
    const later = new Set(beside?.tables);
    await settled([
      eachLimited(
        this.sorts,
        largestFirst.filter((index) => !later.has(index.table)),
        build,
      ),
      (async () => {
        if (beside) {
          const walSkip = this.walSkip;
          await this.sorts.run(() => withTransaction(pool, (tx) => beside.derive(tx, { walSkip })));
        }
        await eachLimited(
          this.sorts,
          largestFirst.filter((index) => later.has(index.table)),
          build,
        );
      })(),
    ]);
    for (const index of this.indexes) if (index.primaryKey) await pool.query(index.primaryKey);
  }

  async close(): Promise<void> {
    await this.drained();
    await this.shadow?.close().catch(() => undefined);
    await this.guard.query(`DROP SCHEMA IF EXISTS ${this.quotedSchema} CASCADE`).catch(() => undefined);
  }
}

/** Awaits every one of `tasks` (none is left running), then throws the first failure, if any. */
async function settled(tasks: readonly Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(tasks)).find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Whether the server is at `wal_level = minimal` (herald's embedded one is): then a table truncated or
 * created in a transaction and filled in it, and every index build, write no WAL (ReplayFinish).
 */
export async function skipsWal(pool: pg.Pool): Promise<boolean> {
  const { rows } = await pool.query<{ wal_level: string }>('SHOW wal_level');
  return rows[0]?.wal_level === 'minimal';
}

/** Text PostgreSQL will store: an error message or a name from a bad event may hold NUL and the like. */
function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\ud800-\udfff]/g, '\ufffd').slice(0, 2000);
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

/**
 * A fresh schema with the projection's tables (its migrations, run there; unlogged unless the projection
 * stages its replay) and a parked-events table. Returns what builds the indexes dropped until the replay ends: the secondary
 * ones, and for a projection that stages its replay (startReplay: its tables are written by finishReplay
 * alone) the primary keys too; other projections' upserts need their primary keys while replaying.
 */
async function prepareSchema(client: pg.Client, schema: string, projection: Projection): Promise<DroppedIndex[]> {
  const quoted = pg.escapeIdentifier(schema);
  await client.query(`DROP SCHEMA IF EXISTS ${quoted} CASCADE`);
  await client.query(`CREATE SCHEMA ${quoted}`);
  await withTransaction(client, async (tx) => {
    // Only the rebuild's schema on the path: the migrations cannot touch a live table.
    await tx.query(`SET LOCAL search_path = ${quoted}`);
    for (const migration of projection.migrations) await tx.query(migration.sql);
    if (!projection.startReplay)
      for (const table of projection.tables) await tx.query(`ALTER TABLE ${pg.escapeIdentifier(table)} SET UNLOGGED`);
    await tx.query(`CREATE TABLE projection_parked (LIKE public.projection_parked INCLUDING ALL)`);
  });
  // Written under the search path they are run with (the rebuild pool's: its schema alone), so what is
  // not in that schema (a function of public's, say) comes qualified.
  const rows = await withTransaction(client, async (tx) => {
    await tx.query(`SET LOCAL search_path = ${quoted}`);
    const indexes = await tx.query<{ table: string; name: string; primary: boolean; definition: string }>(
      `SELECT t.relname AS table, c.relname AS name, i.indisprimary AS primary, pg_get_indexdef(i.indexrelid) AS definition
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_class t ON t.oid = i.indrelid
        WHERE n.nspname = $1 AND t.relname = ANY ($2::text[]) AND ($3 OR NOT i.indisprimary)`,
      [schema, projection.tables, projection.startReplay !== undefined],
    );
    return indexes.rows;
  });
  const dropped: DroppedIndex[] = [];
  for (const row of rows) {
    const table = `${quoted}.${pg.escapeIdentifier(row.table)}`;
    const name = pg.escapeIdentifier(row.name);
    if (row.primary) {
      // A primary key's index is a plain unique index (pg_get_indexdef), made the key again after its build.
      await client.query(`ALTER TABLE ${table} DROP CONSTRAINT ${name}`);
      dropped.push({
        table: row.table,
        create: row.definition,
        primaryKey: `ALTER TABLE ${table} ADD CONSTRAINT ${name} PRIMARY KEY USING INDEX ${name}`,
      });
    } else {
      await client.query(`DROP INDEX ${quoted}.${name}`);
      dropped.push({ table: row.table, create: row.definition });
    }
  }
  return dropped;
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
