/**
 * Fan-out (issue 13): one broadcast to 1,000, 5,000 and 10,000 connected graphql-ws subscribers —
 * deliveries/s, time to the last delivery, and herald's resident memory per idle subscriber connection —
 * beside the same fan-out through Mosquitto on this machine, in the same run. Goals: ≥ 100,000
 * deliveries/s at 10,000 subscribers and ≥ 0.3 × Mosquitto's rate there; ≤ 10 KiB of herald's resident
 * memory per idle subscriber connection (at every N).
 *
 *   npm run bench:fanout                                                     # the goal's load
 *   BENCH_SUBSCRIBERS=1000 BENCH_ROUNDS=1 npm run bench:fanout                 # a small run
 *   BENCH_SERVERS=herald BENCH_HERALD_CPU_PROF_DIR=/tmp/prof npm run bench:fanout   # herald alone, profiled
 *
 * Parameters (environment):
 *   BENCH_SUBSCRIBERS             comma-separated subscriber counts, each measured on its own (default 1000,5000,10000)
 *   BENCH_SERVERS                 comma-separated, in this order: herald, mosquitto (default both)
 *   BENCH_CLIENT_PROCESSES        subscriber processes sharing the sockets (default the cores, 2 to 4)
 *   BENCH_ROUNDS                  measured broadcasts per N and server; figures are their median (default 3)
 *   BENCH_CONNECT_BATCH           sockets each subscriber process opens at a time (default 100)
 *   BENCH_CONNECT_TIMEOUT_SECONDS one socket's connect and subscribe; all N's within this + 30 s (default 120)
 *   BENCH_WARMUP_SUBSCRIBERS      subscribers connected, sent one broadcast and closed before the memory baseline (default 100)
 *   BENCH_ROUND_TIMEOUT_SECONDS   one broadcast's deadline for the last delivery (default 30)
 *   BENCH_PAUSE_MS                pause before each broadcast (default 500)
 *   BENCH_RSS_SETTLE_SECONDS      at most this long waiting for an RSS to settle (Mosquitto's; herald's before a collection) (default 15)
 *   BENCH_CONTENT_BYTES           the Koala message's content, bytes (default 100)
 *   BENCH_MOSQUITTO               the mosquitto binary (default `mosquitto` on PATH or in /usr/sbin)
 *   BENCH_HERALD_UNDER_TSX        1: run herald from its sources under tsx, not built into dist/ (the default, as deployed)
 *   BENCH_HERALD_CPU_PROF_DIR     profile herald over the measured broadcasts (CPU sampling through its
 *                                 inspector, from before the first round to after the last) into
 *                                 herald-fanout-<N>.cpuprofile there, and summarize it in the JSON (top
 *                                 functions and areas by self time). Not for the goals: sampling costs time.
 *   BENCH_PROFILE_SAMPLING_US     the profile's sampling interval, µs (default 200)
 *   BENCH_GOAL_SUBSCRIBERS, BENCH_GOAL_DELIVERIES_PER_SECOND, BENCH_GOAL_MOSQUITTO_RATIO,
 *   BENCH_GOAL_RSS_BYTES_PER_CONNECTION   the goals (10,000; 100,000; 0.3; 10,240)
 *   BENCH_READY_TIMEOUT_SECONDS, BENCH_REQUEST_TIMEOUT_MS, DATABASE_URL   as every benchmark (bench/heraldProcess.ts, httpClient.ts, machine.ts)
 *
 * The broadcast. All N subscribers authenticate with the same ticket of ONE user and run
 * `subscription { messages { id seq title content sender sentAt meta { realm seq sender stime } } }`;
 * a broadcast is one Koala send (POST /koala/api/mas/messages, `users` = that user) from another user.
 * herald appends one MessageSent, projects one delivery and publishes one payload on one topic
 * (inbox:camel:<user>), which every subscription's source stream takes; sharedSubscription.ts executes
 * the operation once for that payload, and graphql-ws serializes and writes one frame per socket. That is
 * the purest fan-out of one publication, and what Mosquitto does with one PUBLISH to one topic. N
 * distinct users would need N/1,000 Koala sends (a message has at most 1,000 recipients): N deliveries
 * in the store, N payloads and N executions — a measure of sending, not of fan-out.
 *
 * Processes. herald runs as its own child (bench/heraldProcess.ts startHerald), built first and run from
 * dist/ with MALLOC_ARENA_MAX=2, as the Dockerfile runs it (under tsx every closure it compiles
 * carries its name: ≈2 KB more per idle socket), restarted for each N on the bench database, so each
 * N's memory is measured from a fresh process; it is started with
 * `--inspect=127.0.0.1:<free port>` (bench/inspector.ts) so the bench can force a garbage collection
 * before reading its memory, and profile it on request. Mosquitto (`mosquitto -c`, a
 * config written to a temp folder: listener on a free port of 127.0.0.1, allow_anonymous true,
 * max_connections -1, no persistence; one QoS 0 message per client at a time never reaches
 * max_queued_messages) is started the same way, after herald, for each N. The subscribers live in
 * BENCH_CLIENT_PROCESSES processes of bench/fanoutClient.ts (driven over IPC), N split evenly: bare `ws`
 * sockets speaking graphql-transport-ws to herald, `mqtt` package clients (MQTT 3.1.1, QoS 0) to
 * Mosquitto. This process sends: Koala over keep-alive HTTP, MQTT through its own `mqtt` client. Only
 * 127.0.0.1 is used.
 *
 * Per N and server, in order:
 *   1. BENCH_WARMUP_SUBSCRIBERS subscribers connect, receive one broadcast and close (the server's
 *      code paths for a subscriber are loaded and compiled before the baseline);
 *   2. the server's resident memory (/proc/<pid>/status VmRSS), the baseline. herald: three times a full
 *      garbage collection (through its inspector), a second's wait (the sweeper hands pages back), a
 *      reading; their median. Mosquitto (C, no collector): once its RSS has settled — sampled every
 *      250 ms until 8 samples in a row lie within max(64 KiB, 0.2 %), at most BENCH_RSS_SETTLE_SECONDS;
 *   3. N subscribers connect; the RSS is read again the same way, and (RSS − baseline) ÷ N is the
 *      resident memory per idle connection, the goal's figure. It also carries what the process grows
 *      by once, whatever N: V8's spaces sized up by the burst of connecting (its new space 1 → 4 MiB,
 *      see `heapSpaceBytes`; it shrinks back after ~30 s idle) and native memory the C allocator keeps,
 *      ≈1 MiB with MALLOC_ARENA_MAX=2 (as the Docker image and this bench run herald), ≈5 MiB without:
 *      ≈1 KiB per connection at 1,000 (5 without), ≈0.1 at 10,000. The heap per connection is the same
 *      at every N (8.3–8.7 KB). For herald also: the settled RSS before
 *      any collection (`…WithoutGc`: the garbage of connecting counts, and the figure swings with when V8
 *      last collected), the JS heap in use per connection (after the collections), which tells the
 *      heap's share from the native one (sockets, buffers, malloc), and the sizes of V8's heap spaces;
 *   4. a warm-up broadcast that every subscriber must receive (proves every subscription is live);
 *   5. BENCH_ROUNDS broadcasts. For each, t0 is taken just before the send (the POST, or the PUBLISH);
 *      every subscriber process notes when each of its sockets first receives it (process.hrtime, the
 *      machine's monotonic clock, the same in all processes). Time to last delivery = last − t0;
 *      deliveries/s = subscribers reached ÷ (last − t0); also the first delivery, the spread (last −
 *      first), per-subscriber latency percentiles, lost and duplicate deliveries, the send's answer time,
 *      and the CPU of the server and of the subscriber processes over the round (/proc/<pid>/stat, at
 *      clock-tick resolution, 10 ms: meaningful from a few thousand subscribers). The server's CPU per
 *      delivery, and its kernel part, are the figures to compare: on loopback a socket write also runs
 *      the receiving side's TCP work in the writer's system call, so Mosquitto's CPU per delivery is
 *      about this machine's floor for a server that writes one frame per subscriber. The server and the
 *      subscriber processes share the machine's cores: on a small machine the subscribers' CPU limits
 *      both servers' rates (see `subscriberProcessesCpuPercent`).
 * Mosquitto's payload has the size of herald's graphql-ws frame measured at the same N (JSON with the
 * title, padded), and both kinds of subscriber parse it as JSON.
 *
 * File descriptors: a server holds N sockets, each subscriber process N ÷ BENCH_CLIENT_PROCESSES. Node
 * raises its soft limit to the hard one, and child processes inherit it; the bench stops at once if
 * that limit is below the largest N + 1,024. `npm run bench:fanout` raises the limit to 65,536 first
 * (as root; otherwise to the hard limit).
 *
 * Prints one JSON document on stdout; progress on stderr.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { freePort } from '../test/support/postgres';
import { CLOCK_TICKS, CpuSampler, type CpuUse } from './cpu';
import type { ArrivalReport, FanoutCommand, FanoutReply } from './fanoutClient';
import { buildHerald, ROOT } from './heraldProcess';
import { issueTicket, koalaSend, startHeraldWithClient } from './httpClient';
import { NodeInspector, type ProfileSummary, summarizeProfile } from './inspector';
import { benchDatabase } from './machine';
import { type Cleanup, deadline, envInteger, envNumber, progress, runBenchmark, sleep } from './run';
import { errorText, latencyStats, type LatencyStats, median, round } from './stats';

const SUBSCRIBERS = (process.env.BENCH_SUBSCRIBERS?.trim() || '1000,5000,10000').split(',').map((raw) => {
  const n = Number(raw.trim().replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_SUBSCRIBERS: ${raw} is not a positive integer`);
  return n;
});
const SERVERS = (process.env.BENCH_SERVERS?.trim() || 'herald,mosquitto').split(',').map((s) => s.trim());
for (const s of SERVERS)
  if (s !== 'herald' && s !== 'mosquitto') throw new Error(`BENCH_SERVERS: unknown server ${s} (herald, mosquitto)`);
const CLIENT_PROCESSES = envInteger('BENCH_CLIENT_PROCESSES', Math.max(2, Math.min(4, os.cpus().length)), 1);
const ROUNDS = envInteger('BENCH_ROUNDS', 3, 1);
const CONNECT_BATCH = envInteger('BENCH_CONNECT_BATCH', 100, 1);
const CONNECT_TIMEOUT_MS = envNumber('BENCH_CONNECT_TIMEOUT_SECONDS', 120, 1) * 1000;
const WARMUP_SUBSCRIBERS = envInteger('BENCH_WARMUP_SUBSCRIBERS', 100, 0);
const ROUND_TIMEOUT_MS = envNumber('BENCH_ROUND_TIMEOUT_SECONDS', 30, 0.1) * 1000;
const PAUSE_MS = envNumber('BENCH_PAUSE_MS', 500, 0);
const RSS_SETTLE_MS = envNumber('BENCH_RSS_SETTLE_SECONDS', 15, 1) * 1000;
const CONTENT_BYTES = envInteger('BENCH_CONTENT_BYTES', 100, 1);
const HERALD_COMPILED = process.env.BENCH_HERALD_UNDER_TSX !== '1';
const CPU_PROFILE_DIR = process.env.BENCH_HERALD_CPU_PROF_DIR?.trim() || undefined;
const PROFILE_SAMPLING_US = envInteger('BENCH_PROFILE_SAMPLING_US', 200, 1);
const GOAL_SUBSCRIBERS = envInteger('BENCH_GOAL_SUBSCRIBERS', 10_000, 1);
const GOAL_DELIVERIES_PER_SECOND = envNumber('BENCH_GOAL_DELIVERIES_PER_SECOND', 100_000, 0);
const GOAL_MOSQUITTO_RATIO = envNumber('BENCH_GOAL_MOSQUITTO_RATIO', 0.3, 0);
const GOAL_RSS_BYTES = envNumber('BENCH_GOAL_RSS_BYTES_PER_CONNECTION', 10 * 1024, 0);

const SUBSCRIBER_USER = 'fanout-subscriber';
const SENDER_USER = 'fanout-sender';
const MQTT_TOPIC = 'herald/fanout';
const CONTENT = 'fan-out probe: the same one message for every subscriber of the broadcast; '
  .repeat(Math.ceil(CONTENT_BYTES / 76))
  .slice(0, CONTENT_BYTES);
/** Used for Mosquitto's payload when herald was not measured at that N. */
const DEFAULT_PAYLOAD_BYTES = 400;

