import { GraphQLError } from 'graphql';
import { GraphQLJSON } from 'graphql-scalars';
import { DomainError, type DomainErrorCode } from '../../domain/decider';
import { inboxTopic, parseSeq, type DeliveredMessage, type Notification } from '../../src/messaging/inbox';
import type { Bus } from '../../src/bus/bus';
import type { Clock } from '../../src/clock';
import { SendRateExceededError, type Messaging, type SentMessage } from '../../src/messaging/messaging';
import { TicketError, type Viewer } from '../../src/identity/tickets';

export interface GraphqlDeps {
  readonly messaging: Messaging;
  readonly bus: Bus;
  readonly clock: Clock;
}

export interface GraphqlContext extends Record<PropertyKey, unknown> {
  readonly viewer: Viewer;
  /** graphql-ws `connectionParams.since`: the last seq the client saw before reconnecting. */
  readonly since?: unknown;
}

export const MAX_PAGE = 100;
/** A reconnecting subscriber gets at most this many missed messages; beyond, it must re-query. */
export const MAX_REPLAY = 500;
/** Live messages buffered for a slow subscriber before it is cut off. */
const MAX_BUFFERED = 1000;

export function createResolvers(deps: GraphqlDeps) {
  return {
    JSON: GraphQLJSON,
    Query: {
      me: (_: unknown, __: unknown, { viewer }: GraphqlContext) => ({ ...viewer, ticketExpiresAt: viewer.expiresAt }),
      notifications: guard(async (_: unknown, args: { first?: number | null; after?: string | null; unreadOnly?: boolean | null }, { viewer }: GraphqlContext) => {
        const first = args.first ?? 20;
        if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) throw badInput(`first must be 1-${MAX_PAGE}`);
        const beforeSeq = args.after ? decodeCursor(args.after) : undefined;
        const page = await deps.messaging.inbox(viewer, { first, unreadOnly: args.unreadOnly ?? false, ...(beforeSeq !== undefined && { beforeSeq }) }, deps.clock());
        const last = page.nodes[page.nodes.length - 1];
        return {
          total: page.total,
          nodes: page.nodes.map(toNotification),
          pageInfo: { endCursor: last ? encodeCursor(last.seq) : null, hasNextPage: page.hasNextPage },
        };
      }),
    },
    Mutation: {
      sendMessage: guard(async (_: unknown, { input }: { input: SendMessageInput }, { viewer }: GraphqlContext) => {
        const props = parseProps(input.props);
        if (input.expire !== undefined && input.expire !== null && input.expire < 0) throw badInput('expire must be 0 or more seconds');
        if (input.execute !== undefined && input.execute !== null && input.execute < 0) throw badInput('execute must be unix seconds');
        const sent = await deps.messaging.send(
          viewer,
          {
            to: input.to,
            title: input.title,
            content: input.content,
            props,
            expireSeconds: input.expire ?? 0,
            ...(input.execute ? { executeAt: new Date(input.execute * 1000) } : {}),
            ...(input.requestId !== undefined && input.requestId !== null && { requestId: input.requestId }),
          },
          deps.clock(),
        );
        return fromSent(sent);
      }),
      acknowledge: guard(async (_: unknown, { ids }: { ids: string[] }, { viewer }: GraphqlContext) => {
        if (ids.some((id) => !/^[0-9a-f-]{36}$/i.test(id))) throw new GraphQLError('no such message', { extensions: { code: 'NOT_FOUND' } });
        return deps.messaging.acknowledge(viewer, ids, deps.clock());
      }),
    },
    Subscription: {
      messages: {
        subscribe: (_: unknown, __: unknown, context: GraphqlContext) => deliveries(deps, context),
        resolve: (message: DeliveredMessage) => fromDelivered(message),
      },
    },
  };
}

interface SendMessageInput {
  to: string[];
  title: string;
  content: string;
  expire?: number | null;
  execute?: number | null;
  props?: unknown;
  requestId?: string | null;
}

/**
 * The user's deliveries: subscribe to the bus first, then replay what was missed since `since` from the
 * read model, then the live ones — skipping any seq already sent, as the two can overlap.
 */
