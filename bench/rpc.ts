/**
 * RTIO device RPC (issue 10): `POST /call/send` round trips per second and their latency, with a device
 * simulator on loopback answering every call at once.
 *
 *   node --import tsx bench/rpc.ts                                              # the defaults
 *   BENCH_SECONDS=3 BENCH_DEVICES=10 BENCH_RATE=100 node --import tsx bench/rpc.ts  # a small run
 *   DATABASE_URL=postgres://… node --import tsx bench/rpc.ts
 *
 * Parameters (environment):
 *   BENCH_DEVICES                 devices created and connected on /rtio.ws (default 100)
 *   BENCH_CONCURRENCY             closed loop: callers, each calling again when answered (default 32)
 *   BENCH_SECONDS                 seconds of each measured run, closed and open loop (default 10)
 *   BENCH_RATE                    open loop: calls per second, whatever the answers (default 500)
 *   BENCH_MAX_IN_FLIGHT           open loop: unanswered calls at most; a call due beyond it is skipped and counted (default 256)
 *   BENCH_LATE_MS                 open loop: a call fired more than this after its due time counts as late (default 5)
 *   BENCH_TIME_LIVE               each call's time_live, seconds 1-30 (default 6, herald's default)
 *   BENCH_MESSAGE_BYTES           bytes of each call's message, 8-512; the device replies with the same (default 32)
 *   BENCH_CREATE_CONCURRENCY      concurrent POST /manage/create_device (default 32)
 *   BENCH_CONNECT_TIMEOUT_SECONDS every device connected and authenticated within this (default 60)
 *   BENCH_WARMUP_CALLS            calls before measuring, round robin over the devices (default 2 × BENCH_DEVICES)
 *   BENCH_BASELINE_SAMPLES        sequential round trips of each baseline (default 500)
 *   BENCH_BASELINE_SECONDS        seconds of the GET /healthz closed loop at BENCH_CONCURRENCY (default 3)
 *   BENCH_DRAIN_SECONDS           open loop: after the last call is fired, wait at most this for the answers (default 40)
 *   BENCH_REQUEST_TIMEOUT_MS      one HTTP request's timeout (default 30,000; must exceed time_live)
 *   BENCH_READY_TIMEOUT_SECONDS   wait for herald's /readyz (default 120)
 *
 * Processes: herald runs as its own child (bench/heraldProcess.ts startHerald: fresh database, embedded
 * PostgreSQL unless DATABASE_URL). The device simulator is a second child (this file with
 * `--device-simulator`, driven over IPC): BENCH_DEVICES `ws` sockets on /rtio.ws, each authenticated with
 * its `{device_id, device_key}`, replying to every call at once with `{call_id, code: 1000, message}`
 * (its message echoed). This process is the load generator (keep-alive HTTP/1.1).
 *
 * Call i goes to device i mod BENCH_DEVICES with a nonce unique to the run and a message naming i; a call
 * is `ok` when herald answers HTTP 200, code 1000, device_status 1, device_code 1000 and the call's own
 * message back. Anything else is counted by what it was (`code-2305-status-1`, `http-500-code-2305`,
 * `wrong-device-message`, `timeout`, `network`, …).
 *
 * Phases, in order:
 *   1. create BENCH_DEVICES devices (+ one probe device and one never connected), connect them;
 *   2. warm-up calls (not measured);
 *   3. baselines, sequential: GET /healthz; a device-socket round trip that touches no store (an
 *      authenticated probe device sends `{}` and is answered `{"error": {"code": "bad_frame"}}`); a call
 *      to a device that is not connected (2305, device_status 2: the call's store work — the device read,
 *      RtioDeviceCalled and RtioCallFailed appended — without the device); a call to a connected device
 *      (the unloaded latency of a call); then GET /healthz in a closed loop at BENCH_CONCURRENCY for
 *      BENCH_BASELINE_SECONDS (the HTTP ceiling of this machine and herald);
 *   4. closed loop: BENCH_CONCURRENCY callers for BENCH_SECONDS: calls/s, latency, errors by code;
 *   5. open loop: BENCH_RATE calls/s for BENCH_SECONDS: latency from the call's start and from its due
 *      time, the load generator's lateness, skipped calls;
 *   6. the store: RTIO events by type (every answered call is one RtioDeviceCalled and one
 *      RtioDeviceReplied or RtioCallFailed), and where each measured run's calls spent their time
 *      between their two events (storeTimeline).
 * A phase that fails is reported with `failed` and the next still runs. CPU (herald, the embedded
 * PostgreSQL, the device simulator, this process, other processes) is sampled over each measured run, with
 * µs of herald's and PostgreSQL's CPU per answered call (per request for the /healthz closed loop).
 *
 * Prints one JSON document on stdout; progress on stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import WebSocket from 'ws';
import { CpuSampler, type CpuSnapshot, type CpuUse } from './cpu';
import { ROOT } from './heraldProcess';
import { startHeraldWithClient } from './httpClient';
import { closedLoop, openLoop } from './load';
import { benchDatabase } from './machine';
import { PendingCalls } from './pendingCalls';
import { type Cleanup, deadline, envInteger, envNumber, progress, runBenchmark } from './run';
import { closeSockets } from './sockets';
import { count, errorText, latencyStats, type LatencyStats, perSecond, round } from './stats';

// --- the device simulator (a child process) ---------------------------------------------------------

interface DeviceCredentials {
  readonly deviceId: string;
  readonly deviceKey: string;
}

interface SimulatorStats {
  readonly connected: number;
  readonly callsReceived: number;
  readonly repliesSent: number;
  /** `{"replied": call_id}` frames: herald took the reply. */
  readonly repliedAcks: number;
  /** `{"error": {"code"}}` frames by code (a reply herald did not take, say). */
  readonly errorFrames: Record<string, number>;
  readonly unknownFrames: number;
  /** Sockets closed while the simulator did not close them, by close code. */
  readonly unexpectedCloses: Record<string, number>;
  readonly callsPerDevice: { readonly min: number; readonly max: number };
  /** process.cpuUsage() of the simulator, microseconds. */
  readonly cpuMicros: number;
  readonly at: number;
  /** The simulator's event-loop lag since the last stats request (is it keeping up?). */
  readonly eventLoopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number };
}