const monotonicMs = () => Number(process.hrtime.bigint()) / 1e6;

const roundedMedian = (values: readonly (number | null)[]) => {
  const m = median(values);
  return m === null ? null : Math.round(m);
};

/** `total` split over `parts` as evenly as it goes. */
const shares = (total: number, parts: number) =>
  Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));

// --- the machine's limits and /proc ---------------------------------------------------------------

function openFilesLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft);
}

/** VmRSS of a process, bytes. */
function residentBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  if (!line) throw new Error(`/proc/${pid}/status has no VmRSS`);
  return Number(line.split(/\s+/)[1]) * 1024;
}

interface SettledRss {
  readonly bytes: number;
  readonly rssSettled: boolean;
  readonly waitedMs: number;
}

/** The RSS once 8 samples in a row (250 ms apart) lie within max(64 KiB, 0.2 %); the last sample at the bound. */
async function settledRss(pid: number): Promise<SettledRss> {
  const started = performance.now();
  const samples: number[] = [];
  for (;;) {
    samples.push(residentBytes(pid));
    const last = samples.slice(-8);
    const high = Math.max(...last);
    if (last.length === 8 && high - Math.min(...last) <= Math.max(64 * 1024, 0.002 * high))
      return {
        bytes: samples[samples.length - 1]!,
        rssSettled: true,
        waitedMs: Math.round(performance.now() - started),
      };
    if (performance.now() - started > RSS_SETTLE_MS)
      return {
        bytes: samples[samples.length - 1]!,
        rssSettled: false,
        waitedMs: Math.round(performance.now() - started),
      };
    await sleep(250);
  }
}

