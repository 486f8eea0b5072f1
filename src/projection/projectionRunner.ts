import pg from 'pg';
import type { Bus } from '../bus/bus';
import type { AllSubscription, EventStore, RecordedEvent, SubscriptionBatch } from '../eventStore/eventStore';
import type { Database } from '../postgres/database';
import { classifyFailure } from '../postgres/errors';
import type { Migration } from '../postgres/migrations';
import { SessionLock } from '../postgres/sessionLock';
import { withTransaction } from '../postgres/transaction';
import { BackgroundLoop } from '../runtime/backgroundLoop';
import type { Logger } from '../runtime/logger';
import { UndecodableEventError } from './eventDecoder';
import type { Projection, ProjectionStatement } from './projection';
import { CHECKPOINT_CHANNEL } from './projectionProgress';

const CHECKPOINT_MOVED = 'HR001';

export const projectionRunnerMigrations: readonly Migration[] = [
  {
    id: 'projection-runner/001-checkpoints',
    sql: `CREATE TABLE projection_checkpoints (
            name text PRIMARY KEY,
            version integer NOT NULL,
            position bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
          )`,
  },
  {
    // The checkpoint's compare-and-set, failing (SQLSTATE HR001) when someone else moved it, so it can
    // ride in one round trip with BEGIN. The notification reaches every node's ProjectionProgress when,
    // and only if, the transaction commits.
    id: 'projection-runner/002-move-checkpoint',
    sql: `CREATE FUNCTION herald_move_checkpoint(p_name text, p_from bigint, p_to bigint) RETURNS void
          LANGUAGE plpgsql AS $$
          BEGIN
            UPDATE projection_checkpoints SET position = p_to, updated_at = now() WHERE name = p_name AND position = p_from;
            IF NOT FOUND THEN
              RAISE EXCEPTION 'checkpoint of projection % is not at %', p_name, p_from USING ERRCODE = '${CHECKPOINT_MOVED}';
            END IF;
            PERFORM pg_notify('${CHECKPOINT_CHANNEL}', p_name || ' ' || p_to);
          END
          $$`,
  },
  {
    // Events a projection could not apply, set aside so the ones after them are still projected.
    // `event` is the recorded event as JSON text (text, not jsonb: it may hold what jsonb refuses).
    id: 'projection-runner/003-parked',
    sql: `CREATE TABLE projection_parked (
            projection text NOT NULL,
            position bigint NOT NULL,
            event_id text NOT NULL,
            event_type text NOT NULL,
            stream_name text NOT NULL,
            event text NOT NULL,
            error text NOT NULL,
            attempts integer NOT NULL,
            parked_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (projection, position)
          )`,
  },
  {
    // The checkpoint's move as a step of any statement (the batch's own, see applyBatch), and notifying
    // only when asked: this process's waiters are told directly, other processes only while one listens
    // (src/postgres/notices.ts). A checkpoint's commit need not wait for the disk (applyBatch), set here
    // so that it holds in a statement's implicit transaction too. The three-argument function stays for
    // a herald of the previous version during a rolling upgrade.
    id: 'projection-runner/004-checkpoint-step',
    sql: `CREATE FUNCTION herald_checkpoint_step(p_name text, p_at bigint, p_from bigint, p_to bigint, p_notify boolean)
          RETURNS bigint
          LANGUAGE plpgsql AS $$
          BEGIN
            IF p_at IS DISTINCT FROM p_from THEN
              RAISE EXCEPTION 'checkpoint of projection % is not at %', p_name, p_from USING ERRCODE = '${CHECKPOINT_MOVED}';
            END IF;
            PERFORM set_config('synchronous_commit', 'off', true);
            IF p_notify THEN PERFORM pg_notify('${CHECKPOINT_CHANNEL}', p_name || ' ' || p_to); END IF;
            RETURN p_to;
          END
          $$;
          CREATE FUNCTION herald_move_checkpoint(p_name text, p_from bigint, p_to bigint, p_notify boolean) RETURNS void
          LANGUAGE plpgsql AS $$
          BEGIN
            UPDATE projection_checkpoints
               SET position = herald_checkpoint_step(name, position, p_from, p_to, p_notify), updated_at = now()
             WHERE name = p_name;
            IF NOT FOUND THEN
              RAISE EXCEPTION 'projection % has no checkpoint', p_name USING ERRCODE = '${CHECKPOINT_MOVED}';
            END IF;
          END
          $$`,
  },
];

