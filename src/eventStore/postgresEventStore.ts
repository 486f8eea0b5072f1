import { EventEmitter } from 'node:events';
import pg, { type Pool } from 'pg';
import type { Database } from '../postgres/database';
import { isConnectionError } from '../postgres/errors';
import type { Migration } from '../postgres/migrations';
import { Wakeup } from '../runtime/wakeup';
import {
  DEFAULT_READ_COUNT,
  EventStoreUnavailableError,
  InvalidPositionError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
  type AllSubscription,
  type AppendResult,
  type EventFilter,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SubscribeToAllOptions,
  type SubscriptionBatch,
} from './eventStore';

/**
 * The PostgreSQL adapter of the event store port.
 *
 * Writes: concurrent `append` calls are queued and committed together, many per transaction ("group
 * commit"): on this hardware a durable append is bound by the fsync of its commit, so sharing one commit
 * among many appends is what buys throughput. A group is one statement, `herald_append_batch`, which for
 * each append checks idempotency and the expected revision and inserts the events.
 *
 * Reads that must never skip (catch-up, subscriptions) only return rows whose transaction is older than
 * every transaction still running (`transaction_id < pg_snapshot_xmin(pg_current_snapshot())`): a row
 * with a lower position committed late by a slower writer is waited for, never jumped over. Appending
 * transactions also take one advisory lock, so transaction order and position order agree across
 * processes (see docs/architecture.md).
 */

export const NOTIFY_CHANNEL = 'herald_events';
const APPEND_LOCK = 0x6865_7261_6c64; // "herald": same in every process sharing the database
const MAX_APPENDS_PER_COMMIT = 256;
const LIVE_POLL_MS = 1000;
const MAX_SUBSCRIPTION_PAGE = 8000;
/** 2 ms for the first 50 looks (a batch transaction's length), then doubling up to LIVE_POLL_MS. */
const settleRetryMs = (waits: number) => Math.min(LIVE_POLL_MS, waits <= 50 ? 2 : 2 * 2 ** Math.min(10, waits - 50));

export const postgresEventStoreMigrations: readonly Migration[] = [
  {
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
      CREATE FUNCTION herald_append(
        p_stream text, p_expected text, p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[]
      ) RETURNS TABLE (outcome text, revision bigint, last_position bigint)
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

        SELECT s.revision INTO v_current FROM streams s WHERE s.stream_name = p_stream FOR UPDATE;
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
      $$;

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
  },
  {
    // Event ids deduplicate appends within a stream, as in EventStoreDB: the same id in another stream is
    // another event (test/contract: "keys idempotency by stream"); and a retry is accepted only as the
    // very events it stands for, as EventStoreDB's CheckCommit does (test/contract: "accepts a retry only
    // as the same events at the same revisions"). The batch function needs no change: any id it finds
    // stored, anywhere, sends the group down the one-by-one path, which is herald_append.
    id: 'event-store/002-event-ids-per-stream',
    sql: `
      ALTER TABLE events DROP CONSTRAINT events_event_id_key;
      CREATE UNIQUE INDEX events_stream_event_id ON events (stream_name, event_id);
      -- herald_append_batch still looks ids up across streams (to choose its path): keep that fast.
      CREATE INDEX events_event_id ON events (event_id);

      CREATE OR REPLACE FUNCTION herald_append(
        p_stream text, p_expected text, p_ids uuid[], p_types text[], p_data jsonb[], p_metadata jsonb[]
      ) RETURNS TABLE (outcome text, revision bigint, last_position bigint)
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

        SELECT s.revision INTO v_current FROM streams s WHERE s.stream_name = p_stream FOR UPDATE;
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
      $$;
    `,
  },
];

interface PendingAppend {
  readonly streamName: string;
  readonly events: readonly NewEvent[];
  readonly expectedRevision: ExpectedRevision;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: unknown) => void;
}

interface EventRow {
  position: string;
  event_id: string;
  stream_name: string;
  revision: string;
  event_type: string;
  data: unknown;
  metadata: Record<string, unknown>;
  created_at: Date;
}

const EVENT_COLUMNS = 'position, event_id, stream_name, revision, event_type, data, metadata, created_at';
// Rows of transactions older than every running one: nothing can commit before them any more.
const SETTLED = 'transaction_id < pg_snapshot_xmin(pg_current_snapshot())';

export class PostgresEventStore implements EventStore {
  readonly kind = 'postgresql' as const;
  private readonly queue: PendingAppend[] = [];
  private committing = false;
  private readonly live = new EventEmitter();
  private listener: pg.Client | undefined;
  private listenerStarting: Promise<void> | undefined;
  private closed = false;

  private readonly pool: Pool;

  constructor(private readonly database: Database) {
    this.pool = database.pool;
    this.live.setMaxListeners(0);
  }

