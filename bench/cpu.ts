/** CPU use from /proc: herald's process, the embedded PostgreSQL, the bench itself and the whole machine. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { round } from './stats';

/** Clock ticks per second of /proc's CPU times. */
export const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks (cutime/cstime: children it has reaped). */
  readonly ticks: number;
}

function readProcStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces: state ppid … utime stime cutime cstime.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return {
      pid,
      ppid: Number(fields[1]),
      ticks: Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]),
    };
  } catch {
    return undefined;
  }
}

/** Ticks of every process descended from `root` (not `root` itself), leaving out the subtrees of `exclude`. */
function descendantTicks(root: number, exclude: ReadonlySet<number>): number {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return NaN;
  }
  const children = new Map<number, ProcStat[]>();
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProcStat(Number(entry));
    if (!stat) continue;
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push(stat);
    children.set(stat.ppid, siblings);
  }
  let ticks = 0;
  const stack = [...(children.get(root) ?? [])];
  while (stack.length > 0) {
    const stat = stack.pop()!;
    if (exclude.has(stat.pid)) continue;
    ticks += stat.ticks;
    stack.push(...(children.get(stat.pid) ?? []));
  }
  return ticks;
}

function machineTicks(): { busy: number; total: number } {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - fields[3]! - fields[4]!, total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

export interface CpuSnapshot {
  readonly at: number;
  readonly herald: number;
  readonly postgres: number;
  readonly bench: NodeJS.CpuUsage;
  readonly machine: { busy: number; total: number };
}

export interface CpuUse {
  /** Percent of one core over the interval, like top. */
  readonly heraldPercent: number | null;
  /** Embedded PostgreSQL (the bench's other child processes); null for a DATABASE_URL server. */
  readonly postgresPercent: number | null;
  readonly benchPercent: number;
  /** Whole machine, percent of all cores. */
  readonly machineBusyPercent: number | null;
  /** Busy CPU not accounted for by the above (other processes on the machine), percent of one core. */
  readonly otherPercent: number | null;
  /** µs of herald's CPU per operation over the interval (when the caller counted operations). */
  readonly heraldMicrosPerOperation?: number | null;
  /** µs of the embedded PostgreSQL's CPU per operation (null for a DATABASE_URL server). */
  readonly postgresMicrosPerOperation?: number | null;
}

/**
 * CPU sampling from /proc: herald's process (`/proc/<pid>/stat` utime+stime), the embedded PostgreSQL
 * (every other process descended from the bench, but `otherChildPids` and theirs), the bench itself and
 * the whole machine.
 */
export class CpuSampler {
  constructor(
    private readonly heraldPid: number | undefined,
    /** Other child processes of the bench (a device simulator, say): left out of `postgresPercent`. */
    private readonly otherChildPids: readonly number[] = [],
  ) {}

  snapshot(): CpuSnapshot {
    const herald = this.heraldPid === undefined ? undefined : readProcStat(this.heraldPid);
    return {
      at: performance.now(),
      herald: herald?.ticks ?? NaN,
      postgres: process.env.DATABASE_URL
        ? NaN
        : descendantTicks(
            process.pid,
            new Set([...(this.heraldPid === undefined ? [] : [this.heraldPid]), ...this.otherChildPids]),
          ),
      bench: process.cpuUsage(),
      machine: machineTicks(),
    };
  }

  /** CPU use over the interval; with `operations` (how many the interval did), also µs of CPU per operation. */
  static between(from: CpuSnapshot, to: CpuSnapshot, operations?: number): CpuUse {
    const seconds = (to.at - from.at) / 1000;
    const percent = (ticks: number) =>
      Number.isFinite(ticks) && seconds > 0 ? round((100 * ticks) / CLOCK_TICKS / seconds, 1) : null;
    const microsPerOperation = (ticks: number) =>
      Number.isFinite(ticks) && operations !== undefined && operations > 0
        ? round((1e6 * ticks) / CLOCK_TICKS / operations, 1)
        : null;
    const benchMicros = to.bench.user + to.bench.system - (from.bench.user + from.bench.system);
    const machineTotal = to.machine.total - from.machine.total;
    const heraldPercent = percent(to.herald - from.herald);
    const postgresPercent = percent(to.postgres - from.postgres);
    const benchPercent = seconds > 0 ? round(benchMicros / 1e4 / seconds, 1) : 0;
    const machineBusyPercent =
      Number.isFinite(machineTotal) && machineTotal > 0
        ? round((100 * (to.machine.busy - from.machine.busy)) / machineTotal, 1)
        : null;
    const otherPercent =
      machineBusyPercent === null
        ? null
        : Math.max(
            0,
            round(
              machineBusyPercent * os.cpus().length - (heraldPercent ?? 0) - (postgresPercent ?? 0) - benchPercent,
              1,
            ),
          );
    return {
      heraldPercent,
      postgresPercent,
      benchPercent,
      machineBusyPercent,
      otherPercent,
      ...(operations !== undefined && {
        heraldMicrosPerOperation: microsPerOperation(to.herald - from.herald),
        postgresMicrosPerOperation: microsPerOperation(to.postgres - from.postgres),
      }),
    };
  }
}
