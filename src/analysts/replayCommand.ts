import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import cliProgress from 'cli-progress';
import type { ExportOutput, ExportProgress, ExportSelection } from '../eventStore/eventStore';
import type { Infrastructure } from '../infrastructure';
import { EventArchive, mergedWithArchive } from '../storage/eventArchive';
import { exportEvents } from './replay';

/** A `--from` / `--to` value: a position (digits) or an ISO 8601 time; undefined when it is neither. */
export function parseBound(text: string): bigint | Date | undefined {
  if (/^\d{1,19}$/.test(text)) return BigInt(text);
  const time = Date.parse(text);
  return /^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(time) ? new Date(time) : undefined;
}

/**
 * Runs `herald replay`: the filtered stream as JSON Lines to `out` (a file) or stdout — written by the
 * store where it can (`exportJsonLines`: PostgreSQL), read through the store port otherwise (replay.ts);
 * with `archive`, the events retention moved there are merged in, so the output is the stream as it was.
 * With a file (or stdout redirected to one), progress goes to stderr — a bar with events/s and ETA on a
 * terminal, JSON lines otherwise. Returns what was written.
 */
export async function runReplay(
  { store }: Pick<Infrastructure, 'store'>,
  filter: ExportSelection,
  out: string | undefined,
  /** Also the events retention archived there, merged in position order (src/storage/eventArchive.ts). */
  archive?: EventArchive,
): Promise<{ written: number; seconds: number }> {
  const file: WriteStream | undefined = out ? createWriteStream(out) : undefined;
  const target: NodeJS.WritableStream = file ?? process.stdout;
  const toFile = Boolean(file) || !process.stdout.isTTY;
  const head = await store.headPosition();
  const started = Date.now();
  const bar =
    toFile && process.stderr.isTTY
      ? new cliProgress.SingleBar(
          {
            format:
              'replay |{bar}| {percentage}% | position {value}/{total} | {written} written | {rate} events/s | ETA {eta_formatted}',
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  bar?.start(Number(head < 0n ? 0n : head), 0, { written: 0, rate: 0 });
  let lastReport = 0;
  const toTarget: ExportOutput = async (chunk) => {
    if (!target.write(chunk)) await once(target, 'drain');
  };
  const merged = archive && mergedWithArchive(archive.lines(filter)[Symbol.asyncIterator](), toTarget);
  const write = merged?.write ?? toTarget;
  const onProgress = (progress: ExportProgress) => {
    const seconds = (Date.now() - started) / 1000;
    const rate = Math.round(progress.written / Math.max(seconds, 0.001));
    if (bar) bar.update(Number(progress.position), { written: progress.written, rate });
    else if (toFile && Date.now() - lastReport >= 1000) {
      lastReport = Date.now();
      process.stderr.write(
        `${JSON.stringify({ position: progress.position.toString(), head: head.toString(), written: progress.written, eventsPerSecond: rate })}\n`,
      );
    }
  };
  const exported = await exportEvents(store, filter, head, write, onProgress);
  const result = { written: exported.written + ((await merged?.finish()) ?? 0) };
  bar?.stop();
  if (file) {
    file.end();
    await once(file, 'finish');
  }
  const seconds = (Date.now() - started) / 1000;
  if (toFile)
    process.stderr.write(
      `${JSON.stringify({ done: true, written: result.written, seconds, eventsPerSecond: Math.round(result.written / Math.max(seconds, 0.001)) })}\n`,
    );
  return { written: result.written, seconds };
}