/** What a runner does with an event its projection keeps failing on (HERALD_PROJECTION_ON_ERROR). */
export type OnProjectionError = 'park' | 'stop';
// A batch failing for its events' fault is retried whole, then event by event; an event that still
// fails is parked. Any other failure is retried from the checkpoint, never parked.
const BATCH_ATTEMPTS = 3;
const EVENT_ATTEMPTS = 3;
const RETRY_BACKOFF_MS = 100;

// First key of the two-key advisory lock: the second is hashtext(projection name).
export const PROJECTION_LOCK_SPACE = 0x68726c64; // "hrld"
const STANDBY_RETRY_MS = 1000;
/**
 * Back-off after a failure that is not an event's fault (the database down or restarting, a lock
 * timeout, a deadlock): short and capped, so the projection resumes within ~2 s of the cause going
 * away — meanwhile commands wait for it (read your writes) and live pushes wait with it.
 */
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 2000;
/** How long the checkpoint may lag in the database behind batches the projection had nothing to do in. */
const SKIPPED_CHECKPOINT_MS = 1000;

/** `retrying`: waiting out the back-off after a failure (see `failing`). */
export type RunnerState = 'stopped' | 'standby' | 'catching-up' | 'live' | 'retrying';

/** The failure a runner is retrying after: since when, how many times in a row, the latest error's message. */
export interface RunnerFailure {
  readonly since: Date;
  readonly attempts: number;
  readonly error: string;
}

/**
 * Keeps one projection up to date with the event store.
 *
 * - Exactly-once effects: each batch of events and the new checkpoint are written in one transaction,
 *   and the checkpoint moves by compare-and-set, so a batch replayed after a crash is a no-op.
 * - One active runner per projection across processes: the runner that holds the projection's advisory
 *   lock applies events; the others stand by and take over when it goes away.
 * - Publications are handed to the bus only after the commit that made them visible. A runner that takes
 *   the projection over asks every node to catch up from the store first (Bus.resync): the runner before
 *   it may have died after a commit, its client already answered, and before that commit's publish.
 */
export class ProjectionRunner {
  private readonly loop = new BackgroundLoop(() => this.runUntilStopped());
  private subscription: AllSubscription | undefined;
  private lock: SessionLock | undefined;
  private currentState: RunnerState = 'stopped';
  private failure: RunnerFailure | undefined;
  /** The projection changed hands (or its checkpoint was moved under it) since this runner last published. */
  private owesResync = false;

  constructor(
    private readonly deps: {
      readonly database: Database;
      readonly store: EventStore;
      readonly projection: Projection;
      readonly bus: Bus;
      readonly log: Logger;
      /** Told after each commit, so read-your-writes waiters on this node wake at once. */
      readonly onCommitted?: (projection: string, position: bigint) => void;
      /** `park` (default): set aside an event that keeps failing and go on; `stop`: retry it until it applies. */
      readonly onError?: OnProjectionError;
    },
  ) {}

  get name(): string {
    return this.deps.projection.name;
  }

  get state(): RunnerState {
    return this.currentState;
  }

  /** The failure this runner keeps retrying after, until it applies (or passes) a batch again. */
  get failing(): RunnerFailure | undefined {
    return this.failure;
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    const stopped = this.loop.stop();
    // A batch being awaited ends with the subscription.
    await this.subscription?.close();
    await stopped;
  }

