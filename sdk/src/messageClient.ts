import { createClient, type Client } from 'graphql-ws/client';
import { backoffDelay, DEFAULT_BACKOFF, type Backoff } from './backoff.js';
import { compareSeq, type ITerminal, type Message_t, type MessageContext } from './message.js';

/**
 * herald's front-end SDK: Koala's `message_client.open()` (shared/seeds/000_83e3b79cc88886e5.txt,
 * section 4) over GraphQL's `messages` subscription. One socket at a time; when it ends, the client
 * connects again with `connectionParams.since` = the last seq it handed over, so herald replays what
 * was missed (docs/api/graphql.md, "Live messages") and nothing is handed over twice. Before it has
 * handed any over (no `since`), it connects with `connectionParams.pending`: herald first replays the
 * user's unacknowledged, unexpired messages, e.g. those sent while the page was closed.
 */

export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'closed';

/** A ticket, or a function that gets a fresh one (called at the first connect and after herald refuses one). */
export type TicketSource = string | (() => string | Promise<string>);

export interface OpenOptions extends ITerminal {
  /** herald's GraphQL endpoint, `ws(s)://host/graphql`; an `http(s)://` URL means the same host's `ws(s)://`. Required, or `mas_url`. */
  readonly url?: string;
  /** Required (or `token`). */
  readonly ticket?: TicketSource;
  /** Koala's name for `ticket` (its `open({ token })`). */
  readonly token?: TicketSource;
  /** Koala's server base URL (its `open({ mas_url })`): the endpoint is `<mas_url>/graphql` when `url` is not given. */
  readonly mas_url?: string;
  /** Koala's heartbeat in seconds (its `open({ ping })`): `heartbeatMs` when that is not given. */
  readonly ping?: number;
  /** Koala's `ITerminal.onError(errcode, errmsg)`: called with each error the `error` event carries. */
  readonly onError?: (errcode: string, errmsg: string) => void;
  /** The last seq the page already shows (from its inbox): pushes start after it. */
  readonly since?: string;
  /** Waits between attempts to reconnect; default 1 s doubling to 30 s, with jitter. */
  readonly reconnect?: Partial<Backoff>;
  /** A ping every so many ms; a socket whose pong does not come within as long is dropped. Default 20 s. */
  readonly heartbeatMs?: number;
  /** An attempt that is not connected after so many ms is dropped. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** A WebSocket constructor where there is no global one (Node before 22: the `ws` package). */
  readonly webSocketImpl?: unknown;
}

export interface Disconnection {
  /** The socket's close code, when it closed (4403: herald refused the ticket, or it expired). */
  readonly code?: number;
  readonly reason: string;
  readonly retryInMs: number;
}

export interface RecoveryImpossible {
  /** The last seq handed over before the gap. */
  readonly since: string;
  /** The newest message of the inbox when the client went on, or undefined: pushes go on after it. */
  readonly resumedFrom: string | undefined;
}

export interface MessageClientEvents {
  state: (state: ConnectionState) => void;
  /** The socket closed, or could not be opened; the client connects again in `retryInMs`. */
  disconnected: (info: Disconnection) => void;
  /** More messages were missed than herald replays: reload the inbox. Pushes go on from its newest message. */
  recoveryimpossible: (info: RecoveryImpossible) => void;
  /** onMessage or the ticket function failed, or herald ended the subscription with an error. Without a listener: console.error. */
  error: (error: Error) => void;
}

export interface MessageClient {
  readonly state: ConnectionState;
  /** The seq of the last message handed to onMessage (or `since`): where a reconnect resumes. */
  readonly lastSeq: string | undefined;
  on<E extends keyof MessageClientEvents>(event: E, listener: MessageClientEvents[E]): () => void;
  /** Acknowledges messages by id; resolves with how many were newly acknowledged. */
  ack(ids: readonly string[]): Promise<number>;
  /**
   * Koala's `acknowledge(seqs)`: acknowledges messages this client handed to onMessage by their
   * `meta.seq` (one, or a list); a seq it did not hand over rejects with NOT_FOUND.
   */
  acknowledge(seqs: string | number | ReadonlyArray<string | number>): Promise<number>;
  /** Koala's `sendMessage(target, title, content)`: `target` is user ids (a list, or separated by commas or blanks). Resolves with the message id. */
  sendMessage(target: string | readonly string[], title: string, content: string): Promise<string>;
  /** Closes the socket and stops reconnecting. */
  close(): Promise<void>;
}

