import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { eventually } from './eventually';

const root = path.resolve(__dirname, '../..');

/** herald as a user runs it: the CLI in a child process, configured by environment variables. */
export class HeraldProcess {
  private output = '';
  private stdoutOnly = '';
  private exited: Promise<number | null>;
  private closed: Promise<number | null>;
  /** Whether the process has ended (a crash included). */
  hasExited = false;

  private constructor(private readonly child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
      this.stdoutOnly += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        this.hasExited = true;
        resolve(code);
      }),
    );
    this.closed = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  }

  /** `as`: run under that uid/gid (possible when the test runs as root). */
  static start(
    env: Record<string, string>,
    args: readonly string[] = ['serve'],
    as?: { uid: number; gid: number },
  ): HeraldProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli.ts'), ...args], {
      ...as,
      cwd: root,
      env: { ...withoutHeraldVariables(process.env), LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new HeraldProcess(child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** stdout and stderr as they came. */
  get logs(): string {
    return this.output;
  }

  /** stdout alone: a command's output, without its log lines. */
  get stdout(): string {
    return this.stdoutOnly;
  }

  async waitForHttp(url: string, timeoutMs = 60_000): Promise<Response> {
    return eventually(
      async () => {
        const response = await fetch(url);
        if (!response.ok) throw new Error(`${url}: ${response.status}`);
        return response;
      },
      { timeoutMs, intervalMs: 100 },
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n--- herald output ---\n${this.output}`);
    });
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  exitCode(): Promise<number | null> {
    return this.exited;
  }

  /** The exit code once the process has exited and all its output has been read (a command's stdout). */
  finished(): Promise<number | null> {
    return this.closed;
  }
}

function withoutHeraldVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const key of [
    'PORT',
    'DATABASE_URL',
    'EVENTSTORE_URL',
    'REDIS_URL',
    'HERALD_DATA_DIR',
    'HERALD_APPS',
    'HERALD_EMBEDDED_POSTGRES_PORT',
  ])
    delete copy[key];
  return copy;
}