  private async runUntilStopped(): Promise<void> {
    const { log } = this.deps;
    let backoffMs = FIRST_BACKOFF_MS;
    while (this.loop.running) {
      try {
        if (!(await this.acquireLock())) {
          this.currentState = 'standby';
          await this.loop.wait(STANDBY_RETRY_MS);
          continue;
        }
        await this.applyUntilStoppedOrFailed();
        backoffMs = FIRST_BACKOFF_MS;
      } catch (error) {
        if (!this.loop.running) break;
        if (error instanceof CheckpointMovedError) {
          // A rebuild swapped in its tables (or reset these): start again from the checkpoint it left.
          log.info({ projection: this.name }, error.message);
          this.owesResync = true;
          continue;
        }
        this.failed(error, backoffMs);
        this.currentState = 'retrying';
        await this.loop.wait(backoffMs);
        backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
      } finally {
        await this.subscription?.close();
        this.subscription = undefined;
      }
    }
    await this.releaseLock();
    this.currentState = 'stopped';
  }

  private async applyUntilStoppedOrFailed(): Promise<void> {
    const { projection } = this.deps;
    // After the checkpoint is read: it waits for a commit of the runner before, so what the nodes read
    // from the store on the resync includes that commit.
    let checkpoint = await prepareCheckpoint(this.deps.database.pool, projection);
    if (this.owesResync) {
      await this.deps.bus.resync();
      this.owesResync = false;
    }
    this.currentState = 'catching-up';
    this.subscription = this.deps.store.subscribeToAll({ after: checkpoint < 0n ? undefined : checkpoint });
    const batches = this.subscription[Symbol.asyncIterator]();
    // Past batches the projection has nothing to do in, the checkpoint moves in memory at once and in
    // the database at most every SKIPPED_CHECKPOINT_MS: no transaction per batch it ignores.
    let skippedTo: bigint | undefined;
    let checkpointWrittenAt = Date.now();
    let next = prefetch(batches);
    // After a replay from the start, the tables' statistics describe empty tables: refresh them once
    // caught up, or the planner may pick scans that suit an empty table for queries on a full one.
    let analyzeWhenCaughtUp = checkpoint < 0n;
    while (this.loop.running) {
      const result = skippedTo === undefined ? await next : await Promise.race([next, delay(SKIPPED_CHECKPOINT_MS)]);
      if (
        result === undefined ||
        (skippedTo !== undefined && Date.now() - checkpointWrittenAt >= SKIPPED_CHECKPOINT_MS)
      ) {
        if (skippedTo !== undefined) checkpoint = await this.moveCheckpoint(checkpoint, skippedTo);
        skippedTo = undefined;
        checkpointWrittenAt = Date.now();
        if (result === undefined) continue;
      }
      if (result.done || !this.loop.running) break;
      // Read the next batch while this one is applied.
      next = prefetch(batches);
      const { events, caughtUp } = result.value;
      if (events.length > 0) {
        const last = events[events.length - 1]!.position;
        const relevant = events.filter((event) => projection.eventTypes.has(event.type));
        if (relevant.length > 0) {
          await this.applyOrPark(relevant, checkpoint, last);
          checkpoint = last;
          skippedTo = undefined;
          checkpointWrittenAt = Date.now();
        } else {
          skippedTo = last;
          this.deps.onCommitted?.(projection.name, last);
        }
      }
      // This batch went through (applied, or nothing in it for the projection): whatever failed has passed.
      this.recovered();
      if (caughtUp) {
        this.currentState = 'live';
        if (analyzeWhenCaughtUp) await this.analyzeTables();
        analyzeWhenCaughtUp = false;
      }
    }
    if (skippedTo !== undefined) await this.moveCheckpoint(checkpoint, skippedTo);
  }

  /** One line when a run of failures begins (and at debug level after), not one per retry of an outage. */
  private failed(error: unknown, retryInMs: number): void {
    const message = error instanceof Error ? error.message : String(error);
    const attempts = (this.failure?.attempts ?? 0) + 1;
    this.failure = { since: this.failure?.since ?? new Date(), attempts, error: message.slice(0, 500) };
    const fields = { err: error, projection: this.name, kind: classifyFailure(error), attempts, retryInMs };
    if (attempts === 1) this.deps.log.warn(fields, 'projection runner failed; retrying from its checkpoint');
    else this.deps.log.debug(fields, 'projection runner failed again; retrying from its checkpoint');
  }

