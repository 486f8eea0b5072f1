import type pg from 'pg';
import type { RecordedEvent } from '../eventStore/eventStore';
import { withTransaction } from '../postgres/transaction';
import type { Projection } from './projection';

/**
 * Events a runner parked (projection_parked): one its projection kept failing on, set aside so the
 * events after it were still projected. `herald projections status` counts them, `/readyz` shows them,
 * `herald projections retry NAME` re-applies them once the cause is fixed (docs/operations.md).
 */

export async function parkedCounts(pool: pg.Pool): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ projection: string; parked: number }>('SELECT projection, count(*)::int AS parked FROM projection_parked GROUP BY projection');
  return new Map(rows.map((r) => [r.projection, r.parked]));
}

/**
 * Re-applies a projection's parked events, oldest first, each in its own transaction with the removal
 * of its parked row; one that fails again stays parked with its new error. The events are applied after
 * the ones that followed them (the projection's "first one wins" rules make that safe for herald's
 * projections); their pushes are not sent again, as their moment has passed.
 */
export async function retryParked(pool: pg.Pool, projection: Projection): Promise<{ retried: number; stillParked: number }> {
  const { rows } = await pool.query<{ position: string; event: string }>('SELECT position, event FROM projection_parked WHERE projection = $1 ORDER BY position', [
    projection.name,
  ]);
  let retried = 0;
  for (const row of rows) {
    const event = reviveEvent(row.event);
    try {
      await withTransaction(pool, async (tx) => {
        await projection.handle([event], tx);
        await tx.query('DELETE FROM projection_parked WHERE projection = $1 AND position = $2', [projection.name, row.position]);
      });
      retried++;
    } catch (error) {
      const message = ((error as Error).message ?? String(error)).replace(/[\u0000-\u001f\ud800-\udfff]/g, '\ufffd').slice(0, 2000);
      await pool.query('UPDATE projection_parked SET error = $3, attempts = attempts + 1 WHERE projection = $1 AND position = $2', [projection.name, row.position, message]);
    }
  }
  return { retried, stillParked: rows.length - retried };
}

function reviveEvent(json: string): RecordedEvent {
  const e = JSON.parse(json) as Omit<RecordedEvent, 'revision' | 'position' | 'createdAt'> & { revision: string; position: string; createdAt: string };
  return { ...e, revision: BigInt(e.revision), position: BigInt(e.position), createdAt: new Date(e.createdAt) };
}
