/**
 * SQL on the event store's tables for tools that load or inspect them in bulk beside the port — the
 * benchmarks' set-based generators, which write millions of events faster than appends could. Here, so the
 * tables' shape has one home (schema/): a tool that needs more of them adds it here. Herald itself
 * reads and writes only through the adapter.
 */

/** The newest position appended, settled or not, as a scalar subquery (NULL for an empty store). */
export const NEWEST_POSITION_SQL = '(SELECT max(position) FROM events)';

/**
 * Inserts generated events and moves their streams' heads, in one statement. `withClauses` are a WITH
 * list (without WITH) that defines `e`: rows of (event_id, stream_name, revision, event_type, data,
 * metadata) and whatever columns `orderBy` names, which orders their positions. Revisions are the
 * caller's: each stream's must run 0, 1, … in position order. Appends' checks and NOTIFY are bypassed:
 * load a database no herald is using.
 */
export function insertGeneratedEventsSql(withClauses: string, orderBy: string): string {
  return `
      WITH ${withClauses}, inserted AS (
        INSERT INTO events (event_id, stream_name, revision, event_type, data, metadata)
        SELECT event_id, stream_name, revision, event_type, data, metadata FROM e ORDER BY ${orderBy}
        RETURNING stream_name, revision
      )
      INSERT INTO streams (stream_name, revision) SELECT stream_name, max(revision) FROM inserted GROUP BY stream_name
      ON CONFLICT (stream_name) DO UPDATE SET revision = greatest(streams.revision, excluded.revision)`;
}

/** Events per type, for types LIKE $1: rows (event_type, n). */
export const EVENT_COUNTS_BY_TYPE_SQL =
  'SELECT event_type, count(*) AS n FROM events WHERE event_type LIKE $1 GROUP BY 1 ORDER BY 1';

/**
 * The events of the streams `streamNamesSql` (a query of names) selects, by stream then position, each
 * with its stream's head (`streams.revision`): rows (stream_name, revision, event_type, data, metadata, head).
 */
export const streamsWithHeadsSql = (streamNamesSql: string): string =>
  `SELECT e.stream_name, e.revision, e.event_type, e.data, e.metadata, s.revision AS head
     FROM events e JOIN streams s USING (stream_name)
    WHERE e.stream_name IN (${streamNamesSql})
    ORDER BY e.stream_name, e.position`;

/** As a store that has been running a while would be. */
export const VACUUM_EVENT_TABLES_SQL = 'VACUUM (ANALYZE) events, streams';

/**
 * A page of every column in position order after $1, $2 rows, as the adapter's reads take them (without
 * their settled rule: for a store nothing appends to). `parsed`: data and metadata as JSON values, as
 * the pg client parses them; otherwise as text.
 */
export const eventPageSql = (parsed: boolean): string =>
  `SELECT position, event_id, stream_name, revision, event_type, ${parsed ? 'data, metadata' : 'data::text, metadata::text'}, created_at
     FROM events WHERE position > $1 ORDER BY position LIMIT $2`;

/**
 * Events per stream prefix (`message`, `rtio-report`: a stream name up to its id), for herald storage
 * status: rows (prefix, events, bytes, oldest). Reads the whole table once; bytes are the rows' own
 * sizes, without indexes.
 */
export const EVENT_SIZES_BY_PREFIX_SQL = `
  SELECT CASE WHEN stream_name LIKE 'rtio-%' THEN substring(stream_name FROM '^rtio-[a-z]+')
              ELSE split_part(stream_name, '-', 1) END AS prefix,
         count(*)::bigint AS events, sum(pg_column_size(e.*))::bigint AS bytes, min(position) AS oldest
    FROM events e GROUP BY 1 ORDER BY 1 LIMIT 100`; // herald names streams with a dozen prefixes: a bound all the same

/** The event store's tables with their indexes, and the oldest position kept: one row (bytes, oldest). */
export const EVENT_TABLES_SIZE_SQL = `
  SELECT (pg_total_relation_size('events') + pg_total_relation_size('streams'))::bigint AS bytes,
         (SELECT min(position) FROM events) AS oldest`;

/**
 * Events of the streams retention retired and has not removed yet (the queue, src/storage/eventRetention.ts):
 * one row (n). An index lookup per queued stream.
 */
export const EVENTS_OF_RETIRED_STREAMS_SQL = `
  SELECT count(*)::bigint AS n FROM events
   WHERE stream_name IN (SELECT stream_name FROM retired_streams
                         UNION ALL SELECT unnest(streams) FROM event_archive_batches WHERE removed_at IS NULL)`;
