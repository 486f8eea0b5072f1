import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { ExportOutput, ExportProgress, ExportSelection } from '../eventStore';

/**
 * The PostgreSQL store's `exportJsonLines` (`herald replay`'s fast path): PostgreSQL writes the lines
 * itself. Parsing each event into JavaScript and serializing it again would cost more than everything
 * else (bench/replay.ts: ~57k events/s that way); here each range of positions is one
 * `COPY (SELECT <line> …) TO STDOUT`, whose bytes go to the output untouched, and two ranges are read at
 * once (two server processes: formatting is the server's work now). The line is src/analysts/replay.ts's — same keys, same order — with `data` and
 * `metadata` as jsonb prints them.
 *
 * Appends take one lock in turn (schema/001-events.ts), so every position up to the head read at the
 * start is committed: the ranges are a consistent snapshot, and events appended meanwhile are left for the
 * next export.
 */

/** Positions per COPY: a range is held in memory until the ranges before it are written. */
const RANGE = 10_000n;
const RANGES_AT_ONCE = 2;

// The replay line (src/analysts/replay.ts eventRecord): strings through to_json, so they are escaped as
// JSON; time in UTC to the millisecond, truncated as JavaScript's Date is.
const LINE_SQL = `'{"position":"' || position || '","stream":' || to_json(stream_name)::text || ',"revision":"' || revision
  || '","type":' || to_json(event_type)::text || ',"time":"' || to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  || '","data":' || data::text || ',"metadata":' || metadata::text || '}'`;

// CSV with a quote and a delimiter that JSON text never holds raw (control characters are escaped in it):
// COPY then writes each line as it is, where its text format would escape every backslash.
const COPY_OPTIONS = `(FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')`;

/** As src/analysts/replay.ts's `replay`: every event up to `head` that `filter` selects, in order, through `write`. */
export async function exportJsonLines(
  pool: pg.Pool,
  filter: ExportSelection,
  head: bigint,
  write: ExportOutput,
  onProgress?: (progress: ExportProgress) => void,
): Promise<ExportProgress> {
  const last = typeof filter.to === 'bigint' && filter.to < head ? filter.to : head;
  const first = typeof filter.from === 'bigint' ? filter.from : 0n;
  const ranges: Array<{ from: bigint; to: bigint }> = [];
  // A list of streams (a batch retention archives) is read by its streams' index, in one range.
  if (filter.streams) ranges.push({ from: first, to: last });
  else
    for (let from = first; from <= last; from += RANGE)
      ranges.push({ from, to: from + RANGE - 1n < last ? from + RANGE - 1n : last });

  const conditions = whereOf(filter);
  const read = (range: { from: bigint; to: bigint }) => {
    const copied = copyRange(pool, `position BETWEEN ${range.from} AND ${range.to}${conditions}`);
    copied.catch(() => undefined); // awaited in order below; not unhandled while an earlier range fails
    return copied;
  };
  const reading = ranges.slice(0, RANGES_AT_ONCE).map(read);
  let nextRange = reading.length;
  let written = 0;
  let position = first - 1n;
  for (const range of ranges) {
    const copied = await reading.shift()!;
    if (nextRange < ranges.length) reading.push(read(ranges[nextRange++]!));
    for (const chunk of copied.chunks) await write(chunk);
    written += copied.rows;
    position = range.to;
    onProgress?.({ written, position });
  }
  return { written, position };
}

async function copyRange(pool: pg.Pool, where: string): Promise<{ chunks: Uint8Array[]; rows: number }> {
  const client = await pool.connect();
  try {
    const stream = client.query(
      copyTo(`COPY (SELECT ${LINE_SQL} FROM events WHERE ${where} ORDER BY position) TO STDOUT WITH ${COPY_OPTIONS}`),
    );
    const chunks: Uint8Array[] = [];
    for await (const chunk of stream) chunks.push(chunk as Uint8Array);
    return { chunks, rows: stream.rowCount };
  } finally {
    client.release();
  }
}

/** The filter as SQL (COPY takes no parameters: values are escaped literals). Position bounds are the ranges'. */
function whereOf(filter: ExportSelection): string {
  // System streams ($…) are never replayed, as the store port never returns them.
  let sql = ` AND stream_name NOT LIKE '$%' AND event_type NOT LIKE '$%'`;
  if (filter.types && filter.types.length > 0)
    sql += ` AND event_type IN (${filter.types.map(pg.escapeLiteral).join(', ')})`;
  if (filter.streams) sql += ` AND stream_name IN (${filter.streams.map(pg.escapeLiteral).join(', ') || 'NULL'})`;
  if (filter.streamPrefix !== undefined)
    sql += ` AND starts_with(stream_name, ${pg.escapeLiteral(filter.streamPrefix)})`;
  if (filter.appId !== undefined) sql += ` AND metadata->>'appId' = ${pg.escapeLiteral(filter.appId)}`;
  // Times compare at the millisecond, as the lines print them and as src/analysts/replay.ts compares Dates.
  if (filter.from instanceof Date)
    sql += ` AND date_trunc('milliseconds', created_at) >= ${pg.escapeLiteral(filter.from.toISOString())}::timestamptz`;
  if (filter.to instanceof Date)
    sql += ` AND date_trunc('milliseconds', created_at) <= ${pg.escapeLiteral(filter.to.toISOString())}::timestamptz`;
  return sql;
}
