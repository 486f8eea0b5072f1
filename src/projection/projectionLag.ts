import type pg from 'pg';
import type { EventStore } from '../eventStore/eventStore';
import type { ReadinessCheck } from '../nodes/readiness';
import type { Clock } from '../runtime/clock';
import { parkedCounts } from './parkedEvents';
import type { ProjectionProgress } from './projectionProgress';
import { readCheckpoints, type ProjectionRunner } from './projectionRunner';

export interface ProjectionLag {
  readonly projection: string;
  /** Store positions between the head and the projection's position. */
  readonly positions: number;
  /** The age of the oldest event the projection has not applied; 0 when it has applied them all. */
  readonly seconds: number;
}

/** Each projection's lag behind the store, from where it has got to (`position`, -1n for nowhere). */
export async function projectionLags(
  store: EventStore,
  projections: ReadonlyArray<{ readonly name: string; readonly position: bigint }>,
  now: Date,
): Promise<ProjectionLag[]> {
  const head = await store.headPosition();
  return Promise.all(
    projections.map(async ({ name, position }) => {
      if (position >= head) return { projection: name, positions: 0, seconds: 0 };
      const [oldest] = await store.readAll({ ...(position >= 0n && { after: position }), maxCount: 1 });
      const seconds = oldest ? Math.max(0, (now.getTime() - oldest.createdAt.getTime()) / 1000) : 0;
      return { projection: name, positions: Number(head - (position < 0n ? 0n : position)), seconds };
    }),
  );
}

/**
 * The `projections` readiness check: not ready while a projection has not reached the store's head as it
 * was at start-up (a node fresh from a restart serves no stale reads), or while the oldest event one has
 * not applied is older than `maxLagSeconds` — stalled (a lock, a failing runner) or far behind — since
 * every read model serves reads. Positions are read from the database, not the runner: a standby node is
 * ready when the node that runs the projection keeps it up to date.
 */
export function projectionsReadiness(deps: {
  readonly store: EventStore;
  readonly pool: pg.Pool;
  readonly runners: readonly ProjectionRunner[];
  readonly progress: ProjectionProgress;
  readonly clock: Clock;
  readonly startupHead: bigint;
  readonly maxLagSeconds: number;
}): ReadinessCheck {
  return {
    name: 'projections',
    async run() {
      const { runners, progress } = deps;
      const [checkpoints, parked] = await Promise.all([readCheckpoints(deps.pool), parkedCounts(deps.pool)]).catch(
        (error: unknown) => {
          throw new Error(`the read models' database does not answer: ${(error as Error).message}`);
        },
      );
      // A runner passing events it has nothing to do with writes its checkpoint lazily; `progress` knows at once how far it got.
      const positions = runners.map((r) => {
        const stored = checkpoints.get(r.name) ?? -1n;
        const passed = progress.position(r.name);
        return { name: r.name, position: passed > stored ? passed : stored };
      });
      const lags = await projectionLags(deps.store, positions, deps.clock());
      const problems: string[] = [];
      const detail = Object.fromEntries(
        runners.map((runner, i) => {
          const { position } = positions[i]!;
          const lag = lags[i]!;
          if (position < deps.startupHead)
            problems.push(`${runner.name} is catching up to the store's head at start-up`);
          else if (lag.seconds > deps.maxLagSeconds)
            problems.push(
              `${runner.name} is ${Math.round(lag.seconds)} s behind the store (more than ${deps.maxLagSeconds} s)`,
            );
          const failing = runner.failing;
          return [
            runner.name,
            {
              state: runner.state,
              position: position.toString(),
              caughtUp: lag.positions === 0,
              lagSeconds: Math.round(lag.seconds * 10) / 10,
              // Parked events do not make a node unready (it serves everything else); they are shown to be seen.
              parked: parked.get(runner.name) ?? 0,
              ...(failing && {
                failing: { since: failing.since.toISOString(), attempts: failing.attempts, error: failing.error },
              }),
            },
          ];
        }),
      );
      return { detail, ...(problems.length > 0 && { problem: problems.join('; ') }) };
    },
  };
}
