import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { inRemovalOrder, isRetirable, removableUpTo, withDeliveriesOf } from '../../domain/retention';
import { exportEvents } from '../analysts/replay';
import type { EventStore } from '../eventStore/eventStore';
import type { Migration } from '../postgres/migrations';
import { withTransaction } from '../postgres/transaction';
import { BackgroundLoop } from '../runtime/backgroundLoop';
import type { Logger } from '../runtime/logger';
import type { Service } from '../runtime/services';
import { positionOfLine, type ArchivedLine, type EventArchive } from './eventArchive';

/**
 * The event store's part of retention (issue 26; docs/operations.md, "Retention"): archive, then remove,
 * the streams the read models' pruning retired.
 *
 * A read model's pruning removes a row once its record ended longer ago than its category's retention
 * (domain/retention.ts) and, in the same statement, queues the row's stream in `retired_streams`
 * (projections/pruning.ts): the end is decided once, by the rules the read models already apply. A pass
 * here takes the queue a batch at a time:
 *  1. claim: in one transaction, move up to `batchSize` queued streams into a batch row with its bound
 *     `upto` — the store's head, but never past a projection's checkpoint (removableUpTo);
 *  2. narrow: a stream with an event past `upto` goes back to the queue (a stream leaves whole or not at all);
 *  3. archive: write the rest's events as replay lines (src/analysts/replay.ts exportEvents) to the archive,
 *     durably, manifests included (src/storage/eventArchive.ts);
 *  4. remove: the store deletes those streams (`removeStreamEvents`: only a stream whose events are all at
 *     or below `upto`; one appended to since goes back to the queue whole); the batch is marked done.
 * A crash anywhere leaves the batch open, and the next pass (this node's or the next leader's) takes the
 * open batch first: not yet archived, it does every step again (the same events give the same files under
 * the same names: no duplicate); archived, only the removal (its files are never rewritten from a store
 * that may already have removed part of the batch). Nothing is deleted that was not archived first (no gap). One pass at a time across nodes
 * and the CLI: an advisory lock.
 */