  private recovered(): void {
    const failure = this.failure;
    if (!failure) return;
    this.failure = undefined;
    this.deps.log.info(
      { projection: this.name, attempts: failure.attempts, seconds: (Date.now() - failure.since.getTime()) / 1000 },
      'projection runner resumed',
    );
  }

  /**
   * One transaction: the checkpoint's compare-and-set and the projection's writes. A batch the projection
   * writes in one statement (Projection.statement) is that statement with the move as one more step of
   * it: one implicit transaction, one round trip; any other is the move (sent with BEGIN), then `handle`'s
   * writes, then COMMIT. Its commit need not wait for the disk (the move sets that): a read model is
   * derived data, so if PostgreSQL crashes and loses the last few commits, it loses checkpoint and writes
   * together and the runner replays them. Visibility, which read-your-writes waits for, is at commit either way.
   * The statement path maps its publications after the commit: a row `publications` cannot map fails a
   * committed batch (HR001 on the retry, then a restart with `bus.resync`), where `handle` would roll
   * back and park the event. Nothing is lost. It takes the live tables' locks before it blocks on a
   * rebuild swap's checkpoint row, so that swap gives way after its `lock_timeout` and retries.
   */
  private async applyBatch(events: readonly RecordedEvent[], checkpoint: bigint, next: bigint): Promise<void> {
    const { database, projection, bus } = this.deps;
    const notify = database.notices.othersListen(CHECKPOINT_CHANNEL);
    const statement = projection.statement?.(events);
    const publications = await (
      statement
        ? database.pool
            .query(withCheckpointStep(statement.query, projection.name, checkpoint, next, notify))
            .then(({ rows }) => statement.publications(rows))
        : withTransaction(
            database.pool,
            (tx) => projection.handle(events, tx),
            moveCheckpointSql(projection.name, checkpoint, next, notify),
          )
    ).catch((error: unknown) => {
      throw isCheckpointMoved(error) ? new CheckpointMovedError(projection.name) : error;
    });
    this.committed(next);
    if (publications.length > 0) await bus.publish(publications);
  }

  /** Tells this process's read-your-writes waiters at once (other processes by NOTIFY, when one listens). */
  private committed(position: bigint): void {
    this.deps.onCommitted?.(this.name, position);
    this.deps.database.notices.tell(CHECKPOINT_CHANNEL, `${this.name} ${position}`);
  }

  private async analyzeTables(): Promise<void> {
    const { tables } = this.deps.projection;
    if (tables.length === 0) return;
    await this.deps.database.pool
      .query(`ANALYZE ${tables.map((t) => pg.escapeIdentifier(t)).join(', ')}`)
      .catch((error: unknown) => {
        this.deps.log.warn({ err: error, projection: this.name }, 'refreshing table statistics after a replay failed');
      });
  }

  /**
   * Applies a batch; if it keeps failing for its events' fault (isEventsFault), finds the events that
   * fail by applying them one at a time and parks each one that still fails, so one bad event cannot
   * stall the projection for everyone (docs/operations.md). Any other failure goes up to the runner's
   * loop, which retries from the checkpoint.
   */
  private async applyOrPark(events: readonly RecordedEvent[], checkpoint: bigint, last: bigint): Promise<void> {
    const failure = await this.attempt(BATCH_ATTEMPTS, () => this.applyBatch(events, checkpoint, last));
    if (!failure) return;
    this.deps.log.warn(
      { err: failure, projection: this.name, from: String(checkpoint), to: String(last) },
      'a batch keeps failing; applying its events one by one',
    );
    let at = checkpoint;
    for (const event of events) {
      const eventFailure = await this.attempt(EVENT_ATTEMPTS, () => this.applyBatch([event], at, event.position));
      // `stop`: the runner restarts from just before this event and keeps retrying it.
      if (eventFailure && this.deps.onError === 'stop') throw eventFailure;
      if (eventFailure) await this.park(event, at, eventFailure);
      at = event.position;
    }
    if (at !== last) await this.moveCheckpoint(at, last);
  }