/** CPU time of the processes, ms: in user mode and in the kernel (utime, stime; clock-tick resolution). */
function cpuMsOf(pids: readonly number[]): { user: number; kernel: number } {
  let user = 0;
  let kernel = 0;
  for (const pid of pids) {
    try {
      const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      user += Number(fields[11]);
      kernel += Number(fields[12]);
    } catch {
      return { user: NaN, kernel: NaN };
    }
  }
  return { user: (1000 * user) / CLOCK_TICKS, kernel: (1000 * kernel) / CLOCK_TICKS };
}

function mosquittoBinary(): string {
  const named = process.env.BENCH_MOSQUITTO?.trim() || 'mosquitto';
  if (named.includes('/')) return named;
  const folders = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin'];
  const found = folders.map((folder) => path.join(folder, named)).find((file) => existsSync(file));
  if (!found)
    throw new Error(`${named} is not installed (Debian: apt-get install -y mosquitto), or set BENCH_MOSQUITTO`);
  return found;
}

/**
 * herald's RSS with no garbage: a full collection, a second for the sweeper to hand pages back, then a
 * reading; the median of three. (Right after a collection the RSS still falls for a second or two, and
 * then climbs with the young generation: up to ~2.5 MiB of sawtooth on an idle herald.)
 */
async function collectedRss(pid: number, inspector: NodeInspector): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < 3; i++) {
    await inspector.collectGarbage();
    await sleep(1000);
    readings.push(residentBytes(pid));
  }
  return readings.sort((a, b) => a - b)[1]!;
}

// --- the subscriber processes ---------------------------------------------------------------------

type ReplyOf<K extends FanoutReply['kind']> = Extract<FanoutReply, { kind: K }>;

