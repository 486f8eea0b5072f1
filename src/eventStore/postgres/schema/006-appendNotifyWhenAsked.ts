import type { Migration } from '../../../postgres/migrations';
import { APPEND_LOCK, NOTIFY_CHANNEL } from './appendFunctions';

/**
 * herald_append_batch notifies only when asked (p_notify): a node tells its own subscriptions after the
 * commit, and a NOTIFY, which takes the notification queue's lock for the rest of the commit (its WAL
 * flush included), is sent only while another process listens (src/postgres/notices.ts). The body is
 * 003's but for that last line. The function of 003 stays, notifying as before, for a herald of the
 * previous version during a rolling upgrade: it calls this one.
 */
export const appendNotifyWhenAskedMigration: Migration = {
  id: 'event-store/006-append-notify-when-asked',
  sql: `
      CREATE FUNCTION herald_append_batch(
        p_streams text[], p_expected text[], p_counts int[],
        p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[], p_notify boolean
      ) RETURNS TABLE (outcome text, revision bigint, last_position bigint)
      LANGUAGE plpgsql AS $$
      DECLARE
        v_appends int := cardinality(p_streams);
        v_names text[];
        v_current bigint[];
        v_outcomes text[] := array_fill(NULL::text, ARRAY[v_appends]);
        v_revisions bigint[] := array_fill(NULL::bigint, ARRAY[v_appends]);
        v_first bigint[] := array_fill(NULL::bigint, ARRAY[v_appends]);
        v_last_positions bigint[] := array_fill(NULL::bigint, ARRAY[v_appends]);
        v_result record;
        v_from int := 1;
        v_to int;
        v_k int;
        v_rev bigint;
        v_conflict boolean;
        v_conflicts boolean := false;
        v_one_by_one boolean := v_appends = 1;
        v_newest bigint;
      BEGIN
        PERFORM pg_advisory_xact_lock(${APPEND_LOCK});
        -- An id repeated within the group (a retry queued beside its original) is taken one by one, so the
        -- retry is answered as one: its original is stored by then.
        v_one_by_one := v_one_by_one OR (SELECT count(DISTINCT x) FROM unnest(p_ids) x) <> cardinality(p_ids);

        IF NOT v_one_by_one THEN
          -- Check every expected revision in memory, in order, against the stream heads...
          -- (each head by its key: a join would read the whole streams table, one row per message)
          SELECT array_agg(d.name ORDER BY d.name),
                 array_agg((SELECT s.revision FROM streams s WHERE s.stream_name = d.name) ORDER BY d.name)
            INTO v_names, v_current
            FROM (SELECT DISTINCT unnest(p_streams) AS name) d;
          FOR i IN 1 .. v_appends LOOP
            v_k := array_position(v_names, p_streams[i]);
            v_rev := v_current[v_k];
            v_conflict := CASE p_expected[i]
                WHEN 'any' THEN false
                WHEN 'no_stream' THEN v_rev IS NOT NULL
                WHEN 'stream_exists' THEN v_rev IS NULL
                ELSE v_rev IS DISTINCT FROM p_expected[i]::bigint
              END;
            IF v_conflict THEN
              v_outcomes[i] := 'conflict';
              v_revisions[i] := v_rev;
              v_conflicts := true;
            ELSE
              v_outcomes[i] := 'ok';
              v_first[i] := coalesce(v_rev, -1) + 1;
              v_current[v_k] := coalesce(v_rev, -1) + p_counts[i];
              v_revisions[i] := v_current[v_k];
            END IF;
          END LOOP;

          -- A conflict may be a retry of an append already stored: then its answer is idempotent (or
          -- duplicate_ids), which herald_append tells. Looked up in the conflicting append's own stream.
          IF v_conflicts THEN
            FOR i IN 1 .. v_appends LOOP
              v_to := v_from + p_counts[i] - 1;
              IF v_outcomes[i] = 'conflict' AND EXISTS (
                  SELECT 1 FROM events e WHERE e.stream_name = p_streams[i] AND e.event_id = ANY (p_ids[v_from:v_to])) THEN
                v_one_by_one := true;
                EXIT;
              END IF;
              v_from := v_to + 1;
            END LOOP;
            v_from := 1;
          END IF;
        END IF;

        IF NOT v_one_by_one THEN
          BEGIN
            -- ...then write the accepted ones with one insert per table.
            INSERT INTO streams (stream_name, revision)
              SELECT u.name, u.rev FROM unnest(v_names, v_current) AS u(name, rev) WHERE u.rev IS NOT NULL
              ON CONFLICT (stream_name) DO UPDATE SET revision = excluded.revision
              WHERE streams.revision IS DISTINCT FROM excluded.revision;

            WITH appends AS (
              SELECT a.i::int AS i, a.stream, a.n, (sum(a.n) OVER (ORDER BY a.i) - a.n)::int AS offset_before
                FROM unnest(p_streams, p_counts) WITH ORDINALITY AS a(stream, n, i)
            ), accepted AS (
              SELECT ap.i, ap.stream, g.k, ap.offset_before + g.k AS idx
                FROM appends ap CROSS JOIN LATERAL generate_series(1, ap.n) AS g(k)
               WHERE v_outcomes[ap.i] = 'ok'
            ), inserted AS (
              INSERT INTO events (event_id, stream_name, revision, event_type, data, metadata)
              SELECT p_ids[e.idx], e.stream, v_first[e.i] + e.k - 1, p_types[e.idx], p_data[e.idx], p_metadata[e.idx]
                FROM accepted e ORDER BY e.idx
              RETURNING events.stream_name, events.event_id, events.position
            )
            SELECT array_agg(per_append.last ORDER BY gs.i)
              INTO v_last_positions
              FROM generate_series(1, v_appends) AS gs(i)
              LEFT JOIN (
                SELECT e.i, max(ins.position) AS last
                  FROM accepted e JOIN inserted ins ON ins.event_id = p_ids[e.idx] AND ins.stream_name = e.stream
                 GROUP BY e.i
              ) per_append ON per_append.i = gs.i;
          EXCEPTION WHEN unique_violation THEN
            -- An id stored already in its stream (a retry), or repeated in the group: nothing of the
            -- group was written; take it one by one.
            v_one_by_one := true;
          END;
        END IF;

        IF v_one_by_one THEN
          FOR i IN 1 .. v_appends LOOP
            v_to := v_from + p_counts[i] - 1;
            SELECT * INTO v_result FROM herald_append(
              p_streams[i], p_expected[i], p_ids[v_from:v_to], p_types[v_from:v_to], p_data[v_from:v_to], p_metadata[v_from:v_to]);
            v_outcomes[i] := v_result.outcome;
            v_revisions[i] := v_result.revision;
            v_last_positions[i] := v_result.last_position;
            v_from := v_to + 1;
          END LOOP;
        END IF;

        FOR i IN 1 .. v_appends LOOP
          outcome := v_outcomes[i];
          revision := v_revisions[i];
          last_position := v_last_positions[i];
          IF outcome = 'ok' THEN v_newest := greatest(v_newest, last_position); END IF;
          RETURN NEXT;
        END LOOP;
        IF p_notify AND v_newest IS NOT NULL THEN PERFORM pg_notify('${NOTIFY_CHANNEL}', v_newest::text); END IF;
      END
      $$;

      CREATE OR REPLACE FUNCTION herald_append_batch(
        p_streams text[], p_expected text[], p_counts int[],
        p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[]
      ) RETURNS TABLE (outcome text, revision bigint, last_position bigint)
      LANGUAGE sql AS $$
        SELECT * FROM herald_append_batch(p_streams, p_expected, p_counts, p_ids, p_types, p_data, p_metadata, true)
      $$;
    `,
};