/** `code`: herald's `extensions.code` (NOT_FOUND, FORBIDDEN, …), or CLOSED, UNAUTHENTICATED. */
export class MessageClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'MessageClientError';
  }
}

/**
 * Connects and keeps connected until `close()`. Options that cannot work are refused here, at once, with
 * a TypeError naming them ("message_client.open: ticket is required …"), never with a client that
 * retries forever.
 */
export function open(options: OpenOptions): MessageClient {
  return new Terminal(checkedOptions(options));
}

/**
 * Koala's `message_client` module: `open(cfg)`, then `acknowledge(seqs)`, `sendMessage(target, title,
 * content)` and `close()` on the client it opened last (Koala's client was one per page).
 */
export function koalaModule() {
  let current: MessageClient | undefined;
  const opened = (): MessageClient => {
    if (current === undefined) throw new MessageClientError('CLOSED', 'call message_client.open() first');
    return current;
  };
  return {
    open(options: OpenOptions): MessageClient {
      current = open(options);
      return current;
    },
    acknowledge: (seqs: string | number | ReadonlyArray<string | number>): Promise<number> =>
      Promise.resolve().then(() => opened().acknowledge(seqs)),
    sendMessage: (target: string | readonly string[], title: string, content: string): Promise<string> =>
      Promise.resolve().then(() => opened().sendMessage(target, title, content)),
    close: (): Promise<void> => current?.close() ?? Promise.resolve(),
  };
}