type SimulatorRequest =
  | {
      readonly id: number;
      readonly op: 'connect';
      readonly wsUrl: string;
      readonly devices: readonly DeviceCredentials[];
      readonly batch: number;
      readonly timeoutMs: number;
    }
  | { readonly id: number; readonly op: 'stats' }
  | { readonly id: number; readonly op: 'close' };

type SimulatorAnswer = { readonly id: number; readonly result?: unknown; readonly error?: string };

const LOOP_DELAY_RESOLUTION_MS = 10;

/** BENCH_DEVICES sockets on /rtio.ws replying to every call at once with its own message. */
class DeviceFleet {
  private readonly sockets: WebSocket[] = [];
  private readonly calls: number[] = [];
  private closing = false;
  private connected = 0;
  private callsReceived = 0;
  private repliesSent = 0;
  private repliedAcks = 0;
  private unknownFrames = 0;
  private readonly errorFrames: Record<string, number> = {};
  private readonly unexpectedCloses: Record<string, number> = {};
  private readonly loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });

  constructor() {
    this.loopDelay.enable();
  }

  async connect(
    wsUrl: string,
    devices: readonly DeviceCredentials[],
    batch: number,
    timeoutMs: number,
  ): Promise<{ connected: number; failed: Record<string, number>; seconds: number }> {
    const started = performance.now();
    const failed: Record<string, number> = {};
    const until = Date.now() + timeoutMs;
    for (let from = 0; from < devices.length; from += batch) {
      const results = await Promise.allSettled(
        devices
          .slice(from, from + batch)
          .map((device, k) => this.connectOne(wsUrl, from + k, device, Math.max(1, until - Date.now()))),
      );
      for (const result of results)
        if (result.status === 'rejected') count(failed, errorText(result.reason).slice(0, 120));
    }
    return { connected: this.connected, failed, seconds: round((performance.now() - started) / 1000) };
  }

  private connectOne(wsUrl: string, index: number, device: DeviceCredentials, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`${wsUrl}/rtio.ws`, { perMessageDeflate: false });
      this.sockets[index] = socket;
      this.calls[index] = 0;
      let authenticated = false;
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error('no {"authenticated": true} in time'));
      }, timeoutMs);
      socket.on('open', () =>
        socket.send(JSON.stringify({ device_id: device.deviceId, device_key: device.deviceKey })),
      );
      socket.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.on('close', (code) => {
        clearTimeout(timer);
        if (!authenticated) reject(new Error(`closed ${code} before authenticated`));
        else this.connected--;
        if (!this.closing) count(this.unexpectedCloses, String(code));
      });
      socket.on('message', (data) => {
        let frame: Record<string, unknown>;
        try {
          frame = JSON.parse(data.toString()) as Record<string, unknown>;
        } catch {
          this.unknownFrames++;
          return;
        }
        if (typeof frame.call_id === 'string' && typeof frame.message === 'string' && frame.error === undefined) {
          this.callsReceived++;
          this.calls[index]!++;
          socket.send(JSON.stringify({ call_id: frame.call_id, code: 1000, message: frame.message }));
          this.repliesSent++;
        } else if (typeof frame.replied === 'string') {
          this.repliedAcks++;
        } else if (frame.error !== undefined) {
          count(this.errorFrames, String((frame.error as { code?: unknown }).code));
        } else if (frame.authenticated === true && !authenticated) {
          authenticated = true;
          this.connected++;
          clearTimeout(timer);
          resolve();
        } else {
          this.unknownFrames++;
        }
      });
    });
  }

  stats(): SimulatorStats {
    const cpu = process.cpuUsage();
    // The histogram holds the intervals between the sampling timer's runs: the lag is what exceeds it.
    const ms = (ns: number) => Math.max(0, round(ns / 1e6 - LOOP_DELAY_RESOLUTION_MS));
    const eventLoopDelayMs = {
      p50: ms(this.loopDelay.percentile(50)),
      p99: ms(this.loopDelay.percentile(99)),
      max: ms(this.loopDelay.max),
    };
    this.loopDelay.reset();
    return {
      connected: this.connected,
      callsReceived: this.callsReceived,
      repliesSent: this.repliesSent,
      repliedAcks: this.repliedAcks,
      errorFrames: { ...this.errorFrames },
      unknownFrames: this.unknownFrames,
      unexpectedCloses: { ...this.unexpectedCloses },
      callsPerDevice: {
        min: this.calls.length ? Math.min(...this.calls) : 0,
        max: this.calls.length ? Math.max(...this.calls) : 0,
      },
      cpuMicros: cpu.user + cpu.system,
      at: performance.now() + performance.timeOrigin,
      eventLoopDelayMs,
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    this.loopDelay.disable();
    await closeSockets(this.sockets, 5000);
  }
}

