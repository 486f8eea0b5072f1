import type pg from 'pg';
import { withTransaction } from '../../postgres/transaction';
import type { StreamRemoval } from '../eventStore';
import { toStoreError } from './storeError';

/**
 * The PostgreSQL store's `removeStreamEvents` (retention, after the archive: src/storage/eventRetention.ts).
 * Per-stream deletes, not dropped partitions: the streams retention retires are scattered through every
 * position range (a message kept forever sits beside thousands that expired), so a partition could only be
 * dropped after moving what must stay out of it — a copy of the kept rows, as costly as deleting the others,
 * and a table rewrite readers would see (docs/operations.md, "Retention", measured).
 *
 * One transaction per batch of streams: the rows go, their `streams` rows (so a removed stream is no stream
 * at all: it reads as never written, and `no_stream` may create it again — docs/operations.md, "Retention"),
 * and the removal mark move together. The streams' heads are locked first, skipping any an append holds
 * (it stays whole, and is retired again): an append to a stream being removed waits for the removal and
 * then finds no head (an expected revision conflicts; `no_stream` starts the stream anew, its old events
 * gone). Readers never wait (MVCC); other appends neither. A catch-up reader past these positions is
 * unaffected, one before them simply never sees them — and a retired stream's events are only removed up to
 * every projection's checkpoint (domain/retention.ts removableUpTo).
 */
export async function removeStreamEvents(
  pool: pg.Pool,
  streams: readonly string[],
  upto: bigint,
): Promise<StreamRemoval> {
  if (streams.length === 0) return { removed: 0, left: [] };
  try {
    return await withTransaction(pool, async (tx) => {
      const locked = (
        await tx.query<{ stream_name: string }>(
          'SELECT stream_name FROM streams WHERE stream_name = ANY ($1::text[]) ORDER BY stream_name FOR UPDATE SKIP LOCKED',
          [streams],
        )
      ).rows.map((r) => r.stream_name);
      // A stream leaves whole or not at all: one with an event past the bound stays, every event of it.
      const { rowCount } = await tx.query(
        `DELETE FROM events WHERE stream_name = ANY ($1::text[]) AND stream_name NOT IN (
           SELECT stream_name FROM events WHERE stream_name = ANY ($1::text[]) AND position > $2)`,
        [locked, upto.toString()],
      );
      const removed = rowCount ?? 0;
      await tx.query(
        `DELETE FROM streams s WHERE s.stream_name = ANY ($1::text[])
           AND NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_name = s.stream_name)`,
        [locked],
      );
      await tx.query(
        `INSERT INTO events_removed (upto, events) VALUES ($1, $2)
         ON CONFLICT (only_row) DO UPDATE SET upto = greatest(events_removed.upto, excluded.upto),
           events = events_removed.events + excluded.events`,
        [upto.toString(), removed],
      );
      const left = await tx.query<{ stream_name: string }>(
        'SELECT DISTINCT stream_name FROM events WHERE stream_name = ANY ($1::text[])',
        [streams],
      );
      return { removed, left: left.rows.map((r) => r.stream_name) };
    });
  } catch (error) {
    throw toStoreError(error);
  }
}