/** One bench/fanoutClient.ts process, as its parent sees it: one request at a time. */
class SubscriberProcess {
  private readonly inbox: FanoutReply[] = [];
  private waiter:
    | { accept: (reply: FanoutReply) => boolean; resolve: (reply: FanoutReply) => void; reject: (error: Error) => void }
    | undefined;
  private exited = false;
  private readonly exit: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    const forward = (chunk: Buffer) =>
      process.stderr.write(chunk.toString().replace(/^(?=.)/gm, `[subscribers ${child.pid}] `));
    child.stdout?.on('data', forward);
    child.stderr?.on('data', forward);
    child.on('message', (reply: FanoutReply) => {
      if (this.waiter?.accept(reply)) this.waiter.resolve(reply);
      else this.inbox.push(reply);
    });
    this.exit = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.exited = true;
        this.waiter?.reject(new Error(`subscriber process ${child.pid} exited (${code ?? signal})`));
        resolve();
      }),
    );
  }

  static async start(): Promise<SubscriberProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/fanoutClient.ts')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const subscriberProcess = new SubscriberProcess(child);
    await subscriberProcess.next('ready', 60_000); // tsx compiles it first
    return subscriberProcess;
  }

  get pid(): number {
    return this.child.pid!;
  }

  send(command: FanoutCommand): void {
    if (this.exited) throw new Error(`subscriber process ${this.pid} has exited`);
    this.child.send(command);
  }

  /** The next reply of `kind` that `accept`s (one already received, or the next to come), within `timeoutMs`. */
  next<K extends FanoutReply['kind']>(
    kind: K,
    timeoutMs: number,
    accept: (reply: ReplyOf<K>) => boolean = () => true,
  ): Promise<ReplyOf<K>> {
    const matches = (reply: FanoutReply): reply is ReplyOf<K> => reply.kind === kind && accept(reply as ReplyOf<K>);
    const queued = this.inbox.findIndex(matches);
    if (queued >= 0) return Promise.resolve(this.inbox.splice(queued, 1)[0] as ReplyOf<K>);
    if (this.exited) return Promise.reject(new Error(`subscriber process ${this.pid} has exited`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`subscriber process ${this.pid}: no ${kind} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        accept: matches,
        resolve: (reply) => {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve(reply as ReplyOf<K>);
        },
        reject: (error) => {
          clearTimeout(timer);
          this.waiter = undefined;
          reject(error);
        },
      };
    });
  }

  request<K extends FanoutReply['kind']>(
    command: FanoutCommand,
    kind: K,
    timeoutMs: number,
    accept?: (reply: ReplyOf<K>) => boolean,
  ): Promise<ReplyOf<K>> {
    this.send(command);
    return this.next(kind, timeoutMs, accept);
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.disconnect(); // it exits when its channel closes
    await Promise.race([this.exit, deadline(5000)]);
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

// --- the servers ----------------------------------------------------------------------------------

interface FanoutServer {
  readonly name: 'herald' | 'mosquitto';
  readonly pid: number;
  /** herald's inspector (a Node process); none for Mosquitto. */
  readonly inspector?: NodeInspector;
  /** The command that connects `count` subscribers of one process. */
  connectCommand(count: number): FanoutCommand;
  /** Sends the broadcast titled `title`; resolves once the server has it (herald: the POST answered; MQTT: the PUBLISH written). */
  broadcast(title: string): Promise<void>;
  stop(): Promise<void>;
}

async function startHeraldServer(cleanup: Cleanup, databaseUrl: string): Promise<FanoutServer> {
  const inspectorPort = await freePort();
  const { herald, http } = await startHeraldWithClient(
    cleanup,
    databaseUrl,
    { maxSockets: 4 },
    {
      compiled: HERALD_COMPILED,
      env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --inspect=127.0.0.1:${inspectorPort}`.trim() },
    },
  );
  const inspector = await NodeInspector.attach(inspectorPort);
  cleanup.add("detach from herald's inspector", async () => inspector.close());
  // One ticket serves every subscriber: they are all the one user (see the header).
  const subscriberTicket = await issueTicket(http, SUBSCRIBER_USER);
  const senderTicket = await issueTicket(http, SENDER_USER);
  return {
    name: 'herald',
    pid: herald.pid,
    inspector,
    connectCommand: (count) => ({
      kind: 'connectGraphql',
      url: `${herald.wsUrl}/graphql`,
      ticket: subscriberTicket,
      count,
      batch: CONNECT_BATCH,
      timeoutMs: CONNECT_TIMEOUT_MS,
    }),
    async broadcast(title) {
      const answer = await koalaSend(http, { ticket: senderTicket, users: SUBSCRIBER_USER, title, content: CONTENT });
      if (answer.status !== 0) throw new Error(`Koala send: ${JSON.stringify(answer)}`);
    },
    async stop() {
      http.close();
      inspector.close();
      const code = await herald.stop();
      if (code !== 0) progress(`herald exited with ${code}`);
    },
  };
}

/** JSON of `bytes` bytes (at least its title's): what the MQTT subscribers parse. */
function mqttPayload(title: string, bytes: number): string {
  const bare = JSON.stringify({ title, padding: '' });
  return JSON.stringify({ title, padding: 'x'.repeat(Math.max(0, bytes - bare.length)) });
}

async function startMosquitto(cleanup: Cleanup, binary: string, payloadBytes: number): Promise<FanoutServer> {
  const port = await freePort();
  const folder = mkdtempSync(path.join(os.tmpdir(), 'herald-fanout-mosquitto-'));
  cleanup.add('remove the mosquitto config', async () => rmSync(folder, { recursive: true, force: true }));
  const config = path.join(folder, 'mosquitto.conf');
  writeFileSync(
    config,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'max_connections -1',
      'persistence false',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['-c', config], { cwd: folder, stdio: ['ignore', 'pipe', 'pipe'] });
  const forward = (chunk: Buffer) => process.stderr.write(chunk.toString().replace(/^(?=.)/gm, '[mosquitto] '));
  child.stdout.on('data', forward);
  child.stderr.on('data', forward);
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.on('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const stopProcess = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    await Promise.race([exit, deadline(10_000)]);
    if (!exited) child.kill('SIGKILL');
  };
  cleanup.add('stop mosquitto', stopProcess);

  const url = `mqtt://127.0.0.1:${port}`;
  let publisher: MqttClient | undefined;
  const until = performance.now() + 10_000;
  while (!publisher) {
    if (exited) throw new Error(`mosquitto exited at start (code ${child.exitCode})`);
    try {
      publisher = await new Promise<MqttClient>((resolve, reject) => {
        const client = mqtt.connect(url, {
          clientId: 'fanout-publisher',
          protocolVersion: 4,
          clean: true,
          reconnectPeriod: 0,
          connectTimeout: 2000,
        });
        client.once('connect', () => resolve(client));
        client.once('error', (error) => {
          client.end(true);
          reject(error);
        });
        client.once('close', () => reject(new Error('closed')));
      });
    } catch (error) {
      if (performance.now() > until)
        throw new Error(`mosquitto did not accept a connection within 10 s: ${errorText(error)}`);
      await sleep(100);
    }
  }
  const connected = publisher;
  return {
    name: 'mosquitto',
    pid: child.pid!,
    connectCommand: (count) => ({
      kind: 'connectMqtt',
      url,
      topic: MQTT_TOPIC,
      count,
      batch: CONNECT_BATCH,
      timeoutMs: CONNECT_TIMEOUT_MS,
    }),
    broadcast: (title) =>
      new Promise((resolve, reject) =>
        connected.publish(MQTT_TOPIC, mqttPayload(title, payloadBytes), { qos: 0 }, (error) =>
          error ? reject(error) : resolve(),
        ),
      ),
    async stop() {
      await new Promise<void>((resolve) => connected.end(false, {}, () => resolve()));
      await stopProcess();
    },
  };
}