/** The child's side: serves the parent's requests over IPC until told to close (or the parent goes). */
function runDeviceSimulator(): void {
  const fleet = new DeviceFleet();
  const send = (answer: SimulatorAnswer) => process.send?.(answer);
  process.on('disconnect', () => void fleet.close().finally(() => process.exit(0)));
  process.on('message', (request: SimulatorRequest) => {
    void (async () => {
      try {
        switch (request.op) {
          case 'connect':
            return send({
              id: request.id,
              result: await fleet.connect(request.wsUrl, request.devices, request.batch, request.timeoutMs),
            });
          case 'stats':
            return send({ id: request.id, result: fleet.stats() });
          case 'close':
            await fleet.close();
            send({ id: request.id, result: null });
            setImmediate(() => process.exit(0));
            return;
        }
      } catch (error) {
        send({ id: request.id, error: errorText(error) });
      }
    })();
  });
}

/** The parent's side of the simulator. */
interface Simulator {
  readonly pid: number;
  connect(
    wsUrl: string,
    devices: readonly DeviceCredentials[],
    batch: number,
    timeoutMs: number,
  ): Promise<{ connected: number; failed: Record<string, number>; seconds: number }>;
  stats(): Promise<SimulatorStats>;
  stop(): Promise<void>;
}

async function startSimulator(): Promise<Simulator> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', __filename, '--device-simulator'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const forward = (chunk: Buffer) => process.stderr.write(chunk.toString().replace(/^(?=.)/gm, '[devices] '));
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  const calls = new PendingCalls();
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = true;
      calls.rejectAll(new Error(`the device simulator exited (${code ?? signal})`));
      resolve();
    }),
  );
  child.on('message', (answer: SimulatorAnswer) => calls.answer(answer.id, answer.error, answer.result));
  const ask = <T>(request: Omit<SimulatorRequest, 'id'>, timeoutMs = 30_000): Promise<T> =>
    exited
      ? Promise.reject(new Error('the device simulator has exited'))
      : calls.call<T>(`the device simulator did not answer ${request.op} within ${timeoutMs} ms`, timeoutMs, (id) =>
          child.send({ ...request, id }),
        );
  // Ready once it answers (tsx compiles this file first).
  await ask<SimulatorStats>({ op: 'stats' }, 60_000);
  return {
    pid: child.pid!,
    connect: (wsUrl, devices, batch, timeoutMs) =>
      ask({ op: 'connect', wsUrl, devices, batch, timeoutMs } as Omit<SimulatorRequest, 'id'>, timeoutMs + 30_000),
    stats: () => ask<SimulatorStats>({ op: 'stats' }),
    async stop() {
      if (exited) return;
      await Promise.race([ask({ op: 'close' }, 10_000).catch(() => undefined), deadline(10_000)]);
      await Promise.race([exit, deadline(5000)]);
      if (!exited) child.kill('SIGKILL');
    },
  };
}

