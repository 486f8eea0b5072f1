/**
 * The load generator of the soaks (bench/chaosLoad.ts) as a child process with an IPC channel, driven by
 * its orchestrator (bench/chaos.ts, bench/soak.ts): `send` a message, `next` awaits the answer of a type.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './heraldProcess';

export interface Load {
  readonly pid: number;
  send(message: unknown): void;
  next<T>(type: string, timeoutMs: number): Promise<T>;
  stop(): Promise<void>;
}

export function startLoad(): Load {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'chaosLoad.ts')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  child.stdout?.on('data', (chunk: Buffer) => process.stderr.write(chunk)); // stdout carries only the bench's JSON
  const waiting = new Map<string, (message: Record<string, unknown>) => void>();
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = true;
      for (const resolveWaiter of waiting.values())
        resolveWaiter({ type: 'failed', error: `the load generator exited (${code ?? signal})` });
      resolve();
    }),
  );
  child.on('message', (message: Record<string, unknown>) => {
    const waiter =
      waiting.get(String(message.type)) ?? (message.type === 'failed' ? [...waiting.values()][0] : undefined);
    if (!waiter) return;
    for (const [type, w] of waiting) if (w === waiter) waiting.delete(type);
    waiter(message);
  });
  return {
    pid: child.pid!,
    send: (message) => {
      if (!exited) child.send(message as never);
    },
    next: <T>(type: string, timeoutMs: number) =>
      new Promise<T>((resolve, reject) => {
        if (exited) return reject(new Error('the load generator has exited'));
        const timer = setTimeout(() => {
          waiting.delete(type);
          reject(new Error(`the load generator did not answer "${type}" within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        waiting.set(type, (message) => {
          clearTimeout(timer);
          if (message.type === 'failed') reject(new Error(`load generator: ${String(message.error)}`));
          else resolve(message as T);
        });
      }),
    async stop() {
      if (exited) return;
      child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(timer);
    },
  };
}
