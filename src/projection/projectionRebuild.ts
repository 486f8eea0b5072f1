import { InProcessBus } from '../bus/bus';
import type { Infrastructure } from '../herald';
import type { Logger } from '../logger';
import type { Projection } from './projection';
import { ProjectionRunner, prepareCheckpoint, readCheckpoints, resetProjection } from './projectionRunner';
import pino from 'pino';
import { withTransaction } from '../postgres/transaction';

export interface RebuildProgress {
  readonly projection: string;
  readonly position: string;
  readonly head: string;
  readonly done: boolean;
}

/**
 * Empties each projection's tables and replays the event stream into them from position 0.
 *
 * The reset (truncate + checkpoint back to the start) is one transaction. If a herald server is running,
 * its runner holds the projection's lock: its next checkpoint compare-and-set fails, it resumes from the
 * start and does the replay, and this command watches it. Otherwise the runner started here does it.
 */
export async function rebuildProjections(
  infrastructure: Infrastructure,
  projections: readonly Projection[],
  onProgress: (progress: RebuildProgress) => void,
  log: Logger = pino({ level: 'silent' }),
): Promise<void> {
  const { database, store } = infrastructure;
  for (const projection of projections) {
    await prepareCheckpoint(database.pool, projection);
    await withTransaction(database.pool, (tx) => resetProjection(tx, projection));

    const head = await store.headPosition();
    // Publications of a rebuild go nowhere: subscribers already saw these changes live.
    const runner = new ProjectionRunner({ database, store, projection, bus: new InProcessBus(), log });
    runner.start();
    try {
      let reported: bigint | undefined;
      for (;;) {
        const position = (await readCheckpoints(database.pool)).get(projection.name) ?? -1n;
        const done = position >= head;
        if (position !== reported || done) {
          onProgress({ projection: projection.name, position: position.toString(), head: head.toString(), done });
          reported = position;
        }
        if (done) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    } finally {
      await runner.stop();
    }
  }
}
