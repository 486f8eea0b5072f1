import { link, readFile, unlink, writeFile } from 'node:fs/promises';

/**
 * The one herald process that runs a data dir's embedded PostgreSQL: it started the postmaster, supervises
 * it and stops it. Every other herald process on that data dir (a maintenance command beside `serve`) is
 * a guest that connects to the owner's server and never starts or stops one. The owner is recorded in
 * `<dataDir>/postgres.owner`, written before the postmaster starts and removed after it stopped.
 */
export interface EmbeddedPostgresOwner {
  readonly pid: number;
  /** The process's start time (Linux: /proc/<pid>/stat), so a pid reused after a kill -9 is not taken for the owner. */
  readonly started: string | null;
  /** The port its postmaster listens on (127.0.0.1): a guest connects there, whatever its own configuration says. */
  readonly port: number;
  /** What it runs (`serve`, `projections rebuild`, …), for messages. */
  readonly command: string;
}

/**
 * Makes this process the owner, or returns the live process that already is (then nothing changes).
 * A record left by a dead owner (kill -9) is stale and replaced.
 */
export async function claimOwnership(file: string, port: number): Promise<EmbeddedPostgresOwner | undefined> {
  const me: EmbeddedPostgresOwner = {
    pid: process.pid,
    started: await startTimeOf(process.pid),
    port,
    command: process.argv.slice(2).join(' '),
  };
  for (;;) {
    if (await createExclusively(file, me)) return undefined;
    const current = await readOwner(file);
    if (current === undefined) continue; // removed meanwhile: claim again
    if (await isLive(current)) return current;
    await removeStale(file, current, me);
  }
}

/**
 * Removes a stale record, one claimant at a time. Another claimant may replace the record between our
 * reading and removing it, so removal happens under `<file>.break`, itself created exclusively: while we
 * hold it, a record still equal to the stale one can be neither removed nor replaced by anyone else. A
 * break file left by a claimant that died within those milliseconds is stale the same way.
 */
async function removeStale(file: string, stale: EmbeddedPostgresOwner, me: EmbeddedPostgresOwner): Promise<void> {
  const breakFile = `${file}.break`;
  if (!(await createExclusively(breakFile, me))) {
    const breaker = await readOwner(breakFile);
    if (breaker !== undefined && !(await isLive(breaker))) await unlink(breakFile).catch(ignore('ENOENT'));
    else await new Promise((resolve) => setTimeout(resolve, 10)); // another claimant is removing it
    return;
  }
  try {
    if (JSON.stringify(await readOwner(file)) === JSON.stringify(stale)) await unlink(file).catch(ignore('ENOENT'));
  } finally {
    await unlink(breakFile).catch(ignore('ENOENT'));
  }
}

/**
 * Writes the whole record under a name of its own, then links it into place: it appears complete, and only
 * where none is. A file system without hard links gets an exclusive create (a reader may then, for an
 * instant, find it empty and take it for stale).
 */
async function createExclusively(file: string, record: EmbeddedPostgresOwner): Promise<boolean> {
  const text = JSON.stringify(record) + '\n';
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  try {
    await link(temporary, file).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST' || !['EPERM', 'ENOTSUP', 'ENOSYS', 'EOPNOTSUPP'].includes(error.code ?? ''))
        throw error;
      return writeFile(file, text, { flag: 'wx' });
    });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return false;
  } finally {
    await unlink(temporary).catch(ignore('ENOENT'));
  }
}

/** Removes the record if it is this process's (a guest or a refused claimant never removes the owner's). */
export async function releaseOwnership(file: string): Promise<void> {
  if ((await readOwner(file))?.pid === process.pid) await unlink(file).catch(ignore('ENOENT'));
}

async function readOwner(file: string): Promise<EmbeddedPostgresOwner | undefined> {
  const text = await readFile(file, 'utf8').catch(ignore('ENOENT'));
  if (text === undefined) return undefined;
  try {
    const owner = JSON.parse(text) as Partial<EmbeddedPostgresOwner>;
    return typeof owner.pid === 'number' && typeof owner.port === 'number'
      ? {
          pid: owner.pid,
          started: typeof owner.started === 'string' ? owner.started : null,
          port: owner.port,
          command: String(owner.command ?? ''),
        }
      : { pid: 0, started: null, port: 0, command: '' }; // not a record (damaged): stale
  } catch {
    return { pid: 0, started: null, port: 0, command: '' };
  }
}

/** The recorded process still runs: its pid is alive and, where /proc tells, started when it was recorded. */
async function isLive(owner: EmbeddedPostgresOwner): Promise<boolean> {
  if (owner.pid <= 0 || owner.pid === process.pid || !isAlive(owner.pid)) return false;
  return owner.started === null || (await startTimeOf(owner.pid)) === owner.started;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised command, which may hold spaces); null without /proc. */
async function startTimeOf(pid: number): Promise<string | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
}

function ignore(code: string): (error: unknown) => undefined {
  return (error) => {
    if ((error as NodeJS.ErrnoException).code !== code) throw error;
    return undefined;
  };
}