export const eventRetentionMigrations: readonly Migration[] = [
  {
    id: 'storage/001-retired-streams',
    sql: `
      CREATE TABLE retired_streams (
        stream_name text PRIMARY KEY,
        retired_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX retired_streams_order ON retired_streams (retired_at, stream_name);
      CREATE TABLE event_archive_batches (
        batch_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        streams text[] NOT NULL,
        upto bigint NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now(),
        archived_at timestamptz,
        archived_events bigint,
        removed_at timestamptz,
        removed_events bigint
      );
      CREATE INDEX event_archive_batches_open ON event_archive_batches (batch_id) WHERE removed_at IS NULL;
    `,
  },
  {
    // A pruned delivery's stream waits here until its push's row is pruned; then both retire together
    // (projections/devices.ts deliveryPruning).
    id: 'storage/002-push-delivery-streams',
    sql: `
      CREATE TABLE push_delivery_streams (
        push_id uuid NOT NULL,
        stream_name text NOT NULL,
        PRIMARY KEY (push_id, stream_name)
      );
    `,
  },
  {
    // The archive this database's passes write to (its `archive-id` file): a pass refuses any other.
    id: 'storage/003-archive-identity',
    sql: `
      CREATE TABLE event_archive_identity (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        archive_id text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
];

// Any constant: the same in every process sharing the database (the leader, `herald storage prune`).
const PASS_LOCK = 0x6865_7261_6c65; // "herale"

/**
 * Streams per batch at most, whatever HERALD_RETENTION_BATCH_SIZE (rows, up to 100,000) says: a batch's
 * lines are held in memory and its names go into one export statement.
 */
export const MAX_STREAMS_PER_BATCH = 1000;

interface Batch {
  readonly batchId: bigint;
  readonly streams: readonly string[];
  readonly upto: bigint;
  /** The events archived, once the archive is durable: a batch taken up again is not exported again. */
  readonly archived?: number;
}

export interface BatchReport {
  readonly batchId: string;
  readonly streams: number;
  readonly archived: number;
  readonly removed: number;
  readonly files: number;
}

export interface EventRetentionTerms {
  readonly pool: pg.Pool;
  readonly store: EventStore;
  readonly archive: EventArchive;
  /** Streams per batch (at most MAX_STREAMS_PER_BATCH). */
  readonly batchSize: number;
  /** The projections whose checkpoints bound the removal (a stale row of a projection no longer run does not). */
  readonly projectionNames: readonly string[];
  readonly onBatch?: (report: BatchReport) => void;
}

/** The event store's retention pass as the leader's background work, after each read model pass. */
export class EventRetention implements Service {
  readonly name = 'event-retention';
  private readonly loop = new BackgroundLoop(() => this.run());

  constructor(private readonly deps: EventRetentionTerms & { readonly log: Logger; readonly intervalMs: number }) {}

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  runOnce(shouldGoOn: () => boolean = () => true): Promise<BatchReport[] | undefined> {
    return eventRetentionPass(this.deps, shouldGoOn);
  }

  private async run(): Promise<void> {
    const { log } = this.deps;
    while (this.loop.running) {
      try {
        const batches = await this.runOnce(() => this.loop.running);
        if (batches && batches.length > 0)
          log.info(
            {
              batches: batches.length,
              archived: batches.reduce((n, b) => n + b.archived, 0),
              removed: batches.reduce((n, b) => n + b.removed, 0),
            },
            'retention: archived and removed retired streams from the event store',
          );
      } catch (error) {
        // The archive's disk full, the store gone: the open batch is taken up again at the next pass. An
        // archive that is not the database's fails every pass until an operator acts: an error, not a warning.
        if (error instanceof ArchiveMismatchError)
          log.error({ err: error }, 'retention: the event store pass refused the archive; nothing removed until fixed');
        else log.warn({ err: error }, 'retention: an event store pass failed; trying again at the next one');
      }
      await this.loop.wait(this.deps.intervalMs);
    }
  }
}

/**
 * One pass: the open batch, if a pass stopped before finishing it, then new batches until the queue is
 * empty or `shouldGoOn` says stop (checked before each batch). Undefined when another pass holds the lock.
 * The store must be able to remove events (`removeStreamEvents`).
 */
export async function eventRetentionPass(
  terms: EventRetentionTerms,
  shouldGoOn: () => boolean = () => true,
): Promise<BatchReport[] | undefined> {
  const { pool, store } = terms;
  if (!store.removeStreamEvents) return [];
  const lockHolder = await pool.connect();
  let failure: Error | undefined;
  try {
    const { rows } = await lockHolder.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
      PASS_LOCK,
    ]);
    if (!rows[0]!.locked) return undefined;
    try {
      // What was retired before the pass began: a finite set, so the pass ends while streams keep being
      // retired, and a stream it retires again (events past its bound) waits for the next pass.
      const started = (await pool.query<{ at: Date }>('SELECT clock_timestamp() AS at')).rows[0]!.at;
      const reports: BatchReport[] = [];
      let checked = false;
      while (shouldGoOn()) {
        const batch = (await openBatch(pool)) ?? (await claimBatch(terms, started));
        if (!batch) break;
        if (!checked) await checkArchiveIdentity(pool, terms.archive);
        checked = true;
        const report = await completeBatch(terms, batch);
        reports.push(report);
        terms.onBatch?.(report);
      }
      if (reports.some((r) => r.removed > 0)) await store.reclaimSpace?.();
      return reports;
    } finally {
      await lockHolder.query('SELECT pg_advisory_unlock($1)', [PASS_LOCK]);
    }
  } catch (error) {
    failure = error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    lockHolder.release(failure);
  }
}

export class ArchiveMismatchError extends Error {
  override readonly name = 'ArchiveMismatchError';
}

/**
 * The archive must be the one this database's passes have always written to: batch numbers are the
 * database's, so another directory (a node's own after a leader change, a fresh volume) would hold a
 * batch's events on one node and not the next — a gap once removed — and a database restored to an older
 * batch number would overwrite archived files. At its first use the archive gets an id (`archive-id`),
 * recorded in the database; a pass then refuses, before anything is archived or removed, when they differ.
 */
async function checkArchiveIdentity(pool: pg.Pool, archive: EventArchive): Promise<void> {
  const recorded = async () =>
    (await pool.query<{ archive_id: string }>('SELECT archive_id FROM event_archive_identity')).rows[0]?.archive_id;
  let expected = await recorded();
  let found = await archive.id();
  // Nothing archived yet: a first use that stopped between writing the id file and recording it (or the
  // other way round) is completed, not refused forever — no batch's events can be on the wrong side yet.
  const nothingArchived = async () =>
    (await pool.query('SELECT 1 FROM event_archive_batches WHERE archived_at IS NOT NULL LIMIT 1')).rowCount === 0;
  const firstUse = expected === undefined && found === undefined;
  if (firstUse || ((expected === undefined || found === undefined) && (await nothingArchived()))) {
    if (found === undefined) await archive.createId(expected ?? randomUUID());
    found = await archive.id();
    await pool.query('INSERT INTO event_archive_identity (archive_id) VALUES ($1) ON CONFLICT DO NOTHING', [found]);
    expected = await recorded();
  }
  if (expected !== found)
    throw new ArchiveMismatchError(
      `the archive at ${archive.directory} (id ${found ?? 'none'}) is not this database's (id ${expected ?? 'none'}): ` +
        'nothing was archived or removed; point HERALD_ARCHIVE_DIR at the archive this database uses (docs/operations.md, "Retention")',
    );
}

