/**
 * The load generator of the chaos soak (bench/chaos.ts), in a process of its own: the orchestrator starts
 * it with an IPC channel and drives it with messages; it prints nothing on stdout (diagnostics on stderr).
 *
 *   orchestrator → load   {type: 'setup', setup: LoadSetup}      tickets, devices, subscribers; warm-up
 *                  load → {type: 'ready'} | {type: 'failed', error}
 *   orchestrator → load   {type: 'run'}                          the open-loop traffic starts
 *   orchestrator → load   {type: 'nodes', nodes: [url, url]}     a node was restarted (on a new port)
 *   orchestrator → load   {type: 'stop', drainUntil: epoch ms}   no new work; drain, list, report
 *                  load → {type: 'result', result: LoadResult}
 *
 * Traffic, each kind on its own fixed schedule (open loop), operation i on node i mod 2:
 *   koala    POST /koala/api/mas/messages from the sender to user i mod USERS (content `k<i>`); with
 *            `koalaExpireSeconds`, every odd i is sent with that `expire` (the others: 0, 永久有效)
 *   datahub  an admin_message to user i mod USERS (content `d<i>`), alternately POST /topics/to_notifications.json
 *            (app credentials) and POST /notifications (the sender's ticket, role admin)
 *   onepush  POST /msgpush/send {audienceType: ALIAS, needConfirm: true} to device i mod DEVICES (alert `p<i>`)
 *   rtio     POST /call/send to RTIO device i mod RTIO_DEVICES; ok = code 1000 with the device's echo
 *   report   RTIO device i mod RTIO_DEVICES sends {"report": "r<i>"}; acknowledged by {"reported"}
 *   email    POST /topics/to_emails.json (subject `e<i>`); acknowledged by 202
 * An operation due while MAX_IN_FLIGHT of its kind are unanswered, or (report) while its device has no
 * socket, is not fired and counts as failed (`not-fired`), never skipped silently.
 *
 * Receivers: for each user one graphql-ws `messages` subscriber on each node; each ONE-PUSH device one
 * /msgpush.ws socket (confirming every frame); each RTIO device one /rtio.ws socket (echoing every call).
 * A closed socket or an ended subscription reconnects after 1 s to the node's current URL (a subscriber
 * with `since` = the last seq it saw, as docs/api/graphql.md tells terminals to).
 */
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { APP_ID, APP_SECRET } from './heraldProcess';
import { HttpClient, type HttpResponse, parseKoala } from './httpClient';
import { sleep } from './run';
import { count, errorText } from './stats';

export const KINDS = ['koala', 'datahub', 'onepush', 'rtio', 'report', 'email'] as const;
export type Kind = (typeof KINDS)[number];

export interface LoadSetup {
  readonly nodes: readonly string[];
  readonly run: string;
  readonly users: number;
  readonly devices: number;
  readonly rtioDevices: number;
  readonly rates: Record<Kind, number>;
  readonly maxInFlight: number;
  readonly requestTimeoutMs: number;
  /** Every odd Koala send expires after this many seconds (bench/soak.ts); unset: none expires. */
  readonly koalaExpireSeconds?: number;
  /**
   * Koala messages without expiry and datahub notifications are removed this long after their sending
   * (bench/soak.ts sets HERALD_RETENTION_UNEXPIRING_MESSAGES and …_DATAHUB_NOTIFICATIONS to it): those
   * sent longer before their list was read are not looked for. Unset: kept forever, all looked for.
   */
  readonly keptSeconds?: number;
}

/** One operation: [kind index, node, start ms, end ms, outcome ('ok' or what went wrong), HTTP status or 0]. */
export type OpRecord = [number, number, number, number, string, number];

export interface KindSummary {
  readonly fired: number;
  readonly notFired: number;
  readonly acknowledged: number;
  readonly failed: Record<string, number>;
}

export interface LoadResult {
  readonly ops: OpRecord[];
  readonly summary: Record<Kind, KindSummary>;
  /** Per message kind that is pushed: [start of the send, first delivery (epoch ms) or null] of each acknowledged one. */
  readonly deliveries: Record<'koala' | 'onepush', Array<[number, number | null]>>;
  /** Acknowledged reports and emails, by key, with the send's start: the orchestrator finds them at the notify URL and the SMTP peer. */
  readonly acknowledgedReports: Array<[string, number]>;
  readonly acknowledgedEmails: Array<[string, number]>;
  readonly koala: Record<string, unknown>;
  readonly datahub: Record<string, unknown>;
  readonly onepush: Record<string, unknown>;
  readonly rtio: Record<string, unknown>;
  readonly drain: Record<string, unknown>;
}

