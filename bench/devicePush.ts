/**
 * Device push fan-out. Goal (the issue): 1,000 connected legacy device sockets, one send to ALL:
 * deliveries/s and time to the last confirmation — and the same figure for graphql-ws device
 * subscriptions beside it, each beside the machine's own baselines.
 *
 *   node --import tsx bench/devicePush.ts                                  # the goal's load
 *   BENCH_DEVICES=100 BENCH_ROUNDS=2 node --import tsx bench/devicePush.ts   # a small run
 *   BENCH_SCENARIOS=legacy node --import tsx bench/devicePush.ts           # one scenario
 *   DATABASE_URL=postgres://… node --import tsx bench/devicePush.ts
 *
 * Parameters (environment):
 *   BENCH_DEVICES                 connected devices (default 1,000)
 *   BENCH_ROUNDS                  measured sends to ALL per scenario (default 3)
 *   BENCH_SCENARIOS               comma-separated, in this order: raw, legacy, graphql (default all three)
 *   BENCH_CONNECT_BATCH           sockets opened at a time; the next batch waits for the last (default 100)
 *   BENCH_CONNECT_TIMEOUT_SECONDS one socket's connect (default 30)
 *   BENCH_REGISTER_CONCURRENCY    concurrent POST /msgpush/register (default 32)
 *   BENCH_WARMUP_TIMEOUT_SECONDS  the warm-up push must be received and confirmed by all within this (default 60)
 *   BENCH_ROUND_TIMEOUT_SECONDS   one measured round's deadline for the last confirmation (default 60)
 *   BENCH_PAUSE_MS                pause before each round, after herald's devices projection has caught up (default 500)
 *   BENCH_BASELINE_SAMPLES        sequential round trips of each baseline (default 500)
 *   BENCH_REQUEST_TIMEOUT_MS      one HTTP request's (or graphql-ws operation's) timeout (default 30,000)
 *   BENCH_READY_TIMEOUT_SECONDS   wait for herald's /readyz (default 120)
 *
 * Scenarios, one after the other, each server alone on the machine with the load generator (this process):
 *
 *   raw      the machine's floor: a bare `ws` server in its own Node process (no herald, no database)
 *            speaking /msgpush.ws's frames. POST /send writes one frame to every socket and answers
 *            {requestId}; a {"confirm"} is answered {"confirmed"} at once. Same load generator, same
 *            measurements as `legacy`.
 *   legacy   herald in its own process on a fresh database (bench/heraldProcess.ts startHerald): BENCH_DEVICES
 *            devices registered (POST /msgpush/register), each connected on ws /msgpush.ws?deviceId=;
 *            sends are POST /msgpush/send {platform: ALL, audienceType: ALL, needConfirm: true}; each
 *            device confirms every frame at once ({"confirm": id} → {"confirmed": id}).
 *   graphql  herald again, on another fresh database: the same, with one graphql-ws client per device
 *            (connectionParams.deviceToken), `subscription { deviceMessages { messageId alert } }` (no deviceId: every device runs the same operation, executed once per push),
 *            confirming with `mutation { confirmDelivery(messageId: …) }` over its socket.
 *
 * In each: devices connect BENCH_CONNECT_BATCH at a time (not measuring the accept backlog); one warm-up
 * send to ALL that every device receives and confirms; baselines (GET /healthz round trip, and a socket
 * round trip: a bad frame answered by bad_frame on /msgpush.ws, `{ __typename }` over graphql-ws);
 * then BENCH_ROUNDS sends to ALL. Before each round the bench waits until herald's devices projection has
 * passed the store's last device event (the previous round's confirmations are projected), then
 * BENCH_PAUSE_MS. Per round, from the send's start (t0): the send's answer, the first and the last device
 * receiving, the last `confirmed`; deliveries/s = devices received ÷ (last receive − t0), confirmations/s
 * = confirmed ÷ (last confirmation − t0); per-device latencies p50/p99; lost (a device without the
 * message), duplicates (a message received again: allowed at least once, expected 0 here), frames with a
 * wrong messageId; for herald, the push's events in its store and when they were appended (ms from the
 * send start: where the time goes). A round that misses its deadline is reported with `timedOut: true`
 * and what arrived; a scenario that fails is reported with `failed` and the others still run. Server CPU
 * (/proc/<pid>/stat), the embedded PostgreSQL's, this process's and the machine's (`otherPercent`: other
 * processes; high means disturbed figures) are sampled over each round, with µs of herald's and
 * PostgreSQL's CPU per delivery (a device receiving and confirming). `deliveryRecords`: the push's
 * attempts and confirmations in the store, their rate from the first to the last, and in how many appends
 * (a stream's events written together) and commits they came. `sideBySide` holds the medians
 * of the rounds of each scenario with its /healthz baseline.
 *
 * Prints one JSON document on stdout; progress on stderr.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { createClient, type Client } from 'graphql-ws';
import pg from 'pg';
import WebSocket from 'ws';
import { createTestDatabase } from '../test/support/postgres';
import { CpuSampler, type CpuUse } from './cpu';
import { APP_ID, APP_SECRET, ROOT } from './heraldProcess';
import { HttpClient, startHeraldWithClient } from './httpClient';
import { benchDatabase } from './machine';
import { type Cleanup, deadline, envInteger, envNumber, progress, runBenchmark, sleep } from './run';
import { boundConnect, closeSockets } from './sockets';
import { count, errorText, latencyStats, type LatencyStats, median, round } from './stats';

const DEVICES = envInteger('BENCH_DEVICES', 1_000, 1);
const ROUNDS = envInteger('BENCH_ROUNDS', 3, 1);
const CONNECT_BATCH = envInteger('BENCH_CONNECT_BATCH', 100, 1);
const CONNECT_TIMEOUT_MS = envNumber('BENCH_CONNECT_TIMEOUT_SECONDS', 30, 1) * 1000;
const REGISTER_CONCURRENCY = envInteger('BENCH_REGISTER_CONCURRENCY', 32, 1);
const WARMUP_TIMEOUT_MS = envNumber('BENCH_WARMUP_TIMEOUT_SECONDS', 60, 0.1) * 1000;
const ROUND_TIMEOUT_MS = envNumber('BENCH_ROUND_TIMEOUT_SECONDS', 60, 0.1) * 1000;
const PAUSE_MS = envNumber('BENCH_PAUSE_MS', 500, 0);
const BASELINE_SAMPLES = envInteger('BENCH_BASELINE_SAMPLES', 500, 1);
const REQUEST_TIMEOUT_MS = envNumber('BENCH_REQUEST_TIMEOUT_MS', 30_000, 1);
const SCENARIOS = (process.env.BENCH_SCENARIOS?.trim() || 'raw,legacy,graphql').split(',').map((s) => s.trim());
for (const s of SCENARIOS)
  if (!['raw', 'legacy', 'graphql'].includes(s))
    throw new Error(`BENCH_SCENARIOS: unknown scenario ${s} (raw, legacy, graphql)`);

const nullableRound = (value: number | undefined) =>
  value === undefined || !Number.isFinite(value) ? null : round(value);

// --- what the devices see -------------------------------------------------------------------------

/** One send to ALL, as the devices see it; rounds are told apart by their alert (known before the answer). */
interface Track {
  readonly alert: string;
  readonly t0: number;
  requestId: string | undefined;
  answeredAt: number | undefined;
  readonly firstReceivedAt: Float64Array;
  readonly receipts: Uint32Array;
  readonly confirmedAt: Float64Array;
  readonly messageIds: Map<string, number>;
  readonly confirmErrors: Record<string, number>;
  received: number;
  confirmed: number;
  repeatedConfirmations: number;
}