async function* deliveries(deps: GraphqlDeps, { viewer, since }: GraphqlContext): AsyncGenerator<DeliveredMessage> {
  const sinceSeq = parseSince(since);
  const buffered: DeliveredMessage[] = [];
  let overflow = false;
  let wake: (() => void) | undefined;
  const unsubscribe = deps.bus.subscribe(inboxTopic(viewer.appId, viewer.userId), (payload) => {
    if (buffered.length >= MAX_BUFFERED) overflow = true;
    else buffered.push(payload as DeliveredMessage);
    wake?.();
  });
  try {
    let lastSeq = sinceSeq ?? -1n;
    if (sinceSeq !== undefined) {
      const missed = await deps.messaging.deliveredSince(viewer, sinceSeq, MAX_REPLAY + 1, deps.clock());
      if (missed.length > MAX_REPLAY) {
        throw new GraphQLError(`more than ${MAX_REPLAY} messages were missed since ${sinceSeq}; query notifications, then subscribe without since`, {
          extensions: { code: 'REPLAY_LIMIT_EXCEEDED' },
        });
      }
      for (const message of missed) {
        lastSeq = BigInt(message.seq);
        yield message;
      }
    }
    for (;;) {
      while (buffered.length === 0) {
        if (overflow) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      if (overflow) throw new GraphQLError('the subscriber fell too far behind', { extensions: { code: 'SUBSCRIBER_TOO_SLOW' } });
      const message = buffered.shift()!;
      if (BigInt(message.seq) <= lastSeq) continue;
      lastSeq = BigInt(message.seq);
      yield message;
    }
  } finally {
    unsubscribe();
  }
}

function parseSince(since: unknown): bigint | undefined {
  if (since === undefined || since === null || since === '') return undefined;
  const seq = typeof since === 'string' ? parseSeq(since) : typeof since === 'number' && Number.isSafeInteger(since) && since >= 0 ? BigInt(since) : undefined;
  if (seq !== undefined) return seq;
  throw badInput('connectionParams.since must be a seq (a non-negative integer)');
}

function fromDelivered(message: DeliveredMessage) {
  return {
    id: message.messageId,
    seq: message.seq,
    title: message.title,
    content: message.content,
    sender: message.sender,
    sentAt: message.sentAt,
    scheduledFor: null,
    expiresAt: message.expiresAt,
    props: message.props,
    meta: { realm: message.appId, seq: message.seq, sender: message.sender, stime: message.sentAt },
  };
}

function fromSent(message: SentMessage) {
  return {
    id: message.id,
    seq: null,
    title: message.title,
    content: message.content,
    sender: message.sender,
    sentAt: message.sentAt,
    scheduledFor: message.scheduledFor,
    expiresAt: message.expiresAt,
    props: message.props,
    // The seq is assigned when the delivery is projected; the subscription and query carry it.
    meta: null,
  };
}

function toNotification(notification: Notification) {
  return {
    ...fromDelivered(notification),
    type: notification.type,
    read: notification.readAt !== null,
    acknowledged: notification.acknowledgedAt !== null,
  };
}

function parseProps(props: unknown): Record<string, string> | null {
  if (props === undefined || props === null) return null;
  if (typeof props !== 'object' || Array.isArray(props) || Object.values(props).some((v) => typeof v !== 'string')) {
    throw badInput('props must be an object of string values');
  }
  return props as Record<string, string>;
}

const encodeCursor = (seq: string) => Buffer.from(`seq:${seq}`).toString('base64url');

function decodeCursor(cursor: string): bigint {
  const match = /^seq:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  const seq = match ? parseSeq(match[1]!) : undefined;
  if (seq === undefined) throw badInput('after is not a cursor from pageInfo.endCursor');
  return seq;
}

function badInput(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });
}

const DOMAIN_CODES: Record<DomainErrorCode, string> = {
  invalid: 'BAD_USER_INPUT',
  not_found: 'NOT_FOUND',
  forbidden: 'FORBIDDEN',
  conflict: 'CONFLICT',
  expired: 'NOT_FOUND',
};

/** Maps herald's errors to typed GraphQL errors; anything unexpected is left for formatError to mask. */
function guard<Args extends unknown[], R>(resolver: (...args: Args) => Promise<R>): (...args: Args) => Promise<R> {
  return async (...args) => {
    try {
      return await resolver(...args);
    } catch (error) {
      throw toGraphqlError(error);
    }
  };
}

export function toGraphqlError(error: unknown): unknown {
  if (error instanceof GraphQLError) return error;
  if (error instanceof DomainError) return new GraphQLError(error.message, { extensions: { code: DOMAIN_CODES[error.code] } });
  if (error instanceof SendRateExceededError) return new GraphQLError(error.message, { extensions: { code: 'RATE_LIMITED', retryAfterSeconds: error.retryAfterSeconds } });
  if (error instanceof TicketError) return new GraphQLError(error.message, { extensions: { code: 'UNAUTHENTICATED', reason: error.problem } });
  return error;
}
