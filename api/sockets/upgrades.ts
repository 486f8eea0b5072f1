import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';

/**
 * One HTTP server, several WebSocket endpoints: `ws` servers attached to the same HTTP server each
 * refuse (400) an upgrade for another's path, so every endpoint is a `noServer` one and this routes the
 * upgrade by path. An upgrade to no endpoint is answered 404.
 */
export function routeUpgrades(server: http.Server, endpoints: Readonly<Record<string, WebSocketServer>>): void {
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
      socket.end(`HTTP/1.1 404 Not Found\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      socket.off('error', destroyOnError);
      wss.emit('connection', ws, request);
    });
  });
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}
