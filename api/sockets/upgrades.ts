import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../../src/runtime/logger';

/**
 * One HTTP server, several WebSocket endpoints: `ws` servers attached to the same HTTP server each
 * refuse (400) an upgrade for another's path, so every endpoint is a `noServer` one and this routes the
 * upgrade by path. An upgrade to no endpoint is answered 404.
 *
 * Every socket gets an 'error' listener here, before its endpoint sees it: `ws` reports a client's
 * invalid frame (unmasked, RSV bits, a reserved opcode, text not UTF-8, a bad close code, over
 * maxPayload) by closing the socket (1002, 1007, 1009) and emitting 'error' on it — an 'error' nobody
 * listens to ends the process (issue 21 item 1). One listener for all sockets: no closure per socket.
 */
export function routeUpgrades(
  server: http.Server,
  endpoints: Readonly<Record<string, WebSocketServer>>,
  log: Logger,
): void {
  // Called with the socket as `this`; ws has already closed the socket, so a warning is all that is left.
  function onSocketError(this: WebSocket, error: Error & { code?: string }): void {
    log.warn({ code: error.code, message: error.message }, 'websocket: socket error');
  }
  server.on('upgrade', (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node takes its own error handler off an upgraded socket: a client resetting it mid-answer must not
    // become an uncaught error. ws adds its own once it takes the socket over, and this one is taken off
    // then: one function for all sockets, so a connection keeps no closure over its upgrade request.
    socket.on('error', destroyOnError);
    const url = request.url ?? '/';
    const query = url.indexOf('?');
    const wss = endpoints[query === -1 ? url : url.slice(0, query)];
    if (!wss) {
      const body = JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no WebSocket endpoint here' } });
      socket.end(
        `HTTP/1.1 404 Not Found\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      socket.off('error', destroyOnError);
      ws.on('error', onSocketError);
      wss.emit('connection', ws, request);
    });
  });
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}
