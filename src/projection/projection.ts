import type { Pool, PoolClient } from 'pg';
import type { Publication } from '../bus/bus';
import type { RecordedEvent } from '../eventStore/eventStore';
import type { Migration } from '../postgres/migrations';

/**
 * A read model built from the global event stream. A projection owns its tables (its migrations) and
 * only writes SQL in `handle`; the runner owns batching, the checkpoint, the lock and publishing.
 */
export interface Projection {
  readonly name: string;
  /** Bump when `handle` changes meaning: the runner then empties `tables` and replays from the start. */
  readonly version: number;
  readonly migrations: readonly Migration[];
  readonly tables: readonly string[];
  /**
   * The event types that can change the read model: those of the codecs `handle` decodes (eventTypesOf in
   * eventDecoder.ts). The runner hands `handle` only events of these types; past a batch with none of them
   * it moves the checkpoint lazily (the projection is unaffected by it).
   */
  readonly eventTypes: ReadonlySet<string>;
  /**
   * Applies a batch inside the runner's transaction. Returns what became visible, to be published on the
   * bus once the transaction has committed. Events of types it does not read are skipped; one of a type it
   * reads whose data it cannot read throws (eventDecoder.ts: UndecodableEventError), so the runner parks it.
   */
  handle(events: readonly RecordedEvent[], tx: PoolClient, options?: HandleOptions): Promise<readonly Publication[]>;
  /**
   * The batch as one statement, when it can be one (else undefined, and the runner calls `handle`): the
   * runner adds the checkpoint's move to it as one more step, so the batch is one implicit transaction
   * and one round trip (the design rate's batches are a few events: BEGIN, COMMIT and their round trips
   * were a good part of one). It must write what `handle` would, and `publications` return what it would.
   */
  statement?(events: readonly RecordedEvent[]): ProjectionStatement | undefined;
  /**
   * Before a replay into fresh tables (a rebuild), in the schema of those tables: makes what `handle`
   * with `replay` writes to besides them (staging tables, say), for `finishReplay` to derive them from.
   */
  startReplay?(tx: PoolClient): Promise<void>;
  /**
   * After a replay into fresh tables (a rebuild), before they are swapped in: derives at once what
   * `handle` left out while replaying because one pass over the finished tables is cheaper. It runs its
   * own transactions on `replay.pool` (the tables' schema alone on its search path; two connections in a
   * rebuild), side by side if it likes.
   */
  finishReplay?(replay: ReplayFinish): Promise<void>;
  /**
   * After finishReplay, beside the rebuild's index builds (so it must need no index of the tables it
   * reads): derives `tables` from finished ones in one transaction (counters, say). The indexes of
   * `tables` are built once it is done.
   */
  readonly finishReplayBeside?: {
    readonly tables: readonly string[];
    derive(tx: PoolClient, replay: Pick<ReplayFinish, 'walSkip'>): Promise<void>;
  };
}

export interface ReplayFinish {
  readonly pool: Pool;
  /**
   * The server is at `wal_level = minimal`: a table truncated (or created) in a transaction and filled in
   * that same transaction writes no WAL (PostgreSQL syncs its files at commit instead), and so does an
   * index built in one. Otherwise every row written to a logged table goes to the WAL too.
   */
  readonly walSkip: boolean;
}

export interface ProjectionStatement {
  /** A named statement beginning with WITH (a CTE is where the runner adds its step). */
  readonly query: { readonly name: string; readonly text: string; readonly values: readonly unknown[] };
  /** What became visible, from the statement's rows (a method: it may take its own row type). */
  publications(rows: readonly object[]): readonly Publication[];
}

export interface HandleOptions {
  /**
   * The batch is part of a replay into fresh tables that `finishReplay` completes: what it derives
   * (counters, say) may be left out, and so may its publications (a rebuild publishes nothing).
   */
  readonly replay?: boolean;
}
