import cliProgress from 'cli-progress';
import type { Infrastructure } from '../infrastructure';
import type { Projection } from '../projection/projection';
import type { EventArchive } from './eventArchive';
import { eventRetentionPass, retiredStreamsQueued, type BatchReport } from './eventRetention';
import { prunePass, type PassReport, type PruningTerms } from './retention';

/**
 * `herald storage prune`: one retention pass now, as the leader runs them (docs/operations.md,
 * "Retention") — the read models first (what they prune is retired), then the event store's archive and
 * removal of what is retired. On a terminal a bar on stderr follows the event store's streams; stdout gets
 * one JSON line with what was done. A pass the leader is running meanwhile takes the event store's part
 * itself (one at a time): this one then says `eventStore: null`.
 */
export async function runPrune(deps: {
  readonly infrastructure: Infrastructure;
  readonly projections: readonly Projection[];
  readonly pruning: PruningTerms;
  readonly archive: EventArchive;
}): Promise<{ readModels: PassReport[]; eventStore: BatchReport[] | null }> {
  const { infrastructure, archive } = deps;
  const { pool } = infrastructure.database;
  const readModels = await prunePass(deps.pruning);
  const total = await retiredStreamsQueued(pool);
  const bar =
    process.stderr.isTTY && total > 0
      ? new cliProgress.SingleBar(
          {
            format:
              'event store |{bar}| {value}/{total} streams | {archived} archived, {removed} removed | ETA {eta_formatted}',
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  bar?.start(total, 0, { archived: 0, removed: 0 });
  let streams = 0;
  let archived = 0;
  let removed = 0;
  const batches = await eventRetentionPass({
    pool,
    store: infrastructure.store,
    archive,
    batchSize: deps.pruning.batchSize,
    projectionNames: deps.projections.map((p) => p.name),
    onBatch: (batch) => {
      streams += batch.streams;
      archived += batch.archived;
      removed += batch.removed;
      // A stream retired again (events past the bound) counts once more than the queue said.
      bar?.setTotal(Math.max(total, streams));
      bar?.update(streams, { archived, removed });
    },
  });
  bar?.stop();
  return { readModels, eventStore: batches ?? null };
}