/** The socket URL for `url`: http(s) becomes ws(s), so a page may pass `location`-relative http URLs. */
export function toWebSocketUrl(url: string): string {
  return url.replace(/^http(s?):\/\//i, (_, secure: string) => (secure ? 'wss://' : 'ws://'));
}

const REQUIRED: ReadonlyArray<['url' | 'ticket' | 'onMessage', string, (value: unknown) => boolean]> = [
  [
    'url',
    "herald's GraphQL endpoint, e.g. 'wss://push.example.com/graphql', or Koala's mas_url",
    (v) => typeof v === 'string' && v.trim() !== '',
  ],
  [
    'ticket',
    "a ticket, or a function returning one; Koala's token",
    (v) => (typeof v === 'string' && v !== '') || typeof v === 'function',
  ],
  ['onMessage', 'a function (message, ctx) => …', (v) => typeof v === 'function'],
];

type CheckedOptions = OpenOptions & { readonly url: string; readonly ticket: TicketSource };

/**
 * `options` with Koala's names taken (token, mas_url, ping) and `url` resolved to a ws(s) URL (relative
 * to the page, where there is one), or a TypeError naming what cannot work.
 */
function checkedOptions(given: OpenOptions): CheckedOptions {
  const where = 'message_client.open';
  if (typeof given !== 'object' || given === null) {
    throw new TypeError(
      `${where}: options are required: { url, ticket, onMessage } (${REQUIRED.map(([name, what]) => `${name}: ${what}`).join('; ')})`,
    );
  }
  if (given.ping !== undefined && !(typeof given.ping === 'number' && given.ping > 0 && Number.isFinite(given.ping)))
    throw new TypeError(`${where}: ping must be a positive number of seconds`);
  const masUrl =
    typeof given.mas_url === 'string' && given.mas_url.trim() !== ''
      ? `${given.mas_url.trim().replace(/\/+$/, '')}/graphql`
      : undefined;
  const options = {
    ...given,
    url: given.url ?? masUrl,
    ticket: given.ticket ?? given.token,
    heartbeatMs: given.heartbeatMs ?? (given.ping !== undefined ? given.ping * 1000 : undefined),
  };
  const missing = REQUIRED.filter(([name, , valid]) => !valid(options[name]));
  if (missing.length > 0) {
    const names = missing.map(([name]) => name);
    const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
    throw new TypeError(
      `${where}: ${list} ${names.length === 1 ? 'is' : 'are'} required (${missing.map(([name, what]) => `${name}: ${what}`).join('; ')})`,
    );
  }
  const base = (globalThis as { location?: { href?: unknown } }).location?.href;
  let url: URL;
  try {
    url = new URL(options.url!.trim(), typeof base === 'string' ? base : undefined);
  } catch {
    throw new TypeError(
      `${where}: url ${JSON.stringify(options.url)} is not a URL (herald's GraphQL endpoint, e.g. 'wss://push.example.com/graphql')`,
    );
  }
  if (!/^(wss?|https?):$/.test(url.protocol))
    throw new TypeError(`${where}: url must be a ws(s):// or http(s):// URL, not ${url.protocol}`);
  if (options.since !== undefined && !(typeof options.since === 'string' && /^\d{1,20}$/.test(options.since))) {
    throw new TypeError(
      `${where}: since must be a message's seq (a string of digits), not ${JSON.stringify(options.since)}`,
    );
  }
  for (const name of ['heartbeatMs', 'connectTimeoutMs'] as const) {
    const value = options[name];
    if (value !== undefined && !(typeof value === 'number' && value > 0 && Number.isFinite(value)))
      throw new TypeError(`${where}: ${name} must be a positive number of milliseconds`);
  }
  for (const name of ['initialMs', 'maxMs'] as const) {
    const value = options.reconnect?.[name];
    if (value !== undefined && !(typeof value === 'number' && value > 0 && Number.isFinite(value)))
      throw new TypeError(`${where}: reconnect.${name} must be a positive number of milliseconds`);
  }
  if (options.onError !== undefined && typeof options.onError !== 'function')
    throw new TypeError(`${where}: onError must be a function (errcode, errmsg) => …`);
  if (options.webSocketImpl !== undefined && typeof options.webSocketImpl !== 'function')
    throw new TypeError(`${where}: webSocketImpl must be a WebSocket class`);
  return { ...options, url: toWebSocketUrl(url.href), ticket: options.ticket! };
}

const MESSAGES =
  'subscription MessageClient { messages { id title content props expiresAt meta { realm seq sender stime } } }';
const ACKNOWLEDGE = 'mutation MessageClientAck($ids: [ID!]!) { acknowledge(ids: $ids) }';
const SEND = 'mutation MessageClientSend($i: SendMessageInput!) { sendMessage(input: $i) { id } }';
/** How many handed-over messages' seqs `acknowledge(seqs)` can name (the newest ones). */
const REMEMBERED_SEQS = 10_000;
const NEWEST_SEQ = 'query MessageClientNewest { notifications(first: 1, type: "koala") { nodes { seq } } }';
/** herald closes a socket with 4403 when it refuses the ticket, at connect or when the ticket expires. */
const FORBIDDEN = 4403;
const DEFAULT_HEARTBEAT_MS = 20_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

interface WireMessage {
  readonly id: string;
  readonly title: string;
  readonly content: string;
  readonly props: Record<string, string> | null;
  readonly expiresAt: string | null;
  readonly meta: Message_t['meta'];
}

interface GraphqlError {
  readonly message: string;
  readonly extensions?: { readonly code?: unknown };
}

type Ending =
  | { readonly kind: 'closed'; readonly code?: number; readonly reason: string }
  | { readonly kind: 'errors'; readonly errors: readonly GraphqlError[] }
  | { readonly kind: 'completed' };

class Terminal implements MessageClient {
  private currentState: ConnectionState = 'connecting';
  private seq: string | undefined;
  /** The ticket in use; undefined: ask the ticket source. */
  private ticket: string | undefined;
  private connection: Connection | undefined;
  private closed = false;
  private signalClosed!: () => void;
  private readonly closing = new Promise<void>((resolve) => (this.signalClosed = resolve));
  private liveWaiters: Array<{ resolve: (client: Client) => void; reject: (error: Error) => void }> = [];
  private readonly listeners: { [E in keyof MessageClientEvents]?: Array<MessageClientEvents[E]> } = {};
  private readonly done: Promise<void>;
  private readonly webSocket: WebSocketClass;
  /** seq → message id of the messages handed to onMessage, the newest REMEMBERED_SEQS. */
  private readonly idsBySeq = new Map<string, string>();

  constructor(private readonly options: CheckedOptions) {
    this.webSocket = webSocketClass(options.webSocketImpl);
    this.seq = options.since;
    // Started a tick later, so that listeners attached right after open() see everything.
    this.done = Promise.resolve()
      .then(() => this.run())
      .catch((error: unknown) => {
        this.reportError(asError(error)); // a bug of this client's: it stops rather than spin
        void this.close();
      });
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  get lastSeq(): string | undefined {
    return this.seq;
  }

  on<E extends keyof MessageClientEvents>(event: E, listener: MessageClientEvents[E]): () => void {
    const list = (this.listeners[event] ??= []) as Array<MessageClientEvents[E]>;
    list.push(listener);
    return () => {
      const at = list.indexOf(listener);
      if (at >= 0) list.splice(at, 1);
    };
  }

  async ack(ids: readonly string[]): Promise<number> {
    for (;;) {
      const answer = await request<{ acknowledge: number }>(await this.liveClient(), ACKNOWLEDGE, { ids });
      if (answer.kind === 'data') return answer.data.acknowledge;
      if (answer.kind === 'errors') throw errorFrom(answer.errors);
      // The socket went away before the answer; herald may have recorded it or not. Acknowledging again
      // is harmless (a repeat counts 0), so it is sent again on the next socket.
    }
  }

  async acknowledge(seqs: string | number | ReadonlyArray<string | number>): Promise<number> {
    const list = (Array.isArray(seqs) ? seqs : [seqs]) as ReadonlyArray<string | number>;
    const ids = list.map((seq) => this.idsBySeq.get(String(seq)));
    const unknown = list.filter((_, i) => ids[i] === undefined);
    const known = ids.filter((id): id is string => id !== undefined);
    // The known ones are acknowledged whatever the others are (as herald's ack does); the unknown are named after.
    const acknowledged = known.length > 0 ? await this.ack(known) : 0;
    if (unknown.length > 0)
      throw new MessageClientError(
        'NOT_FOUND',
        `${acknowledged} acknowledged; no message of seq ${unknown.map(String).join(', ')} was handed to this client`,
      );
    return acknowledged;
  }

  async sendMessage(target: string | readonly string[], title: string, content: string): Promise<string> {
    // Koala's target as given ("a,b", "a b", "a，b", or a list): herald splits user lists (one splitter for every API).
    const to = (typeof target === 'string' ? [target] : [...target]).map(String);
    // One request id for every attempt: a send retried on the next socket (the answer was lost) is sent once.
    const requestId = `sdk-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    for (;;) {
      const answer = await request<{ sendMessage: { id: string } }>(await this.liveClient(), SEND, {
        i: { to, title, content, requestId },
      });
      if (answer.kind === 'data') return answer.data.sendMessage.id;
      if (answer.kind === 'errors') throw errorFrom(answer.errors);
    }
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.signalClosed();
      this.connection?.shutdown();
      for (const waiter of this.liveWaiters.splice(0))
        waiter.reject(new MessageClientError('CLOSED', 'the message client is closed'));
      this.setState('closed');
    }
    await this.done;
  }

  private async run(): Promise<void> {
    const backoff: Backoff = { ...DEFAULT_BACKOFF, ...this.options.reconnect };
    let failures = 0;
    while (!this.closed) {
      this.setState('connecting');
      let ticket: string | undefined;
      try {
        ticket = await this.untilClosed(this.currentTicket());
      } catch (error) {
        this.reportError(asError(error));
        await this.pause({ reason: 'no ticket' }, backoffDelay(failures++, backoff));
        continue;
      }
      if (ticket === undefined) return;
      const connection = this.connect(ticket);
      const ending = await connection.ended;
      if (connection.wasConnected) failures = 0;
      if (this.closed) return connection.shutdown();
      if (ending.kind === 'errors' && ending.errors.some((e) => e.extensions?.code === 'REPLAY_LIMIT_EXCEEDED')) {
        await this.recover(connection);
        continue;
      }
      connection.shutdown();
      if (ending.kind === 'closed' && ending.code === FORBIDDEN) {
        if (typeof this.options.ticket !== 'function') {
          this.reportError(
            new MessageClientError(
              'UNAUTHENTICATED',
              'herald refused the ticket (or it expired); pass a function as `ticket` to get fresh ones',
            ),
          );
          return void this.close();
        }
        this.ticket = undefined;
      }
      if (ending.kind === 'errors') this.reportError(errorFrom(ending.errors));
      const reason =
        ending.kind === 'closed'
          ? ending.reason
          : ending.kind === 'errors'
            ? 'the subscription failed'
            : 'the subscription ended';
      await this.pause(
        { ...(ending.kind === 'closed' && ending.code !== undefined && { code: ending.code }), reason },
        backoffDelay(failures++, backoff),
      );
    }
  }

  /**
   * More were missed than herald replays: the page must reload its inbox. The client goes on from the
   * inbox's newest message — asked on the socket still open — rather than without `since`, so a socket
   * that drops before the next push cannot open a second gap.
   */
  private async recover(connection: Connection): Promise<void> {
    const since = this.seq!;
    const newest = await request<{ notifications: { nodes: Array<{ seq: string }> } }>(connection.client, NEWEST_SEQ);
    connection.shutdown();
    if (this.closed) return;
    this.seq = newest.kind === 'data' ? newest.data.notifications.nodes[0]?.seq : undefined;
    this.emit('recoveryimpossible', { since, resumedFrom: this.seq });
  }

  private async currentTicket(): Promise<string> {
    if (this.ticket === undefined) {
      const source = this.options.ticket;
      const ticket = typeof source === 'function' ? await source() : source;
      if (typeof ticket !== 'string' || ticket === '')
        throw new MessageClientError('UNAUTHENTICATED', 'the ticket function gave no ticket');
      this.ticket = ticket;
    }
    return this.ticket;
  }

  private connect(ticket: string): Connection {
    const connection = openConnection({
      url: toWebSocketUrl(this.options.url),
      webSocket: this.webSocket,
      // No seq yet (a page's first connect, as Koala's pages open): start with the user's unacknowledged messages.
      connectionParams: { ticket, ...(this.seq !== undefined ? { since: this.seq } : { pending: true }) },
      heartbeatMs: this.options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
      connectTimeoutMs: this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      onConnected: (client) => {
        if (this.closed) return;
        this.setState('connected');
        for (const waiter of this.liveWaiters.splice(0)) waiter.resolve(client);
      },
      onMessage: (message) => this.deliver(message),
    });
    this.connection = connection;
    return connection;
  }

  private deliver(wire: WireMessage): void {
    if (this.closed) return;
    // A replay can overlap what the previous socket delivered: each seq is handed over once.
    if (this.seq !== undefined && compareSeq(wire.meta.seq, this.seq) <= 0) return;
    this.seq = wire.meta.seq;
    this.idsBySeq.set(wire.meta.seq, wire.id);
    if (this.idsBySeq.size > REMEMBERED_SEQS) this.idsBySeq.delete(this.idsBySeq.keys().next().value!);
    const message: Message_t = {
      id: wire.id,
      meta: wire.meta,
      title: wire.title,
      content: wire.content,
      props: wire.props ?? {},
      expiresAt: wire.expiresAt,
    };
    const ctx: MessageContext = { ack: () => this.ack([message.id]) };
    try {
      const handled: unknown = this.options.onMessage(message, ctx);
      if (handled instanceof Promise) handled.catch((error: unknown) => this.reportError(asError(error)));
    } catch (error) {
      this.reportError(asError(error));
    }
  }

  private liveClient(): Promise<Client> {
    if (this.closed) return Promise.reject(new MessageClientError('CLOSED', 'the message client is closed'));
    if (this.connection?.live) return Promise.resolve(this.connection.client);
    return new Promise((resolve, reject) => this.liveWaiters.push({ resolve, reject }));
  }

  private async pause(info: Omit<Disconnection, 'retryInMs'>, retryInMs: number): Promise<void> {
    if (this.closed) return;
    this.setState('disconnected');
    this.emit('disconnected', { ...info, retryInMs });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await this.untilClosed(new Promise<void>((resolve) => (timer = setTimeout(resolve, retryInMs))));
    clearTimeout(timer);
  }

  /** `work`'s value, or undefined as soon as the client is closed. */
  private untilClosed<T>(work: Promise<T>): Promise<T | undefined> {
    return Promise.race([work, this.closing.then(() => undefined)]);
  }

  private setState(state: ConnectionState): void {
    if (this.currentState === state || this.currentState === 'closed') return;
    this.currentState = state;
    this.emit('state', state);
  }

  private reportError(error: Error): void {
    if (this.options.onError) {
      try {
        this.options.onError(error instanceof MessageClientError ? error.code : error.name, error.message);
      } catch (thrown) {
        setTimeout(() => {
          throw thrown;
        });
      }
    }
    if (this.listeners.error?.length) this.emit('error', error);
    else if (!this.options.onError) console.error('message_client:', error);
  }

  private emit<E extends keyof MessageClientEvents>(event: E, ...args: Parameters<MessageClientEvents[E]>): void {
    for (const listener of [...(this.listeners[event] ?? [])]) {
      try {
        (listener as (...values: unknown[]) => void)(...args);
      } catch (error) {
        // A listener's own failure is the page's bug: reported as uncaught, as a DOM event listener's is,
        // without breaking the client.
        setTimeout(() => {
          throw error;
        });
      }
    }
  }
}

/** One graphql-ws socket with one `messages` subscription; it never reconnects itself (Terminal does). */
interface Connection {
  readonly client: Client;
  /** Settles once: the socket closed, the subscription ended, or shutdown(). */
  readonly ended: Promise<Ending>;
  /** Connected and not ended: requests may go over it. */
  readonly live: boolean;
  readonly wasConnected: boolean;
  shutdown(): void;
}

function openConnection(options: {
  readonly url: string;
  readonly webSocket: WebSocketClass;
  readonly connectionParams: Record<string, unknown>;
  readonly heartbeatMs: number;
  readonly connectTimeoutMs: number;
  readonly onConnected: (client: Client) => void;
  readonly onMessage: (message: WireMessage) => void;
}): Connection {
  let connected = false;
  let ended = false;
  let settle!: (ending: Ending) => void;
  const endedPromise = new Promise<Ending>((resolve) => (settle = resolve));
  let pongTimer: ReturnType<typeof setTimeout> | undefined;
  let connectTimer: ReturnType<typeof setTimeout> | undefined;
  const finish = (ending: Ending) => {
    if (ended) return;
    ended = true;
    settle(ending);
  };
  // The heartbeat runs until shutdown, not until the end: a request may still use the socket then.
  const stopTimers = () => {
    clearTimeout(pongTimer);
    clearTimeout(connectTimer);
  };
  let socket: { close(): void } | undefined;
  const shutdown = () => {
    finish({ kind: 'completed' });
    stopTimers();
    void Promise.resolve(client.dispose()).catch(() => undefined); // rejects when the socket never connected
    // dispose() waits for the ack before it closes; a socket that is not connected is closed at once
    // (not with graphql-ws's terminate(), which leaves ws's handshake error with no listener).
    if (!connected) socket?.close();
  };
  const dropSilent = (reason: string) => {
    finish({ kind: 'closed', reason });
    shutdown();
  };
  const client = createClient({
    url: options.url,
    webSocketImpl: trackingSockets(options.webSocket, (created) => (socket = created)),
    connectionParams: options.connectionParams,
    lazy: false,
    retryAttempts: 0,
    keepAlive: options.heartbeatMs,
    onNonLazyError: () => undefined, // seen through `closed`
    on: {
      connected: () => {
        if (ended) return;
        connected = true;
        clearTimeout(connectTimer);
        options.onConnected(client);
      },
      ping: (received) => {
        if (!received)
          pongTimer = setTimeout(() => dropSilent(`no pong within ${options.heartbeatMs} ms`), options.heartbeatMs);
      },
      pong: (received) => {
        if (received) clearTimeout(pongTimer);
      },
      closed: (event) => {
        // Disposed before graphql-ws's own listeners see the close: a close with 1000 would otherwise
        // make it reconnect by itself, with this socket's `since`.
        void Promise.resolve(client.dispose()).catch(() => undefined);
        stopTimers();
        const { code, reason } = event as { code?: number; reason?: string };
        finish({ kind: 'closed', ...(typeof code === 'number' && { code }), reason: reason || 'the socket closed' });
      },
    },
  });
  connectTimer = setTimeout(
    () => dropSilent(`not connected within ${options.connectTimeoutMs} ms`),
    options.connectTimeoutMs,
  );
  client.subscribe<{ messages: WireMessage }>(
    { query: MESSAGES },
    {
      next: (result) => {
        if (result.data?.messages && !ended) options.onMessage(result.data.messages);
        if (result.errors?.length) finish({ kind: 'errors', errors: result.errors });
      },
      error: (error) => {
        if (Array.isArray(error)) return finish({ kind: 'errors', errors: error as GraphqlError[] });
        const { code, reason, message } = (error ?? {}) as { code?: number; reason?: string; message?: string };
        finish({
          kind: 'closed',
          ...(typeof code === 'number' && { code }),
          reason: reason || message || 'the socket failed',
        });
      },
      complete: () => finish({ kind: 'completed' }),
    },
  );
  return {
    client,
    ended: endedPromise,
    get live() {
      return connected && !ended;
    },
    get wasConnected() {
      return connected;
    },
    shutdown,
  };
}

type WebSocketClass = new (url: string, protocols?: string | string[]) => { close(): void };

/** The given WebSocket class, or the global one. */
function webSocketClass(given: unknown): WebSocketClass {
  const found = given ?? (globalThis as { WebSocket?: unknown }).WebSocket;
  if (typeof found !== 'function')
    throw new MessageClientError(
      'NO_WEBSOCKET',
      'no WebSocket here: pass webSocketImpl (in Node before 22, the ws package)',
    );
  return found as WebSocketClass;
}

/** `Base`, telling `created` of each socket it makes. */
function trackingSockets(Base: WebSocketClass, created: (socket: { close(): void }) => void): WebSocketClass {
  return class extends Base {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      created(this);
    }
  };
}

type Answer<T> =
  | { readonly kind: 'data'; readonly data: T }
  | { readonly kind: 'errors'; readonly errors: readonly GraphqlError[] }
  | { readonly kind: 'lost' };

/** A query or mutation over an open socket; `lost` when the socket went away before the answer. */
function request<T>(client: Client, query: string, variables?: Record<string, unknown>): Promise<Answer<T>> {
  return new Promise((resolve) => {
    let data: T | undefined;
    client.subscribe<T>(
      { query, ...(variables && { variables }) },
      {
        next: (result) => {
          if (result.errors?.length) resolve({ kind: 'errors', errors: result.errors });
          else if (result.data) data = result.data as T;
        },
        error: (error) =>
          resolve(Array.isArray(error) ? { kind: 'errors', errors: error as GraphqlError[] } : { kind: 'lost' }),
        complete: () => resolve(data !== undefined ? { kind: 'data', data } : { kind: 'lost' }),
      },
    );
  });
}

function errorFrom(errors: readonly GraphqlError[]): MessageClientError {
  const code = errors.map((e) => e.extensions?.code).find((c): c is string => typeof c === 'string') ?? 'GRAPHQL_ERROR';
  return new MessageClientError(code, errors.map((e) => e.message).join('; '));
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