// --- the load generator -------------------------------------------------------------------------------

function parameters() {
  const devices = envInteger('BENCH_DEVICES', 100, 1);
  const timeLive = envInteger('BENCH_TIME_LIVE', 6, 1);
  if (timeLive > 30) throw new Error(`BENCH_TIME_LIVE=${timeLive}: at most 30`);
  const messageBytes = envInteger('BENCH_MESSAGE_BYTES', 32, 8);
  if (messageBytes > 512) throw new Error(`BENCH_MESSAGE_BYTES=${messageBytes}: at most 512`);
  return {
    devices,
    concurrency: envInteger('BENCH_CONCURRENCY', 32, 1),
    seconds: envNumber('BENCH_SECONDS', 10, 0.1),
    ratePerSecond: envNumber('BENCH_RATE', 500, 0.1),
    maxInFlight: envInteger('BENCH_MAX_IN_FLIGHT', 256, 1),
    lateMs: envNumber('BENCH_LATE_MS', 5, 0),
    timeLiveSeconds: timeLive,
    messageBytes,
    createConcurrency: envInteger('BENCH_CREATE_CONCURRENCY', 32, 1),
    connectTimeoutSeconds: envNumber('BENCH_CONNECT_TIMEOUT_SECONDS', 60, 1),
    warmUpCalls: envInteger('BENCH_WARMUP_CALLS', 2 * devices, 0),
    baselineSamples: envInteger('BENCH_BASELINE_SAMPLES', 500, 1),
    baselineSeconds: envNumber('BENCH_BASELINE_SECONDS', 3, 0.1),
    drainSeconds: envNumber('BENCH_DRAIN_SECONDS', 40, 0),
    requestTimeoutMs: envNumber('BENCH_REQUEST_TIMEOUT_MS', 30_000, 1),
  };
}

interface RtioAnswerBody {
  readonly nonce?: unknown;
  readonly code?: unknown;
  readonly desc?: unknown;
  readonly device_id?: unknown;
  readonly device_key?: unknown;
  readonly device_status?: unknown;
  readonly device_code?: unknown;
  readonly device_message?: unknown;
}

/** Sequential round trips; failures counted, not timed. */
async function sequential(
  samples: number,
  roundTrip: () => Promise<void>,
): Promise<LatencyStats & { errors: Record<string, number> }> {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    try {
      await roundTrip();
      latencies.push(performance.now() - t0);
    } catch (error) {
      count(errors, errorText(error).slice(0, 120));
    }
  }
  return { ...latencyStats(latencies), errors };
}

/** CPU over a phase, with the device simulator's share (taken out of `otherPercent`). */
class PhaseCpu {
  private constructor(
    private readonly cpu: CpuSampler,
    private readonly simulator: Simulator,
    private readonly before: CpuSnapshot,
    private readonly simulatorBefore: SimulatorStats | undefined,
  ) {}

  static async start(cpu: CpuSampler, simulator: Simulator): Promise<PhaseCpu> {
    const simulatorBefore = await simulator.stats().catch(() => undefined);
    return new PhaseCpu(cpu, simulator, cpu.snapshot(), simulatorBefore);
  }

  /** `operations`: what the phase did (answered calls), for µs of CPU per operation. */
  async stop(operations: number): Promise<{
    cpu: CpuUse & { deviceSimulatorPercent: number | null };
    simulator: SimulatorStats | undefined;
    simulatorDelta: Record<string, unknown> | undefined;
  }> {
    const use = CpuSampler.between(this.before, this.cpu.snapshot(), operations);
    const after = await this.simulator.stats().catch(() => undefined);
    const b = this.simulatorBefore;
    const simulatorPercent =
      b && after && after.at > b.at
        ? Number(((100 * (after.cpuMicros - b.cpuMicros)) / 1000 / (after.at - b.at)).toFixed(1))
        : null;
    const otherPercent =
      use.otherPercent === null ? null : Math.max(0, Number((use.otherPercent - (simulatorPercent ?? 0)).toFixed(1)));
    return {
      cpu: { ...use, deviceSimulatorPercent: simulatorPercent, otherPercent },
      simulator: after,
      simulatorDelta:
        b && after
          ? {
              callsReceived: after.callsReceived - b.callsReceived,
              repliesSent: after.repliesSent - b.repliesSent,
              repliedAcks: after.repliedAcks - b.repliedAcks,
              connected: after.connected,
              eventLoopDelayMs: after.eventLoopDelayMs,
            }
          : undefined,
    };
  }
}

