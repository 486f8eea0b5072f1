import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { ExportOutput, ExportSelection } from '../eventStore/eventStore';

/**
 * Where retention puts the events it removes from the store (issue 26; docs/operations.md, "Retention"):
 * JSON Lines in the `herald replay` format (docs/analysts.md), the very lines a replay printed for them,
 * in a directory (HERALD_ARCHIVE_DIR). A local directory only: an object-store URL is not supported yet.
 *
 * Positions are cut into segments of SEGMENT positions; each segment is a directory (`000001000000/`)
 * holding one file per removal batch that removed events of it (`batch-000000000042.jsonl`, its lines in
 * position order) and a `manifest.json` listing them: file, first and last position, lines, bytes,
 * sha256. Batches retire streams, not ranges, so two files of a segment may interleave; a reader merges a
 * segment's files as it reads them, and the segments in order. Every file and manifest is written
 * to a temporary name, fsynced, renamed, and its directory fsynced, before the store deletes anything: a
 * crash leaves either the old manifest or the new one, and a batch written again (after a crash before
 * its removal) writes the same bytes under the same names.
 */

export const SEGMENT = 1_000_000n;
/** The file naming the archive, so a database's passes never write to another archive (src/storage/eventRetention.ts). */
const ID_FILE = 'archive-id';

export interface ArchiveFile {
  /** Relative to the archive directory. */
  readonly file: string;
  readonly firstPosition: string;
  readonly lastPosition: string;
  readonly count: number;
  readonly bytes: number;
  readonly sha256: string;
}

interface Manifest {
  readonly format: 'herald-replay-jsonl';
  readonly version: 1;
  readonly files: readonly ArchiveFile[];
}

export interface ArchivedLine {
  readonly position: bigint;
  /** The line without its line break. */
  readonly line: string;
}

const MANIFEST = 'manifest.json';
const segmentName = (segment: bigint) => segment.toString().padStart(12, '0');
const batchFileName = (batchId: bigint) => `batch-${batchId.toString().padStart(12, '0')}.jsonl`;

