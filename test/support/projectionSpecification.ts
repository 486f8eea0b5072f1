import { expect } from 'chai';
import type * as t from 'io-ts';
import type { Pool } from 'pg';
import type { Publication } from '../../src/bus/bus';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { withTransaction } from '../../src/postgres/transaction';
import type { Projection } from '../../src/projection/projection';
import { skipsWal } from '../../src/projection/projectionRebuild';
import { openTestInfrastructure } from './infrastructure';
import { recorded } from './recorded';

/** How the runner hands the given events to the projection. */
export interface Batching {
  /** Sizes of the batches in turn, repeated until every event is handed over; by default one batch of all (a rebuild's). */
  readonly batchSizes?: readonly number[];
  /** As a rebuild applies them: `startReplay`, `handle` with `{ replay: true }`, then `finishReplay` once. */
  readonly replay?: boolean;
}

/** A read model after the given events, for its expectations. Only the latest `given` of a spec can be read. */
export interface Given {
  /** The events as the store recorded them (the helper's ids and positions): what a reference fold reads. */
  readonly recorded: readonly RecordedEvent[];
  /** What the projection's batches returned to publish, in order. */
  publications(): Promise<Publication[]>;
  rows<Row extends object = Record<string, unknown>>(sql: string, values?: readonly unknown[]): Promise<Row[]>;
  /** Asks the read model through a query interface (projections/…: `datahubQueries(pool)`, say). */
  answer<T>(query: (pool: Pool) => Promise<T>): Promise<T>;
  expectRows(sql: string, expected: ReadonlyArray<Record<string, unknown>>): Promise<void>;
  expectAnswer<T>(query: (pool: Pool) => Promise<T>, expected: T): Promise<void>;
}

/**
 * given(events) → expect rows / query answers, for a read model on a real PostgreSQL: the projection's own
 * migrations, its batches applied as the runner applies them (its one statement, or `handle` in a transaction). Call it inside a
 * `describe`: it opens one database for the suite (before) and drops it (after). Each `given` empties the
 * read model's tables first, so it is the whole history the read model has seen.
 *
 * The events are typed by the read model's codec union and checked against it at run time: a hand-built
 * event the store could not hold would be parked by the runner, so a spec would be testing nothing.
 */
export function projectionSpecification<Event extends { readonly type: string; readonly data: unknown }>(
  projection: Projection,
  codec: t.Type<Event, unknown, unknown>,
  streamOf: (event: Event) => string = (event) => `given-${event.type}`,
) {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>> | undefined;
  before(async () => {
    infrastructure = await openTestInfrastructure([projection]);
  });
  after(() => infrastructure?.close());
  const pool = (): Pool => {
    if (!infrastructure) throw new Error('projectionSpecification: use it inside a describe, in a test or hook');
    return infrastructure.database.pool;
  };
  /** Each given replaces the read model the earlier ones made. */
  let latest = 0;

  async function apply(events: readonly RecordedEvent[], { batchSizes = [], replay = false }: Batching) {
    await pool().query(`TRUNCATE ${projection.tables.join(', ')}`);
    const publications: Publication[] = [];
    if (replay && projection.startReplay) await withTransaction(pool(), (tx) => projection.startReplay!(tx));
    for (let from = 0, b = 0; from < events.length; b++) {
      const size = Math.max(1, batchSizes.length === 0 ? events.length : batchSizes[b % batchSizes.length]!);
      for (const made of await handle(events.slice(from, from + size), { replay })) publications.push(made);
      from += size;
    }
    if (replay) {
      // As a rebuild ends it, on a server that skips WAL (the embedded one) or not (DATABASE_URL's).
      const walSkip = await skipsWal(pool());
      if (projection.finishReplay) await projection.finishReplay({ pool: pool(), walSkip });
      const beside = projection.finishReplayBeside;
      if (beside) await withTransaction(pool(), (tx) => beside.derive(tx, { walSkip }));
    }
    return publications;
  }

  /** Events as the store hands them to the runner: ids and positions in the given order. */
  function record(events: readonly Event[]): RecordedEvent[] {
    events.forEach((event, i) => {
      if (!codec.is(event))
        throw new Error(`given event ${i} is not one ${projection.name} reads: ${JSON.stringify(event)}`);
    });
    return recorded(events, streamOf);
  }

  /**
   * One batch as the runner applies it, on top of what the tables hold: live, in the projection's one
   * statement when it makes one for the batch (Projection.statement), else through `handle` in one transaction.
   */
  async function handle(batch: readonly RecordedEvent[], options: { replay?: boolean } = {}) {
    const statement = options.replay === true ? undefined : projection.statement?.(batch);
    if (statement) {
      const { rows } = await pool().query({ ...statement.query, values: [...statement.query.values] });
      return [...statement.publications(rows as object[])];
    }
    return [...(await withTransaction(pool(), (tx) => projection.handle(batch, tx, options)))];
  }

  return {
    /** The suite's database (one per file). */
    get pool(): Pool {
      return pool();
    },

    record,

    given(events: readonly Event[], batching: Batching = {}): Given {
      const stream = record(events);
      const generation = ++latest;
      let applying: Promise<Publication[]> | undefined;
      const applied = async () => {
        if (generation !== latest) throw new Error('a later given replaced the read model this one made');
        return (applying ??= apply(stream, batching));
      };
      const rows = async <Row extends object>(sql: string, values?: readonly unknown[]) => {
        await applied();
        return (await pool().query(sql, values as unknown[] | undefined)).rows as Row[];
      };
      const answer = async <T>(query: (pool: Pool) => Promise<T>) => {
        await applied();
        return query(pool());
      };
      return {
        recorded: stream,
        publications: applied,
        rows,
        answer,
        async expectRows(sql, expected) {
          expect(await rows(sql)).to.deep.equal(expected);
        },
        async expectAnswer(query, expected) {
          expect(await answer(query)).to.deep.equal(expected);
        },
      };
    },

    handle,
  };
}
