import type { Migration } from '../../../postgres/migrations';
import { APPEND_LOCK, NOTIFY_CHANNEL, checkRevisionAndInsert, heraldAppendSignature } from './appendFunctions';

/** The tables, herald_append (one append, with its idempotency check) and herald_append_batch (group commit). */
export const eventsMigration: Migration = {
  id: 'event-store/001-events',
  sql: `
      CREATE TABLE streams (
        stream_name text PRIMARY KEY,
        revision bigint NOT NULL
      );
      CREATE TABLE events (
        position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id uuid NOT NULL UNIQUE,
        stream_name text NOT NULL,
        revision bigint NOT NULL,
        event_type text NOT NULL,
        data jsonb NOT NULL,
        metadata jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
        UNIQUE (stream_name, revision)
      );
      CREATE INDEX events_transaction_position ON events (transaction_id, position);

      -- One round trip per append. Outcomes: ok, idempotent (all ids already stored in this stream),
      -- conflict (expected revision does not hold; revision = actual), duplicate_ids (some ids stored).
      CREATE FUNCTION ${heraldAppendSignature}
      LANGUAGE plpgsql AS $$
      DECLARE
        v_count int := cardinality(p_ids);
        v_current bigint;
        v_found int;
        v_same_stream boolean;
        v_conflict boolean;
      BEGIN
        SELECT count(*), bool_and(e.stream_name = p_stream), max(e.revision), max(e.position)
          INTO v_found, v_same_stream, revision, last_position
          FROM events e WHERE e.event_id = ANY (p_ids);
        IF v_found > 0 THEN
          outcome := CASE WHEN v_found = v_count AND v_same_stream THEN 'idempotent' ELSE 'duplicate_ids' END;
          RETURN NEXT;
          RETURN;
        END IF;

${checkRevisionAndInsert}

      -- A group of appends in one statement, so in one round trip and one commit (group commit). The
      -- advisory lock serialises appending transactions across processes: positions are then taken in
      -- transaction order, which keeps the catch-up readers' snapshot rule exact (docs/architecture.md).
      -- The events of append i are the next p_counts[i] entries of p_ids/p_types/p_data/p_metadata.
      CREATE FUNCTION herald_append_batch(
        p_streams text[], p_expected text[], p_counts int[],
        p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[]
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
        v_one_by_one boolean;
        v_newest bigint;
      BEGIN
        PERFORM pg_advisory_xact_lock(${APPEND_LOCK});

        v_one_by_one := v_appends = 1;
        IF NOT v_one_by_one THEN
          v_one_by_one := EXISTS (SELECT 1 FROM events e WHERE e.event_id = ANY (p_ids))
            OR (SELECT count(DISTINCT x) FROM unnest(p_ids) x) <> cardinality(p_ids);
        END IF;
        IF v_one_by_one THEN
          -- A lone append, or a group where some ids are stored already (a retry) or repeat: take the
          -- appends one by one, each with its own idempotency check. Cheaper than the set-based path
          -- for one append; retries are rare.
          FOR i IN 1 .. v_appends LOOP
            v_to := v_from + p_counts[i] - 1;
            SELECT * INTO v_result FROM herald_append(
              p_streams[i], p_expected[i], p_ids[v_from:v_to], p_types[v_from:v_to], p_data[v_from:v_to], p_metadata[v_from:v_to]);
            v_outcomes[i] := v_result.outcome;
            v_revisions[i] := v_result.revision;
            v_last_positions[i] := v_result.last_position;
            v_from := v_to + 1;
          END LOOP;
        ELSE
          -- Check every expected revision in memory, in order, against the stream heads...
          SELECT array_agg(d.name ORDER BY d.name), array_agg(s.revision ORDER BY d.name)
            INTO v_names, v_current
            FROM (SELECT DISTINCT unnest(p_streams) AS name) d
            LEFT JOIN streams s ON s.stream_name = d.name;
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
            ELSE
              v_outcomes[i] := 'ok';
              v_first[i] := coalesce(v_rev, -1) + 1;
              v_current[v_k] := coalesce(v_rev, -1) + p_counts[i];
              v_revisions[i] := v_current[v_k];
            END IF;
          END LOOP;

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
            RETURNING events.event_id, events.position
          )
          SELECT array_agg(per_append.last ORDER BY gs.i)
            INTO v_last_positions
            FROM generate_series(1, v_appends) AS gs(i)
            LEFT JOIN (
              SELECT e.i, max(ins.position) AS last
                FROM accepted e JOIN inserted ins ON ins.event_id = p_ids[e.idx]
               GROUP BY e.i
            ) per_append ON per_append.i = gs.i;
        END IF;

        FOR i IN 1 .. v_appends LOOP
          outcome := v_outcomes[i];
          revision := v_revisions[i];
          last_position := v_last_positions[i];
          IF outcome = 'ok' THEN v_newest := greatest(v_newest, last_position); END IF;
          RETURN NEXT;
        END LOOP;
        IF v_newest IS NOT NULL THEN PERFORM pg_notify('${NOTIFY_CHANNEL}', v_newest::text); END IF;
      END
      $$;
    `,
};
