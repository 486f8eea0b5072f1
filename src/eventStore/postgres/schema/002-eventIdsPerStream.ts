import type { Migration } from '../../../postgres/migrations';
import { checkRevisionAndInsert, heraldAppendSignature } from './appendFunctions';

/**
 * Event ids deduplicate appends within a stream, as in EventStoreDB: the same id in another stream is
 * another event (test/contract: "keys idempotency by stream"); and a retry is accepted only as the
 * very events it stands for, as EventStoreDB's CheckCommit does (test/contract: "accepts a retry only
 * as the same events at the same revisions"). The batch function needs no change: any id it finds
 * stored, anywhere, sends the group down the one-by-one path, which is herald_append.
 */
export const eventIdsPerStreamMigration: Migration = {
  id: 'event-store/002-event-ids-per-stream',
  sql: `
      ALTER TABLE events DROP CONSTRAINT events_event_id_key;
      CREATE UNIQUE INDEX events_stream_event_id ON events (stream_name, event_id);
      -- herald_append_batch still looks ids up across streams (to choose its path): keep that fast.
      CREATE INDEX events_event_id ON events (event_id);

      CREATE OR REPLACE FUNCTION ${heraldAppendSignature}
      LANGUAGE plpgsql AS $$
      DECLARE
        v_count int := cardinality(p_ids);
        v_current bigint;
        v_found int;
        v_stored_ids uuid[];
        v_first bigint;
        v_idempotent boolean;
        v_conflict boolean;
      BEGIN
        SELECT count(*), array_agg(e.event_id ORDER BY e.revision), min(e.revision), max(e.revision), max(e.position)
          INTO v_found, v_stored_ids, v_first, revision, last_position
          FROM events e WHERE e.stream_name = p_stream AND e.event_id = ANY (p_ids);
        IF v_found > 0 THEN
          -- EventStoreDB's check: with a revision (or no_stream), a retry is the same events at the
          -- revisions right after it, in order; with any/stream_exists, all its ids in this stream.
          v_idempotent := v_found = v_count AND CASE p_expected
              WHEN 'any' THEN true
              WHEN 'stream_exists' THEN true
              ELSE v_stored_ids = p_ids AND revision - v_first + 1 = v_count
                   AND v_first = CASE p_expected WHEN 'no_stream' THEN 0 ELSE p_expected::bigint + 1 END
            END;
          outcome := CASE WHEN v_idempotent THEN 'idempotent' ELSE 'duplicate_ids' END;
          RETURN NEXT;
          RETURN;
        END IF;

${checkRevisionAndInsert}
    `,
};
