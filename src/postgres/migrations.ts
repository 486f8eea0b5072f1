import type { Pool } from 'pg';
import { withTransaction } from './transaction';

/**
 * A versioned schema change. Ids are applied once each, in the order given, and recorded in
 * `schema_migrations`; an id is never edited after it ships — add a new one instead. A module with tables
 * exports its list and adds it to the migration registry (projections/index.ts).
 */
export interface Migration {
  readonly id: string;
  readonly sql: string;
}

// Any constant works; it only has to be the same in every herald process sharing the database.
const MIGRATION_LOCK = 0x6865_7261; // "hera"

/** Applies the migrations not yet applied, each in its own transaction, one process at a time. */
export async function migrate(pool: Pool, migrations: readonly Migration[]): Promise<string[]> {
  const duplicate = migrations.find((m, i) => migrations.findIndex((n) => n.id === m.id) !== i);
  if (duplicate) throw new Error(`migration id ${duplicate.id} is used twice`);

  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         id text PRIMARY KEY,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const { rows } = await client.query<{ id: string }>('SELECT id FROM schema_migrations');
    const applied = new Set(rows.map((r) => r.id));
    const newlyApplied: string[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.id)) continue;
      try {
        await withTransaction(client, async (tx) => {
          await tx.query(migration.sql);
          await tx.query('INSERT INTO schema_migrations (id) VALUES ($1)', [migration.id]);
        });
      } catch (error) {
        throw new Error(`migration ${migration.id} failed: ${(error as Error).message}`, { cause: error });
      }
      newlyApplied.push(migration.id);
    }
    return newlyApplied;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
}
