import cors from 'cors';
import express from 'express';
import type { CorsOrigins } from './config';

/**
 * CORS for the APIs web pages call (issue 22): Koala's and datahub's callers are web front ends
 * ("前端", shared/seeds/000_83e3b79cc88886e5.txt and 001_e25b4a10524b93b6.txt), often served from
 * another origin than herald. For an origin in HERALD_CORS_ORIGINS, a preflight is answered (204, the
 * path's methods, the request headers the routes read) and every answer, errors included, carries
 * Access-Control-Allow-Origin, so the page can read a 401 or a 503 and its Retry-After.
 *
 * Credentials are tickets and app keys in headers or fields, never cookies: no
 * Access-Control-Allow-Credentials, and so `*` may be configured safely. An origin not allowed gets no
 * CORS header at all (its preflight a bare 204), and the browser keeps the answer from its page.
 *
 * Not here: RTIO (server to server; its routes trust callers by network (RTIO_TRUSTED_CIDRS), so a
 * page must never be let call them. CORS alone would not stop that — a page can still send a simple
 * text/plain POST and only not read the answer — so api/rest/rtioShim.ts refuses a browser's request
 * (Origin, Sec-Fetch-Site) that has no app credentials), the static SDK and demo files (script tags need no CORS),
 * the probes and /metrics.
 */

/** Each path prefix a page may call, with the methods its routes answer. */
export const CORS_PATHS: ReadonlyArray<{ readonly path: string; readonly methods: readonly string[] }> = [
  { path: '/koala/api/mas', methods: ['POST'] },
  { path: '/notifications', methods: ['GET', 'POST', 'PUT'] },
  { path: '/notification_stat', methods: ['GET', 'DELETE'] },
  { path: '/topics', methods: ['POST'] },
  // datahub's item owners: a web admin (an admin's ticket) may register them (docs/api/datahub.md).
  { path: '/items', methods: ['GET', 'PUT', 'DELETE'] },
  { path: '/msgpush', methods: ['POST'] },
  { path: '/v2/message', methods: ['GET', 'POST', 'PUT'] },
  { path: '/graphql', methods: ['GET', 'POST'] },
];

/** Every request header a route above reads (req.get in api/rest, graphql's Authorization, src/runtime/correlation.ts). */
export const CORS_REQUEST_HEADERS = [
  'Authorization',
  'Content-Type',
  'X-Request-Id',
  'Idempotency-Key',
  'X-Client-Token',
  'X-APP-ID',
  'X-APP-Key',
  'X-Message-Key',
  'X-Correlation-Id',
];

/** Answer headers a page needs beyond the safelisted ones: when to retry, and the id to quote to an operator. */
export const CORS_EXPOSED_HEADERS = ['Retry-After', 'X-Correlation-Id'];

/** How long a browser may reuse a preflight's answer (Chromium caps it at 2 h): a changed configuration shows within 10 minutes. */
export const CORS_MAX_AGE_SECONDS = 600;

/** The CORS layer, mounted before the routers; with no origins configured it does nothing (as before CORS). */
export function corsRouter(origins: CorsOrigins): express.Router {
  const router = express.Router();
  if (origins !== '*' && origins.length === 0) return router;
  const listed = new Set(origins === '*' ? [] : origins);
  for (const { path, methods } of CORS_PATHS) {
    // An answer that depends on Origin says so, whatever it is, so no cache hands one origin's answer to another.
    if (origins !== '*') router.use(path, (_req, res, next) => void (res.vary('Origin'), next()));
    router.use(
      path,
      cors({
        // A function, not the list: given the list, cors answers a preflight from an origin not on it with
        // the allow headers still on; given a function's false, it adds nothing. Only an allowed origin (exact, ASCII, from
        // the validated configuration) is echoed, so an odd Origin header never reaches a response header.
        origin: (origin, callback) =>
          callback(null, origins === '*' ? '*' : origin !== undefined && listed.has(origin)),
        methods: [...methods],
        allowedHeaders: CORS_REQUEST_HEADERS,
        exposedHeaders: CORS_EXPOSED_HEADERS,
        maxAge: CORS_MAX_AGE_SECONDS,
        optionsSuccessStatus: 204,
      }),
    );
    // A preflight from an origin not allowed: answered, with nothing allowed (the browser then refuses the call).
    // `use`, not a `${path}/*` route: a route decodes the path as a parameter, and a path that is not
    // percent-encoded UTF-8 would leave this router as an error no shim's handler sees.
    router.use(path, (req, res, next) =>
      req.method === 'OPTIONS' ? void res.status(204).set('content-length', '0').end() : next(),
    );
  }
  return router;
}