class Tracker {
  private readonly byAlert = new Map<string, Track>();
  private readonly byMessageId = new Map<string, Track>();
  /** Frames whose alert names no send of this bench. */
  unknownFrames = 0;
  /** `confirmed` replies for a message id no frame carried. */
  unknownConfirmations = 0;

  constructor(
    readonly devices: number,
    private readonly confirm: (device: number, messageId: string) => void,
  ) {}

  start(alert: string): Track {
    const track: Track = {
      alert,
      t0: performance.now(),
      requestId: undefined,
      answeredAt: undefined,
      firstReceivedAt: new Float64Array(this.devices).fill(NaN),
      receipts: new Uint32Array(this.devices),
      confirmedAt: new Float64Array(this.devices).fill(NaN),
      messageIds: new Map(),
      confirmErrors: {},
      received: 0,
      confirmed: 0,
      repeatedConfirmations: 0,
    };
    this.byAlert.set(alert, track);
    return track;
  }

  onFrame(device: number, messageId: string, alert: string): void {
    const at = performance.now();
    const track = this.byAlert.get(alert);
    if (!track) {
      this.unknownFrames++;
      return;
    }
    track.messageIds.set(messageId, (track.messageIds.get(messageId) ?? 0) + 1);
    this.byMessageId.set(messageId, track);
    const before = track.receipts[device] ?? 0;
    track.receipts[device] = before + 1;
    if (before === 0) {
      track.firstReceivedAt[device] = at;
      track.received++;
    }
    this.confirm(device, messageId); // a device confirms a repeat too
  }

  onConfirmed(device: number, messageId: string): void {
    const at = performance.now();
    const track = this.byMessageId.get(messageId);
    if (!track) {
      this.unknownConfirmations++;
      return;
    }
    if (Number.isNaN(track.confirmedAt[device]!)) {
      track.confirmedAt[device] = at;
      track.confirmed++;
    } else {
      track.repeatedConfirmations++;
    }
  }

  onConfirmError(messageId: string, code: string): void {
    const track = this.byMessageId.get(messageId);
    if (track) count(track.confirmErrors, code);
    else this.unknownConfirmations++;
  }
}

// --- transports -----------------------------------------------------------------------------------

interface Transport {
  readonly name: string;
  /** Resolves once device `index` can receive (socket open / graphql-ws connected and subscribed). */
  connect(index: number): Promise<void>;
  confirm(index: number, messageId: string): void;
  /** One request-reply over device 0's connection that does nothing but answer. */
  socketRoundTrip(): Promise<void>;
  readonly socketRoundTripName: string;
  /** Connections that closed (or subscriptions that ended) while they should not have, by reason. */
  readonly unexpectedEnds: Record<string, number>;
  close(): Promise<void>;
}

interface RegisteredDevice {
  readonly deviceId: string;
  readonly token: string;
}

