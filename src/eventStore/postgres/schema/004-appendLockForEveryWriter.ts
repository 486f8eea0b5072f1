import type { Migration } from '../../../postgres/migrations';
import { APPEND_LOCK } from './appendFunctions';

/**
 * Every writer of `events` takes the append lock, not only herald_append_batch: a statement trigger takes
 * it before the statement's first row gets its position (an INSERT or COPY by hand, an import, a tool).
 * With every appending transaction holding it from before its first position to its end, a reader's
 * snapshot shows a prefix of the positions that will ever commit, so the global reads need no visibility
 * rule (docs/architecture.md: "Catch-up never skips a late commit"); the index that served the old rule
 * (`transaction_id < pg_snapshot_xmin(…)`) goes. The column stays: a herald of the previous version still
 * reads with that rule during a rolling upgrade, which is as exact, only slower.
 */
export const appendLockForEveryWriterMigration: Migration = {
  id: 'event-store/004-append-lock-for-every-writer',
  sql: `
      CREATE FUNCTION herald_take_append_lock() RETURNS trigger
      LANGUAGE plpgsql AS $$
      BEGIN
        -- Held already in herald_append_batch: then this only counts it again.
        PERFORM pg_advisory_xact_lock(${APPEND_LOCK});
        RETURN NULL;
      END
      $$;
      CREATE TRIGGER events_take_append_lock BEFORE INSERT ON events
        FOR EACH STATEMENT EXECUTE FUNCTION herald_take_append_lock();
      DROP INDEX events_transaction_position;
    `,
};