// --- one broadcast --------------------------------------------------------------------------------

interface RoundResult {
  readonly title: string;
  readonly subscribers: number;
  readonly received: number;
  readonly lost: number;
  readonly duplicates: number;
  /** Payloads titled otherwise (an earlier broadcast arriving late), or unreadable. */
  readonly otherPayloads: number;
  readonly timedOut: boolean;
  readonly sendError: string | null;
  readonly sendAnswerMs: number | null;
  readonly msToFirstDelivery: number | null;
  readonly msToLastDelivery: number | null;
  /** last − first: the fan-out itself, without the send's way to the first subscriber. */
  readonly spreadMs: number | null;
  readonly deliveriesPerSecond: number | null;
  readonly deliveryFromSendStart: LatencyStats;
  readonly payloadBytes: number | null;
  readonly cpu: RoundCpu;
}

/** Over one round, from just before the send to the last report; percents of one core. */
interface RoundCpu {
  readonly serverPercent: number | null;
  /** The server's CPU time, and the part of it spent in the kernel (the socket writes: on loopback, the receiving side's TCP work runs in the sender's write too). */
  readonly serverCpuMs: number | null;
  readonly serverKernelCpuMs: number | null;
  readonly serverCpuMicrosPerDelivery: number | null;
  readonly subscriberProcessesPercent: number | null;
  /** The whole machine, percent of all cores. */
  readonly machineBusyPercent: number | null;
  /** Busy CPU of the machine's other processes (not the server nor the subscriber processes): high → disturbed figures. */
  readonly otherPercent: number | null;
}

async function broadcastRound(
  server: FanoutServer,
  clients: readonly SubscriberProcess[],
  title: string,
  timeoutMs: number,
): Promise<RoundResult> {
  await Promise.all(
    clients.map((c) => c.request({ kind: 'expect', title }, 'expecting', 10_000, (r) => r.title === title)),
  );
  const reports = clients.map((c) => c.next('report', timeoutMs, (r) => r.title === title));
  const cpu = new CpuSampler(
    server.pid,
    clients.map((c) => c.pid),
  );
  const before = cpu.snapshot();
  const clientPids = clients.map((c) => c.pid);
  const serverCpuBefore = cpuMsOf([server.pid]);
  const clientCpuBefore = cpuMsOf(clientPids);
  const t0 = monotonicMs();
  let sendAnsweredAt: number | undefined;
  let sendError: string | null = null;
  const sent = server.broadcast(title).then(
    () => void (sendAnsweredAt = monotonicMs()),
    (error: unknown) => void (sendError = errorText(error)),
  );
  // A failed send delivers nothing: stop waiting for the reports then.
  const sendFailed = sent.then(() => (sendError === null ? new Promise<never>(() => undefined) : undefined));
  const settled = await Promise.race([Promise.allSettled(reports), sendFailed]);
  const timedOut = settled === undefined || settled.some((s) => s.status === 'rejected');
  const results: ArrivalReport[] = await Promise.all(
    clients.map((client, i) => {
      const outcome = settled?.[i];
      if (outcome?.status === 'fulfilled') return outcome.value;
      return client.request({ kind: 'report' }, 'report', 10_000, (r) => r.title === title);
    }),
  );
  const cpuUse = CpuSampler.between(before, cpu.snapshot());
  const roundMs = performance.now() - before.at;
  const serverCpuAfter = cpuMsOf([server.pid]);
  const clientCpuAfter = cpuMsOf(clientPids);
  await Promise.race([sent, deadline(10_000)]);

  const delays: number[] = [];
  let first = Infinity;
  let last = -Infinity;
  for (const report of results) {
    for (const at of report.arrivals) {
      const delay = at - t0;
      delays.push(delay);
      if (delay < first) first = delay;
      if (delay > last) last = delay;
    }
  }
  const subscribers = results.reduce((a, r) => a + r.sockets, 0);
  const received = results.reduce((a, r) => a + r.received, 0);
  const reached = delays.length > 0;
  return {
    title,
    subscribers,
    received,
    lost: subscribers - received,
    duplicates: results.reduce((a, r) => a + r.duplicates, 0),
    otherPayloads: results.reduce((a, r) => a + r.otherPayloads, 0),
    timedOut,
    sendError,
    sendAnswerMs: sendAnsweredAt === undefined ? null : round(sendAnsweredAt - t0),
    msToFirstDelivery: reached ? round(first) : null,
    msToLastDelivery: reached ? round(last) : null,
    spreadMs: reached ? round(last - first) : null,
    deliveriesPerSecond: reached && last > 0 ? Math.round((received * 1000) / last) : null,
    deliveryFromSendStart: latencyStats(delays),
    payloadBytes: results.find((r) => r.payloadBytes !== null)?.payloadBytes ?? null,
    cpu: roundCpu(
      cpuUse,
      roundMs,
      received,
      { user: serverCpuAfter.user - serverCpuBefore.user, kernel: serverCpuAfter.kernel - serverCpuBefore.kernel },
      clientCpuAfter.user + clientCpuAfter.kernel - clientCpuBefore.user - clientCpuBefore.kernel,
    ),
  };
}

