import {
  CloseCode,
  handleProtocols,
  makeServer,
  MessageType,
  type ServerOptions,
  type WebSocket as GraphqlWsSocket,
} from 'graphql-ws';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../../src/runtime/logger';

/** What graphql-ws's hooks see as `ctx.extra`: the socket, and nothing of the upgrade request. */
export interface SocketExtra {
  readonly socket: WebSocket;
}

/** Bytes queued on a socket beyond which a `send` waits for its write: a subscriber not reading holds back its own operations only. */
export const SOCKET_HIGH_WATER_BYTES = 64 * 1024;

/**
 * Sends a text frame; waits for the write (resolves once it is written) only when the socket is backed
 * up. Nothing is sent on a socket no longer open: it is closing, and its close ends its operations.
 */
export function sendText(socket: WebSocket, data: string | Buffer): Promise<void> | undefined {
  if (socket.readyState !== socket.OPEN) return undefined;
  if (socket.bufferedAmount < SOCKET_HIGH_WATER_BYTES) {
    socket.send(data, TEXT);
    return undefined;
  }
  return new Promise<void>((resolve, reject) =>
    socket.send(data, TEXT, (error) => (error ? reject(error) : resolve())),
  );
}

const TEXT = { binary: false } as const;

/**
 * graphql-ws's server on `ws` sockets: what graphql-ws/use/ws does, made lean for many idle subscribers.
 * - `ctx.extra` is the socket alone: use/ws also keeps each socket's upgrade request (≈1.2 KB).
 * - One sweep a second for all sockets, instead of timers per socket: it closes (4408) the ones that sent
 *   no `connection_init` within `connectionInitWaitTimeout` (graphql-ws's option, default 3 s) and up to
 *   a second more, and every `keepAliveMs` (12 s) pings each open socket and terminates the ones that
 *   did not answer the previous ping.
 * - A socket's adapter is one object whose methods and listeners all sockets share, not closures.
 * - A `send` returns at once unless the socket is backed up (SOCKET_HIGH_WATER_BYTES): use/ws makes a
 *   promise and a callback per message and waits for every write.
 * - An error in herald's hooks is logged (not printed to the console) and closes the socket 4500 with
 *   a generic reason: details stay in the log. A socket's own errors (ws closes it) are warnings. A
 *   client sending a server's message (`connection_ack`, `next`, `error`) is closed 4400, not logged.
 */