/** ONE-PUSH's /msgpush.ws: plain WebSocket, JSON text frames. */
function msgpushTransport(wsUrl: string, devices: readonly RegisteredDevice[], tracker: () => Tracker): Transport {
  const sockets: WebSocket[] = [];
  const unexpectedEnds: Record<string, number> = {};
  let closing = false;
  let badFrameWaiter: (() => void) | undefined;
  const confirmAttempts = new Map<string, number>();
  const transport: Transport = {
    name: 'msgpush.ws',
    socketRoundTripName: 'msgpushBadFrameRoundTrip',
    unexpectedEnds,
    connect(index) {
      return new Promise((resolve, reject) => {
        const socket = new WebSocket(`${wsUrl}/msgpush.ws?deviceId=${devices[index]!.deviceId}`, {
          perMessageDeflate: false,
        });
        sockets[index] = socket;
        const connected = boundConnect(socket, CONNECT_TIMEOUT_MS, reject, (code) => {
          if (!closing) count(unexpectedEnds, `close ${code}`);
        });
        socket.on('open', () => {
          connected();
          resolve();
        });
        socket.on('message', (data) => {
          let frame: Record<string, unknown>;
          try {
            frame = JSON.parse(data.toString()) as Record<string, unknown>;
          } catch {
            count(unexpectedEnds, 'non-JSON frame');
            return;
          }
          if (typeof frame.messageId === 'string') {
            tracker().onFrame(index, frame.messageId, String(frame.alert));
          } else if (typeof frame.confirmed === 'string') {
            tracker().onConfirmed(index, frame.confirmed);
          } else if (frame.error && typeof frame.confirm === 'string') {
            const code = String((frame.error as { code?: unknown }).code);
            tracker().onConfirmError(frame.confirm, code);
            // "internal error; confirm again" (docs/api/onepush.md): a device would, a few times.
            const key = `${index}/${frame.confirm}`;
            const attempts = (confirmAttempts.get(key) ?? 0) + 1;
            confirmAttempts.set(key, attempts);
            if (code === 'internal' && attempts < 3) transport.confirm(index, frame.confirm);
          } else if (
            frame.error &&
            (frame.error as { code?: unknown }).code === 'bad_frame' &&
            index === 0 &&
            badFrameWaiter
          ) {
            badFrameWaiter();
          } else {
            count(unexpectedEnds, 'unexpected frame');
          }
        });
      });
    },
    confirm(index, messageId) {
      const socket = sockets[index];
      if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ confirm: messageId }));
    },
    socketRoundTrip() {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer in time')), REQUEST_TIMEOUT_MS);
        badFrameWaiter = () => {
          clearTimeout(timer);
          badFrameWaiter = undefined;
          resolve();
        };
        sockets[0]!.send('{}');
      });
    },
    async close() {
      closing = true;
      await closeSockets(sockets, 10_000);
    },
  };
  return transport;
}

/** graphql-ws on /graphql, one client per device, authenticated by its token. */
function graphqlTransport(wsUrl: string, devices: readonly RegisteredDevice[], tracker: () => Tracker): Transport {
  const clients: Client[] = [];
  const unexpectedEnds: Record<string, number> = {};
  let closing = false;
  const operation = <T>(client: Client, query: string): Promise<T> =>
    new Promise((resolve, reject) => {
      let data: T | undefined;
      let errors: unknown;
      const timer = setTimeout(() => {
        cancel();
        reject(new Error('no answer in time'));
      }, REQUEST_TIMEOUT_MS);
      const cancel = client.subscribe<T>(
        { query },
        {
          next: (result) => {
            if (result.data) data = result.data as T;
            if (result.errors) errors = result.errors;
          },
          error: (error: unknown) => {
            clearTimeout(timer);
            reject(new Error(Array.isArray(error) ? JSON.stringify(error) : errorText(error)));
          },
          complete: () => {
            clearTimeout(timer);
            if (data !== undefined && !errors) resolve(data);
            else reject(Object.assign(new Error(JSON.stringify(errors ?? 'no data')), { graphqlErrors: errors }));
          },
        },
      );
    });
  const transport: Transport = {
    name: 'graphql-ws',
    socketRoundTripName: 'graphqlWsTypenameRoundTrip',
    unexpectedEnds,
    connect(index) {
      return new Promise((resolve, reject) => {
        const device = devices[index]!;
        const client = createClient({
          url: `${wsUrl}/graphql`,
          webSocketImpl: WebSocket,
          connectionParams: { deviceToken: device.token },
          lazy: false,
          retryAttempts: 0,
          onNonLazyError: () => undefined,
        });
        clients[index] = client;
        const timer = setTimeout(() => reject(new Error('connect timeout')), CONNECT_TIMEOUT_MS);
        client.on('connected', () => {
          clearTimeout(timer);
          resolve();
        });
        client.on('closed', (event) => {
          clearTimeout(timer);
          const code = (event as { code?: number }).code;
          reject(new Error(`closed ${code}`));
          if (!closing) count(unexpectedEnds, `close ${code}`);
        });
        client.subscribe<{ deviceMessages: { messageId: string; alert: string | null } }>(
          { query: 'subscription { deviceMessages { messageId alert } }' },
          {
            next: (result) => {
              if (result.data)
                tracker().onFrame(
                  index,
                  result.data.deviceMessages.messageId,
                  String(result.data.deviceMessages.alert),
                );
              else count(unexpectedEnds, `subscription errors ${JSON.stringify(result.errors)}`.slice(0, 200));
            },
            error: (error: unknown) => {
              if (!closing)
                count(
                  unexpectedEnds,
                  `subscription error ${Array.isArray(error) ? JSON.stringify(error) : errorText(error)}`.slice(0, 200),
                );
            },
            complete: () => {
              if (!closing) count(unexpectedEnds, 'subscription completed');
            },
          },
        );
      });
    },
    confirm(index, messageId) {
      const confirmOnce = (attempt: number): void => {
        operation<{ confirmDelivery: boolean }>(
          clients[index]!,
          `mutation { confirmDelivery(messageId: "${messageId}") }`,
        ).then(
          (data) => {
            if (data.confirmDelivery === true) tracker().onConfirmed(index, messageId);
            else tracker().onConfirmError(messageId, `confirmDelivery ${String(data.confirmDelivery)}`);
          },
          (error: unknown) => {
            const errors = (error as { graphqlErrors?: Array<{ extensions?: { code?: string } }> }).graphqlErrors;
            const code = Array.isArray(errors)
              ? String(errors[0]?.extensions?.code ?? 'graphql error')
              : errorText(error);
            tracker().onConfirmError(messageId, code);
            if (code === 'INTERNAL_SERVER_ERROR' && attempt < 3) confirmOnce(attempt + 1);
          },
        );
      };
      confirmOnce(1);
    },
    async socketRoundTrip() {
      await operation(clients[0]!, '{ __typename }');
    },
    async close() {
      closing = true;
      await Promise.race([Promise.all(clients.map((c) => c.dispose())), deadline(10_000)]);
    },
  };
  return transport;
}