  append(
    streamName: string,
    events: readonly NewEvent[],
    expectedRevision: ExpectedRevision = 'any',
  ): Promise<AppendResult> {
    if (events.length === 0) return Promise.reject(new TypeError('append needs at least one event'));
    return new Promise((resolve, reject) => {
      this.queue.push({ streamName, events, expectedRevision, resolve, reject });
      void this.commitQueued();
    });
  }

  /** Drains the queue, one transaction per group of appends; appends arriving meanwhile form the next group. */
  private async commitQueued(): Promise<void> {
    if (this.committing) return;
    this.committing = true;
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, MAX_APPENDS_PER_COMMIT);
        try {
          await this.commitGroup(group);
        } catch (error) {
          if (group.length === 1 || isConnectionError(error)) {
            for (const append of group) append.reject(translateError(error));
          } else {
            // One bad append (say, data PostgreSQL rejects) must not fail the others: retry them alone.
            for (const append of group)
              await this.commitGroup([append]).catch((e: unknown) => append.reject(translateError(e)));
          }
        }
      }
    } finally {
      this.committing = false;
    }
  }

  /** One statement, so one round trip and one commit, for the whole group. */
  private async commitGroup(group: readonly PendingAppend[]): Promise<void> {
    const events = group.flatMap((append) => append.events);
    const { rows } = await this.pool.query<{ outcome: string; revision: string | null; last_position: string | null }>({
      name: 'herald-append-batch',
      text: 'SELECT * FROM herald_append_batch($1::text[], $2::text[], $3::int[], $4::uuid[], $5::text[], $6::jsonb[], $7::jsonb[])',
      values: [
        group.map((append) => append.streamName),
        group.map((append) => append.expectedRevision.toString()),
        group.map((append) => append.events.length),
        events.map((e) => e.id),
        events.map((e) => e.type),
        events.map((e) => JSON.stringify(e.data ?? null)),
        events.map((e) => JSON.stringify(e.metadata ?? {})),
      ],
    });
    if (rows.length !== group.length)
      throw new Error(`herald_append_batch answered ${rows.length} of ${group.length} appends`);
    group.forEach((append, i) => {
      const outcome = toAppendOutcome(append, rows[i]!);
      if (outcome instanceof Error) append.reject(outcome);
      else append.resolve(outcome);
    });
  }

  async readStream(streamName: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const backwards = options.direction === 'backwards';
    const from = options.fromRevision ?? (backwards ? null : 0n);
    const rows = await this.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events
        WHERE stream_name = $1 AND ($2::bigint IS NULL OR revision ${backwards ? '<=' : '>='} $2)
        ORDER BY revision ${backwards ? 'DESC' : 'ASC'} LIMIT $3`,
      [streamName, from?.toString() ?? null, options.maxCount ?? Number.MAX_SAFE_INTEGER],
    );
    if (rows.length === 0) {
      const exists = await this.query('SELECT 1 FROM streams WHERE stream_name = $1', [streamName]);
      if (exists.length === 0) throw new StreamNotFoundError(streamName);
    }
    return rows.map(toRecordedEvent);
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    await this.checkPosition(options.after);
    return this.readAllFrom(options);
  }

  /** Positions are bigint ids, so any number would do here; it is refused as EventStoreDB refuses it. */
  private async checkPosition(after: bigint | undefined): Promise<void> {
    if (after === undefined || after < 0n) return;
    const found = await this.query('SELECT 1 FROM events WHERE position = $1', [after.toString()]);
    if (found.length === 0) throw new InvalidPositionError(after);
  }

  private async readAllFrom(options: ReadAllOptions): Promise<RecordedEvent[]> {
    const backwards = options.direction === 'backwards';
    const filter = filterSql(options.filter, 3);
    const rows = await this.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events
        WHERE ${SETTLED} AND ($1::bigint IS NULL OR position ${backwards ? '<' : '>'} $1) ${filter.sql}
        ORDER BY position ${backwards ? 'DESC' : 'ASC'} LIMIT $2`,
      [
        options.after !== undefined && options.after >= 0n ? options.after.toString() : null,
        options.maxCount ?? DEFAULT_READ_COUNT,
        ...filter.params,
      ],
    );
    return rows.map(toRecordedEvent);
  }

  async headPosition(): Promise<bigint> {
    const [newest] = await this.readAll({ direction: 'backwards', maxCount: 1 });
    return newest?.position ?? -1n;
  }

  subscribeToAll(options: SubscribeToAllOptions = {}): AllSubscription {
    const wakeup = new Wakeup();
    let notifiedUpTo = -1n;
    const onNotify = (position: bigint) => {
      if (position > notifiedUpTo) notifiedUpTo = position;
      wakeup.signal();
    };
    this.live.on('position', onNotify);
    let open = true;
    const close = async () => {
      open = false;
      this.live.off('position', onNotify);
      wakeup.signal();
    };
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- an async generator cannot be an arrow function
    const store = this;

    async function* batches(): AsyncGenerator<SubscriptionBatch> {
      let after = options.after !== undefined && options.after >= 0n ? options.after : -1n;
      let settlingWaits = 0;
      // Pages grow while they come back full (a consumer far behind applies bigger batches), and shrink
      // back at the live edge.
      let pageSize = DEFAULT_READ_COUNT;
      try {
        await store.checkPosition(options.after);
        await store.startListener();
        while (open) {
          const events = await store.readAllFrom({ after, maxCount: pageSize, filter: options.filter });
          const last = events[events.length - 1];
          if (last) after = last.position;
          const caughtUp = events.length < pageSize;
          pageSize = caughtUp ? DEFAULT_READ_COUNT : Math.min(pageSize * 2, MAX_SUBSCRIPTION_PAGE);
          if (events.length > 0 || caughtUp) yield { events, caughtUp };
          if (!caughtUp || !open) continue;
          // A notified position we could not read yet is held back by an older transaction still running
          // (often another projection's batch, a few ms): look again soon, and back off if it lasts.
          const settling = notifiedUpTo > after;
          settlingWaits = settling ? settlingWaits + 1 : 0;
          await wakeup.wait(settling ? settleRetryMs(settlingWaits) : LIVE_POLL_MS);
        }
      } finally {
        await close();
      }
    }

    const iterator = batches();
    return {
      [Symbol.asyncIterator]: () => iterator,
      close,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  /** One LISTEN connection per store, shared by its subscriptions; reconnects with back-off. */
  private startListener(): Promise<void> {
    if (this.listener || this.closed) return Promise.resolve();
    this.listenerStarting ??= (async () => {
      const client = new pg.Client(this.database.clientConfig);
      client.on('notification', (message) => {
        if (message.payload) this.live.emit('position', BigInt(message.payload));
      });
      client.on('error', () => {
        if (this.listener === client) this.listener = undefined;
        client.end().catch(() => undefined);
        // Subscriptions keep polling meanwhile; reconnect (every 0.5 s while the server is away) so they
        // go back to being woken at once.
        const reconnect = () => {
          if (!this.closed && this.live.listenerCount('position') > 0)
            this.startListener().catch(() => setTimeout(reconnect, 500).unref());
        };
        setTimeout(reconnect, 500).unref();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
        this.listener = client;
      } catch (error) {
        await client.end().catch(() => undefined);
        throw translateError(error);
      }
    })().finally(() => {
      this.listenerStarting = undefined;
    });
    return this.listenerStarting;
  }

  private async query<Row extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<Row[]> {
    try {
      return (await this.pool.query<Row>(sql, params)).rows;
    } catch (error) {
      throw translateError(error);
    }
  }
}

function toAppendOutcome(
  append: PendingAppend,
  row: { outcome: string; revision: string | null; last_position: string | null },
): AppendResult | Error {
  switch (row.outcome) {
    case 'ok':
    case 'idempotent':
      return { nextExpectedRevision: BigInt(row.revision!), position: BigInt(row.last_position!) };
    case 'conflict':
      return new WrongExpectedRevisionError(
        append.streamName,
        append.expectedRevision,
        row.revision === null ? 'no_stream' : BigInt(row.revision),
      );
    case 'duplicate_ids':
      // Some of these event ids are stored already, but not as this append: a reused id, not a retry.
      return new WrongExpectedRevisionError(append.streamName, append.expectedRevision, BigInt(row.revision ?? -1));
    default:
      return new Error(`herald_append: unknown outcome ${row.outcome}`);
  }
}

function filterSql(filter: EventFilter | undefined, firstParam: number): { sql: string; params: unknown[] } {
  // System streams ($…) are never returned; PostgreSQL has none, but an import might.
  let sql = `AND stream_name NOT LIKE '$%' AND event_type NOT LIKE '$%'`;
  const params: unknown[] = [];
  if (filter?.streamNamePrefixes) {
    params.push(filter.streamNamePrefixes.map(likePrefix));
    sql += ` AND stream_name LIKE ANY ($${firstParam + params.length - 1}::text[])`;
  }
  if (filter?.eventTypePrefixes) {
    params.push(filter.eventTypePrefixes.map(likePrefix));
    sql += ` AND event_type LIKE ANY ($${firstParam + params.length - 1}::text[])`;
  }
  return { sql, params };
}

function likePrefix(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`) + '%';
}

function toRecordedEvent(row: EventRow): RecordedEvent {
  return {
    id: row.event_id,
    streamName: row.stream_name,
    revision: BigInt(row.revision),
    position: BigInt(row.position),
    type: row.event_type,
    data: row.data,
    metadata: row.metadata,
    createdAt: row.created_at,
  };
}

function translateError(error: unknown): unknown {
  if (isConnectionError(error))
    return new EventStoreUnavailableError(`PostgreSQL event store unavailable: ${(error as Error).message}`, {
      cause: error,
    });
  return error;
}