/** The position a replay line starts with (`{"position":"123",…`). */
export function positionOfLine(line: string): bigint {
  const match = /^\{"position":"(\d+)"/.exec(line);
  if (!match) throw new Error(`not a herald replay line: ${line.slice(0, 80)}`);
  return BigInt(match[1]!);
}

export class EventArchive {
  /** `segment`: positions per segment directory (tests make it small, to have many). */
  constructor(
    readonly directory: string,
    private readonly segment = SEGMENT,
  ) {}

  /**
   * Writes batch `batchId`'s lines (in position order), one file per segment they fall in, and each such
   * segment's manifest; durable when it resolves. Writing the same batch again replaces its files with the
   * same bytes. Returns the files written.
   */
  async write(batchId: bigint, lines: readonly ArchivedLine[]): Promise<ArchiveFile[]> {
    const bySegment = new Map<bigint, ArchivedLine[]>();
    for (const line of lines) {
      const segment = (line.position / this.segment) * this.segment;
      const list = bySegment.get(segment) ?? [];
      list.push(line);
      bySegment.set(segment, list);
    }
    const written: ArchiveFile[] = [];
    for (const [segment, segmentLines] of [...bySegment].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const dir = path.join(this.directory, segmentName(segment));
      await mkdir(dir, { recursive: true });
      const text = segmentLines.map((l) => `${l.line}\n`).join('');
      const name = batchFileName(batchId);
      await writeDurably(dir, name, text);
      const file: ArchiveFile = {
        file: `${segmentName(segment)}/${name}`,
        firstPosition: segmentLines[0]!.position.toString(),
        lastPosition: segmentLines[segmentLines.length - 1]!.position.toString(),
        count: segmentLines.length,
        bytes: Buffer.byteLength(text),
        sha256: createHash('sha256').update(text).digest('hex'),
      };
      const manifest = await this.manifestOf(segment);
      const files = [...manifest.files.filter((f) => f.file !== file.file), file].sort((a, b) =>
        a.file < b.file ? -1 : 1,
      );
      await writeDurably(dir, MANIFEST, `${JSON.stringify({ ...manifest, files } satisfies Manifest, null, 1)}\n`);
      written.push(file);
    }
    await syncDirectory(this.directory);
    return written;
  }

  /** The archive's id (its `archive-id` file), written at its first use; undefined before. */
  async id(): Promise<string | undefined> {
    try {
      return (await readFile(path.join(this.directory, ID_FILE), 'utf8')).trim();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** Gives the archive its id, durably (the directory created if need be, and its parent synced). */
  async createId(id: string): Promise<void> {
    await mkdir(this.directory, { recursive: true });
    await writeDurably(this.directory, ID_FILE, `${id}\n`);
    await syncDirectory(path.dirname(path.resolve(this.directory)));
  }

  /** Every file the manifests list, segment by segment. */
  async files(): Promise<ArchiveFile[]> {
    const all: ArchiveFile[] = [];
    for (const segment of await this.segments()) all.push(...(await this.manifestOf(segment)).files);
    return all;
  }

  /**
   * The archived lines `selection` picks, in position order, each position once: segment after segment,
   * each segment's files merged as they are read (memory: a line per file). Each file is checked against
   * its manifest (sha256, lines) as it ends: an archive that changed fails the read, never leaves a silent gap.
   */
  async *lines(selection: ExportSelection = {}): AsyncGenerator<ArchivedLine> {
    const picked = lineSelector(selection);
    for (const segment of await this.segments()) {
      if (typeof selection.to === 'bigint' && segment > selection.to) return;
      if (typeof selection.from === 'bigint' && segment + this.segment <= selection.from) continue;
      const readers = (await this.manifestOf(segment)).files.map((file) => checkedLines(this.directory, file));
      const heads = await Promise.all(readers.map((reader) => reader.next()));
      let previous = -1n;
      for (;;) {
        let lowest = -1;
        heads.forEach((head, i) => {
          if (!head.done && (lowest < 0 || head.value.position < (heads[lowest]!.value as ArchivedLine).position))
            lowest = i;
        });
        if (lowest < 0) break;
        const line = heads[lowest]!.value as ArchivedLine;
        heads[lowest] = await readers[lowest]!.next();
        if (line.position === previous || !picked(line)) continue;
        previous = line.position;
        yield line;
      }
    }
  }

  private async segments(): Promise<bigint[]> {
    let names: string[];
    try {
      names = await readdir(this.directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return names
      .filter((n) => /^\d{12}$/.test(n))
      .map(BigInt)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  private async manifestOf(segment: bigint): Promise<Manifest> {
    try {
      return JSON.parse(await readFile(path.join(this.directory, segmentName(segment), MANIFEST), 'utf8')) as Manifest;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        return { format: 'herald-replay-jsonl', version: 1, files: [] };
      throw error;
    }
  }
}

/** A file's lines as they are read, checked against its manifest entry when it ends. */
async function* checkedLines(directory: string, file: ArchiveFile): AsyncGenerator<ArchivedLine> {
  const hash = createHash('sha256');
  let count = 0;
  const input = createReadStream(path.join(directory, file.file), { encoding: 'utf8' });
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    hash.update(`${line}\n`);
    count++;
    yield { position: positionOfLine(line), line };
  }
  const sha256 = hash.digest('hex');
  if (sha256 !== file.sha256) throw new Error(`archive file ${file.file}: sha256 ${sha256}, manifest ${file.sha256}`);
  if (count !== file.count) throw new Error(`archive file ${file.file}: ${count} lines, manifest ${file.count}`);
}

/** The selection on an archived line (the store's filter, src/analysts/replay.ts, on its JSON). */
function lineSelector(selection: ExportSelection): (line: ArchivedLine) => boolean {
  const { types, streamPrefix, appId, from, to, streams } = selection;
  const typeSet = types && types.length > 0 ? new Set(types) : undefined;
  const streamSet = streams && new Set(streams);
  const needsParse = typeSet || streamPrefix !== undefined || appId !== undefined || streamSet;
  const timed = from instanceof Date || to instanceof Date;
  return ({ position, line }) => {
    if (typeof from === 'bigint' && position < from) return false;
    if (typeof to === 'bigint' && position > to) return false;
    if (!needsParse && !timed) return true;
    const event = JSON.parse(line) as { stream: string; type: string; time: string; metadata: { appId?: unknown } };
    if (typeSet && !typeSet.has(event.type)) return false;
    if (streamPrefix !== undefined && !event.stream.startsWith(streamPrefix)) return false;
    if (streamSet && !streamSet.has(event.stream)) return false;
    if (appId !== undefined && event.metadata.appId !== appId) return false;
    const time = Date.parse(event.time);
    if (from instanceof Date && time < from.getTime()) return false;
    return !(to instanceof Date && time > to.getTime());
  };
}

/**
 * An output that interleaves the archive's lines with a store's (both in position order) into `write`:
 * before each store line, the archived ones before it; an archived line whose position the store still
 * holds (a batch archived, its removal not yet committed) is written once, from the store. `finish` writes
 * the archived lines after the store's last and says how many archived lines were written.
 */
export function mergedWithArchive(
  archived: AsyncIterator<ArchivedLine>,
  write: ExportOutput,
): { readonly write: ExportOutput; finish(): Promise<number> } {
  const decoder = new TextDecoder();
  let pending = '';
  let next: ArchivedLine | undefined | null = null; // null: not read yet; undefined: none left
  let written = 0;
  const peek = async () => {
    if (next === null) next = (await archived.next()).value ?? undefined;
    return next;
  };
  const take = () => {
    next = null;
  };
  /** Writes the archived lines before `position` (and drops one at it), as one chunk. */
  const archivedBefore = async (position: bigint | undefined): Promise<string> => {
    let chunk = '';
    for (let line = await peek(); line && (position === undefined || line.position <= position); line = await peek()) {
      if (line.position !== position) {
        chunk += `${line.line}\n`;
        written++;
      }
      take();
    }
    return chunk;
  };
  return {
    async write(chunk) {
      const text = pending + (typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
      const end = text.lastIndexOf('\n') + 1;
      pending = text.slice(end);
      if (end === 0) return;
      const whole = text.slice(0, end);
      const upcoming = await peek();
      // Most chunks lie wholly before the next archived line: passed on as they are.
      const lastLineStart = whole.lastIndexOf('\n', end - 2) + 1;
      if (!upcoming || positionOfLine(whole.slice(lastLineStart)) < upcoming.position) return write(whole);
      let out = '';
      for (const line of whole.slice(0, -1).split('\n'))
        out += (await archivedBefore(positionOfLine(line))) + `${line}\n`;
      await write(out);
    },
    async finish() {
      const rest = pending + decoder.decode();
      if (rest) await write(rest);
      const tail = await archivedBefore(undefined);
      if (tail) await write(tail);
      return written;
    },
  };
}

/** `text` as `dir/name`, durably: a temporary file, fsynced, renamed over the name, the directory fsynced. */
async function writeDurably(dir: string, name: string, text: string): Promise<void> {
  const temporary = path.join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temporary, 'w');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temporary, path.join(dir, name));
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