const log = (message: string) => process.stderr.write(`[load ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
const send = (message: unknown) => process.send!(message);

let setup: LoadSetup;
let nodes: string[] = [];
let http: HttpClient[] = [];
let stopping = false;

function connectHttp(urls: readonly string[]): void {
  for (const client of http) client.close();
  nodes = [...urls];
  http = urls.map((url) => new HttpClient(url, { maxSockets: setup.maxInFlight, timeoutMs: setup.requestTimeoutMs }));
}

// --- receivers ------------------------------------------------------------------------------------

/** A graphql-ws `messages` subscriber of one user on one node; reconnects with `since` when it ends. */
class Subscriber {
  /** Message id → receipt times (more than one: a duplicate). */
  readonly receipts = new Map<string, number[]>();
  readonly contents = new Map<string, string>();
  readonly ends: Record<string, number> = {};
  reconnects = 0;
  private lastSeq: bigint | undefined;
  private client: Client | undefined;

  constructor(
    readonly name: string,
    readonly user: string,
    private readonly node: number,
    private readonly ticket: string,
  ) {}

  start(): void {
    const client = createClient({
      url: `${nodes[this.node]!.replace(/^http/, 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { ticket: this.ticket, ...(this.lastSeq !== undefined && { since: this.lastSeq.toString() }) },
      retryAttempts: 0,
      lazy: false,
      onNonLazyError: () => undefined,
    });
    this.client = client;
    let ended = false;
    const restart = (why: string) => {
      if (ended) return;
      ended = true;
      count(this.ends, why.slice(0, 80));
      void client.dispose();
      if (this.client !== client) return;
      this.reconnects++;
      setTimeout(() => this.start(), 1000);
    };
    client.on('closed', (event) => restart(`closed ${(event as { code?: number }).code ?? '?'}`));
    client.subscribe<{ messages: { id: string; seq: string; content: string } }>(
      { query: 'subscription { messages { id seq content } }' },
      {
        next: (result) => {
          const message = result.data?.messages;
          if (!message) return restart(`errors ${JSON.stringify(result.errors).slice(0, 60)}`);
          const times = this.receipts.get(message.id) ?? [];
          times.push(Date.now());
          this.receipts.set(message.id, times);
          this.contents.set(message.id, message.content);
          const seq = BigInt(message.seq);
          if (this.lastSeq === undefined || seq > this.lastSeq) this.lastSeq = seq;
        },
        error: (error) =>
          restart(
            `error ${(Array.isArray(error) ? JSON.stringify(error) : errorText((error as { reason?: string }).reason ?? error)).slice(0, 60)}`,
          ),
        complete: () => restart('complete'),
      },
    );
  }

  hasContent(content: string): boolean {
    for (const c of this.contents.values()) if (c === content) return true;
    return false;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.dispose();
  }
}

/** A socket that reconnects after 1 s when it closes (to its node's current URL), until stopped. */
abstract class DeviceConnection {
  socket: WebSocket | undefined;
  open = false;
  reconnects = 0;
  readonly closes: Record<string, number> = {};
  private stopped = false;

  constructor(protected readonly node: number) {}

  protected abstract path(): string;
  protected abstract onOpen(socket: WebSocket): void;
  protected abstract onFrame(socket: WebSocket, frame: Record<string, unknown>): void;
  protected onClose(): void {}

  connect(): void {
    const socket = new WebSocket(`${nodes[this.node]!.replace(/^http/, 'ws')}${this.path()}`, {
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
    });
    this.socket = socket;
    socket.on('open', () => this.onOpen(socket));
    socket.on('message', (data) => {
      let frame: Record<string, unknown>;
      try {
        frame = JSON.parse(data.toString()) as Record<string, unknown>;
      } catch {
        count(this.closes, 'non-JSON frame');
        return;
      }
      this.onFrame(socket, frame);
    });
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', (code) => {
      if (this.socket !== socket) return;
      this.open = false;
      this.onClose();
      if (this.stopped) return;
      count(this.closes, `close ${code}`);
      this.reconnects++;
      setTimeout(() => !this.stopped && this.connect(), 1000);
    });
  }

  stop(): void {
    this.stopped = true;
    this.socket?.terminate();
  }
}

