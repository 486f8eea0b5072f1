import type { Pool } from 'pg';
import type { RetentionCategory } from '../domain/retention';
import { prepared } from '../src/postgres/database';
import type { Prunable } from '../src/storage/retention';

/**
 * A read model table's pruning by its key (src/storage/retention.ts): rows matching `removable` (SQL over
 * the table's columns, `$1` the cutoff) are deleted, `orderBy` first, at most `$2` per statement. One
 * statement is one short transaction; rows another transaction holds are skipped (SKIP LOCKED), so a
 * projection applying an event never waits on a pass, and the pass never waits on it. The same statement
 * retires each removed row's `stream` (SQL over its columns) for the event store's retention
 * (src/storage/eventRetention.ts): a row is never pruned without its stream being queued.
 */
export function keyedPruning(
  pool: Pool,
  spec: {
    readonly table: string;
    readonly category: RetentionCategory;
    /** The primary key's columns. */
    readonly key: string;
    readonly removable: string;
    readonly orderBy: string;
    /**
     * The row's stream, as SQL over its columns (`'email-' || email_id`); none for a table whose streams
     * the event store keeps (domain/retention.ts, isRetirable).
     */
    readonly stream?: string;
    /**
     * What becomes of the removed rows' streams: top-level CTEs after `gone` (its `stream_name` and the
     * key's columns); `retired AS (RETIRE_GONE_STREAMS)` unless said.
     */
    readonly retire?: string;
  },
): Prunable {
  const { table, key, removable, orderBy, stream } = spec;
  const count = `SELECT count(*)::int AS n FROM ${table} WHERE ${removable}`;
  const prune = `WITH gone AS (
                   DELETE FROM ${table} WHERE (${key}) IN (
                     SELECT ${key} FROM ${table} WHERE ${removable} ORDER BY ${orderBy} LIMIT $2 FOR UPDATE SKIP LOCKED)
                   RETURNING ${stream === undefined ? key : `${key}, ${stream} AS stream_name`}
                 )${stream === undefined ? '' : `, ${spec.retire ?? `retired AS (${RETIRE_GONE_STREAMS})`}`}
                 SELECT count(*)::int AS n FROM gone`;
  return {
    table,
    category: spec.category,
    async countRemovable(cutoff) {
      return (await pool.query<{ n: number }>(prepared(count, [cutoff]))).rows[0]!.n;
    },
    async prune(cutoff, limit) {
      return (await pool.query<{ n: number }>(prepared(prune, [cutoff, limit]))).rows[0]!.n;
    },
  };
}

/**
 * Queues the streams of the rows a pruning statement removed (a CTE `gone` with a `stream_name` column)
 * for the event store's retention. Schema-qualified: a rebuild prunes its fresh tables with only its own
 * schema on the search path, and what it prunes is retired alike (already queued or removed: nothing).
 */
export const RETIRE_GONE_STREAMS = `INSERT INTO public.retired_streams (stream_name)
  SELECT stream_name FROM gone ON CONFLICT (stream_name) DO NOTHING`;

/**
 * `set_cutoffs(app_id, cutoff)`: each app of `table`'s rows (those `where` holds for) with a cutoff, for an
 * AppPrunable (AppCutoffs: `$1` the apps that set something, `$3` their cutoffs, null: forever; `$4` every
 * other app's). Pruning per app with its own cutoff walks only that app's due rows, never those other
 * apps keep. The other apps are read from `table`'s `(app_id, …)` index, a step per app (a skip scan),
 * and only when the default is not forever.
 */
export function appCutoffs(table: string, where: string): string {
  return `WITH RECURSIVE present(app_id) AS (
      (SELECT app_id FROM ${table} WHERE ${where} AND $4::timestamptz IS NOT NULL ORDER BY app_id LIMIT 1)
      UNION ALL
      SELECT (SELECT t.app_id FROM ${table} t WHERE ${where} AND t.app_id > p.app_id ORDER BY t.app_id LIMIT 1)
        FROM present p WHERE p.app_id IS NOT NULL
    ), set_cutoffs AS (
      SELECT a.app_id, CASE WHEN s.app_id IS NULL THEN $4::timestamptz ELSE s.cutoff END AS cutoff
        FROM (SELECT app_id FROM present WHERE app_id IS NOT NULL UNION SELECT unnest($1::text[])) AS a(app_id)
        LEFT JOIN unnest($1::text[], $3::timestamptz[]) AS s(app_id, cutoff) ON s.app_id = a.app_id
       WHERE CASE WHEN s.app_id IS NULL THEN $4::timestamptz ELSE s.cutoff END IS NOT NULL
    )`;
}
