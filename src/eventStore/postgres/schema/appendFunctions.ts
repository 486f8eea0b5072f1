/**
 * What the event store's PL/pgSQL functions and the adapter's code must agree on. Migrations that ship are
 * never edited (src/postgres/migrations.ts), so neither is anything here they use: change the functions
 * in a new migration (test/contract/postgresSchema.unit.spec.ts pins the shipped ones).
 */

/** The advisory lock every appending transaction takes: the same in every process sharing the database. */
export const APPEND_LOCK = 0x6865_7261_6c64; // "herald"

/** herald_append_batch notifies the newest position it appended on this channel; subscriptions LISTEN. */
export const NOTIFY_CHANNEL = 'herald_events';

/** herald_append's signature: 002 replaces the function, which PostgreSQL allows only with the same one. */
export const heraldAppendSignature = `herald_append(
        p_stream text, p_expected text, p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[]
      ) RETURNS TABLE (outcome text, revision bigint, last_position bigint)`;

/**
 * The end of herald_append, the same in both its versions (001, 002): lock the stream's head, check the
 * expected revision, then insert the events after it and move the head.
 */
export const checkRevisionAndInsert = `        SELECT s.revision INTO v_current FROM streams s WHERE s.stream_name = p_stream FOR UPDATE;
        v_conflict := CASE p_expected
            WHEN 'any' THEN false
            WHEN 'no_stream' THEN v_current IS NOT NULL
            WHEN 'stream_exists' THEN v_current IS NULL
            ELSE v_current IS DISTINCT FROM p_expected::bigint
          END;
        IF v_conflict THEN
          outcome := 'conflict';
          revision := v_current;
          last_position := NULL;
          RETURN NEXT;
          RETURN;
        END IF;

        v_current := coalesce(v_current, -1);
        INSERT INTO streams (stream_name, revision) VALUES (p_stream, v_current + v_count)
          ON CONFLICT (stream_name) DO UPDATE SET revision = excluded.revision;
        WITH inserted AS (
          INSERT INTO events (event_id, stream_name, revision, event_type, data, metadata)
          SELECT u.id, p_stream, v_current + u.ord, u.type, u.data, u.metadata
            FROM unnest(p_ids, p_types, p_data, p_metadata) WITH ORDINALITY AS u(id, type, data, metadata, ord)
          ORDER BY u.ord
          RETURNING events.position
        )
        SELECT max(inserted.position) INTO last_position FROM inserted;
        outcome := 'ok';
        revision := v_current + v_count;
        RETURN NEXT;
      END
      $$;`;
