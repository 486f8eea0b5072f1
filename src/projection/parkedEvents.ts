import type pg from 'pg';
import type { RecordedEvent } from '../eventStore/eventStore';
import { upcastEvent } from '../eventStore/upcastingEventStore';
import { withTransaction } from '../postgres/transaction';
import type { Projection } from './projection';

/**
 * Events a runner parked (projection_parked): one its projection kept failing on, set aside so the
 * events after it were still projected. `herald projections status` counts them and shows the latest,
 * `/readyz` shows them, `herald projections retry NAME` re-applies them once the cause is fixed
 * (docs/operations.md).
 */

export async function parkedCounts(pool: pg.Pool): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ projection: string; parked: number }>(
    'SELECT projection, count(*)::int AS parked FROM projection_parked GROUP BY projection',
  );
  return new Map(rows.map((r) => [r.projection, r.parked]));
}

/** A projection's most recently parked event: where, its type, the error of its latest attempt, when it was parked. */
export interface LastParked {
  readonly position: string;
  readonly eventType: string;
  readonly error: string;
  readonly parkedAt: string;
}

/** Each projection's most recently parked event; a retry that fails again replaces the error, not the time. */
export async function lastParked(pool: pg.Pool): Promise<Map<string, LastParked>> {
  const { rows } = await pool.query<{
    projection: string;
    position: string;
    event_type: string;
    error: string;
    parked_at: Date;
  }>(
    `SELECT DISTINCT ON (projection) projection, position::text, event_type, error, parked_at
       FROM projection_parked ORDER BY projection, parked_at DESC, position DESC`,
  );
  return new Map(
    rows.map((r) => [
      r.projection,
      { position: r.position, eventType: r.event_type, error: r.error, parkedAt: r.parked_at.toISOString() },
    ]),
  );
}

/**
 * Re-applies a projection's parked events, oldest first, each in its own transaction with the removal
 * of its parked row; one that fails again stays parked with its new error. The events are applied after
 * the ones that followed them (the projection's "first one wins" rules make that safe for herald's
 * projections); their pushes are not sent again, as their moment has passed.
 */
export async function retryParked(
  pool: pg.Pool,
  projection: Projection,
): Promise<{ retried: number; stillParked: number }> {
  const { rows } = await pool.query<{ position: string; event: string }>(
    'SELECT position, event FROM projection_parked WHERE projection = $1 ORDER BY position',
    [projection.name],
  );
  let retried = 0;
  for (const row of rows) {
    // Parked by an older herald, perhaps: in the shape this one reads.
    const event = upcastEvent(reviveEvent(row.event));
    try {
      await withTransaction(pool, async (tx) => {
        await projection.handle([event], tx);
        await tx.query('DELETE FROM projection_parked WHERE projection = $1 AND position = $2', [
          projection.name,
          row.position,
        ]);
      });
      retried++;
    } catch (error) {
      const message = ((error as Error).message ?? String(error))
        .replace(/[\u0000-\u001f\ud800-\udfff]/g, '\ufffd')
        .slice(0, 2000);
      await pool.query(
        'UPDATE projection_parked SET error = $3, attempts = attempts + 1 WHERE projection = $1 AND position = $2',
        [projection.name, row.position, message],
      );
    }
  }
  return { retried, stillParked: rows.length - retried };
}

function reviveEvent(json: string): RecordedEvent {
  const e = JSON.parse(json) as Omit<RecordedEvent, 'revision' | 'position' | 'createdAt'> & {
    revision: string;
    position: string;
    createdAt: string;
  };
  return { ...e, revision: BigInt(e.revision), position: BigInt(e.position), createdAt: new Date(e.createdAt) };
}
