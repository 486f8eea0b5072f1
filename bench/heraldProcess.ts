/**
 * herald as its own process, never loaded into the load generator: `herald serve` until /readyz answers,
 * and the CLI's one-off commands timed end to end.
 *
 * Variables every benchmark that starts herald understands:
 *   BENCH_READY_TIMEOUT_SECONDS  how long to wait for a started herald's GET /readyz 200 (default 120)
 *   BENCH_HERALD_ENV             extra variables for `herald serve`, "NAME=value NAME=value" (default none)
 *   BENCH_HERALD_NODE_ARGS       extra node flags for `herald serve` and the CLI's commands, e.g.
 *                                "--cpu-prof --cpu-prof-dir=/tmp/prof" (a profile, written when herald exits; default none)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../test/support/postgres';
import { type Cleanup, envNumber, progress, sleep } from './run';

export const ROOT = path.resolve(__dirname, '..');
/** The app every started herald is configured with. */
export const APP_ID = 'camel';
export const APP_SECRET = 'EERWERRRRE';

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

export interface HeraldOptions {
  readonly env?: Record<string, string>;
  readonly readyTimeoutMs?: number;
  /** Run dist/ (see buildHerald), not the sources under tsx. */
  readonly compiled?: boolean;
}

/**
 * `herald serve` as its own process on `databaseUrl` (undefined: herald's embedded PostgreSQL, as
 * deployed by default — pass HERALD_DATA_DIR and HERALD_EMBEDDED_POSTGRES_PORT in `env`) and a free port
 * of 127.0.0.1, with the app camel:EERWERRRRE and the highest send rate the configuration allows.
 * Resolves once GET /readyz answers 200; rejects when herald exits first or the deadline passes.
 */
export async function startHerald(databaseUrl: string | undefined, options: HeraldOptions = {}): Promise<HeraldChild> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const program = options.compiled
    ? [path.join(ROOT, 'dist/src/cli.js')]
    : ['--import', 'tsx', path.join(ROOT, 'src/cli.ts')];
  const nodeArgs = process.env.BENCH_HERALD_NODE_ARGS?.trim().split(/\s+/) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, ...program, 'serve'], {
    cwd: ROOT,
    env: childEnvironment({
      ...(databaseUrl !== undefined && { DATABASE_URL: databaseUrl }),
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

/**
 * `herald serve` on its embedded defaults — its own PostgreSQL in a fresh HERALD_DATA_DIR on a free port,
 * as `npm start` runs it — and a pg client of that database for the bench's own queries (the password
 * herald generated). `cleanup` stops herald and removes the directory.
 */
export async function startEmbeddedHerald(
  cleanup: Cleanup,
  env: Record<string, string> = {},
): Promise<{ herald: HeraldChild; database: pg.Client; dataDir: string }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-bench-'));
  cleanup.add('remove the data directory', () => rm(dataDir, { recursive: true, force: true }));
  const postgresPort = await freePort();
  progress(`starting herald on its embedded PostgreSQL (${dataDir}, port ${postgresPort})`);
  const herald = await startHerald(undefined, {
    env: { HERALD_DATA_DIR: dataDir, HERALD_EMBEDDED_POSTGRES_PORT: String(postgresPort), ...env },
  });
  cleanup.add('stop herald', () => herald.stop());
  const password = (await readFile(path.join(dataDir, 'postgres.password'), 'utf8')).trim();
  const database = new pg.Client({
    connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${postgresPort}/herald`,
  });
  await database.connect();
  cleanup.add('close the database connection', () => database.end());
  return { herald, database, dataDir };
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

/** Why a CLI run did not complete (its exit code, a timeout, its last output); undefined when it did. */
export function incompleteRun(what: string, run: CliRun): string | undefined {
  if (run.exitCode === 0 && !run.timedOut) return undefined;
  return `${what} did not complete (exit ${run.exitCode}${run.timedOut ? ', timed out' : ''}):\n${run.output}`;
}

/**
 * `node --import tsx src/cli.ts <args>` on `databaseUrl`, timed end to end; SIGTERM (then SIGKILL) at the
 * deadline. `onStart` gets the process id (to sample its CPU, say).
 */
export function runHeraldCli(
  args: readonly string[],
  databaseUrl: string,
  timeoutMs: number,
  onLine?: (line: string) => void,
  onStart?: (pid: number) => void,
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const nodeArgs = process.env.BENCH_HERALD_NODE_ARGS?.trim().split(/\s+/) ?? [];
    const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', path.join(ROOT, 'src/cli.ts'), ...args], {
      cwd: ROOT,
      env: childEnvironment({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid !== undefined) onStart?.(child.pid);
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