  /** Runs `apply` up to `attempts` times with back-off; returns the last failure, or undefined once it succeeds. */
  private async attempt(attempts: number, apply: () => Promise<void>): Promise<Error | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        await apply();
        return undefined;
      } catch (error) {
        // Not the events' fault: the runner restarts from its checkpoint (and competes for the lock again).
        if (!isEventsFault(error) || !this.loop.running) throw error;
        if (attempt >= attempts) return error instanceof Error ? error : new Error(String(error));
        await this.loop.wait(RETRY_BACKOFF_MS * 4 ** (attempt - 1));
      }
    }
  }

  private async park(event: RecordedEvent, checkpoint: bigint, error: Error): Promise<void> {
    const { database, projection, log } = this.deps;
    const recorded = JSON.stringify(event, (_key, value: unknown) =>
      typeof value === 'bigint' ? value.toString() : value,
    );
    await withTransaction(
      database.pool,
      (tx) =>
        tx.query(
          `INSERT INTO projection_parked (projection, position, event_id, event_type, stream_name, event, error, attempts)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (projection, position) DO NOTHING`,
          [
            projection.name,
            event.position.toString(),
            event.id,
            printable(event.type),
            printable(event.streamName),
            recorded,
            printable(error.message),
            EVENT_ATTEMPTS,
          ],
        ),
      moveCheckpointSql(projection.name, checkpoint, event.position, database.notices.othersListen(CHECKPOINT_CHANNEL)),
    );
    this.committed(event.position);
    log.error(
      {
        err: error,
        projection: projection.name,
        position: String(event.position),
        eventId: event.id,
        type: event.type,
      },
      'parked an event the projection cannot apply; `herald projections retry` re-applies it',
    );
  }

  private async moveCheckpoint(checkpoint: bigint, next: bigint): Promise<bigint> {
    const { database, projection } = this.deps;
    await database.pool
      .query(moveCheckpointSql(projection.name, checkpoint, next, database.notices.othersListen(CHECKPOINT_CHANNEL)))
      .catch((error: unknown) => {
        throw isCheckpointMoved(error) ? new CheckpointMovedError(projection.name) : error;
      });
    this.committed(next);
    return next;
  }

  /** The projection's lock (SessionLock): held, it is this runner's to apply. */
  private async acquireLock(): Promise<boolean> {
    if (this.lock) return true;
    const lock = await SessionLock.tryAcquire(
      this.deps.database.clientConfig,
      PROJECTION_LOCK_SPACE,
      this.deps.projection.name,
      () => {
        // The lock went with the connection: stop applying and compete for it again.
        this.lock = undefined;
        void this.subscription?.close();
      },
    );
    if (!lock) return false;
    // Taken over, at start-up too: whoever held it may have died between a commit and its publish.
    this.lock = lock;
    this.owesResync = true;
    return true;
  }

  private async releaseLock(): Promise<void> {
    const lock = this.lock;
    this.lock = undefined;
    await lock?.release();
  }
}

/** Parameterless, so it can share a round trip with BEGIN; the name is escaped, the positions are numbers. */
function moveCheckpointSql(projection: string, from: bigint, to: bigint, notify: boolean): string {
  // Schema-qualified: a rebuild runs with its own schema alone on the search path.
  return `SELECT public.herald_move_checkpoint(${pg.escapeLiteral(projection)}, ${from.toString()}, ${to.toString()}, ${notify})`;
}

/**
 * A projection's batch statement (`WITH …`) with the checkpoint's compare-and-set as its first step: a
 * data-modifying step always runs, and a checkpoint not at `from` fails the whole statement (HR001).
 */