function roundCpu(
  sampled: CpuUse,
  roundMs: number,
  received: number,
  server: { user: number; kernel: number },
  subscribersMs: number,
): RoundCpu {
  const finite = (value: number) => (Number.isFinite(value) ? round(value) : null);
  const serverMs = server.user + server.kernel;
  const subscriberProcessesPercent = finite((100 * subscribersMs) / roundMs);
  return {
    serverPercent: finite((100 * serverMs) / roundMs),
    serverCpuMs: finite(serverMs),
    serverKernelCpuMs: finite(server.kernel),
    serverCpuMicrosPerDelivery: received > 0 ? finite((1000 * serverMs) / received) : null,
    subscriberProcessesPercent,
    machineBusyPercent: sampled.machineBusyPercent,
    // CpuSampler counts the subscriber processes among the others: not here.
    otherPercent:
      sampled.otherPercent === null || subscriberProcessesPercent === null
        ? null
        : Math.max(0, round(sampled.otherPercent - subscriberProcessesPercent)),
  };
}

// --- one server at one N --------------------------------------------------------------------------

async function connectSubscribers(
  server: FanoutServer,
  clients: readonly SubscriberProcess[],
  total: number,
): Promise<{ connected: number; failures: Record<string, number>; ms: number }> {
  const counts = shares(total, clients.length);
  const replies = await Promise.all(
    clients.map((c, i) => c.request(server.connectCommand(counts[i]!), 'connected', CONNECT_TIMEOUT_MS + 30_000)),
  );
  const failures: Record<string, number> = {};
  for (const reply of replies)
    for (const [why, n] of Object.entries(reply.failures)) failures[why] = (failures[why] ?? 0) + n;
  return {
    connected: replies.reduce((a, r) => a + r.connected, 0),
    failures,
    ms: Math.max(...replies.map((r) => r.ms)),
  };
}

async function disconnectSubscribers(clients: readonly SubscriberProcess[]): Promise<Record<string, number>> {
  const replies = await Promise.all(
    clients.map((c) => c.request({ kind: 'disconnect', graceMs: 5000 }, 'disconnected', 30_000)),
  );
  const ends: Record<string, number> = {};
  for (const reply of replies)
    for (const [why, n] of Object.entries(reply.unexpectedEnds)) ends[why] = (ends[why] ?? 0) + n;
  return ends;
}

interface ServerFigures {
  readonly deliveriesPerSecond: number | null;
  readonly msToLastDelivery: number | null;
  readonly rssPerIdleConnectionBytes: number | null;
}

interface ServerRun {
  readonly figures: ServerFigures;
  readonly details: Record<string, unknown>;
  readonly payloadBytes: number | null;
}