// --- the servers ----------------------------------------------------------------------------------

interface Server {
  readonly kind: 'raw' | 'herald';
  readonly url: string;
  readonly wsUrl: string;
  readonly pid: number;
  readonly http: HttpClient;
  readonly databaseUrl: string | undefined;
  /** Sends to ALL; resolves with the request id (or rejects). */
  sendToAll(alert: string): Promise<string>;
  stop(): Promise<unknown>;
}

/**
 * The machine's floor: /msgpush.ws's wire protocol without herald — a bare `ws` server in its own Node
 * process, writing one pre-serialised frame to every socket per POST /send, answering confirms at once.
 */
const RAW_SERVER = `
const http = require('node:http');
const { randomUUID } = require('node:crypto');
const { WebSocketServer } = require('ws');
const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return res.end('ok');
  if (req.method === 'POST' && req.url === '/send') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString());
      const requestId = randomUUID();
      const frame = JSON.stringify({ messageId: requestId, appId: body.appId, tenantCode: '', alert: body.alert, extra: '', pushMsgType: 'MSG', needConfirm: true });
      for (const socket of wss.clients) socket.send(frame);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ requestId }));
    });
    return;
  }
  res.statusCode = 404;
  res.end();
});
const wss = new WebSocketServer({ server, path: '/msgpush.ws', maxPayload: 4096 });
wss.on('connection', (socket) => {
  socket.on('message', (data) => {
    let id;
    try { id = JSON.parse(data.toString()).confirm; } catch {}
    socket.send(JSON.stringify(typeof id === 'string' ? { confirmed: id } : { error: { code: 'bad_frame', message: 'expected {"confirm": "<messageId>"}' } }));
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

async function startRawServer(cleanup: Cleanup): Promise<Server> {
  const child = spawn(process.execPath, ['-e', RAW_SERVER], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk.toString().replace(/^(?=.)/gm, '[raw] ')));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await Promise.race([exited, deadline(10_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  cleanup.add('stop the raw ws server', stop);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve((JSON.parse(line!) as { port: number }).port);
    });
    child.on('exit', (code) => reject(new Error(`the raw ws server exited with ${code}`)));
    setTimeout(() => reject(new Error('the raw ws server did not start within 30 s')), 30_000).unref();
  });
  const url = `http://127.0.0.1:${port}`;
  const http = new HttpClient(url, { maxSockets: 8 });
  return {
    kind: 'raw',
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    pid: child.pid!,
    http,
    databaseUrl: undefined,
    async sendToAll(alert) {
      const response = await http.postJson('/send', { appId: APP_ID, alert });
      if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${response.body.slice(0, 200)}`);
      return (JSON.parse(response.body) as { requestId: string }).requestId;
    },
    async stop() {
      http.close();
      await stop();
    },
  };
}

async function startHeraldServer(cleanup: Cleanup, databaseUrl: string): Promise<Server> {
  const { herald, http } = await startHeraldWithClient(cleanup, databaseUrl, {
    maxSockets: Math.max(8, REGISTER_CONCURRENCY),
  });
  return {
    kind: 'herald',
    url: herald.url,
    wsUrl: herald.wsUrl,
    pid: herald.pid,
    http,
    databaseUrl,
    async sendToAll(alert) {
      const response = await http.postJson('/msgpush/send', {
        appId: APP_ID,
        appKey: APP_SECRET,
        platform: 'ALL',
        audienceType: 'ALL',
        audiences: ['ALL'],
        alert,
        needConfirm: true,
        duration: 600,
      });
      if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${response.body.slice(0, 200)}`);
      return (JSON.parse(response.body) as { requestId: string }).requestId;
    },
    async stop() {
      http.close();
      const code = await herald.stop();
      if (code !== 0) progress(`herald exited with ${code}`);
    },
  };
}

// --- the phases -----------------------------------------------------------------------------------

async function registerDevices(
  http: HttpClient,
  prefix: string,
): Promise<{ devices: RegisteredDevice[]; result: Record<string, unknown> }> {
  const devices: RegisteredDevice[] = new Array(DEVICES);
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(REGISTER_CONCURRENCY, DEVICES) }, async () => {
      while (next < DEVICES) {
        const index = next++;
        const t0 = performance.now();
        const response = await http.postJson('/msgpush/register', {
          alias: `${prefix}-${index}`,
          appId: APP_ID,
          platform: 'ANDROID',
          nativeToken: `${prefix}-native-${index}`,
        });
        if (response.status !== 200)
          throw new Error(`register device ${index}: HTTP ${response.status} ${response.body.slice(0, 200)}`);
        latencies.push(performance.now() - t0);
        const body = JSON.parse(response.body) as { id: string; token: string };
        devices[index] = { deviceId: body.id, token: body.token };
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    devices,
    result: {
      devices: DEVICES,
      concurrency: REGISTER_CONCURRENCY,
      seconds: round(seconds),
      perSecond: Math.round(DEVICES / seconds),
      latency: latencyStats(latencies),
    },
  };
}