export function withCheckpointStep(
  query: ProjectionStatement['query'],
  projection: string,
  from: bigint,
  to: bigint,
  notify: boolean,
): pg.QueryConfig {
  const withClause = /^\s*WITH\s/i.exec(query.text);
  if (!withClause) throw new Error(`a projection's batch statement must begin with WITH: ${query.name}`);
  const n = query.values.length;
  const step = `herald_checkpoint AS (
    UPDATE public.projection_checkpoints
       SET position = public.herald_checkpoint_step(name, position, $${n + 1}::bigint, $${n + 2}::bigint, $${n + 3}::boolean),
           updated_at = now()
     WHERE name = $${n + 4}::text
    RETURNING position
  ), herald_checkpoint_found AS (
    -- An UPDATE matching no row is no error: with the checkpoint row gone, this step raises HR001 (the
    -- step, called with no position) instead of letting the batch commit with no checkpoint move. A
    -- data-modifying step runs whether or not the main statement reads it; this one inserts nothing.
    INSERT INTO public.projection_checkpoints (name, version, position)
    SELECT $${n + 4}::text, 0, public.herald_checkpoint_step($${n + 4}::text, NULL, $${n + 1}::bigint, $${n + 2}::bigint, false)
     WHERE NOT EXISTS (SELECT FROM herald_checkpoint)
  ), `;
  return {
    name: `${query.name}/checkpoint`,
    text: `WITH ${step}${query.text.slice(withClause[0].length)}`,
    values: [...query.values, from.toString(), to.toString(), notify, projection],
  };
}

/**
 * What parks an event: its own data refused — by its codec (UndecodableEventError) or by PostgreSQL
 * (SQLSTATE classes 22 and 23). A timeout, a deadlock, the database gone, a bug: retried, never parked.
 */
export function isEventsFault(error: unknown): boolean {
  return error instanceof UndecodableEventError || classifyFailure(error) === 'data';
}

function isCheckpointMoved(error: unknown): boolean {
  return (error as { code?: string }).code === CHECKPOINT_MOVED;
}

/** The next batch, already on its way; a failure is kept for whoever awaits it, not reported unhandled. */
function prefetch(batches: AsyncIterator<SubscriptionBatch>): Promise<IteratorResult<SubscriptionBatch>> {
  const next = batches.next();
  next.catch(() => undefined);
  return next;
}

function delay(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms));
}

/** Text PostgreSQL will store: an error message or a name from a bad event may hold NUL and the like. */
function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\ud800-\udfff]/g, '\ufffd').slice(0, 2000);
}

class CheckpointMovedError extends Error {
  constructor(projection: string) {
    super(
      `checkpoint of projection ${projection} was moved by someone else (a rebuild?); resuming from the stored one`,
    );
  }
}

/**
 * Creates the checkpoint row on first run; when the projection's version changed, empties its tables and
 * starts it over from the beginning, in one transaction. Returns the position to resume after.
 */
export function prepareCheckpoint(pool: pg.Pool, projection: Projection): Promise<bigint> {
  return withTransaction(pool, async (tx) => {
    await tx.query(
      'INSERT INTO projection_checkpoints (name, version, position) VALUES ($1, $2, -1) ON CONFLICT (name) DO NOTHING',
      [projection.name, projection.version],
    );
    const { rows } = await tx.query<{ version: number; position: string }>(
      'SELECT version, position FROM projection_checkpoints WHERE name = $1 FOR UPDATE',
      [projection.name],
    );
    const row = rows[0]!;
    if (row.version === projection.version) return BigInt(row.position);
    await resetProjection(tx, projection);
    return -1n;
  });
}

/** Empties the projection's tables and moves its checkpoint to the start (inside the caller's transaction). */
export async function resetProjection(tx: pg.PoolClient, projection: Projection): Promise<void> {
  if (projection.tables.length > 0)
    await tx.query(`TRUNCATE ${projection.tables.map((t) => pg.escapeIdentifier(t)).join(', ')}`);
  await tx.query('UPDATE projection_checkpoints SET position = -1, version = $2, updated_at = now() WHERE name = $1', [
    projection.name,
    projection.version,
  ]);
}

export async function readCheckpoints(pool: pg.Pool): Promise<Map<string, bigint>> {
  const { rows } = await pool.query<{ name: string; position: string }>(
    'SELECT name, position FROM projection_checkpoints',
  );
  return new Map(rows.map((r) => [r.name, BigInt(r.position)]));
}