/** A ONE-PUSH device on /msgpush.ws, confirming every message it receives. */
class PushDevice extends DeviceConnection {
  readonly receipts = new Map<string, number[]>();
  readonly alerts = new Map<string, string>();
  confirmed = new Set<string>();
  readonly confirmErrors: Record<string, number> = {};

  constructor(
    node: number,
    readonly deviceId: string,
    readonly alias: string,
  ) {
    super(node);
  }

  protected path(): string {
    return `/msgpush.ws?deviceId=${this.deviceId}`;
  }

  protected onOpen(): void {
    this.open = true;
  }

  protected onFrame(socket: WebSocket, frame: Record<string, unknown>): void {
    if (typeof frame.messageId === 'string' && frame.confirm === undefined) {
      const times = this.receipts.get(frame.messageId) ?? [];
      times.push(Date.now());
      this.receipts.set(frame.messageId, times);
      this.alerts.set(frame.messageId, String(frame.alert));
      socket.send(JSON.stringify({ confirm: frame.messageId }));
    } else if (typeof frame.confirmed === 'string') {
      this.confirmed.add(frame.confirmed);
    } else if (frame.error !== undefined) {
      count(this.confirmErrors, String((frame.error as { code?: unknown }).code));
    }
  }
}

/** An RTIO device on /rtio.ws: echoes every call; sends reports and matches their {"reported"} in order. */
class RtioDevice extends DeviceConnection {
  calls = 0;
  private pendingReports: Array<(outcome: string) => void> = [];
  readonly errorFrames: Record<string, number> = {};

  constructor(
    node: number,
    readonly deviceId: string,
    private readonly deviceKey: string,
  ) {
    super(node);
  }

  protected path(): string {
    return '/rtio.ws';
  }

  protected onOpen(socket: WebSocket): void {
    socket.send(JSON.stringify({ device_id: this.deviceId, device_key: this.deviceKey }));
  }

  protected onFrame(socket: WebSocket, frame: Record<string, unknown>): void {
    if (frame.authenticated === true) this.open = true;
    else if (typeof frame.call_id === 'string' && typeof frame.message === 'string' && frame.error === undefined) {
      this.calls++;
      socket.send(JSON.stringify({ call_id: frame.call_id, code: 1000, message: frame.message }));
    } else if (typeof frame.reported === 'string') this.pendingReports.shift()?.('ok');
    else if (frame.error !== undefined && frame.call_id === undefined) {
      // A report refused (herald failed to record it) is answered with an error frame, in order.
      const code = String((frame.error as { code?: unknown }).code);
      count(this.errorFrames, code);
      if (code !== 'bad_frame') this.pendingReports.shift()?.(`error-${code}`);
    } else if (frame.error !== undefined) count(this.errorFrames, String((frame.error as { code?: unknown }).code));
  }

  protected override onClose(): void {
    const pending = this.pendingReports;
    this.pendingReports = [];
    for (const settle of pending) settle('closed');
  }