async function connectDevices(transport: Transport): Promise<Record<string, unknown>> {
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  const started = performance.now();
  for (let from = 0; from < DEVICES; from += CONNECT_BATCH) {
    const batch = Array.from({ length: Math.min(CONNECT_BATCH, DEVICES - from) }, (_, k) => from + k);
    await Promise.all(
      batch.map(async (index) => {
        const t0 = performance.now();
        try {
          await transport.connect(index);
          latencies.push(performance.now() - t0);
        } catch (error) {
          count(failures, errorText(error));
        }
      }),
    );
  }
  const seconds = (performance.now() - started) / 1000;
  const failed = Object.values(failures).reduce((a, b) => a + b, 0);
  if (failed > 0) progress(`  ${failed} of ${DEVICES} connections failed: ${JSON.stringify(failures)}`);
  return {
    batch: CONNECT_BATCH,
    seconds: round(seconds),
    connected: DEVICES - failed,
    failed,
    failures,
    latency: latencyStats(latencies),
  };
}

/** Sequential round trips; errors counted. */
async function sequentialRoundTrips(
  samples: number,
  call: () => Promise<void>,
): Promise<LatencyStats & { errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    try {
      await call();
      latencies.push(performance.now() - t0);
    } catch {
      errors++;
    }
  }
  return { ...latencyStats(latencies), errors };
}

/** Waits until herald's devices projection has passed the last event it handles (bounded); ms waited, or null at the bound. */
async function waitForDevicesProjection(databaseUrl: string, timeoutMs: number): Promise<number | null> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = performance.now();
    for (;;) {
      const { rows } = await client.query<{ caught_up: boolean }>(`
        SELECT coalesce((SELECT position FROM projection_checkpoints WHERE name = 'devices'), -1) >=
               coalesce((SELECT max(position) FROM events
                          WHERE event_type LIKE 'Device%' OR event_type LIKE 'Delivery%' OR event_type IN ('PushRequested', 'MessageDelivered')), -1) AS caught_up`);
      if (rows[0]?.caught_up) return round(performance.now() - started);
      if (performance.now() - started > timeoutMs) return null;
      await sleep(20);
    }
  } finally {
    await client.end();
  }
}

/**
 * The push's events in herald's store: delivery events by type, and when they were appended
 * (events.created_at, the database's clock_timestamp(), the same clock as this machine's), in ms from the
 * round's send start: where the time between the send and the last confirmation goes.
 */
async function storeEventsOf(databaseUrl: string, pushId: string, t0Epoch: number): Promise<Record<string, unknown>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{
      event_type: string;
      n: string;
      first_ms: number;
      p50_ms: number;
      last_ms: number;
    }>(
      `SELECT event_type, count(*) AS n,
              min(extract(epoch FROM created_at) * 1000 - $2::float8)::float8 AS first_ms,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM created_at) * 1000 - $2::float8)::float8 AS p50_ms,
              max(extract(epoch FROM created_at) * 1000 - $2::float8)::float8 AS last_ms
         FROM events WHERE stream_name LIKE $1 OR stream_name = $3 GROUP BY 1 ORDER BY min(position)`,
      [`delivery-${pushId}.%`, t0Epoch, `push-${pushId}`],
    );
    // The delivery records (attempts and confirmations): how many, how fast from the first to the last,
    // in how many appends (a stream's events written together) and commits (transactions, by xmin).
    const records = await client.query<{ n: string; appends: string; commits: string; span_ms: number | null }>(
      `SELECT count(*) AS n, count(DISTINCT (stream_name, xmin::text)) AS appends, count(DISTINCT xmin::text) AS commits,
              (extract(epoch FROM max(created_at) - min(created_at)) * 1000)::float8 AS span_ms
         FROM events WHERE stream_name LIKE $1`,
      [`delivery-${pushId}.%`],
    );
    const r = records.rows[0]!;
    const n = Number(r.n);
    return {
      deliveryRecords: {
        records: n,
        appends: Number(r.appends),
        commits: Number(r.commits),
        firstToLastMs: r.span_ms === null ? null : round(r.span_ms),
        perSecond: r.span_ms ? Math.round((n * 1000) / r.span_ms) : null,
      },
      events: Object.fromEntries(rows.map((r) => [r.event_type, Number(r.n)])),
      appendedMsFromSendStart: Object.fromEntries(
        rows.map((r) => [r.event_type, { first: round(r.first_ms), p50: round(r.p50_ms), last: round(r.last_ms) }]),
      ),
    };
  } finally {
    await client.end();
  }
}

const recordsOf = (r: RoundResult) =>
  r.store?.deliveryRecords as { perSecond: number | null; appends: number; commits: number } | undefined;

function storeTimelineMedian(results: readonly RoundResult[]): Record<string, Record<string, number | null>> {
  const timeline = (r: RoundResult) =>
    (r.store?.appendedMsFromSendStart ?? {}) as Record<string, { first: number; p50: number; last: number }>;
  const types = [...new Set(results.flatMap((r) => Object.keys(timeline(r))))];
  return Object.fromEntries(
    types.map((type) => [
      type,
      {
        first: median(results.map((r) => timeline(r)[type]?.first ?? null)),
        p50: median(results.map((r) => timeline(r)[type]?.p50 ?? null)),
        last: median(results.map((r) => timeline(r)[type]?.last ?? null)),
      },
    ]),
  );
}

