/**
 * A benchmark's hold on a Node process it started with `--inspect=127.0.0.1:<port>` (NODE_OPTIONS allows
 * it, where it refuses `--cpu-prof`): the Chrome DevTools Protocol over the inspector's WebSocket, for
 * what cannot be done from outside otherwise — a full garbage collection before reading the process's
 * resident memory, the JS heap's size, and a CPU profile of just the measured window.
 */
import http from 'node:http';
import WebSocket from 'ws';
import { PendingCalls } from './pendingCalls';

/** The protocol's Profiler.Profile (the parts read here); written to disk as a .cpuprofile as it is. */
export interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  }>;
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface ProfileLine {
  readonly name: string;
  readonly selfPercent: number;
  readonly selfMs: number;
}

export interface ProfileSummary {
  /** Sampled time outside "(idle)", ms. */
  readonly busyMs: number;
  /** Self time by function (name and place), percent of busy time. */
  readonly topFunctions: readonly ProfileLine[];
  /** Self time by where the code lives: a package, a herald folder, node's internals, GC, … */
  readonly byArea: readonly ProfileLine[];
}

function getJson(url: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString()));
        } catch (error) {
          reject(error as Error);
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

export class NodeInspector {
  private readonly calls = new PendingCalls();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } };
      if (message.id === undefined) return; // an event
      this.calls.answer(message.id, message.error?.message, message.result);
    });
    socket.on('close', () => this.calls.rejectAll(new Error('the inspector connection closed')));
  }

  /** Attaches to the inspector listening on 127.0.0.1:`port` (its first target). */
  static async attach(port: number, timeoutMs = 10_000): Promise<NodeInspector> {
    const targets = (await getJson(`http://127.0.0.1:${port}/json/list`, timeoutMs)) as Array<{
      webSocketDebuggerUrl?: string;
    }>;
    const url = targets[0]?.webSocketDebuggerUrl;
    if (!url) throw new Error(`the inspector on port ${port} lists no target`);
    const socket = new WebSocket(url, { perMessageDeflate: false, maxPayload: 2 ** 30 });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new NodeInspector(socket);
  }

  call<T>(method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    return this.calls.call<T>(`inspector: no answer to ${method} within ${timeoutMs} ms`, timeoutMs, (id) =>
      this.socket.send(JSON.stringify({ id, method, params })),
    );
  }

  /** A full, compacting collection. */
  async collectGarbage(): Promise<void> {
    await this.call('HeapProfiler.collectGarbage');
  }

  /** Bytes of the JS heap in use (live objects, after a collection). */
  async heapUsedBytes(): Promise<number> {
    return (await this.call<{ usedSize: number }>('Runtime.getHeapUsage')).usedSize;
  }

  /** The process's `process.memoryUsage()` and V8's heap spaces (`require` is the inspector's command-line API). */
  async memoryUsage(): Promise<{
    usage: NodeJS.MemoryUsage;
    spaces: Array<{ space_name: string; space_size: number; space_used_size: number }>;
  }> {
    const expression = `JSON.stringify({ usage: process.memoryUsage(), spaces: require('v8').getHeapSpaceStatistics() })`;
    const { result } = await this.call<{ result: { value?: string } }>('Runtime.evaluate', {
      expression,
      returnByValue: true,
      includeCommandLineAPI: true,
    });
    if (typeof result.value !== 'string')
      throw new Error(`inspector: memoryUsage evaluated to ${JSON.stringify(result)}`);
    return JSON.parse(result.value);
  }

  async startProfiling(samplingIntervalUs: number): Promise<void> {
    await this.call('Profiler.enable');
    await this.call('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
    await this.call('Profiler.start');
  }

  async stopProfiling(): Promise<CpuProfile> {
    const { profile } = await this.call<{ profile: CpuProfile }>('Profiler.stop');
    await this.call('Profiler.disable');
    return profile;
  }

  close(): void {
    this.socket.terminate();
  }
}

/** Where a frame's code lives: a package under node_modules, a folder of `root`, node's own, or V8's pseudo-frames. */
function areaOf(url: string, functionName: string, root: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node: internals';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const local = url.replace(/^file:\/\//, '');
  if (local.startsWith(root))
    return local
      .slice(root.length + 1)
      .split('/')
      .slice(0, 2)
      .join('/');
  return local;
}

/**
 * Self time per function and per area over the whole profile, without "(idle)"; `top` lines of each.
 * Paths are shown relative to `root` (a package's: from its folder in node_modules).
 */
export function summarizeProfile(profile: CpuProfile, root: string, top = 15): ProfileSummary {
  const byNode = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // A sample's time is the delta to the next one (the last: the mean).
  const mean = samples.length > 0 ? (profile.endTime - profile.startTime) / samples.length : 0;
  for (let i = 0; i < samples.length; i++)
    byNode.set(samples[i]!, (byNode.get(samples[i]!) ?? 0) + (i + 1 < deltas.length ? deltas[i + 1]! : mean));
  const functions = new Map<string, number>();
  const areas = new Map<string, number>();
  let busyUs = 0;
  for (const node of profile.nodes) {
    const us = byNode.get(node.id) ?? 0;
    if (us === 0 || node.callFrame.functionName === '(idle)') continue;
    busyUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    const modules = url.lastIndexOf('/node_modules/');
    const place =
      url === ''
        ? ''
        : modules >= 0
          ? url.slice(modules + '/node_modules/'.length)
          : url.replace(/^file:\/\//, '').replace(`${root}/`, '');
    const name = `${functionName || '(anonymous)'}${place ? ` ${place}:${lineNumber + 1}` : ''}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
    const area = areaOf(url, functionName, root);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const lines = (map: Map<string, number>) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({
        name,
        selfPercent: Number(((100 * us) / (busyUs || 1)).toFixed(1)),
        selfMs: Number((us / 1000).toFixed(1)),
      }));
  return { busyMs: Number((busyUs / 1000).toFixed(1)), topFunctions: lines(functions), byArea: lines(areas) };
}
