import cliProgress from 'cli-progress';
import type { Infrastructure } from '../infrastructure';
import type { Logger } from '../runtime/logger';
import type { Projection } from './projection';
import { rebuildProjections, type RebuildProgress, type RebuildRetention } from './projectionRebuild';

// Progress lines are for a log or a script following along, not for a redraw: one a second will do.
const PROGRESS_LINE_EVERY_MS = 1000;

/**
 * Runs `herald projections rebuild`. On a terminal (stderr a TTY) each projection gets a bar on stderr
 * with events/s and ETA; otherwise stdout carries its progress as JSON lines, at most one a second per
 * projection. Either way stdout gets one last line per projection rebuilt, `"done":true` with the
 * seconds it took — on a terminal once every bar has stopped, so the two do not draw over each other.
 */
export async function runRebuild(
  infrastructure: Infrastructure,
  projections: readonly Projection[],
  log: Logger,
  retention?: RebuildRetention,
): Promise<void> {
  const bars = process.stderr.isTTY
    ? new cliProgress.MultiBar(
        {
          format:
            '{projection} |{bar}| {percentage}% | position {value}/{total} | {rate} events/s | ETA {eta_formatted}',
          stream: process.stderr,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const width = Math.max(...projections.map((p) => p.name.length));
  const barOf = new Map<string, cliProgress.SingleBar>();
  const lastLineAt = new Map<string, number>();
  const doneLines: string[] = [];

  const onProgress = (progress: RebuildProgress) => {
    const line = `${JSON.stringify(progress)}\n`;
    if (!bars) {
      if (!progress.done && Date.now() - (lastLineAt.get(progress.projection) ?? 0) < PROGRESS_LINE_EVERY_MS) return;
      lastLineAt.set(progress.projection, Date.now());
      process.stdout.write(line);
      return;
    }
    const total = Math.max(Number(progress.head), 0);
    const value = Math.min(Math.max(Number(progress.position), 0), total);
    const payload = { projection: progress.projection.padEnd(width), rate: progress.eventsPerSecond };
    let bar = barOf.get(progress.projection);
    // Made at its first report, which comes once the rebuild holds its lock and knows the head.
    if (!bar) barOf.set(progress.projection, (bar = bars.create(total, value, payload)));
    bar.update(value, payload);
    if (progress.done) doneLines.push(line);
  };

  try {
    await rebuildProjections(infrastructure, projections, onProgress, log, retention);
  } finally {
    bars?.stop();
    for (const line of doneLines) process.stdout.write(line);
  }
}