interface RoundResult {
  readonly alert: string;
  readonly requestId: string | null;
  readonly sendError: string | null;
  /** The last confirmation was due by then; what arrives later (before the scenario ends) is still counted. */
  readonly deadlineMs: number;
  readonly timedOut: boolean;
  readonly complete: boolean;
  readonly sendAnswerMs: number | null;
  readonly firstReceiveMs: number | null;
  readonly lastReceiveMs: number | null;
  readonly lastConfirmedMs: number | null;
  readonly deliveriesPerSecond: number | null;
  readonly confirmationsPerSecond: number | null;
  readonly devices: number;
  readonly received: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly devicesWithDuplicates: number;
  readonly wrongMessageId: number;
  readonly receivedBeforeSendAnswer: number;
  readonly confirmed: number;
  readonly unconfirmed: number;
  readonly confirmErrors: Record<string, number>;
  readonly repeatedConfirmations: number;
  readonly receiveFromSendStart: LatencyStats;
  readonly confirmedFromSendStart: LatencyStats;
  readonly confirmRoundTrip: LatencyStats;
  readonly cpu: CpuUse;
  store?: Record<string, unknown>;
}

/** One send to ALL; resolves when every device has its `confirmed`, or at the deadline. */
async function sendRound(
  server: Server,
  tracker: Tracker,
  cpu: CpuSampler,
  alert: string,
  timeoutMs: number,
): Promise<{ track: Track; result: () => RoundResult }> {
  const before = cpu.snapshot();
  const track = tracker.start(alert);
  let sendError: string | null = null;
  const answered = server.sendToAll(alert).then(
    (requestId) => {
      track.answeredAt = performance.now();
      track.requestId = requestId;
    },
    (error: unknown) => {
      sendError = errorText(error);
    },
  );
  const until = track.t0 + timeoutMs;
  let sendSettled = false;
  void answered.finally(() => (sendSettled = true));
  while (performance.now() < until && !(sendSettled && (sendError !== null || track.confirmed >= tracker.devices)))
    await sleep(2);
  const timedOut = !(sendSettled && track.confirmed >= tracker.devices);
  // Per delivery (one device receiving and confirming): herald's and PostgreSQL's µs of CPU.
  const cpuUse = CpuSampler.between(before, cpu.snapshot(), track.confirmed);
  return {
    track,
    // Computed later (after the quiet period), so late duplicates are counted.
    result: () => {
      const receivedAt: number[] = [];
      const confirmedAt: number[] = [];
      const confirmRoundTrip: number[] = [];
      let duplicates = 0;
      let devicesWithDuplicates = 0;
      let receivedBeforeAnswer = 0;
      for (let d = 0; d < tracker.devices; d++) {
        const r = track.firstReceivedAt[d]!;
        const c = track.confirmedAt[d]!;
        if (!Number.isNaN(r)) {
          receivedAt.push(r - track.t0);
          if (track.answeredAt !== undefined && r < track.answeredAt) receivedBeforeAnswer++;
        }
        if (!Number.isNaN(c)) confirmedAt.push(c - track.t0);
        if (!Number.isNaN(r) && !Number.isNaN(c)) confirmRoundTrip.push(c - r);
        if (track.receipts[d]! > 1) {
          duplicates += track.receipts[d]! - 1;
          devicesWithDuplicates++;
        }
      }
      let wrongMessageId = 0;
      for (const [id, n] of track.messageIds) if (id !== track.requestId) wrongMessageId += n;
      const lastReceive = receivedAt.length > 0 ? Math.max(...receivedAt) : undefined;
      const lastConfirmed = confirmedAt.length > 0 ? Math.max(...confirmedAt) : undefined;
      return {
        alert,
        requestId: track.requestId ?? null,
        sendError,
        deadlineMs: timeoutMs,
        timedOut,
        complete:
          !timedOut &&
          track.received === tracker.devices &&
          track.confirmed === tracker.devices &&
          wrongMessageId === 0,
        sendAnswerMs: nullableRound(track.answeredAt === undefined ? undefined : track.answeredAt - track.t0),
        firstReceiveMs: nullableRound(receivedAt.length > 0 ? Math.min(...receivedAt) : undefined),
        lastReceiveMs: nullableRound(lastReceive),
        lastConfirmedMs: nullableRound(lastConfirmed),
        deliveriesPerSecond: lastReceive ? Math.round((track.received * 1000) / lastReceive) : null,
        confirmationsPerSecond: lastConfirmed ? Math.round((track.confirmed * 1000) / lastConfirmed) : null,
        devices: tracker.devices,
        received: track.received,
        lost: tracker.devices - track.received,
        duplicates,
        devicesWithDuplicates,
        wrongMessageId,
        receivedBeforeSendAnswer: receivedBeforeAnswer,
        confirmed: track.confirmed,
        unconfirmed: tracker.devices - track.confirmed,
        confirmErrors: track.confirmErrors,
        repeatedConfirmations: track.repeatedConfirmations,
        receiveFromSendStart: latencyStats(receivedAt),
        confirmedFromSendStart: latencyStats(confirmedAt),
        confirmRoundTrip: latencyStats(confirmRoundTrip),
        cpu: cpuUse,
      };
    },
  };
}

