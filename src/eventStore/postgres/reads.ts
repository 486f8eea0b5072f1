import type pg from 'pg';
import { prepared } from '../../postgres/database';
import {
  DEFAULT_READ_COUNT,
  InvalidPositionError,
  StreamNotFoundError,
  type EventFilter,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
} from '../eventStore';
import { toStoreError } from './storeError';

/**
 * Reads of the events table. The global order (`readAll`, catch-up, subscriptions) must never skip: a
 * row with a lower position committed after a reader passed it would be lost to that reader. Every
 * transaction that writes events holds the append lock (herald_append_batch, and a trigger for any other
 * writer: schema/004) from before its first position until it ends, so positions commit in order and a
 * snapshot shows a prefix of them: a plain read by position is exact (see docs/architecture.md).
 */

interface EventRow {
  position: string;
  event_id: string;
  stream_name: string;
  revision: string;
  event_type: string;
  data: unknown;
  metadata: Record<string, unknown>;
  created_at: Date;
}

const EVENT_COLUMNS = 'position, event_id, stream_name, revision, event_type, data, metadata, created_at';

export async function readStream(
  pool: pg.Pool,
  streamName: string,
  options: ReadStreamOptions = {},
): Promise<RecordedEvent[]> {
  const backwards = options.direction === 'backwards';
  const from = options.fromRevision ?? (backwards ? null : 0n);
  const read = () =>
    query<EventRow>(
      pool,
      `SELECT ${EVENT_COLUMNS} FROM events
        WHERE stream_name = $1 AND ($2::bigint IS NULL OR revision ${backwards ? '<=' : '>='} $2)
        ORDER BY revision ${backwards ? 'DESC' : 'ASC'} LIMIT $3`,
      [streamName, from?.toString() ?? null, options.maxCount ?? Number.MAX_SAFE_INTEGER],
    );
  const rows = await read();
  if (rows.length > 0) return rows.map(toRecordedEvent);
  const exists = await query(pool, 'SELECT 1 FROM streams WHERE stream_name = $1', [streamName]);
  if (exists.length === 0) throw new StreamNotFoundError(streamName);
  // The stream's first append may have committed between the two statements (its `streams` row and its
  // events commit together): read again, in a snapshot that sees it, before it counts as removed.
  return (await read()).map(toRecordedEvent);
}

/**
 * Positions are bigint ids, so any number would do here; it is refused as EventStoreDB refuses it. A
 * position retention may have removed (at or below the removal mark: schema/005) is taken: a checkpoint
 * or cursor held on an event that is gone still says where its reader stands.
 */
export async function checkPosition(pool: pg.Pool, after: bigint | undefined): Promise<void> {
  if (after === undefined || after < 0n) return;
  const found = await query(
    pool,
    `SELECT 1 FROM events WHERE position = $1
     UNION ALL SELECT 1 FROM events_removed WHERE $1 <= upto LIMIT 1`,
    [after.toString()],
  );
  if (found.length === 0) throw new InvalidPositionError(after);
}

/**
 * The events after (or before) `options.after`, in position order; `after` is not checked. A named
 * statement per variant (the live tail's read runs on every notification): the position bound is a clause
 * only when given, so the generic plan keeps it in the index condition (`$1 IS NULL OR position > $1`
 * would be a filter over the whole table).
 */
export async function readGlobal(pool: pg.Pool, options: ReadAllOptions): Promise<RecordedEvent[]> {
  const backwards = options.direction === 'backwards';
  const values: unknown[] = [options.maxCount ?? DEFAULT_READ_COUNT];
  const bound =
    options.after !== undefined && options.after >= 0n
      ? `AND position ${backwards ? '<' : '>'} $${values.push(options.after.toString())}`
      : '';
  const filter = filterSql(options.filter, values.length + 1);
  values.push(...filter.params);
  const rows = await query<EventRow>(
    pool,
    prepared(
      `SELECT ${EVENT_COLUMNS} FROM events
        WHERE true ${bound} ${filter.sql}
        ORDER BY position ${backwards ? 'DESC' : 'ASC'} LIMIT $1`,
      values,
    ),
  );
  return rows.map(toRecordedEvent);
}

function filterSql(filter: EventFilter | undefined, firstParam: number): { sql: string; params: unknown[] } {
  // System streams ($…) are never returned; PostgreSQL has none, but an import might.
  let sql = `AND stream_name NOT LIKE '$%' AND event_type NOT LIKE '$%'`;
  const params: unknown[] = [];
  if (filter?.streamNamePrefixes) {
    params.push(filter.streamNamePrefixes.map(likePrefix));
    sql += ` AND stream_name LIKE ANY ($${firstParam + params.length - 1}::text[])`;
  }
  if (filter?.eventTypePrefixes) {
    params.push(filter.eventTypePrefixes.map(likePrefix));
    sql += ` AND event_type LIKE ANY ($${firstParam + params.length - 1}::text[])`;
  }
  return { sql, params };
}

/** filterSql's rule on an event in memory (the live tail's, shared by subscriptions with different filters). */
export function matchesFilter(event: RecordedEvent, filter: EventFilter | undefined): boolean {
  if (event.streamName.startsWith('$') || event.type.startsWith('$')) return false;
  if (filter?.streamNamePrefixes && !filter.streamNamePrefixes.some((p) => event.streamName.startsWith(p)))
    return false;
  return !filter?.eventTypePrefixes || filter.eventTypePrefixes.some((p) => event.type.startsWith(p));
}

function likePrefix(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`) + '%';
}

function toRecordedEvent(row: EventRow): RecordedEvent {
  return {
    id: row.event_id,
    streamName: row.stream_name,
    revision: BigInt(row.revision),
    position: BigInt(row.position),
    type: row.event_type,
    data: row.data,
    metadata: row.metadata,
    createdAt: row.created_at,
  };
}

async function query<Row extends pg.QueryResultRow>(
  pool: pg.Pool,
  sql: string | pg.QueryConfig,
  params?: unknown[],
): Promise<Row[]> {
  try {
    return (await pool.query<Row>(sql, params)).rows;
  } catch (error) {
    throw toStoreError(error);
  }
}
