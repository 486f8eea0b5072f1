import { CloseCode, handleProtocols, makeServer, type ServerOptions } from 'graphql-ws';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../../src/logger';

/** What graphql-ws's hooks see as `ctx.extra`: the socket, and nothing of the upgrade request. */
export interface SocketExtra {
  readonly socket: WebSocket;
}

/** Bytes queued on a socket beyond which a `send` waits for its write: a subscriber not reading holds back its own operations only. */
export const SOCKET_HIGH_WATER_BYTES = 64 * 1024;

/**
 * Sends a text frame; waits for the write (resolves once it is written) only when the socket is backed
 * up. Nothing is sent on a socket no longer open: it is closing, and graphql-ws is told so.
 */
export function sendText(socket: WebSocket, data: string | Buffer): Promise<void> | undefined {
  if (socket.readyState !== socket.OPEN) return undefined;
  if (socket.bufferedAmount < SOCKET_HIGH_WATER_BYTES) {
    socket.send(data, TEXT);
    return undefined;
  }
  return new Promise<void>((resolve, reject) => socket.send(data, TEXT, (error) => (error ? reject(error) : resolve())));
}

const TEXT = { binary: false } as const;

/**
 * graphql-ws's server on `ws` sockets: what graphql-ws/use/ws does, made lean for many idle subscribers.
 * - `ctx.extra` is the socket alone: use/ws also keeps each socket's upgrade request (≈2 KB).
 * - One keep-alive sweep for all sockets: every `keepAliveMs` it pings each socket and terminates the
 *   ones that did not answer the previous ping; use/ws runs an interval, a timeout and a listener per socket.
 * - A `send` returns at once unless the socket is backed up (SOCKET_HIGH_WATER_BYTES): use/ws makes a
 *   promise and a callback per message and waits for every write.
 * - An error in herald's hooks is logged (not printed to the console) and closes the socket 4500 with
 *   a generic reason: details stay in the log.
 */
export function serveGraphqlWs<P extends Record<string, unknown>>(
  options: ServerOptions<P, SocketExtra>,
  wss: WebSocketServer,
  log: Logger,
  keepAliveMs = 12_000,
): { dispose(): Promise<void> } {
  const server = makeServer(options);
  wss.options.handleProtocols = handleProtocols;
  const unanswered = new WeakSet<WebSocket>();
  // `this` is the socket (EventEmitter calls listeners so): one function for every socket, no closure each.
  function answered(this: WebSocket) {
    unanswered.delete(this);
  }
  const sweep = setInterval(() => {
    for (const socket of wss.clients) {
      if (unanswered.has(socket)) {
        socket.terminate();
        continue;
      }
      unanswered.add(socket);
      socket.ping();
    }
  }, keepAliveMs).unref();

  const internalError = (socket: WebSocket, error: unknown, what: string) => {
    log.error({ err: error }, `graphql-ws: ${what}`);
    socket.close(CloseCode.InternalServerError, 'Internal server error');
  };

  wss.on('connection', (socket: WebSocket) => {
    socket.once('error', (error) => internalError(socket, error, 'socket error'));
    socket.on('pong', answered);
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) => sendText(socket, data),
        close: (code, reason) => socket.close(code, reason),
        onMessage: (handle) =>
          socket.on('message', (data: Buffer) => {
            handle(String(data)).catch((error: unknown) => internalError(socket, error, 'error handling a message'));
          }),
      },
      { socket },
    );
    socket.once('close', (code: number, reason: Buffer) => {
      closed(code, String(reason)).catch((error: unknown) => log.error({ err: error }, 'graphql-ws: error closing a socket'));
    });
  });

  return {
    async dispose() {
      clearInterval(sweep);
      for (const socket of wss.clients) socket.close(1001, 'Going away');
      wss.removeAllListeners('connection');
    },
  };
}