async function runScenario(
  name: 'raw' | 'legacy' | 'graphql',
  cleanup: Cleanup,
  databaseUrl: () => Promise<string>,
): Promise<Record<string, unknown>> {
  const scenarioStarted = performance.now();
  progress(`=== ${name}: ${DEVICES} devices, ${ROUNDS} rounds`);
  const server = name === 'raw' ? await startRawServer(cleanup) : await startHeraldServer(cleanup, await databaseUrl());
  const cpu = new CpuSampler(server.pid);
  let transport: Transport | undefined;
  const phases: Record<string, unknown> = {};
  try {
    let devices: RegisteredDevice[];
    if (server.kind === 'herald') {
      progress(`  registering ${DEVICES} devices (${REGISTER_CONCURRENCY} at a time)`);
      const registered = await registerDevices(server.http, `bench-${name}`);
      devices = registered.devices;
      phases.register = registered.result;
    } else {
      devices = Array.from({ length: DEVICES }, (_, i) => ({ deviceId: `raw${i}`, token: '' }));
    }

    let tracker: Tracker | undefined;
    transport =
      name === 'graphql'
        ? graphqlTransport(server.wsUrl, devices, () => tracker!)
        : msgpushTransport(server.wsUrl, devices, () => tracker!);
    const t = transport;
    tracker = new Tracker(DEVICES, (device, messageId) => t.confirm(device, messageId));

    progress(`  connecting ${DEVICES} ${transport.name} devices, ${CONNECT_BATCH} at a time`);
    phases.connect = await connectDevices(transport);

    progress('  warm-up: one send to ALL, received and confirmed by every device');
    const warmUp = await sendRound(server, tracker, cpu, 'warm-up', WARMUP_TIMEOUT_MS);
    const warm = warmUp.result();
    phases.warmUp = {
      timedOut: warm.timedOut,
      sendError: warm.sendError,
      sendAnswerMs: warm.sendAnswerMs,
      lastReceiveMs: warm.lastReceiveMs,
      lastConfirmedMs: warm.lastConfirmedMs,
      received: warm.received,
      confirmed: warm.confirmed,
      confirmErrors: warm.confirmErrors,
    };
    if (warm.timedOut)
      progress(`  warm-up timed out: ${warm.received} received, ${warm.confirmed} confirmed of ${DEVICES}`);

    progress(
      `  baselines: ${BASELINE_SAMPLES} sequential GET /healthz, ${BASELINE_SAMPLES} ${transport.socketRoundTripName}`,
    );
    if (server.databaseUrl) await waitForDevicesProjection(server.databaseUrl, 30_000);
    const healthz = await sequentialRoundTrips(BASELINE_SAMPLES, async () => {
      const response = await server.http.get('/healthz');
      if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
    });
    const socketRoundTrip = await sequentialRoundTrips(BASELINE_SAMPLES, () => t.socketRoundTrip());
    phases.baselines = { httpHealthzRoundTrip: healthz, [transport.socketRoundTripName]: socketRoundTrip };

    const rounds: Array<() => RoundResult> = [];
    const tracks: Track[] = [];
    const projectionWaits: Array<number | null> = [];
    for (let r = 1; r <= ROUNDS; r++) {
      if (server.databaseUrl) projectionWaits.push(await waitForDevicesProjection(server.databaseUrl, 30_000));
      await sleep(PAUSE_MS);
      const round = await sendRound(server, tracker, cpu, `round ${r}`, ROUND_TIMEOUT_MS);
      rounds.push(round.result);
      tracks.push(round.track);
      const t0 = round.track.t0;
      progress(
        `  round ${r}: ${round.track.received} received (last at ${Math.round(
          Math.max(
            0,
            ...Array.from(round.track.firstReceivedAt)
              .filter((x) => !Number.isNaN(x))
              .map((x) => x - t0),
          ),
        )} ms), ` +
          `${round.track.confirmed} confirmed (last at ${Math.round(
            Math.max(
              0,
              ...Array.from(round.track.confirmedAt)
                .filter((x) => !Number.isNaN(x))
                .map((x) => x - t0),
            ),
          )} ms)`,
      );
    }
    // A short quiet period: a late repeat of any round still counts as a duplicate.
    await sleep(1000);
    const results = rounds.map((result) => result());
    if (server.databaseUrl) {
      for (const [k, result] of results.entries())
        if (result.requestId)
          result.store = await storeEventsOf(
            server.databaseUrl,
            result.requestId,
            performance.timeOrigin + tracks[k]!.t0,
          );
    }
    const pooled = (pick: (track: Track, d: number) => number) =>
      latencyStats(
        tracks.flatMap((track) =>
          Array.from({ length: DEVICES }, (_, d) => pick(track, d)).filter((x) => !Number.isNaN(x)),
        ),
      );
    return {
      server:
        server.kind === 'raw'
          ? 'bare ws server (node:http + ws), its own process'
          : 'herald serve, its own process, fresh database',
      transport: transport.name,
      devices: DEVICES,
      ...phases,
      summary: {
        rounds: ROUNDS,
        completeRounds: results.filter((x) => x.complete).length,
        timedOutRounds: results.filter((x) => x.timedOut).length,
        medianOfRounds: {
          sendAnswerMs: median(results.map((x) => x.sendAnswerMs)),
          firstReceiveMs: median(results.map((x) => x.firstReceiveMs)),
          lastReceiveMs: median(results.map((x) => x.lastReceiveMs)),
          lastConfirmedMs: median(results.map((x) => x.lastConfirmedMs)),
          deliveriesPerSecond: median(results.map((x) => x.deliveriesPerSecond)),
          confirmationsPerSecond: median(results.map((x) => x.confirmationsPerSecond)),
          serverCpuPercent: median(results.map((x) => x.cpu.heraldPercent)),
          heraldMicrosPerDelivery: median(results.map((x) => x.cpu.heraldMicrosPerOperation ?? null)),
          postgresMicrosPerDelivery: median(results.map((x) => x.cpu.postgresMicrosPerOperation ?? null)),
          deliveryRecordsPerSecond: median(results.map((x) => recordsOf(x)?.perSecond ?? null)),
          deliveryRecordAppends: median(results.map((x) => recordsOf(x)?.appends ?? null)),
          deliveryRecordCommits: median(results.map((x) => recordsOf(x)?.commits ?? null)),
          // Busy CPU of other processes on the machine (percent of one core): high → disturbed figures.
          otherCpuPercent: median(results.map((x) => x.cpu.otherPercent)),
        },
        // herald: when the push's events were appended, ms from the send start (median of the rounds).
        storeAppendedMedianMs: server.databaseUrl ? storeTimelineMedian(results) : undefined,
        allRounds: {
          receiveFromSendStart: pooled((track, d) => track.firstReceivedAt[d]! - track.t0),
          confirmedFromSendStart: pooled((track, d) => track.confirmedAt[d]! - track.t0),
          confirmRoundTrip: pooled((track, d) => track.confirmedAt[d]! - track.firstReceivedAt[d]!),
        },
        lost: results.reduce((a, x) => a + x.lost, 0),
        duplicates: results.reduce((a, x) => a + x.duplicates, 0),
        wrongMessageId: results.reduce((a, x) => a + x.wrongMessageId, 0),
        unconfirmed: results.reduce((a, x) => a + x.unconfirmed, 0),
        unknownFrames: tracker.unknownFrames,
        unknownConfirmations: tracker.unknownConfirmations,
        unexpectedConnectionEnds: { ...transport.unexpectedEnds },
      },
      rounds: results,
      projectionCatchUpBeforeRoundsMs: server.databaseUrl ? projectionWaits : undefined,
      seconds: round((performance.now() - scenarioStarted) / 1000),
    };
  } catch (error) {
    progress(`  ${name} failed: ${(error as Error).stack ?? errorText(error)}`);
    return { failed: errorText(error), ...phases, seconds: round((performance.now() - scenarioStarted) / 1000) };
  } finally {
    progress(`  closing ${name}`);
    await transport?.close();
    await server.stop();
  }
}

