import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Readiness } from './nodes/readiness';
import { correlate } from './runtime/correlation';
import type { Logger } from './runtime/logger';

export interface HttpServer {
  readonly url: string;
  readonly server: http.Server;
  /** Stops accepting connections, lets requests in flight finish (up to `graceMs`), then closes the rest. */
  close(graceMs?: number): Promise<void>;
}

/** The express app: probes here; the API routers (GraphQL, legacy REST shims) are mounted by `routers`. */
export function createHttpApp(deps: {
  readonly readiness: () => Promise<Readiness>;
  /** Undefined while herald is healthy; otherwise why not (e.g. its embedded store has been down too long). */
  readonly unhealthy?: () => string | undefined;
  readonly routers?: readonly express.Router[];
  readonly log?: Logger;
  /** Runs before everything (the request timer of /metrics). */
  readonly before?: express.RequestHandler;
}): express.Express {
  const app = express();
  app.disable('x-powered-by');
  if (deps.before) app.use(deps.before);
  app.use(correlate());
  app.get('/healthz', (_req, res) => {
    const problem = deps.unhealthy?.();
    if (problem) res.status(503).json({ status: 'unhealthy', problem });
    else res.json({ status: 'ok' });
  });
  // Liveness above, readiness here: not ready names each check that is not, with why (src/nodes/readiness.ts).
  app.get('/readyz', async (_req, res) => {
    const readiness = await deps.readiness().catch((error: unknown): Readiness => ({
      ready: false,
      notReady: { readiness: (error as Error).message },
      checks: {},
    }));
    const { ready, notReady, checks } = readiness;
    res
      .status(ready ? 200 : 503)
      .json({ status: ready ? 'ready' : 'not ready', ...(!ready && { notReady }), ...checks });
  });
  for (const router of deps.routers ?? []) app.use(router);
  // What no router answered, and errors no router handled: JSON, never express's HTML page with a stack.
  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: 'no such route' } });
  });
  app.use((error: unknown, _req: express.Request, res: express.Response, next: express.NextFunction) => {
    if (res.headersSent) return next(error);
    const status = (error as { status?: number }).status ?? 500;
    if (status >= 400 && status < 500)
      return res.status(status).json({ error: { code: 'BAD_REQUEST', message: 'the request could not be read' } });
    deps.log?.error({ err: error }, 'http: unexpected error');
    return res.status(500).json({ error: { code: 'INTERNAL', message: 'internal error' } });
  });
  return app;
}

/** How long an idle keep-alive connection is kept open (Node's default is 5 s). */
export const KEEP_ALIVE_IDLE_MS = 65_000;

export async function listen(
  app: express.Express,
  options: { port: number; host: string; log: Logger },
): Promise<HttpServer> {
  const server = http.createServer(app);
  // An idle keep-alive connection outlives the proxies' and clients' own idle timeouts (60 s on the common
  // load balancers): a server closing first races a request the proxy just sent on it (a 502), and makes
  // each client open a new connection after every pause — a burst of accepts at the next load.
  server.keepAliveTimeout = KEEP_ALIVE_IDLE_MS;
  server.headersTimeout = KEEP_ALIVE_IDLE_MS + 1_000;
  // Requests Node's parser refuses before any route sees them (a request line or headers over 16 KB,
  // garbage) are answered in JSON too, not with an empty body.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || (error as { bytesParsed?: unknown }).bytesParsed === undefined)
      return void socket.destroy();
    const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
    const body = JSON.stringify(
      tooLarge
        ? { code: 'too_large', message: 'request line and headers are at most 16 KB' }
        : { code: 'bad_request', message: 'malformed HTTP request' },
    );
    const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(
      `HTTP/1.1 ${status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  options.log.info({ port }, 'http server listening');
  return {
    url: `http://${host}:${port}`,
    server,
    async close(graceMs = 5000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}