async function storeEvents(databaseUrl: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ event_type: string; n: string }>(
      "SELECT event_type, count(*) AS n FROM events WHERE stream_name LIKE 'rtio-%' GROUP BY event_type ORDER BY event_type",
    );
    return Object.fromEntries(rows.map((r) => [r.event_type, Number(r.n)]));
  } finally {
    await client.end();
  }
}

/**
 * Where a phase's calls spent their time, from the store (herald's clock, ms; PostgreSQL's clock_timestamp
 * at each insert): RtioDeviceCalled's calledAt (decided, after the device's stream was read) → its insert
 * → RtioDeviceReplied's repliedAt (the device's reply taken: the call's commit, the write to the device,
 * the device's reply) → its insert. The HTTP round trip minus calledAt → replied insert is herald's time
 * before deciding (HTTP, parsing, reading the device's stream) and after (the commit, the answer).
 */
async function storeTimeline(databaseUrl: string, noncePrefix: string): Promise<Record<string, unknown>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ a: number; b: number; c: number; d: number }>(
      `SELECT extract(epoch FROM c.created_at - (c.data->>'calledAt')::timestamptz) * 1000 AS a,
              extract(epoch FROM (r.data->>'repliedAt')::timestamptz - c.created_at) * 1000 AS b,
              extract(epoch FROM r.created_at - (r.data->>'repliedAt')::timestamptz) * 1000 AS c,
              extract(epoch FROM r.created_at - (c.data->>'calledAt')::timestamptz) * 1000 AS d
         FROM events c JOIN events r ON r.stream_name = c.stream_name AND r.event_type = 'RtioDeviceReplied'
        WHERE c.event_type = 'RtioDeviceCalled' AND c.stream_name LIKE 'rtio-call-%' AND c.data->>'nonce' LIKE $1`,
      [`${noncePrefix}%`],
    );
    const pick = (key: 'a' | 'b' | 'c' | 'd') => latencyStats(rows.map((r) => Number(r[key])));
    return {
      calls: rows.length,
      calledAtToCalledInsertMs: pick('a'),
      calledInsertToReplyTakenMs: pick('b'),
      replyTakenToRepliedInsertMs: pick('c'),
      calledAtToRepliedInsertMs: pick('d'),
    };
  } finally {
    await client.end();
  }
}