runBenchmark(async (cleanup) => {
  const started = performance.now();
  const { url: firstDatabase, machine } = await benchDatabase(cleanup);
  let firstUsed = false;
  // Each herald scenario on a fresh database (the first one benchDatabase made; then another).
  const databaseUrl = async () => {
    if (!firstUsed) {
      firstUsed = true;
      return firstDatabase;
    }
    const database = await createTestDatabase();
    cleanup.add('drop a test database', () => database.drop());
    return database.connectionString;
  };

  const scenarios: Record<string, unknown> = {};
  for (const name of ['raw', 'legacy', 'graphql'] as const) {
    if (SCENARIOS.includes(name)) scenarios[name] = await runScenario(name, cleanup, databaseUrl);
  }

  const pick = (name: string) => {
    const s = scenarios[name] as
      | {
          summary?: {
            medianOfRounds: Record<string, number | null>;
            completeRounds: number;
            lost: number;
            duplicates: number;
          };
          baselines?: { httpHealthzRoundTrip: LatencyStats };
        }
      | undefined;
    if (!s?.summary) return s ? { failed: (s as { failed?: string }).failed ?? 'no summary' } : null;
    return {
      deliveriesPerSecond: s.summary.medianOfRounds.deliveriesPerSecond,
      lastReceiveMs: s.summary.medianOfRounds.lastReceiveMs,
      lastConfirmedMs: s.summary.medianOfRounds.lastConfirmedMs,
      confirmationsPerSecond: s.summary.medianOfRounds.confirmationsPerSecond,
      sendAnswerMs: s.summary.medianOfRounds.sendAnswerMs,
      deliveryRecordsPerSecond: s.summary.medianOfRounds.deliveryRecordsPerSecond ?? null,
      heraldMicrosPerDelivery: s.summary.medianOfRounds.heraldMicrosPerDelivery ?? null,
      postgresMicrosPerDelivery: s.summary.medianOfRounds.postgresMicrosPerDelivery ?? null,
      healthzP50Ms: s.baselines?.httpHealthzRoundTrip.p50Ms ?? null,
      healthzP99Ms: s.baselines?.httpHealthzRoundTrip.p99Ms ?? null,
      completeRounds: s.summary.completeRounds,
      lost: s.summary.lost,
      duplicates: s.summary.duplicates,
    };
  };

  return {
    benchmark: 'device push fan-out: one send to ALL connected devices',
    machine: { ...machine, loadAverage1mAtEnd: round(os.loadavg()[0] ?? 0) },
    parameters: {
      devices: DEVICES,
      rounds: ROUNDS,
      scenarios: SCENARIOS,
      connectBatch: CONNECT_BATCH,
      registerConcurrency: REGISTER_CONCURRENCY,
      warmUpTimeoutSeconds: WARMUP_TIMEOUT_MS / 1000,
      roundTimeoutSeconds: ROUND_TIMEOUT_MS / 1000,
      pauseMs: PAUSE_MS,
      baselineSamples: BASELINE_SAMPLES,
      send: { platform: 'ALL', audienceType: 'ALL', needConfirm: true, duration: 600 },
    },
    // Median of the rounds, side by side (details below).
    sideBySide: { raw: pick('raw'), legacy: pick('legacy'), graphql: pick('graphql') },
    scenarios,
    seconds: round((performance.now() - started) / 1000),
  };
});
