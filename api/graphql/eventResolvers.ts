import { GraphQLError } from 'graphql';
import { EVENT_FEED_LIMITS, TooManyTailsError, type AppEventSelection } from '../../src/analysts/eventFeed';
import { eventRecord } from '../../src/analysts/replay';
import { InvalidPositionError, type RecordedEvent } from '../../src/eventStore/eventStore';
import { isAdmin } from '../../src/identity/tickets';
import { closable } from './closable';
import { asUser, badInput, filterText, forbidden, guard, type UserContext } from './guards';
import type { GraphqlDeps } from './resolvers';

/**
 * The analysts' side of GraphQL (docs/analysts.md, "Over GraphQL"): an admin of an app reads and tails
 * the app's events as the store holds them. Everyone else gets FORBIDDEN and nothing else — not even
 * whether their arguments were valid.
 */

interface EventArgs {
  after?: string | null;
  types?: readonly string[] | null;
  stream?: string | null;
  appId?: string | null;
}

const MAX_TYPES = 32;
const MAX_TYPE_LENGTH = 128;
const MAX_STREAM_PREFIX_LENGTH = 256;
const MAX_POSITION = 2n ** 63n - 1n;

export function eventResolvers(deps: GraphqlDeps) {
  return {
    Query: {
      events: asUser(
        guard(async (_: unknown, args: EventArgs & { first?: number | null }, { viewer }: UserContext) => {
          const selection = selectionOf(viewer, args);
          const first = args.first ?? EVENT_FEED_LIMITS.defaultFirst;
          if (!Number.isInteger(first) || first < 1 || first > EVENT_FEED_LIMITS.maxFirst)
            throw badInput(`first must be 1-${EVENT_FEED_LIMITS.maxFirst}`);
          const page = await atCursor(() => deps.events.page(selection, positionOf(args.after), first));
          return {
            nodes: page.events.map(eventRecord),
            pageInfo: { endCursor: page.endPosition?.toString() ?? null, hasNextPage: page.hasNextPage },
          };
        }),
      ),
    },
    Subscription: {
      events: {
        subscribe: asUser(
          guard(async (_: unknown, args: EventArgs, { viewer }: UserContext) => {
            const selection = selectionOf(viewer, args);
            const after = positionOf(args.after);
            if (after !== undefined) await atCursor(() => deps.events.checkCursor(after));
            return closable((signal) => tail(deps, selection, after, signal));
          }),
        ),
        resolve: (event: RecordedEvent) => eventRecord(event),
      },
    },
  };
}

/** The viewer's own app, filtered as asked; FORBIDDEN before anything else for a non-admin or another app. */
function selectionOf(viewer: UserContext['viewer'], args: EventArgs): AppEventSelection {
  if (!isAdmin(viewer)) throw forbidden('the event stream is for role admin');
  if (args.appId !== undefined && args.appId !== null && args.appId !== viewer.appId)
    throw forbidden('an admin reads the events of their own app only');
  const types = args.types ?? undefined;
  if (types && types.length > MAX_TYPES) throw badInput(`types must be at most ${MAX_TYPES} event types`);
  for (const type of types ?? []) filterText('types', type, MAX_TYPE_LENGTH);
  const streamPrefix = filterText('stream', args.stream, MAX_STREAM_PREFIX_LENGTH);
  return {
    appId: viewer.appId,
    ...(types && types.length > 0 && { types }),
    ...(streamPrefix !== undefined && { streamPrefix }),
  };
}

function positionOf(after: string | null | undefined): bigint | undefined {
  if (after === undefined || after === null) return undefined;
  const position = /^\d{1,19}$/.test(after) ? BigInt(after) : undefined;
  if (position === undefined || position > MAX_POSITION)
    throw badInput("after must be a position: an event's position or a page's endCursor");
  return position;
}

/** A position that is no event's (made up, or from another store) is the caller's mistake. */
async function atCursor<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof InvalidPositionError) throw badInput(`after: ${error.message}`);
    throw error;
  }
}

async function* tail(
  deps: GraphqlDeps,
  selection: AppEventSelection,
  after: bigint | undefined,
  signal: AbortSignal,
): AsyncGenerator<RecordedEvent> {
  try {
    yield* deps.events.tail(selection, after, signal);
  } catch (error) {
    if (error instanceof TooManyTailsError)
      throw new GraphQLError(error.message, { extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } });
    throw error;
  }
}