  report(message: string, timeoutMs: number): Promise<string> {
    if (!this.open || !this.socket) return Promise.resolve('not-fired');
    return new Promise((resolve) => {
      let settled = false;
      const settle = (outcome: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const timer = setTimeout(() => {
        this.pendingReports = this.pendingReports.filter((s) => s !== settle);
        settle('timeout');
      }, timeoutMs);
      this.pendingReports.push(settle);
      this.socket!.send(JSON.stringify({ report: message }));
    });
  }
}

// --- setup ----------------------------------------------------------------------------------------

interface Fleet {
  senderTicket: string;
  userTickets: string[];
  subscribers: Subscriber[];
  pushDevices: PushDevice[];
  rtioDevices: RtioDevice[];
}

const json = (response: HttpResponse): Record<string, unknown> => {
  try {
    return JSON.parse(response.body) as Record<string, unknown>;
  } catch {
    return {};
  }
};

async function ticket(userId: string, roles?: string): Promise<string> {
  const answer = parseKoala(
    await http[0]!.postForm('/koala/api/mas/tickets', {
      app_key: APP_ID,
      secret_key: APP_SECRET,
      user_id: userId,
      ...(roles && { user_roles: roles }),
    }),
  );
  if (answer.status !== 0 || typeof answer.result !== 'string')
    throw new Error(`ticket for ${userId}: ${JSON.stringify(answer)}`);
  return answer.result;
}

async function until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out (${timeoutMs / 1000} s) waiting for ${what}`);
    await sleep(100);
  }
}

async function prepare(): Promise<Fleet> {
  const users = Array.from({ length: setup.users }, (_, i) => `chaos-user-${i}`);
  const senderTicket = await ticket('chaos-sender', 'admin');
  const userTickets = await Promise.all(users.map((u) => ticket(u)));
  const subscribers = users.flatMap((user, u) =>
    nodes.map((_, node) => new Subscriber(`${user}@node${node}`, user, node, userTickets[u]!)),
  );
  for (const s of subscribers) s.start();

  const pushDevices: PushDevice[] = [];
  for (let i = 0; i < setup.devices; i++) {
    // The run's own aliases: a later load generator on the same herald (bench/sizing.ts) must not also
    // address the devices an earlier one registered, whose sockets are gone.
    const alias = `${setup.run}-dev-${i}`;
    const response = await http[0]!.postJson('/msgpush/register', {
      alias,
      appId: APP_ID,
      platform: 'ANDROID',
      nativeToken: `${setup.run}-native-${i}`,
    });
    const body = json(response);
    if (response.status !== 200 || typeof body.id !== 'string')
      throw new Error(`register ${alias}: HTTP ${response.status} ${response.body.slice(0, 200)}`);
    pushDevices.push(new PushDevice(i % nodes.length, body.id, alias));
  }
  for (const d of pushDevices) d.connect();

  const rtioDevices: RtioDevice[] = [];
  for (let i = 0; i < setup.rtioDevices; i++) {
    const response = await http[0]!.postJson('/manage/create_device', { nonce: `${setup.run}-d${i}` });
    const body = json(response);
    if (response.status !== 200 || body.code !== 1000)
      throw new Error(`create_device: HTTP ${response.status} ${response.body.slice(0, 200)}`);
    rtioDevices.push(new RtioDevice(i % nodes.length, String(body.device_id), String(body.device_key)));
  }
  for (const d of rtioDevices) d.connect();
  await until(
    () => pushDevices.every((d) => d.open) && rtioDevices.every((d) => d.open),
    'every device connected',
    60_000,
  );

  // Warm-up: one message per user and device, received by each of its subscribers / the device, shows
  // they are all subscribed before the measured traffic starts.
  for (const [u, user] of users.entries()) {
    const answer = parseKoala(
      await http[u % nodes.length]!.postForm('/koala/api/mas/messages', {
        ticket: senderTicket,
        users: user,
        title: 'warm-up',
        content: `w-${user}`,
      }),
    );
    if (answer.status !== 0) throw new Error(`warm-up send to ${user}: ${JSON.stringify(answer)}`);
  }
  await until(
    () => subscribers.every((s) => s.hasContent(`w-${s.user}`)),
    'every subscriber to receive its warm-up message',
    60_000,
  );
  for (const [i, d] of pushDevices.entries()) {
    const response = await http[i % nodes.length]!.postJson('/msgpush/send', {
      appId: APP_ID,
      appKey: APP_SECRET,
      platform: 'ALL',
      audienceType: 'ALIAS',
      audiences: [d.alias],
      alert: `w-${d.alias}`,
      needConfirm: true,
      duration: 600,
    });
    if (response.status !== 200)
      throw new Error(`warm-up push to ${d.alias}: HTTP ${response.status} ${response.body.slice(0, 200)}`);
  }
  await until(
    () => pushDevices.every((d) => [...d.alerts.values()].includes(`w-${d.alias}`)),
    'every device to receive its warm-up push',
    60_000,
  );
  return { senderTicket, userTickets, subscribers, pushDevices, rtioDevices };
}

// --- traffic --------------------------------------------------------------------------------------

interface Sent {
  readonly i: number;
  readonly start: number;
  /** Koala: the message id; ONE-PUSH: the request id (messageId); datahub, report, email: the content key. */
  key: string | undefined;
  readonly target: number;
  acknowledged: boolean;
  /** A Koala message sent with `expire`: the earliest its expiry can be (epoch ms; herald's is later). */
  readonly expiresAt?: number;
}

const ops: OpRecord[] = [];
const sent: Record<Kind, Sent[]> = { koala: [], datahub: [], onepush: [], rtio: [], report: [], email: [] };
const inFlight: Record<Kind, number> = { koala: 0, datahub: 0, onepush: 0, rtio: 0, report: 0, email: 0 };
const notFired: Record<Kind, number> = { koala: 0, datahub: 0, onepush: 0, rtio: 0, report: 0, email: 0 };
const pending = new Set<Promise<void>>();

/** The outcome of an HTTP answer: 'ok' when `ok(body)`, else `http-<status>` plus what the body says. */
function outcomeOf(response: HttpResponse, ok: boolean, detail = ''): string {
  return ok ? 'ok' : `http-${response.status}${detail ? `-${detail}` : ''}`;
}

async function operation(fleet: Fleet, kind: Kind, i: number): Promise<void> {
  const node = i % nodes.length;
  const client = http[node]!;
  const start = Date.now();
  let status = 0;
  let outcome: string;
  let key: string | undefined;
  let target = 0;
  const expireSeconds = kind === 'koala' && i % 2 === 1 ? setup.koalaExpireSeconds : undefined;
  try {
    switch (kind) {
      case 'koala': {
        target = i % setup.users;
        const response = await client.postForm('/koala/api/mas/messages', {
          ticket: fleet.senderTicket,
          users: `chaos-user-${target}`,
          title: 'chaos',
          content: `k${i}`,
          ...(expireSeconds !== undefined && { expire: String(expireSeconds) }),
        });
        status = response.status;
        const answer = parseKoala(response);
        key = typeof answer.result === 'string' ? answer.result : undefined;
        outcome = outcomeOf(response, answer.status === 0 && key !== undefined, String(answer.errcode));
        break;
      }
      case 'datahub': {
        target = i % setup.users;
        key = `d${i}`;
        const message = { type: 'admin_message', receiver: `chaos-user-${target}`, data: { content: key } };
        const response =
          i % 2 === 0
            ? await client.postJson(
                '/topics/to_notifications.json',
                { ...message, sender: 'chaos-service', level: 0 },
                { 'x-app-id': APP_ID, 'x-app-key': APP_SECRET },
              )
            : await client.postJson('/notifications', message, { authorization: `Token ${fleet.senderTicket}` });
        status = response.status;
        outcome = outcomeOf(response, response.status === 200, String(json(response).code ?? ''));
        break;
      }
      case 'onepush': {
        target = i % setup.devices;
        const response = await client.postJson('/msgpush/send', {
          appId: APP_ID,
          appKey: APP_SECRET,
          platform: 'ALL',
          audienceType: 'ALIAS',
          audiences: [fleet.pushDevices[target]!.alias],
          alert: `p${i}`,
          needConfirm: true,
          duration: 600,
        });
        status = response.status;
        const requestId = json(response).requestId;
        key = typeof requestId === 'string' ? requestId : undefined;
        outcome = outcomeOf(response, response.status === 200 && key !== undefined, String(json(response).code ?? ''));
        break;
      }
      case 'rtio': {
        target = i % setup.rtioDevices;
        key = `c${i}`;
        const response = await client.postJson('/call/send', {
          nonce: `${setup.run}c${i}`,
          device_id: fleet.rtioDevices[target]!.deviceId,
          message: key,
          time_live: 6,
        });
        status = response.status;
        const body = json(response);
        outcome = outcomeOf(
          response,
          response.status === 200 && body.code === 1000 && body.device_message === key,
          `${String(body.code)}-status-${String(body.device_status)}`,
        );
        break;
      }
      case 'report': {
        target = i % setup.rtioDevices;
        key = `r${i}`;
        outcome = await fleet.rtioDevices[target]!.report(key, setup.requestTimeoutMs);
        if (outcome === 'not-fired') {
          notFired.report++;
          ops.push([KINDS.indexOf(kind), node, start, Date.now(), 'not-fired', 0]);
          return;
        }
        break;
      }
      case 'email': {
        target = i % setup.users;
        key = `e${i}`;
        const response = await client.postJson(
          '/topics/to_emails.json',
          { to: `chaos-user-${target}@example.com`, subject: key, content: `chaos email ${i}`, ishtml: false },
          { 'x-app-id': APP_ID, 'x-app-key': APP_SECRET },
        );
        status = response.status;
        outcome = outcomeOf(response, response.status === 202, String(json(response).code ?? ''));
        break;
      }
    }
  } catch (error) {
    outcome = /no answer within/.test(errorText(error)) ? 'timeout' : 'network';
  }
  ops.push([KINDS.indexOf(kind), node, start, Date.now(), outcome, status]);
  sent[kind].push({
    i,
    start,
    key,
    target,
    acknowledged: outcome === 'ok',
    ...(expireSeconds !== undefined && { expiresAt: start + expireSeconds * 1000 }),
  });
}

/** Each kind on its schedule: operation i due at start + i / rate, fired whatever the answers. */
async function traffic(fleet: Fleet): Promise<void> {
  const started = Date.now();
  const next: Record<Kind, number> = { koala: 0, datahub: 0, onepush: 0, rtio: 0, report: 0, email: 0 };
  while (!stopping) {
    const now = Date.now();
    for (const kind of KINDS) {
      const rate = setup.rates[kind];
      if (rate <= 0) continue;
      for (; started + (next[kind] * 1000) / rate <= now; next[kind]++) {
        if (inFlight[kind] >= setup.maxInFlight) {
          notFired[kind]++;
          ops.push([KINDS.indexOf(kind), next[kind] % nodes.length, now, now, 'not-fired', 0]);
          continue;
        }
        inFlight[kind]++;
        const op: Promise<void> = operation(fleet, kind, next[kind]).finally(() => {
          inFlight[kind]--;
          pending.delete(op);
        });
        pending.add(op);
      }
    }
    await sleep(10);
  }
}

// --- drain and count ------------------------------------------------------------------------------

/** Pages through a list until it ends or the deadline passes; undefined when it could not be read. */
async function koalaListed(userTicket: string, node: number, until: number): Promise<Set<string> | undefined> {
  const ids = new Set<string>();
  let after: string | null = null;
  while (Date.now() < until) {
    const response: HttpResponse | undefined = await http[node]!.postJson(
      '/graphql',
      {
        query:
          'query($after: String) { notifications(first: 100, type: "koala", after: $after) { nodes { id } pageInfo { endCursor hasNextPage } } }',
        variables: { after },
      },
      { authorization: `Bearer ${userTicket}` },
    ).catch(() => undefined);
    type Page = { nodes: Array<{ id: string }>; pageInfo: { endCursor: string | null; hasNextPage: boolean } };
    const page: Page | undefined =
      response && (json(response).data as { notifications?: Page } | undefined)?.notifications;
    if (!page) return undefined;
    for (const n of page.nodes) ids.add(n.id);
    if (!page.pageInfo.hasNextPage) return ids;
    after = page.pageInfo.endCursor;
  }
  return undefined;
}

async function datahubListed(userTicket: string, node: number, until: number): Promise<Set<string> | undefined> {
  const contents = new Set<string>();
  for (let page = 1; Date.now() < until; page++) {
    const response = await http[node]!.request(
      'GET',
      `/notifications?type=admin_message&size=100&page=${page}`,
      undefined,
      { authorization: `Token ${userTicket}` },
    ).catch(() => undefined);
    const body =
      response && response.status === 200
        ? (json(response) as { total?: number; results?: Array<{ data?: { content?: string } }> })
        : undefined;
    if (!body?.results) return undefined;
    for (const r of body.results) if (typeof r.data?.content === 'string') contents.add(r.data.content);
    if (body.results.length < 100) return contents;
  }
  return undefined;
}

function summarise(kind: Kind): KindSummary {
  const failed: Record<string, number> = {};
  for (const op of ops) if (KINDS[op[0]] === kind && op[4] !== 'ok') count(failed, op[4]);
  return {
    fired: sent[kind].length,
    notFired: notFired[kind],
    acknowledged: sent[kind].filter((s) => s.acknowledged).length,
    failed,
  };
}

const examples = (keys: readonly string[]) => keys.slice(0, 10);

/** How many acknowledged messages the users' lists show; `lists` holds undefined for a list that could not be read. */
function listing(acknowledged: number, notListed: readonly string[], lists: readonly unknown[]) {
  return {
    acknowledged,
    listed: acknowledged - notListed.length,
    notListed: notListed.length,
    notListedExamples: examples(notListed),
    listsUnreadable: lists.filter((l) => l === undefined).length,
  };
}

/** What one subscriber or device got of the messages addressed to it; lost ones named `prefix` + their number. */
function deliveries(addressed: readonly Sent[], receipts: ReadonlyMap<string, unknown>, prefix: string) {
  const missing = addressed.filter((m) => !receipts.has(m.key!));
  return {
    addressed: addressed.length,
    delivered: addressed.length - missing.length,
    lost: missing.length,
    lostExamples: examples(missing.map((m) => `${prefix}${m.i}`)),
  };
}

async function drainAndCount(fleet: Fleet, drainUntil: number): Promise<LoadResult> {
  const drainStarted = Date.now();
  // The operations in flight end by their own timeouts.
  await Promise.race([Promise.all([...pending]), sleep(setup.requestTimeoutMs + 5000)]);
  const koala = sent.koala.filter((s) => s.acknowledged);
  const pushes = sent.onepush.filter((s) => s.acknowledged);
  const subscribersOf = (target: number) => fleet.subscribers.filter((s) => s.user === `chaos-user-${target}`);
  const koalaComplete = () => koala.every((m) => subscribersOf(m.target).every((s) => s.receipts.has(m.key!)));
  const pushComplete = () => pushes.every((m) => fleet.pushDevices[m.target]!.receipts.has(m.key!));
  while (Date.now() < drainUntil && !(koalaComplete() && pushComplete())) await sleep(500);
  const deliveriesDrainedSeconds = (Date.now() - drainStarted) / 1000;

  // Listed: each user's inbox (GraphQL, Koala messages) and datahub list, read until complete or the deadline.
  const datahub = sent.datahub.filter((s) => s.acknowledged);
  let koalaLists: Array<Set<string> | undefined> = [];
  let datahubLists: Array<Set<string> | undefined> = [];
  // A message that may have expired before its list was read is not listed (an inbox leaves expired ones
  // out): only those still unexpired when the lists were done are looked for.
  let koalaListable = koala;
  let datahubListable = datahub;
  // Sent before this (epoch ms), a message without expiry or a notification may have been pruned.
  const keptSince = (at: number) => (setup.keptSeconds === undefined ? -Infinity : at - setup.keptSeconds * 1000);
  for (let attempt = 0; ; attempt++) {
    const listUntil = Math.max(drainUntil, Date.now() + 30_000);
    // A list one node cannot give is asked of the other.
    koalaLists = await Promise.all(
      fleet.userTickets.map(
        async (t, u) =>
          (await koalaListed(t, u % nodes.length, listUntil)) ?? koalaListed(t, (u + 1) % nodes.length, listUntil),
      ),
    );
    datahubLists = await Promise.all(
      fleet.userTickets.map(
        async (t, u) =>
          (await datahubListed(t, u % nodes.length, listUntil)) ?? datahubListed(t, (u + 1) % nodes.length, listUntil),
      ),
    );
    const listedAt = Date.now();
    koalaListable = koala.filter((m) =>
      m.expiresAt === undefined ? m.start > keptSince(listedAt) : m.expiresAt > listedAt,
    );
    datahubListable = datahub.filter((m) => m.start > keptSince(listedAt));
    const complete =
      koalaListable.every((m) => koalaLists[m.target]?.has(m.key!)) &&
      datahubListable.every((m) => datahubLists[m.target]?.has(m.key!));
    if (complete || Date.now() >= drainUntil) break;
    await sleep(3000);
  }

  const koalaNotListed = koalaListable.filter((m) => !koalaLists[m.target]?.has(m.key!)).map((m) => `k${m.i}`);
  const perSubscriber = fleet.subscribers.map((s) => {
    const addressed = koala.filter((m) => `chaos-user-${m.target}` === s.user);
    let duplicates = 0;
    for (const times of s.receipts.values()) duplicates += times.length - 1;
    return {
      subscriber: s.name,
      ...deliveries(addressed, s.receipts, 'k'),
      duplicates,
      reconnects: s.reconnects,
      ends: s.ends,
    };
  });
  const koalaLostMessages = koala.filter((m) => subscribersOf(m.target).some((s) => !s.receipts.has(m.key!)));
  // Sends that were not acknowledged (5xx, reset) but whose message exists anyway: the client cannot know.
  const koalaAcknowledgedIds = new Set(koala.map((m) => m.key));
  const unacknowledgedButDelivered = new Set<string>();
  for (const s of fleet.subscribers)
    for (const [id, content] of s.contents)
      if (/^k\d+$/.test(content) && !koalaAcknowledgedIds.has(id)) unacknowledgedButDelivered.add(content);

  const datahubNotListed = datahubListable.filter((m) => !datahubLists[m.target]?.has(m.key!)).map((m) => m.key!);
  const datahubAcknowledgedKeys = new Set(datahub.map((m) => m.key));
  const datahubUnacknowledgedButListed = datahubLists.reduce(
    (n, list) => n + [...(list ?? [])].filter((c) => /^d\d+$/.test(c) && !datahubAcknowledgedKeys.has(c)).length,
    0,
  );

  const perDevice = fleet.pushDevices.map((d, index) => {
    const addressed = pushes.filter((m) => m.target === index);
    const unconfirmed = addressed.filter((m) => d.receipts.has(m.key!) && !d.confirmed.has(m.key!));
    let duplicates = 0;
    for (const [id, times] of d.receipts) if (/^p\d+$/.test(d.alerts.get(id) ?? '')) duplicates += times.length - 1;
    return {
      device: d.alias,
      ...deliveries(addressed, d.receipts, 'p'),
      unconfirmed: unconfirmed.length,
      duplicates,
      reconnects: d.reconnects,
      closes: d.closes,
      confirmErrors: d.confirmErrors,
    };
  });
  const pushLost = pushes.filter((m) => !fleet.pushDevices[m.target]!.receipts.has(m.key!));

  const firstDelivery = (m: Sent, receipts: Array<Map<string, number[]>>) => {
    const times = receipts.flatMap((r) => r.get(m.key!) ?? []);
    return times.length > 0 ? Math.min(...times) : null;
  };
  const summary = Object.fromEntries(KINDS.map((k) => [k, summarise(k)])) as Record<Kind, KindSummary>;
  return {
    ops,
    summary,
    deliveries: {
      koala: koala.map((m) => [
        m.start,
        firstDelivery(
          m,
          subscribersOf(m.target).map((s) => s.receipts),
        ),
      ]),
      onepush: pushes.map((m) => [m.start, firstDelivery(m, [fleet.pushDevices[m.target]!.receipts])]),
    },
    acknowledgedReports: sent.report.filter((s) => s.acknowledged).map((s) => [s.key!, s.start]),
    acknowledgedEmails: sent.email.filter((s) => s.acknowledged).map((s) => [s.key!, s.start]),
    koala: {
      ...listing(koalaListable.length, koalaNotListed, koalaLists),
      acknowledged: koala.length,
      // Expired, or (without expiry) past the app's retention when the lists were read.
      expiredBeforeListed: koala.length - koalaListable.length,
      lostMessages: koalaLostMessages.length,
      unacknowledgedButDelivered: unacknowledgedButDelivered.size,
      subscribers: perSubscriber,
    },
    datahub: {
      ...listing(datahubListable.length, datahubNotListed, datahubLists),
      acknowledged: datahub.length,
      prunedBeforeListed: datahub.length - datahubListable.length,
      unacknowledgedButListed: datahubUnacknowledgedButListed,
      note: 'datahub notifications are not pushed on `messages` (only unread counts are): listed is their delivery',
    },
    onepush: { acknowledged: pushes.length, lostMessages: pushLost.length, devices: perDevice },
    rtio: {
      devices: fleet.rtioDevices.map((d) => ({
        deviceId: d.deviceId,
        callsReceived: d.calls,
        reconnects: d.reconnects,
        closes: d.closes,
        errorFrames: d.errorFrames,
      })),
    },
    drain: {
      deliveriesDrainedSeconds: Number(deliveriesDrainedSeconds.toFixed(1)),
      complete: koalaComplete() && pushComplete(),
    },
  };
}

// --- main -----------------------------------------------------------------------------------------

let fleet: Fleet | undefined;
let trafficLoop: Promise<void> | undefined;

process.on('message', (message: { type: string; setup?: LoadSetup; nodes?: string[]; drainUntil?: number }) => {
  void (async () => {
    try {
      switch (message.type) {
        case 'setup':
          setup = message.setup!;
          connectHttp(setup.nodes);
          fleet = await prepare();
          send({ type: 'ready' });
          break;
        case 'run':
          trafficLoop = traffic(fleet!);
          break;
        case 'nodes':
          connectHttp(message.nodes!);
          break;
        case 'stop': {
          stopping = true;
          await trafficLoop;
          const result = await drainAndCount(fleet!, message.drainUntil!);
          send({ type: 'result', result });
          break;
        }
      }
    } catch (error) {
      log(`${message.type} failed: ${(error as Error).stack ?? errorText(error)}`);
      send({ type: 'failed', error: `${message.type}: ${errorText(error)}` });
    }
  })();
});

// The orchestrator closing the channel (it exited, or is done with us) ends the process.
process.on('disconnect', () => {
  stopping = true;
  for (const s of fleet?.subscribers ?? []) void s.stop();
  for (const d of [...(fleet?.pushDevices ?? []), ...(fleet?.rtioDevices ?? [])]) d.stop();
  for (const client of http) client.close();
  setTimeout(() => process.exit(0), 500).unref();
});