async function measureServer(
  server: FanoutServer,
  clients: readonly SubscriberProcess[],
  n: number,
): Promise<ServerRun> {
  const details: Record<string, unknown> = {};
  let subscribed = false;
  try {
    const warmUpSubscribers = Math.min(WARMUP_SUBSCRIBERS, n);
    if (warmUpSubscribers > 0) {
      progress(`  ${server.name}: warm-up with ${warmUpSubscribers} subscribers`);
      subscribed = true;
      const connect = await connectSubscribers(server, clients, warmUpSubscribers);
      const warm = await broadcastRound(server, clients, `n${n}-warm-up-0`, ROUND_TIMEOUT_MS);
      details.warmUpSubscribers = {
        ...connect,
        received: warm.received,
        msToLastDelivery: warm.msToLastDelivery,
        unexpectedEnds: await disconnectSubscribers(clients),
      };
      subscribed = false;
    }
    const inspector = server.inspector;
    const baseline = inspector
      ? { bytes: await collectedRss(server.pid, inspector), rssSettled: true }
      : await settledRss(server.pid);
    const baselineHeap = await inspector?.heapUsedBytes();
    const baselineUsage = await inspector?.memoryUsage();
    progress(`  ${server.name}: RSS ${(baseline.bytes / 2 ** 20).toFixed(1)} MiB; connecting ${n} subscribers`);
    subscribed = true;
    const connect = await connectSubscribers(server, clients, n);
    details.connect = connect;
    if (connect.connected < n)
      progress(`  ${server.name}: only ${connect.connected} of ${n} connected: ${JSON.stringify(connect.failures)}`);
    const idleWithoutGc = await settledRss(server.pid);
    const idle = inspector ? { bytes: await collectedRss(server.pid, inspector), rssSettled: true } : idleWithoutGc;
    const idleHeap = await inspector?.heapUsedBytes();
    const idleUsage = await inspector?.memoryUsage();
    const perConnection = (bytes: number) => (connect.connected > 0 ? Math.round(bytes / connect.connected) : null);
    const rssPerIdleConnectionBytes = perConnection(idle.bytes - baseline.bytes);
    const spaceSizes = (usage: Awaited<ReturnType<NodeInspector['memoryUsage']>>) =>
      Object.fromEntries(usage.spaces.map((space) => [space.space_name, space.space_size]));
    details.memory = {
      garbageCollectedBeforeReading: inspector !== undefined,
      baselineRssBytes: baseline.bytes,
      idleRssBytes: idle.bytes,
      rssPerIdleConnectionBytes,
      idleRssWithoutGcBytes: inspector ? idleWithoutGc.bytes : null,
      rssPerIdleConnectionWithoutGcBytes: inspector ? perConnection(idleWithoutGc.bytes - baseline.bytes) : null,
      heapUsedPerIdleConnectionBytes:
        baselineHeap !== undefined && idleHeap !== undefined ? perConnection(idleHeap - baselineHeap) : null,
      heapSpaceBytes:
        baselineUsage && idleUsage ? { baseline: spaceSizes(baselineUsage), idle: spaceSizes(idleUsage) } : null,
      rssSettled: baseline.rssSettled && idle.rssSettled && idleWithoutGc.rssSettled,
    };
    progress(
      `  ${server.name}: ${connect.connected} connected in ${connect.ms} ms; RSS ${(idle.bytes / 2 ** 20).toFixed(1)} MiB (${rssPerIdleConnectionBytes} bytes per connection)`,
    );

    const warm = await broadcastRound(server, clients, `n${n}-warm-up-1`, ROUND_TIMEOUT_MS);
    details.warmUp = {
      received: warm.received,
      lost: warm.lost,
      msToLastDelivery: warm.msToLastDelivery,
      timedOut: warm.timedOut,
      sendError: warm.sendError,
    };
    if (warm.received < connect.connected)
      throw new Error(
        `warm-up broadcast: ${warm.received} of ${connect.connected} subscribers received it (${warm.sendError ?? 'timed out'})`,
      );

    const profiling = CPU_PROFILE_DIR !== undefined && inspector !== undefined;
    if (profiling) await inspector.startProfiling(PROFILE_SAMPLING_US);
    const rounds: RoundResult[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      await sleep(PAUSE_MS);
      const result = await broadcastRound(server, clients, `n${n}-round-${r}`, ROUND_TIMEOUT_MS);
      rounds.push(result);
      progress(
        `  ${server.name} round ${r}: ${result.received} of ${result.subscribers} in ${result.msToLastDelivery} ms (first ${result.msToFirstDelivery} ms, send answered ${result.sendAnswerMs} ms): ` +
          `${result.deliveriesPerSecond} deliveries/s; server CPU ${result.cpu.serverPercent} % (${result.cpu.serverCpuMicrosPerDelivery} µs a delivery, ${result.cpu.serverKernelCpuMs} of ${result.cpu.serverCpuMs} ms in the kernel), subscriber processes ${result.cpu.subscriberProcessesPercent} %`,
      );
    }
    if (profiling) details.profile = await saveProfile(inspector, n);
    details.rssAfterRoundsBytes = residentBytes(server.pid);
    details.summary = {
      medianOfRounds: {
        deliveriesPerSecond: roundedMedian(rounds.map((r) => r.deliveriesPerSecond)),
        msToFirstDelivery: median(rounds.map((r) => r.msToFirstDelivery)),
        msToLastDelivery: median(rounds.map((r) => r.msToLastDelivery)),
        spreadMs: median(rounds.map((r) => r.spreadMs)),
        sendAnswerMs: median(rounds.map((r) => r.sendAnswerMs)),
        serverCpuPercent: median(rounds.map((r) => r.cpu.serverPercent)),
        serverCpuMicrosPerDelivery: median(rounds.map((r) => r.cpu.serverCpuMicrosPerDelivery)),
        serverKernelCpuMs: median(rounds.map((r) => r.cpu.serverKernelCpuMs)),
        serverCpuMs: median(rounds.map((r) => r.cpu.serverCpuMs)),
        subscriberProcessesCpuPercent: median(rounds.map((r) => r.cpu.subscriberProcessesPercent)),
        // Busy CPU of other processes on the machine (percent of one core): high → disturbed figures.
        otherCpuPercent: median(rounds.map((r) => r.cpu.otherPercent)),
      },
      lost: rounds.reduce((a, r) => a + r.lost, 0),
      duplicates: rounds.reduce((a, r) => a + r.duplicates, 0),
      timedOutRounds: rounds.filter((r) => r.timedOut).length,
      payloadBytes: rounds.find((r) => r.payloadBytes !== null)?.payloadBytes ?? null,
    };
    details.rounds = rounds;
    subscribed = false;
    details.unexpectedEnds = await disconnectSubscribers(clients);
    return {
      figures: {
        deliveriesPerSecond: roundedMedian(rounds.map((r) => r.deliveriesPerSecond)),
        msToLastDelivery: median(rounds.map((r) => r.msToLastDelivery)),
        rssPerIdleConnectionBytes,
      },
      details,
      payloadBytes: rounds.find((r) => r.payloadBytes !== null)?.payloadBytes ?? null,
    };
  } catch (error) {
    progress(`  ${server.name} at ${n} failed: ${(error as Error).stack ?? errorText(error)}`);
    if (subscribed)
      await disconnectSubscribers(clients).catch((e: unknown) => progress(`  disconnecting failed: ${errorText(e)}`));
    return {
      figures: { deliveriesPerSecond: null, msToLastDelivery: null, rssPerIdleConnectionBytes: null },
      details: { failed: errorText(error), ...details },
      payloadBytes: null,
    };
  } finally {
    await server.stop();
  }
}

/** Stops the profiler, writes herald-fanout-<n>.cpuprofile to CPU_PROFILE_DIR, and summarizes it. */
async function saveProfile(inspector: NodeInspector, n: number): Promise<ProfileSummary & { file: string }> {
  const profile = await inspector.stopProfiling();
  mkdirSync(CPU_PROFILE_DIR!, { recursive: true });
  const file = path.join(CPU_PROFILE_DIR!, `herald-fanout-${n}.cpuprofile`);
  writeFileSync(file, JSON.stringify(profile));
  const summary = summarizeProfile(profile, ROOT);
  progress(
    `  herald profile (${file}), self time: ${summary.byArea
      .slice(0, 6)
      .map((a) => `${a.name} ${a.selfPercent} %`)
      .join(', ')}`,
  );
  return { file, ...summary };
}

// --- the run --------------------------------------------------------------------------------------