/**
 * Holds retention's event store passes off until the returned release is called: a rebuild, or a replay
 * or rebuild reading the archive with the store, reads the whole history, and a pass between its reads
 * would remove events it has not read yet (and archive them where it already looked). A shared lock: such
 * readers run side by side; a pass meanwhile skips (its try-lock fails; the next one runs); one running
 * is waited for.
 */
export async function holdRetentionPasses(pool: pg.Pool): Promise<() => Promise<void>> {
  const holder = await pool.connect();
  try {
    await holder.query('SELECT pg_advisory_lock_shared($1)', [PASS_LOCK]);
  } catch (error) {
    holder.release(error instanceof Error ? error : true);
    throw error;
  }
  return async () => {
    let failure: Error | undefined;
    try {
      await holder.query('SELECT pg_advisory_unlock_shared($1)', [PASS_LOCK]);
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
    } finally {
      holder.release(failure);
    }
  };
}

async function openBatch(pool: pg.Pool): Promise<Batch | undefined> {
  const { rows } = await pool.query<{ batch_id: string; streams: string[]; upto: string; archived: string | null }>(
    `SELECT batch_id, streams, upto, CASE WHEN archived_at IS NOT NULL THEN archived_events END AS archived
       FROM event_archive_batches WHERE removed_at IS NULL ORDER BY batch_id LIMIT 1`,
  );
  const row = rows[0];
  return (
    row && {
      batchId: BigInt(row.batch_id),
      streams: row.streams,
      upto: BigInt(row.upto),
      ...(row.archived !== null && { archived: Number(row.archived) }),
    }
  );
}

async function claimBatch(terms: EventRetentionTerms, retiredBefore: Date): Promise<Batch | undefined> {
  const { pool, store, batchSize, projectionNames } = terms;
  // The head first, then the checkpoints (which never pass it): the bound is one the projections reached.
  const head = await store.headPosition();
  const checkpoints = await pool.query<{ position: string }>(
    'SELECT position FROM projection_checkpoints WHERE name = ANY ($1::text[])',
    [projectionNames],
  );
  const upto = removableUpTo(
    head,
    checkpoints.rows.map((r) => BigInt(r.position)),
  );
  if (upto < 0n) return undefined;
  return withTransaction(pool, async (tx) => {
    const { rows } = await tx.query<{ stream_name: string }>(
      `DELETE FROM retired_streams WHERE stream_name IN (
         SELECT stream_name FROM retired_streams WHERE retired_at < $2
          ORDER BY retired_at, starts_with(stream_name, 'delivery-'), stream_name LIMIT $1 FOR UPDATE SKIP LOCKED)
       RETURNING stream_name`,
      [Math.min(batchSize, MAX_STREAMS_PER_BATCH), retiredBefore],
    );
    // Only the categories retention removes (domain/retention.ts): anything else queued stays in the store.
    const streams = inRemovalOrder(rows.map((r) => r.stream_name).filter(isRetirable));
    if (rows.length === 0) return undefined;
    const batch = await tx.query<{ batch_id: string }>(
      'INSERT INTO event_archive_batches (streams, upto) VALUES ($1, $2) RETURNING batch_id',
      [streams, upto.toString()],
    );
    return { batchId: BigInt(batch.rows[0]!.batch_id), streams, upto };
  });
}

