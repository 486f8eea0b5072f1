import { readFileSync } from 'node:fs';
import path from 'node:path';
import { makeExecutableSchema } from '@graphql-tools/schema';
import express from 'express';
import { GraphQLError, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { Response } from 'graphql-http';
import { WebSocketServer, type WebSocket } from 'ws';
import { isDeviceTokenForm, type Devices } from '../../src/devices/devices';
import { TicketError, type Tickets } from '../../src/identity/tickets';
import type { Rtio } from '../../src/rtio/deviceCalls';
import type { Clock } from '../../src/runtime/clock';
import type { Logger } from '../../src/runtime/logger';
import { deviceResolvers } from './deviceResolvers';
import { eventResolvers } from './eventResolvers';
import { graphiqlRouter } from './graphiql';
import { graphqlHttpHandler, storeUnavailable } from './graphqlHttp';
import { serveGraphqlWs } from './graphqlWsTransport';
import { toGraphqlError, type GraphqlContext } from './guards';
import { OperationChecks } from './operationChecks';
import { platformPushResolvers } from './platformPushResolvers';
import { createResolvers, type GraphqlDeps } from './resolvers';
import { retentionResolvers } from './retentionResolvers';
import { rtioResolvers } from './rtioResolvers';
import { SharedSubscriptions } from './sharedSubscription';

/** GraphQL over HTTP (graphql-http) and WebSocket (graphql-ws) on `/graphql`. See docs/api/graphql.md. */

export const GRAPHQL_PATH = '/graphql';

export function buildSchema(deps: GraphqlDeps): GraphQLSchema {
  const typeDefs = readFileSync(path.join(__dirname, 'schema.graphql'), 'utf8');
  return makeExecutableSchema({
    typeDefs,
    resolvers: [
      createResolvers(deps),
      deviceResolvers(deps),
      rtioResolvers(deps),
      eventResolvers(deps),
      platformPushResolvers(deps),
      retentionResolvers(deps),
    ],
  });
}

/** What the servers authenticate with: tickets (users), device tokens (devices), RTIO device keys (RTIO devices). */
interface ServerDeps {
  readonly schema: GraphQLSchema;
  readonly checks: OperationChecks;
  readonly tickets: Tickets;
  readonly devices: Pick<Devices, 'authenticate'>;
  readonly rtio: Pick<Rtio, 'authenticateDevice'>;
  readonly clock: Clock;
  readonly log: Logger;
}

export function graphqlRouter(deps: ServerDeps): express.Router {
  const router = express.Router();
  const { checks } = deps;
  const unauthorized = (error: GraphQLError): Response => [
    JSON.stringify({ errors: [error.toJSON()] }),
    { status: 401, statusText: 'Unauthorized', headers: { 'content-type': 'application/json; charset=utf-8' } },
  ];
  const handler = graphqlHttpHandler<GraphqlContext>(
    {
      schema: deps.schema,
      // Parsed (kept per text), authenticated and checked here, and handed to graphql-http as the
      // arguments to execute, so that it neither parses nor validates again; the order is its own:
      // a syntax error, then 401, then the checks (OperationChecks.check).
      onSubscribe: async (req, params) => {
        let document: DocumentNode;
        try {
          document = checks.parse(params.query);
        } catch (error) {
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        const principal = await authenticateHeader(deps, req.raw.headers.authorization, deps.clock());
        if (principal instanceof GraphQLError) return unauthorized(principal);
        const errors = checks.check(document, params);
        if (errors.length > 0) return [...errors];
        return {
          schema: deps.schema,
          document,
          variableValues: params.variables,
          operationName: params.operationName,
          contextValue: principal,
        };
      },
      formatError: (error) => maskUnexpected(error, deps.log),
    },
    deps.log,
  );
  router.use(graphiqlRouter(GRAPHQL_PATH));
  router.use(GRAPHQL_PATH, express.json({ limit: '256kb' }));
  router.all(GRAPHQL_PATH, handler);
  router.use(GRAPHQL_PATH, bodyError(deps.log));
  return router;
}

/**
 * graphql-ws for GRAPHQL_PATH (the HTTP server routes upgrades to it: api/sockets/upgrades.ts): a user's
 * ticket comes in `connectionParams.ticket`, a device's token in `connectionParams.deviceToken`, an RTIO
 * device's id and key in `connectionParams.rtioDeviceId` and `rtioDeviceKey` (exactly one of the three
 * kinds); a bad one, or more than one kind, closes the socket (4403). A ticket's socket is closed when
 * the ticket expires; a device token does not expire (its registration's end is checked per operation:
 * deviceResolvers.ts); nor does an RTIO device's key (RTIO devices are never deleted).
 */
export function graphqlWsServer(deps: ServerDeps): { readonly wss: WebSocketServer; close(): Promise<void> } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 });
  const principals = new WeakMap<object, GraphqlContext>();
  const subscriptions = new SharedSubscriptions((error) => maskUnexpected(error, deps.log));
  const expiries = new TicketExpiries(deps.clock);
  const disposable = serveGraphqlWs<Record<string, unknown>>(
    {
      schema: deps.schema,
      onConnect: async (ctx) => {
        const principal = await authenticateConnection(deps, ctx.connectionParams ?? {});
        // Checked once: the principal stays with the socket, its credentials do not (a secret less in memory, ≈0.3 KB).
        (ctx as { connectionParams?: unknown }).connectionParams = undefined;
        if (!principal) return false;
        principals.set(ctx.extra, principal);
        if (principal.viewer) expiries.watch(ctx.extra.socket, Date.parse(principal.viewer.expiresAt));
        return true;
      },
      // Nothing reaches here unauthenticated (graphql-ws runs no operation before onConnect allowed it).
      context: (ctx): GraphqlContext => principals.get(ctx.extra) ?? {},
      // Parsed and validated here, not through graphql-ws's `parse` and `validate` hooks: `validate` is
      // not given the variables, and the request rule needs them (`first: $first`).
      onSubscribe: (ctx, id, payload) => {
        let document: DocumentNode;
        try {
          document = deps.checks.parse(payload.query);
        } catch (error) {
          // A syntax error is this operation's error; thrown, graphql-ws would close the socket with all its operations.
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        const errors = deps.checks.check(document, payload);
        if (errors.length > 0) return [...errors];
        return subscriptions.attach(
          { schema: deps.schema, document, variableValues: payload.variables, operationName: payload.operationName },
          { socket: ctx.extra.socket, id },
        );
      },
      subscribe: subscriptions.subscribe,
      // A query's or mutation's result, and a subscription's that fails before its first result.
      onNext: (_ctx, _id, _payload, _args, { errors, ...result }) =>
        errors ? { ...result, errors: errors.map((e) => maskUnexpected(e, deps.log).toJSON()) } : undefined,
      onError: (_ctx, _id, _payload, errors) => errors.map((e) => maskUnexpected(e, deps.log).toJSON()),
      onClose: (ctx) => expiries.forget(ctx.extra.socket),
    },
    wss,
    deps.log,
  );
  return {
    wss,
    async close() {
      expiries.stop();
      for (const client of wss.clients) client.terminate();
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/**
 * A socket lives no longer than its ticket: at expiry it is closed as Forbidden (4403), as at connect.
 * One sweep a second for all sockets, not a timer each (a timer, its closure and a close listener were
 * ≈0.8 KB per idle socket).
 */
class TicketExpiries {
  private readonly expiries = new Map<WebSocket, number>();
  private readonly sweep: NodeJS.Timeout;

  constructor(private readonly clock: Clock) {
    this.sweep = setInterval(() => this.closeExpired(), 1000).unref();
  }

  watch(socket: WebSocket, expiresAt: number): void {
    if (socket.readyState === socket.OPEN) this.expiries.set(socket, expiresAt);
  }

  forget(socket: WebSocket): void {
    this.expiries.delete(socket);
  }

  stop(): void {
    clearInterval(this.sweep);
  }

  private closeExpired(): void {
    const now = this.clock().getTime();
    for (const [socket, expiresAt] of this.expiries) {
      if (expiresAt > now) continue;
      this.expiries.delete(socket);
      socket.close(4403, 'Forbidden: ticket expired');
    }
  }
}

/**
 * A graphql-ws connection's principal, from exactly one kind of credential in its `connectionParams`
 * (graphqlWsServer); undefined when they do not authenticate.
 */
async function authenticateConnection(
  deps: Pick<ServerDeps, 'tickets' | 'devices' | 'rtio' | 'clock'>,
  params: Readonly<Record<string, unknown>>,
): Promise<GraphqlContext | undefined> {
  const { ticket, deviceToken, rtioDeviceId, rtioDeviceKey, since, pending } = params;
  const kinds = [
    ticket !== undefined,
    deviceToken !== undefined,
    rtioDeviceId !== undefined || rtioDeviceKey !== undefined,
  ].filter(Boolean).length;
  if (kinds !== 1) return undefined;
  if (rtioDeviceId !== undefined || rtioDeviceKey !== undefined) {
    if (typeof rtioDeviceId !== 'string' || typeof rtioDeviceKey !== 'string') return undefined;
    const device = await deps.rtio.authenticateDevice(rtioDeviceId, rtioDeviceKey);
    return device ? { rtioDevice: { deviceId: rtioDeviceId, appId: device.appId } } : undefined;
  }
  if (deviceToken !== undefined) {
    if (typeof deviceToken !== 'string') return undefined;
    const device = await deps.devices.authenticate(deviceToken);
    return device ? { device } : undefined;
  }
  if (typeof ticket !== 'string') return undefined;
  try {
    return { viewer: await deps.tickets.authenticate(ticket, deps.clock()), since, pending };
  } catch (error) {
    if (error instanceof TicketError) return undefined;
    throw error;
  }
}

/**
 * A Bearer credential is a ticket or a device token; their forms tell them apart (isDeviceTokenForm).
 * An RTIO device sends `RtioDevice <device_id>:<device_key>`.
 */
async function authenticateHeader(
  deps: Pick<ServerDeps, 'tickets' | 'devices' | 'rtio'>,
  header: string | undefined,
  now: Date,
): Promise<GraphqlContext | GraphQLError> {
  const rtio = /^RtioDevice\s+(\S+)$/i.exec(header ?? '');
  if (rtio) {
    const credential = rtio[1]!;
    const colon = credential.indexOf(':');
    const deviceId = colon < 0 ? '' : credential.slice(0, colon);
    const device = colon < 0 ? undefined : await deps.rtio.authenticateDevice(deviceId, credential.slice(colon + 1));
    return device
      ? { rtioDevice: { deviceId, appId: device.appId } }
      : new GraphQLError(
          'the RTIO device_id and device_key do not match a device (send Authorization: RtioDevice <device_id>:<device_key>)',
          { extensions: { code: 'UNAUTHENTICATED' } },
        );
  }
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!match)
    return new GraphQLError('send the ticket as Authorization: Bearer <ticket> (a device: Bearer <deviceToken>)', {
      extensions: { code: 'UNAUTHENTICATED' },
    });
  const credential = match[1]!;
  if (isDeviceTokenForm(credential)) {
    const device = await deps.devices.authenticate(credential);
    return device
      ? { device }
      : new GraphQLError('the device token is not valid, or its registration has ended', {
          extensions: { code: 'UNAUTHENTICATED' },
        });
  }
  try {
    return { viewer: await deps.tickets.authenticate(credential, now) };
  } catch (error) {
    const typed = toGraphqlError(error);
    if (typed instanceof GraphQLError) return typed;
    throw error;
  }
}

/**
 * Errors of the request itself — graphql-http's request checks (a missing or null query, a batch), a
 * syntax or validation error, a variable of the wrong type — are the client's: BAD_REQUEST, or
 * BAD_USER_INPUT for variables. Errors herald did not anticipate, raised while resolving or by a
 * subscription's source stream, keep their details in the log, not in the response.
 */
function maskUnexpected(error: Readonly<GraphQLError | Error>, log: Logger): GraphQLError {
  if (!(error instanceof GraphQLError)) return new GraphQLError(error.message, { extensions: { code: 'BAD_REQUEST' } });
  if (error.extensions?.code) return error;
  const retyped = (code: string) =>
    new GraphQLError(error.message, { ...(error.nodes && { nodes: error.nodes }), extensions: { code } });
  if (error.path === undefined && /^Variable "\$/.test(error.message)) return retyped('BAD_USER_INPUT');
  // Thrown while resolving a field, or outside any field by something not a GraphQLError — a
  // subscription's source stream failing (graphql-ws wraps what it threw): herald's failure.
  const thrown = error.originalError;
  if (thrown && (error.path !== undefined || !(thrown instanceof GraphQLError))) {
    const unavailable = storeUnavailable(thrown, error.path);
    if (unavailable) return unavailable;
    log.error({ err: thrown, path: error.path }, 'graphql: internal error');
    return new GraphQLError('internal error', {
      ...(error.path && { path: error.path }),
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
  }
  return error.path === undefined ? retyped('BAD_REQUEST') : error;
}

/** A body express.json could not read (malformed JSON, too large), answered in GraphQL's envelope. */
function bodyError(log: Logger): express.ErrorRequestHandler {
  return (error: unknown, _req, res, next) => {
    if (res.headersSent) return next(error);
    const status = (error as { status?: number }).status ?? 500;
    if (status >= 500) {
      log.error({ err: error }, 'graphql: unexpected error');
      return res
        .status(500)
        .json({ errors: [{ message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
    }
    const message = status === 413 ? 'the request body is over 256 KB' : 'the request body is not valid JSON';
    return res.status(status).json({ errors: [{ message, extensions: { code: 'BAD_REQUEST' } }] });
  };
}
