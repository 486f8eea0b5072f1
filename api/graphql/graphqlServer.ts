import { readFileSync } from 'node:fs';
import path from 'node:path';
import { makeExecutableSchema } from '@graphql-tools/schema';
import express from 'express';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import { createHandler } from 'graphql-http/lib/use/express';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Clock } from '../../src/clock';
import type { Logger } from '../../src/logger';
import { TicketError, type Tickets, type Viewer } from '../../src/identity/tickets';
import { graphiqlRouter } from './graphiql';
import { OperationChecks } from './operationChecks';
import { sharedSubscribe } from './sharedSubscription';
import { createResolvers, toGraphqlError, type GraphqlContext, type GraphqlDeps } from './resolvers';

/** GraphQL over HTTP (graphql-http) and WebSocket (graphql-ws) on `/graphql`. See docs/api/graphql.md. */

export const GRAPHQL_PATH = '/graphql';

export function buildSchema(deps: GraphqlDeps): GraphQLSchema {
  const typeDefs = readFileSync(path.join(__dirname, 'schema.graphql'), 'utf8');
  return makeExecutableSchema({ typeDefs, resolvers: createResolvers(deps) });
}

export function graphqlRouter(deps: { readonly schema: GraphQLSchema; readonly checks: OperationChecks; readonly tickets: Tickets; readonly clock: Clock; readonly log: Logger }): express.Router {
  const router = express.Router();
  const { checks } = deps;
  const handler = createHandler<GraphqlContext>({
    schema: deps.schema,
    context: async (req) => {
      const viewer = await authenticateHeader(deps.tickets, req.raw.headers.authorization, deps.clock());
      if (viewer instanceof GraphQLError) {
        return [JSON.stringify({ errors: [viewer.toJSON()] }), { status: 401, statusText: 'Unauthorized', headers: { 'content-type': 'application/json; charset=utf-8' } }];
      }
      return { viewer };
    },
    parse: checks.parse,
    // graphql-http hands `validate` what `validationRules` returns: here only the per-request rules.
    validationRules: (_req, args) => [checks.complexityRule(args.variableValues as Record<string, unknown> | undefined)],
    validate: (_schema, document, rules) => [...checks.validate(document, rules ?? [])],
    formatError: (error) => maskUnexpected(error, deps.log),
  });
  router.use(graphiqlRouter(GRAPHQL_PATH));
  router.use(GRAPHQL_PATH, express.json({ limit: '256kb' }));
  router.all(GRAPHQL_PATH, handler);
  router.use(GRAPHQL_PATH, bodyError(deps.log));
  return router;
}

/**
 * graphql-ws for GRAPHQL_PATH (the HTTP server routes upgrades to it: api/sockets/upgrades.ts): the
 * ticket comes in `connectionParams.ticket`; a bad one closes the socket (4403).
 */
export function graphqlWsServer(
  deps: { readonly schema: GraphQLSchema; readonly checks: OperationChecks; readonly tickets: Tickets; readonly clock: Clock; readonly log: Logger },
): { readonly wss: WebSocketServer; close(): Promise<void> } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 });
  const viewers = new WeakMap<object, Viewer>();
  const disposable = useServer<Record<string, unknown>, { viewer?: Viewer }>(
    {
      schema: deps.schema,
      onConnect: async (ctx) => {
        const ticket = ctx.connectionParams?.ticket;
        if (typeof ticket !== 'string') return false;
        try {
          const viewer = await deps.tickets.authenticate(ticket, deps.clock());
          viewers.set(ctx.extra, viewer);
          closeAtExpiry(ctx.extra.socket, Date.parse(viewer.expiresAt), deps.clock);
          return true;
        } catch (error) {
          if (error instanceof TicketError) return false;
          throw error;
        }
      },
      context: (ctx): GraphqlContext => ({ viewer: viewers.get(ctx.extra)!, since: ctx.connectionParams?.since }),
      parse: deps.checks.parse,
      validate: (_schema, document) => [...deps.checks.validate(document, [deps.checks.complexityRule(undefined)])],
      subscribe: sharedSubscribe(),
      onError: (_ctx, _id, _payload, errors) => errors.map((e) => maskUnexpected(e, deps.log).toJSON()),
    },
    wss,
  );
  return {
    wss,
    async close() {
      for (const client of wss.clients) client.terminate();
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** A socket lives no longer than its ticket: at expiry it is closed as Forbidden (4403), as at connect. */
function closeAtExpiry(socket: WebSocket, expiresAt: number, clock: Clock): void {
  let timer: NodeJS.Timeout;
  const check = () => {
    const left = expiresAt - clock().getTime();
    if (left <= 0) socket.close(4403, 'Forbidden: ticket expired');
    else timer = setTimeout(check, Math.min(left, 2 ** 31 - 1)).unref(); // setTimeout caps at ~24.8 days
  };
  check();
  socket.once('close', () => clearTimeout(timer));
}

async function authenticateHeader(tickets: Tickets, header: string | undefined, now: Date): Promise<Viewer | GraphQLError> {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!match) return new GraphQLError('send the ticket as Authorization: Bearer <ticket>', { extensions: { code: 'UNAUTHENTICATED' } });
  try {
    return await tickets.authenticate(match[1]!, now);
  } catch (error) {
    const typed = toGraphqlError(error);
    if (typed instanceof GraphQLError) return typed;
    throw error;
  }
}

/**
 * Errors of the request itself — graphql-http's request checks (a missing or null query, a batch), a
 * syntax or validation error, a variable of the wrong type — are the client's: BAD_REQUEST, or
 * BAD_USER_INPUT for variables. Errors herald did not anticipate, raised while resolving, keep their
 * details in the log, not in the response.
 */
function maskUnexpected(error: Readonly<GraphQLError | Error>, log: Logger): GraphQLError {
  if (!(error instanceof GraphQLError)) return new GraphQLError(error.message, { extensions: { code: 'BAD_REQUEST' } });
  if (error.extensions?.code) return error;
  if (error.path === undefined) {
    const code = /^Variable "\$/.test(error.message) ? 'BAD_USER_INPUT' : 'BAD_REQUEST';
    return new GraphQLError(error.message, { ...(error.nodes && { nodes: error.nodes }), extensions: { code } });
  }
  if (!error.originalError) return error;
  log.error({ err: error.originalError, path: error.path }, 'graphql: internal error');
  return new GraphQLError('internal error', { path: error.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}

/** A body express.json could not read (malformed JSON, too large), answered in GraphQL's envelope. */
function bodyError(log: Logger): express.ErrorRequestHandler {
  return (error: unknown, _req, res, next) => {
    if (res.headersSent) return next(error);
    const status = (error as { status?: number }).status ?? 500;
    if (status >= 500) {
      log.error({ err: error }, 'graphql: unexpected error');
      return res.status(500).json({ errors: [{ message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
    }
    const message = status === 413 ? 'the request body is over 256 KB' : 'the request body is not valid JSON';
    return res.status(status).json({ errors: [{ message, extensions: { code: 'BAD_REQUEST' } }] });
  };
}