async function completeBatch(terms: EventRetentionTerms, claimed: Batch): Promise<BatchReport> {
  const { pool, store } = terms;
  // Archived already (a pass stopped after the archive, or during or after the removal): exported again,
  // the streams already removed would read empty, and the batch's files be replaced by fewer lines.
  const { batch, archived, files } =
    claimed.archived === undefined
      ? await archiveBatch(terms, claimed)
      : { batch: claimed, archived: claimed.archived, files: 0 };
  const { removed, left } = await store.removeStreamEvents!(batch.streams, batch.upto);
  await withTransaction(pool, async (tx) => {
    // Events appended after the bound since the batch was narrowed: the stream stayed whole (its archived
    // copies are read once, the store's first), and is retired again for a later pass.
    if (left.length > 0)
      await tx.query(
        'INSERT INTO retired_streams (stream_name) SELECT unnest($1::text[]) ON CONFLICT (stream_name) DO NOTHING',
        [left],
      );
    // The names are not kept: the archive holds the events, and the row stays small.
    await tx.query(
      `UPDATE event_archive_batches SET removed_at = now(), removed_events = $2, streams = '{}' WHERE batch_id = $1`,
      [batch.batchId.toString(), removed],
    );
  });
  return { batchId: batch.batchId.toString(), streams: batch.streams.length, archived, removed, files };
}

/** Steps 2 and 3: the batch narrowed to whole streams, their events archived durably, and that recorded. */
async function archiveBatch(
  terms: EventRetentionTerms,
  claimed: Batch,
): Promise<{ batch: Batch; archived: number; files: number }> {
  const { pool, store, archive } = terms;
  const { batch, lines } = await wholeStreamsOnly(pool, store, claimed);
  const files = await archive.write(batch.batchId, lines);
  await pool.query('UPDATE event_archive_batches SET archived_at = now(), archived_events = $2 WHERE batch_id = $1', [
    batch.batchId.toString(),
    lines.length,
  ]);
  return { batch, archived: lines.length, files: files.length };
}

/**
 * A stream leaves whole or not at all: one with an event past the bound (a projection lagging, an event
 * appended since it was retired) goes back to the queue, before anything is archived, so neither the
 * archive nor the removal ever takes a stream's opening events and leaves its tail (loaded, the tail
 * would be a different aggregate). Returns the batch narrowed to the rest, recorded, and their lines.
 */
async function wholeStreamsOnly(
  pool: pg.Pool,
  store: EventStore,
  batch: Batch,
): Promise<{ batch: Batch; lines: ArchivedLine[] }> {
  if (batch.streams.length === 0) return { batch, lines: [] };
  const all = await streamLines(store, batch.streams, await store.headPosition());
  const late = withDeliveriesOf(
    new Set(all.filter((l) => l.position > batch.upto).map((l) => l.stream)),
    batch.streams,
  );
  const lines = all.filter((l) => !late.has(l.stream));
  if (late.size === 0) return { batch, lines };
  const streams = batch.streams.filter((name) => !late.has(name));
  await withTransaction(pool, async (tx) => {
    await tx.query(
      'INSERT INTO retired_streams (stream_name) SELECT unnest($1::text[]) ON CONFLICT (stream_name) DO NOTHING',
      [[...late]],
    );
    await tx.query('UPDATE event_archive_batches SET streams = $2 WHERE batch_id = $1', [
      batch.batchId.toString(),
      streams,
    ]);
  });
  return { batch: { ...batch, streams }, lines };
}

/** The streams' events up to `head`, as replay lines in position order, each with its stream. */
async function streamLines(
  store: EventStore,
  streams: readonly string[],
  head: bigint,
): Promise<(ArchivedLine & { readonly stream: string })[]> {
  const decoder = new TextDecoder();
  let text = '';
  await exportEvents(store, { streams }, head, async (chunk) => {
    text += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
  });
  text += decoder.decode();
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => ({ position: positionOfLine(line), line, stream: (JSON.parse(line) as { stream: string }).stream }));
}

/** What the queue holds: streams retired and not yet removed from the store (herald storage status). */
export async function retiredStreamsQueued(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM retired_streams)
          + coalesce((SELECT sum(cardinality(streams)) FROM event_archive_batches WHERE removed_at IS NULL), 0) AS n`,
  );
  return Number(rows[0]!.n);
}