export function serveGraphqlWs<P extends Record<string, unknown>>(
  options: ServerOptions<P, SocketExtra>,
  wss: WebSocketServer,
  log: Logger,
  /** Pings every so often; 0 or Infinity: none. `sweepMs`: the sweep's period (tests shorten it). */
  { keepAliveMs = 12_000, sweepMs = 1_000 }: { keepAliveMs?: number; sweepMs?: number } = {},
): { dispose(): Promise<void> } {
  const awaitingInit = new Map<WebSocket, number>(); // socket → when it must have sent connection_init
  const unanswered = new WeakSet<WebSocket>(); // pinged, no pong yet
  const adapters = new WeakMap<WebSocket, SocketAdapter>();
  // 0 or Infinity turn either off, as graphql-ws's own option does.
  const initWaitMs = options.connectionInitWaitTimeout ?? 3_000;
  const initDeadlines = initWaitMs > 0 && Number.isFinite(initWaitMs);
  const sweepsPerPing =
    keepAliveMs > 0 && Number.isFinite(keepAliveMs) ? Math.max(1, Math.round(keepAliveMs / sweepMs)) : Infinity;
  const server = makeServer<P, SocketExtra>({
    ...options,
    connectionInitWaitTimeout: 0, // the sweep's: graphql-ws would keep a fired timer per socket
    onConnect: (ctx) => {
      awaitingInit.delete(ctx.extra.socket);
      return options.onConnect?.(ctx);
    },
  });
  wss.options.handleProtocols = handleProtocols;

  const internalError = (socket: WebSocket, error: unknown, what: string) => {
    // A write failing on a socket that is closing is its closing, not herald's error.
    if (socket.readyState !== socket.OPEN) return;
    log.error({ err: error }, `graphql-ws: ${what}`);
    socket.close(CloseCode.InternalServerError, 'Internal server error');
  };
  // Listeners shared by every socket: EventEmitter calls them with the socket as `this`.
  function onSocketMessage(this: WebSocket, data: Buffer) {
    const text = String(data);
    adapters
      .get(this)
      ?.handle?.(text)
      .catch((error: unknown) => {
        // graphql-ws throws on a well-formed message of a type only its server sends (connection_ack,
        // next, error): the protocol closes the socket 4400 for an unexpected message, the client's fault.
        const type = serverMessageType(text);
        if (type !== undefined) this.close(CloseCode.BadRequest, `Unexpected message of type ${type} received`);
        else internalError(this, error, 'error handling a message');
      });
  }
  // ws closes the socket itself (a frame over maxPayload, a reset): a client's doing, worth a warning.
  function onSocketError(this: WebSocket, error: Error) {
    log.warn({ err: error }, 'graphql-ws: socket error');
  }
  function onSocketPong(this: WebSocket) {
    unanswered.delete(this);
  }
  function onSocketClose(this: WebSocket, code: number, reason: Buffer) {
    awaitingInit.delete(this);
    adapters
      .get(this)
      ?.closed?.(code, String(reason))
      .catch((error: unknown) => log.error({ err: error }, 'graphql-ws: error closing a socket'));
  }

  let sweeps = 0;
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const [socket, deadline] of awaitingInit) {
      if (deadline > now) continue;
      awaitingInit.delete(socket);
      socket.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
    }
    if (++sweeps < sweepsPerPing) return;
    sweeps = 0;
    for (const socket of wss.clients) {
      if (socket.readyState !== socket.OPEN) continue; // closing: ws ends it
      if (unanswered.has(socket)) {
        socket.terminate();
        continue;
      }
      unanswered.add(socket);
      socket.ping();
    }
  }, sweepMs).unref();

  wss.on('connection', (socket: WebSocket) => {
    if (initDeadlines) awaitingInit.set(socket, performance.now() + initWaitMs);
    socket.on('error', onSocketError);
    socket.on('pong', onSocketPong);
    socket.on('message', onSocketMessage);
    socket.on('close', onSocketClose);
    const adapter = new SocketAdapter(socket);
    adapters.set(socket, adapter);
    adapter.closed = server.opened(adapter, { socket });
  });

  return {
    async dispose() {
      clearInterval(sweep);
      for (const socket of wss.clients) socket.close(1001, 'Going away');
      wss.removeAllListeners('connection');
    },
  };
}

/** The message's type when it is one that only a server sends (graphql-ws's server refuses it by throwing). */
function serverMessageType(text: string): string | undefined {
  try {
    const { type } = JSON.parse(text) as { type?: unknown };
    return type === MessageType.ConnectionAck || type === MessageType.Next || type === MessageType.Error
      ? type
      : undefined;
  } catch {
    return undefined;
  }
}

/** A `ws` socket as graphql-ws's server sees one (graphql-ws calls these as methods). */
class SocketAdapter implements GraphqlWsSocket {
  /** graphql-ws's handler of the socket's messages. */
  handle: ((data: string) => Promise<void>) | undefined;
  /** What graphql-ws does when the socket closes. */
  closed: ((code?: number, reason?: string) => Promise<void>) | undefined;

  constructor(private readonly socket: WebSocket) {}

  get protocol(): string {
    return this.socket.protocol;
  }

  send(data: string): Promise<void> | undefined {
    return sendText(this.socket, data);
  }

  close(code?: number, reason?: string): void {
    this.socket.close(code, reason);
  }

  onMessage(handle: (data: string) => Promise<void>): void {
    this.handle = handle;
  }
}
