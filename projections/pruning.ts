import type { Pool } from 'pg';
import type { RetentionCategory } from '../domain/retention';
import { prepared } from '../src/postgres/database';
import type { Prunable } from '../src/storage/retention';

/**
 * A read model table's pruning by its key (src/storage/retention.ts): rows matching `removable` (SQL over
 * the table's columns, `$1` the cutoff) are deleted, `orderBy` first, at most `$2` per statement. One
 * statement is one short transaction; rows another transaction holds are skipped (SKIP LOCKED), so a
 * projection applying an event never waits on a pass, and the pass never waits on it.
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
  },
): Prunable {
  const { table, key, removable, orderBy } = spec;
  const count = `SELECT count(*)::int AS n FROM ${table} WHERE ${removable}`;
  const prune = `DELETE FROM ${table} WHERE (${key}) IN (
                   SELECT ${key} FROM ${table} WHERE ${removable} ORDER BY ${orderBy} LIMIT $2 FOR UPDATE SKIP LOCKED)`;
  return {
    table,
    category: spec.category,
    async countRemovable(cutoff) {
      return (await pool.query<{ n: number }>(prepared(count, [cutoff]))).rows[0]!.n;
    },
    async prune(cutoff, limit) {
      return (await pool.query(prepared(prune, [cutoff, limit]))).rowCount ?? 0;
    },
  };
}