async function main(cleanup: Cleanup): Promise<unknown> {
  const started = performance.now();
  const p = parameters();
  const run = randomBytes(4).toString('hex'); // nonces: `<run>-<phase>-<i>`, ≤ 32 bytes
  const { url: databaseUrl, machine } = await benchDatabase(cleanup);

  progress('starting herald');
  const { herald, http } = await startHeraldWithClient(cleanup, databaseUrl, {
    maxSockets: Math.max(p.concurrency, p.maxInFlight, p.createConcurrency),
    timeoutMs: p.requestTimeoutMs,
  });

  progress('starting the device simulator');
  const simulator = await startSimulator();
  cleanup.add('stop the device simulator', () => simulator.stop());
  const cpu = new CpuSampler(herald.pid, [simulator.pid]);

  const post = async (path: string, body: unknown): Promise<{ status: number; body: RtioAnswerBody }> => {
    const response = await http.request('POST', path, JSON.stringify(body), { 'content-type': 'application/json' });
    try {
      return { status: response.status, body: JSON.parse(response.body) as RtioAnswerBody };
    } catch {
      return { status: response.status, body: { code: `not JSON: ${response.body.slice(0, 60)}` } };
    }
  };

  const createDevice = async (nonce: string): Promise<DeviceCredentials> => {
    const answer = await post('/manage/create_device', { nonce });
    const { device_id: deviceId, device_key: deviceKey } = answer.body;
    if (
      answer.status !== 200 ||
      answer.body.code !== 1000 ||
      typeof deviceId !== 'string' ||
      typeof deviceKey !== 'string'
    ) {
      throw new Error(`create_device: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    return { deviceId, deviceKey };
  };

  const phases: Record<string, unknown> = {};

  // --- 1. devices ---
  progress(`creating ${p.devices} devices (${p.createConcurrency} at a time)`);
  const devices: DeviceCredentials[] = new Array(p.devices);
  {
    const latencies: number[] = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(p.createConcurrency, p.devices) }, async () => {
        while (next < p.devices) {
          const index = next++;
          const t = performance.now();
          devices[index] = await createDevice(`${run}-d-${index}`);
          latencies.push(performance.now() - t);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    phases.createDevices = {
      devices: p.devices,
      concurrency: p.createConcurrency,
      seconds: round(seconds),
      perSecond: perSecond(p.devices, seconds),
      latency: latencyStats(latencies),
    };
  }
  const probeDevice = await createDevice(`${run}-probe`);
  const offlineDevice = await createDevice(`${run}-offline`);

  progress(`connecting ${p.devices} devices in the simulator`);
  const connected = await simulator.connect(herald.wsUrl, devices, 100, p.connectTimeoutSeconds * 1000);
  phases.connectDevices = connected;
  if (connected.connected !== p.devices)
    throw new Error(
      `only ${connected.connected} of ${p.devices} devices connected: ${JSON.stringify(connected.failed)}`,
    );

  // The probe device, in this process: for the socket baseline.
  const probe = new WebSocket(`${herald.wsUrl}/rtio.ws`, { perMessageDeflate: false });
  cleanup.add('close the probe device', async () => probe.terminate());
  let probeWaiter: ((frame: Record<string, unknown>) => void) | undefined;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the probe device was not authenticated within 30 s')), 30_000);
    probe.on('open', () =>
      probe.send(JSON.stringify({ device_id: probeDevice.deviceId, device_key: probeDevice.deviceKey })),
    );
    probe.on('error', reject);
    probe.on('close', (code) => reject(new Error(`the probe device's socket closed (${code})`)));
    probe.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Record<string, unknown>;
      if (frame.authenticated === true) {
        clearTimeout(timer);
        resolve();
      } else probeWaiter?.(frame);
    });
  });

  // --- a call ---
  const message = (phase: string, i: number) => `${phase} ${i} `.padEnd(p.messageBytes, '.');
  const classify = (answer: { status: number; body: RtioAnswerBody }, sent: string): string => {
    const b = answer.body;
    if (answer.status !== 200) return `http-${answer.status}-code-${String(b.code)}`;
    if (b.code !== 1000) return `code-${String(b.code)}-status-${String(b.device_status)}`;
    if (b.device_status !== 1 || b.device_code !== 1000)
      return `device-status-${String(b.device_status)}-code-${String(b.device_code)}`;
    if (b.device_message !== sent) return 'wrong-device-message';
    return 'ok';
  };
  const call = async (phase: string, i: number, deviceId = devices[i % p.devices]!.deviceId): Promise<string> => {
    const sent = message(phase, i);
    try {
      return classify(
        await post('/call/send', {
          nonce: `${run}-${phase}-${i}`,
          device_id: deviceId,
          message: sent,
          time_live: p.timeLiveSeconds,
        }),
        sent,
      );
    } catch (error) {
      return /no answer within/.test(errorText(error)) ? 'timeout' : `network: ${errorText(error).slice(0, 80)}`;
    }
  };

  // --- 2. warm-up ---
  if (p.warmUpCalls > 0) {
    progress(`warm-up: ${p.warmUpCalls} calls at concurrency ${p.concurrency}`);
    const outcomes: Record<string, number> = {};
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(p.concurrency, p.warmUpCalls) }, async () => {
        while (next < p.warmUpCalls) count(outcomes, await call('w', next++));
      }),
    );
    phases.warmUp = { calls: p.warmUpCalls, seconds: round((performance.now() - t0) / 1000), outcomes };
  }

  // --- 3. baselines ---
  progress(
    `baselines: ${p.baselineSamples} sequential GET /healthz, socket bad_frame round trips, calls to an offline device; GET /healthz closed loop at ${p.concurrency} for ${p.baselineSeconds} s`,
  );
  const baselines: Record<string, unknown> = {};
  try {
    baselines.httpHealthzRoundTrip = await sequential(p.baselineSamples, async () => {
      const response = await http.get('/healthz');
      if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
    });
    baselines.deviceSocketBadFrameRoundTrip = await sequential(
      p.baselineSamples,
      () =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            probeWaiter = undefined;
            reject(new Error('no answer in time'));
          }, p.requestTimeoutMs);
          probeWaiter = (frame) => {
            clearTimeout(timer);
            probeWaiter = undefined;
            const code = (frame.error as { code?: unknown } | undefined)?.code;
            if (code === 'bad_frame') resolve();
            else reject(new Error(`unexpected frame ${JSON.stringify(frame).slice(0, 80)}`));
          };
          probe.send('{}');
        }),
    );
    let i = 0;
    baselines.callOfflineDeviceRoundTrip = {
      note: 'call/send to a created device with no connection: 2305 with device_status 2 — the device read and two appends, no device',
      ...(await sequential(p.baselineSamples, async () => {
        const outcome = await call('o', i++, offlineDevice.deviceId);
        if (outcome !== 'code-2305-status-2') throw new Error(outcome);
      })),
    };
    let k = 0;
    baselines.callConnectedDeviceRoundTrip = {
      note: 'call/send to a connected device, one at a time: the unloaded latency of a call',
      ...(await sequential(p.baselineSamples, async () => {
        const outcome = await call('s', k++);
        if (outcome !== 'ok') throw new Error(outcome);
      })),
    };
    baselines.httpHealthzClosedLoop = await closedLoop(
      { concurrency: p.concurrency, seconds: p.baselineSeconds, maxRequests: Number.POSITIVE_INFINITY, cpu },
      async () => {
        const response = await http.get('/healthz');
        return response.status === 200 ? 'ok' : `http-${response.status}`;
      },
    );
  } catch (error) {
    baselines.failed = errorText(error);
  }

  // --- 4. closed loop ---
  progress(`closed loop: ${p.concurrency} callers for ${p.seconds} s over ${p.devices} devices`);
  let closed: Record<string, unknown>;
  try {
    const phaseCpu = await PhaseCpu.start(cpu, simulator);
    const okLatencies: number[] = [];
    let i = 0;
    const result = await closedLoop(
      { concurrency: p.concurrency, seconds: p.seconds, maxRequests: Number.POSITIVE_INFINITY, cpu },
      async () => {
        const t0 = performance.now();
        const outcome = await call('c', i++);
        if (outcome === 'ok') okLatencies.push(performance.now() - t0);
        return outcome;
      },
    );
    const { cpu: cpuUse, simulatorDelta } = await phaseCpu.stop(result.requests);
    closed = {
      concurrency: p.concurrency,
      seconds: result.seconds,
      calls: result.requests,
      ok: result.ok,
      okCallsPerSecond: result.okPerSecond,
      latencyOk: latencyStats(okLatencies),
      latencyAllAnswered: result.latency,
      errors: result.errors,
      cpu: cpuUse,
      devices: simulatorDelta,
    };
    progress(
      `  ${result.ok} ok of ${result.requests} (${result.okPerSecond}/s), p99 ${latencyStats(okLatencies).p99Ms} ms, errors ${JSON.stringify(result.errors)}`,
    );
  } catch (error) {
    closed = { failed: errorText(error) };
  }

  // --- 5. open loop ---
  progress(`open loop: ${p.ratePerSecond} calls/s for ${p.seconds} s (at most ${p.maxInFlight} in flight)`);
  let open: Record<string, unknown>;
  try {
    const phaseCpu = await PhaseCpu.start(cpu, simulator);
    const fromStart: number[] = [];
    const fromDue: number[] = [];
    const outcomes: Record<string, number> = {};
    let answered = 0;
    const load = await openLoop(
      { rate: p.ratePerSecond, seconds: p.seconds, maxInFlight: p.maxInFlight, lateMs: p.lateMs },
      async (i, due) => {
        const t0 = performance.now();
        const outcome = await call('r', i);
        answered++;
        if (outcome === 'ok') {
          const at = performance.now();
          fromStart.push(at - t0);
          fromDue.push(at - due);
        } else count(outcomes, outcome);
      },
    );
    const whileFiring = await phaseCpu.stop(answered);
    const drainStarted = performance.now();
    let drainTimedOut = false;
    await Promise.race([load.settled(), deadline(p.drainSeconds * 1000).then(() => (drainTimedOut = true))]);
    const drainSeconds = (performance.now() - drainStarted) / 1000;
    const latency = latencyStats(fromStart);
    open = {
      ratePerSecond: p.ratePerSecond,
      seconds: load.seconds,
      planned: load.planned,
      fired: load.fired,
      skippedInFlightBound: load.skipped,
      firedLate: load.late,
      ok: fromStart.length,
      okCallsPerSecond: perSecond(fromStart.length, load.seconds),
      errors: outcomes,
      unanswered: load.fired - answered,
      latencyOkFromCallStart: latency,
      latencyOkFromDueTime: latencyStats(fromDue),
      lateness: load.lateness,
      maxInFlightSeen: load.maxInFlightSeen,
      drain: { seconds: round(drainSeconds), timedOut: drainTimedOut },
      cpuWhileFiring: whileFiring.cpu,
      devices: whileFiring.simulatorDelta,
    };
    progress(
      `  ${fromStart.length} ok of ${load.fired} fired (${load.skipped} skipped), p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms, errors ${JSON.stringify(outcomes)}`,
    );
  } catch (error) {
    open = { failed: errorText(error) };
  }

  // --- 6. the store and the devices' view ---
  let store: Record<string, unknown>;
  try {
    store = {
      rtioEventsByType: await storeEvents(databaseUrl),
      closedLoopTimeline: await storeTimeline(databaseUrl, `${run}-c-`),
      openLoopTimeline: await storeTimeline(databaseUrl, `${run}-r-`),
    };
  } catch (error) {
    store = { failed: errorText(error) };
  }
  const devicesAtEnd = await simulator.stats().catch((error: unknown) => ({ failed: errorText(error) }));

  const heraldCode = await herald.stop();
  const cpuOf = (phase: Record<string, unknown>) => (phase.cpu ?? phase.cpuWhileFiring) as CpuUse | undefined;
  const summary = (phase: Record<string, unknown>, latencyKey: string, perSecondKey: string) => {
    const l = phase[latencyKey] as LatencyStats | undefined;
    return phase.failed !== undefined
      ? { failed: phase.failed }
      : {
          okCallsPerSecond: phase[perSecondKey] ?? null,
          p50Ms: l?.p50Ms ?? null,
          p99Ms: l?.p99Ms ?? null,
          errors: Object.values((phase.errors ?? {}) as Record<string, number>).reduce((a, b) => a + b, 0),
          heraldCpuPercent: cpuOf(phase)?.heraldPercent ?? null,
          heraldMicrosPerCall: cpuOf(phase)?.heraldMicrosPerOperation ?? null,
          postgresMicrosPerCall: cpuOf(phase)?.postgresMicrosPerOperation ?? null,
        };
  };
  const healthz = baselines.httpHealthzRoundTrip as LatencyStats | undefined;
  const socket = baselines.deviceSocketBadFrameRoundTrip as LatencyStats | undefined;
  const offline = baselines.callOfflineDeviceRoundTrip as LatencyStats | undefined;
  const single = baselines.callConnectedDeviceRoundTrip as LatencyStats | undefined;
  const healthzLoop = baselines.httpHealthzClosedLoop as { okPerSecond?: number; cpu?: CpuUse } | undefined;
  return {
    benchmark: 'RTIO call/send round trips with a device simulator on loopback',
    machine: { ...machine, loadAverage1mAtEnd: round(os.loadavg()[0] ?? 0) },
    processes:
      'herald serve (own process, fresh database); device simulator (own process, ws); load generator (this process, keep-alive HTTP/1.1)',
    parameters: p,
    summary: {
      closedLoop: summary(closed, 'latencyOk', 'okCallsPerSecond'),
      openLoop: {
        ...summary(open, 'latencyOkFromCallStart', 'okCallsPerSecond'),
        skipped: open.skippedInFlightBound ?? null,
        lateP99Ms: (open.lateness as LatencyStats | undefined)?.p99Ms ?? null,
      },
      baselines: {
        healthzP50Ms: healthz?.p50Ms ?? null,
        healthzP99Ms: healthz?.p99Ms ?? null,
        socketBadFrameP50Ms: socket?.p50Ms ?? null,
        socketBadFrameP99Ms: socket?.p99Ms ?? null,
        offlineCallP50Ms: offline?.p50Ms ?? null,
        offlineCallP99Ms: offline?.p99Ms ?? null,
        connectedCallSequentialP50Ms: single?.p50Ms ?? null,
        connectedCallSequentialP99Ms: single?.p99Ms ?? null,
        healthzClosedLoopPerSecond: healthzLoop?.okPerSecond ?? null,
        healthzClosedLoopHeraldMicrosPerRequest: healthzLoop?.cpu?.heraldMicrosPerOperation ?? null,
      },
    },
    phases,
    baselines,
    closedLoop: closed,
    openLoop: open,
    store,
    devicesAtEnd,
    heraldExitCode: heraldCode,
    seconds: round((performance.now() - started) / 1000),
  };
}

// This file is both the benchmark and (with --device-simulator) its device simulator's process.
if (process.argv.includes('--device-simulator')) runDeviceSimulator();
else runBenchmark(main);
