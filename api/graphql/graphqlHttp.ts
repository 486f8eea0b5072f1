import type express from 'express';
import { GraphQLError, type ExecutionResult } from 'graphql';
import { createHandler, type OperationContext, type Request, type Response } from 'graphql-http';
import type { HandlerOptions, RequestContext } from 'graphql-http/lib/use/express';
import { isTemporary } from '../../src/postgres/errors';
import type { Logger } from '../../src/runtime/logger';

/** What a client is told to wait (Retry-After) while the store is unreachable: about what the projections need to resume. */
export const RETRY_AFTER_SECONDS = 2;
const UNAVAILABLE_MESSAGE = 'the store is unavailable; retry shortly';

/**
 * GraphQL over HTTP (graphql-http) for express, answering JSON whatever fails. graphql-http's own express
 * adapter answers an error thrown outside execution — the context's authentication finding the database
 * down — with an empty 500, and prints its stack on the console. Here such an error is 503 with
 * Retry-After and a JSON error (`SERVICE_UNAVAILABLE`) when the store is unreachable or met a passing
 * conflict (src/postgres/errors.ts), or a JSON 500 otherwise, each logged as one small line. An operation
 * whose root fields all failed for the store's sake is answered 503 the same way.
 */
export function graphqlHttpHandler<Context extends OperationContext>(
  options: HandlerOptions<Context>,
  log: Logger,
): express.RequestHandler {
  const handle = createHandler<express.Request, RequestContext, Context>({
    ...options,
    onOperation: async (req, args, result) => {
      const own = await options.onOperation?.(req, args, result);
      if (own !== undefined) return own;
      if (!failedForTheStore(result)) return undefined;
      log.warn({ err: result.errors?.find(isTemporary)?.originalError }, 'graphql: the store is unavailable');
      return unavailable();
    },
  });
  return (req, res) => {
    handle(toRequest(req, res)).then(
      ([body, init]) => void res.writeHead(init.status, init.statusText, init.headers).end(body),
      (error: unknown) => {
        if (res.headersSent) return void res.end();
        const temporary = isTemporary(error);
        if (temporary) log.warn({ err: error }, 'graphql: the store is unavailable');
        else log.error({ err: error }, 'graphql: internal error');
        const [body, init] = temporary ? unavailable() : internalError();
        res.writeHead(init.status, init.statusText, init.headers).end(body);
      },
    );
  };
}

/** A resolver's error when the store is unreachable (or met a passing conflict): SERVICE_UNAVAILABLE at its path. */
export function storeUnavailable(error: unknown, path: GraphQLError['path']): GraphQLError | undefined {
  if (!isTemporary(error)) return undefined;
  return new GraphQLError(UNAVAILABLE_MESSAGE, {
    ...(path && { path }),
    extensions: { code: 'SERVICE_UNAVAILABLE', retryAfterSeconds: RETRY_AFTER_SECONDS },
  });
}

/** Every root field failed (no data at all), and the store is why. */
function failedForTheStore(result: ExecutionResult): boolean {
  const noData = result.data == null || Object.values(result.data).every((value) => value === null);
  return noData && (result.errors ?? []).some(isTemporary);
}

function unavailable(): Response {
  const body = {
    errors: [
      {
        message: UNAVAILABLE_MESSAGE,
        extensions: { code: 'SERVICE_UNAVAILABLE', retryAfterSeconds: RETRY_AFTER_SECONDS },
      },
    ],
  };
  return [
    JSON.stringify(body),
    {
      status: 503,
      statusText: 'Service Unavailable',
      headers: { 'content-type': 'application/json; charset=utf-8', 'retry-after': String(RETRY_AFTER_SECONDS) },
    },
  ];
}

function internalError(): Response {
  const body = { errors: [{ message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] };
  return [
    JSON.stringify(body),
    {
      status: 500,
      statusText: 'Internal Server Error',
      headers: { 'content-type': 'application/json; charset=utf-8' },
    },
  ];
}

/** As graphql-http's express adapter builds it: the body express.json parsed, else the raw stream's text. */
function toRequest(req: express.Request, res: express.Response): Request<express.Request, RequestContext> {
  return {
    url: req.url,
    method: req.method,
    headers: req.headers,
    body: () => {
      if (req.body) return req.body as Record<string, unknown>;
      return new Promise<string>((resolve) => {
        let body = '';
        req.setEncoding('utf-8');
        req.on('data', (chunk: string) => (body += chunk));
        req.on('end', () => resolve(body));
      });
    },
    raw: req,
    context: { res },
  };
}