runBenchmark(async (cleanup) => {
  const started = performance.now();
  const largest = Math.max(...SUBSCRIBERS);
  const limit = openFilesLimit();
  if (limit < largest + 1024) {
    throw new Error(
      `the open files limit is ${limit}: a server needs one per subscriber (${largest}) and more; run \`npm run bench:fanout\` (it raises it) or \`ulimit -n 65536\` first`,
    );
  }
  const mosquitto = SERVERS.includes('mosquitto') ? mosquittoBinary() : undefined;
  const mosquittoVersion = mosquitto
    ? (spawnSync(mosquitto, ['-h'], { encoding: 'utf8' }).stdout ?? '').split('\n')[0]?.trim() || 'unknown'
    : null;
  const { url: databaseUrl, machine } = await benchDatabase(cleanup);
  if (SERVERS.includes('herald') && HERALD_COMPILED) {
    progress('building herald (npm run build): it runs from dist/, as deployed');
    buildHerald();
  }

  progress(`starting ${CLIENT_PROCESSES} subscriber processes`);
  const clients: SubscriberProcess[] = [];
  cleanup.add('stop the subscriber processes', () => Promise.all(clients.map((c) => c.stop())));
  await Promise.all(
    Array.from({ length: CLIENT_PROCESSES }, async () => clients.push(await SubscriberProcess.start())),
  );

  const figures: Array<{
    subscribers: number;
    herald: ServerFigures | null;
    mosquitto: ServerFigures | null;
    heraldToMosquittoDeliveriesRatio: number | null;
  }> = [];
  const runs: Record<string, Record<string, unknown>> = {};
  for (const n of SUBSCRIBERS) {
    progress(`=== ${n} subscribers`);
    let herald: ServerRun | undefined;
    let mqttRun: ServerRun | undefined;
    if (SERVERS.includes('herald')) {
      progress('  starting herald');
      herald = await measureServer(await startHeraldServer(cleanup, databaseUrl), clients, n);
    }
    if (mosquitto) {
      const payloadBytes = herald?.payloadBytes ?? DEFAULT_PAYLOAD_BYTES;
      progress(`  starting mosquitto (payload ${payloadBytes} bytes)`);
      mqttRun = await measureServer(await startMosquitto(cleanup, mosquitto, payloadBytes), clients, n);
    }
    const heraldRate = herald?.figures.deliveriesPerSecond ?? null;
    const mosquittoRate = mqttRun?.figures.deliveriesPerSecond ?? null;
    figures.push({
      subscribers: n,
      herald: herald?.figures ?? null,
      mosquitto: mqttRun?.figures ?? null,
      heraldToMosquittoDeliveriesRatio:
        heraldRate !== null && mosquittoRate ? Number((heraldRate / mosquittoRate).toFixed(3)) : null,
    });
    runs[String(n)] = { herald: herald?.details ?? null, mosquitto: mqttRun?.details ?? null };
  }

  const atGoal = figures.find((f) => f.subscribers === GOAL_SUBSCRIBERS);
  const rssMeasured = figures
    .map((f) => f.herald?.rssPerIdleConnectionBytes ?? null)
    .filter((v): v is number => v !== null);
  const rateAtGoal = atGoal?.herald?.deliveriesPerSecond ?? null;
  const ratioAtGoal = atGoal?.heraldToMosquittoDeliveriesRatio ?? null;
  const goals = {
    deliveriesPerSecond: {
      subscribers: GOAL_SUBSCRIBERS,
      atLeast: GOAL_DELIVERIES_PER_SECOND,
      measured: rateAtGoal,
      met: rateAtGoal === null ? null : rateAtGoal >= GOAL_DELIVERIES_PER_SECOND,
    },
    mosquittoRatio: {
      subscribers: GOAL_SUBSCRIBERS,
      atLeast: GOAL_MOSQUITTO_RATIO,
      measured: ratioAtGoal,
      met: ratioAtGoal === null ? null : ratioAtGoal >= GOAL_MOSQUITTO_RATIO,
    },
    rssPerIdleConnection: {
      atMostBytes: GOAL_RSS_BYTES,
      measuredMaxBytes: rssMeasured.length > 0 ? Math.max(...rssMeasured) : null,
      met:
        rssMeasured.length === figures.length && rssMeasured.length > 0
          ? rssMeasured.every((v) => v <= GOAL_RSS_BYTES)
          : null,
    },
  };

  return {
    benchmark: 'fan-out: one broadcast to N graphql-ws subscribers, beside Mosquitto',
    machine: {
      ...machine,
      mosquitto: mosquittoVersion,
      openFilesLimit: limit,
      loadAverage1mAtEnd: round(os.loadavg()[0] ?? 0),
    },
    parameters: {
      subscribers: SUBSCRIBERS,
      servers: SERVERS,
      clientProcesses: CLIENT_PROCESSES,
      rounds: ROUNDS,
      connectBatch: CONNECT_BATCH,
      connectTimeoutSeconds: CONNECT_TIMEOUT_MS / 1000,
      warmUpSubscribers: WARMUP_SUBSCRIBERS,
      roundTimeoutSeconds: ROUND_TIMEOUT_MS / 1000,
      pauseMs: PAUSE_MS,
      rssSettleSeconds: RSS_SETTLE_MS / 1000,
      contentBytes: CONTENT_BYTES,
      herald: {
        broadcast: `one Koala send to one user whose N graphql-ws subscribers all run the subscription below: one payload on one topic, one shared execution`,
        subscription:
          'subscription { messages { id seq title content sender sentAt meta { realm seq sender stime } } }',
        subscriberClient: 'bare ws, graphql-transport-ws',
        runs: HERALD_COMPILED
          ? 'dist/src/cli.js (npm run build) with MALLOC_ARENA_MAX=2, as the Docker image'
          : 'src/cli.ts under tsx',
        cpuProfileDir: CPU_PROFILE_DIR ?? null,
      },
      mosquitto: {
        broadcast: `one PUBLISH, QoS 0, to ${MQTT_TOPIC}, payload the size of herald's frame at the same N`,
        subscriberClient: 'mqtt package, MQTT 3.1.1, QoS 0',
      },
    },
    // Medians of the rounds; deliveries/s = subscribers reached ÷ (last delivery − send start).
    figures,
    goals: { ...goals, met: Object.values(goals).every((g) => g.met === true) },
    runs,
    seconds: round((performance.now() - started) / 1000),
  };
});
