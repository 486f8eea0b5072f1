import { GraphQLError } from 'graphql';
import { GraphQLJSON } from 'graphql-scalars';
import {
  LEVELS,
  NotificationTypeCodec,
  NOTIFICATION_TYPES,
  type NotificationType,
} from '../../domain/notification/notification';
import { characterCount, isStorableText, UUID } from '../../domain/text';
import { splitUserList, USER_ID_MAX } from '../../domain/ticket/ticket';
import { checkItemNames, checkOwner } from '../../domain/whitelist/itemOwner';
import type { EventFeed } from '../../src/analysts/eventFeed';
import type { Bus } from '../../src/bus/bus';
import { broadcastStatsTopic, notificationStatsTopic } from '../../src/bus/topics';
import type { NotificationFilter, ReceivedNotification } from '../../src/datahub/datahub';
import type { DeviceGateway } from '../../src/devices/deviceGateway';
import type { Devices } from '../../src/devices/devices';
import type { TerminalPresence } from '../../src/devices/presence';
import type { Pushes } from '../../src/devices/pushes';
import type { Viewer } from '../../src/identity/tickets';
import { parseSeq, type DeliveredMessage, type Notification } from '../../src/messaging/inboxQueries';
import type { Messaging, SentMessage } from '../../src/messaging/messaging';
import type { PlatformCredentials } from '../../src/platformPush/credentials';
import type { Rtio } from '../../src/rtio/deviceCalls';
import type { Clock } from '../../src/runtime/clock';
import type { AppRetentionSettings } from '../../src/storage/appRetentionSettings';
import { closable } from './closable';
import type { DatahubInbox } from './datahubInbox';
import { DeliveryFeed } from './deliveryFeed';
import { asUser, badInput, guard, type UserContext } from './guards';

export interface GraphqlDeps {
  readonly messaging: Messaging;
  readonly datahub: DatahubInbox;
  readonly bus: Bus;
  readonly clock: Clock;
  readonly devices: Devices;
  readonly pushes: Pushes;
  readonly gateway: DeviceGateway;
  /** Users with a live `messages` subscription (deliveryFeed.ts adds them). */
  readonly terminals: TerminalPresence;
  /** RTIO device RPC: its devices' calls, replies and reports (rtioResolvers.ts). */
  readonly rtio: Pick<Rtio, 'connect' | 'reply' | 'report'>;
  /** The app's event stream, for its admins (eventResolvers.ts). */
  readonly events: Pick<EventFeed, 'page' | 'tail' | 'checkCursor'>;
  /** The app's platform-push credentials, for its admins (platformPushResolvers.ts). */
  readonly platformCredentials: Pick<
    PlatformCredentials,
    'setApns' | 'describeApns' | 'setFcm' | 'describeFcm' | 'setVapid' | 'describeVapid'
  >;
  /** How long the app keeps its records that never end, for its admins (retentionResolvers.ts). */
  readonly appRetention: Pick<AppRetentionSettings, 'set' | 'view'>;
}

export const MAX_PAGE = 100;
/** Koala's messages in `notifications` (the type projections/koalaInbox.ts gives them). */
export const KOALA_TYPE = 'koala';
const LIST_TYPES: readonly string[] = [KOALA_TYPE, ...NOTIFICATION_TYPES];

export function createResolvers(deps: GraphqlDeps) {
  return {
    JSON: GraphQLJSON,
    Query: {
      me: asUser((_: unknown, __: unknown, { viewer }: UserContext) => ({
        ...viewer,
        ticketExpiresAt: viewer.expiresAt,
      })),
      notifications: asUser(
        guard((_: unknown, args: NotificationsArgs, { viewer }: UserContext) => notifications(deps, viewer, args)),
      ),
      notificationStats: asUser(
        guard((_: unknown, __: unknown, { viewer }: UserContext) => deps.datahub.stats(viewer)),
      ),
    },
    Mutation: {
      sendMessage: asUser(
        guard(async (_: unknown, { input }: { input: SendMessageInput }, { viewer }: UserContext) => {
          const props = parseProps(input.props);
          if (input.expire !== undefined && input.expire !== null && input.expire < 0)
            throw badInput('expire must be 0 or more seconds');
          if (input.execute !== undefined && input.execute !== null && input.execute < 0)
            throw badInput('execute must be unix seconds');
          const sent = await deps.messaging.send(
            viewer,
            {
              // An entry may be a list as Koala's users are (the SDK's sendMessage(target) passes Koala's target through).
              to: input.to.flatMap(splitUserList),
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
      ),
      acknowledge: asUser(
        guard(async (_: unknown, { ids }: { ids: string[] }, { viewer }: UserContext) => {
          // Every id of a message delivered to the viewer is acknowledged (an expired one counts as done);
          // the others (not a message id, unknown, not delivered yet, sent to other users) are named in the
          // error, which also carries how many were acknowledged (docs/api/graphql.md).
          const messageIds = ids.filter((id) => UUID.test(id));
          const { acknowledged, refused } =
            messageIds.length > 0 || ids.length === 0
              ? await deps.messaging.acknowledge(viewer, messageIds, deps.clock())
              : { acknowledged: 0, refused: [] };
          const notFound = [
            ...ids.filter((id) => !UUID.test(id)),
            ...refused.filter((r) => r.error.code !== 'forbidden').map((r) => r.id),
          ];
          const othersMessages = refused.filter((r) => r.error.code === 'forbidden').map((r) => r.id);
          if (notFound.length === 0 && othersMessages.length === 0) return acknowledged;
          const named = (list: readonly string[]) =>
            list
              .slice(0, 10)
              .map((id) => JSON.stringify(id.slice(0, 64)))
              .join(', ') + (list.length > 10 ? ', …' : '');
          const reasons = [
            ...(notFound.length > 0 ? [`no message delivered to you: ${named(notFound)}`] : []),
            ...(othersMessages.length > 0 ? [`sent to other users: ${named(othersMessages)}`] : []),
          ];
          throw new GraphQLError(`${acknowledged} acknowledged; refused ${reasons.join('; ')}`, {
            extensions: {
              code: notFound.length > 0 ? 'NOT_FOUND' : 'FORBIDDEN',
              acknowledged,
              refused: [...notFound, ...othersMessages],
            },
          });
        }),
      ),
      markRead: asUser(
        guard(async (_: unknown, { seq }: { seq: string }, { viewer }: UserContext) => {
          const position = parseSeq(String(seq));
          if (position === undefined) throw badInput('seq must be a notification seq (a non-negative integer)');
          // Every messageid is a position below 2^53; a larger seq names nothing the caller received.
          if (position > MAX_SAFE_POSITION)
            throw new GraphQLError(`no notification ${position}`, { extensions: { code: 'NOT_FOUND' } });
          await deps.datahub.markRead(viewer, Number(position), deps.clock());
          return true;
        }),
      ),
      clearNotificationStats: asUser(
        guard(async (_: unknown, __: unknown, { viewer }: UserContext) => {
          await deps.datahub.clearStats(viewer, deps.clock());
          return deps.datahub.stats(viewer);
        }),
      ),
      applyWhitelist: asUser(
        guard(
          async (
            _: unknown,
            args: { repname: string; itemname: string; owner?: string | null },
            { viewer }: UserContext,
          ) => {
            // No owner (null or absent): the item's registered owner (docs/api/datahub.md, "Item owners"). The
            // rules are the decider's (domain/whitelist); checked here first only to name this API's arguments.
            const owner = args.owner ?? undefined;
            checkItemNames(args.repname, args.itemname);
            if (owner !== undefined) checkOwner(owner);
            await deps.datahub.applyWhitelist(
              viewer,
              { repname: args.repname, itemname: args.itemname, owner },
              deps.clock(),
            );
            return true;
          },
        ),
      ),
    },
    Subscription: {
      messages: {
        subscribe: asUser(
          (_: unknown, __: unknown, { viewer, since, pending }: UserContext) =>
            new DeliveryFeed(deps, viewer, since, pending),
        ),
        resolve: (message: DeliveredMessage) => fromDelivered(message),
      },
      notificationStats: {
        subscribe: asUser((_: unknown, __: unknown, context: UserContext) =>
          closable((signal) => statsUpdates(deps, context, signal)),
        ),
        resolve: (stats: Record<NotificationType, number>) => stats,
      },
    },
  };
}

interface NotificationsArgs {
  first?: number | null;
  after?: string | null;
  unreadOnly?: boolean | null;
  type?: string | null;
  sender?: string | null;
  level?: number | null;
  forClient?: boolean | null;
}

const MAX_SAFE_POSITION = BigInt(Number.MAX_SAFE_INTEGER);

/** A node of `notifications`. */
type ListedNotification = ReturnType<typeof toNotification>;

/**
 * The user's one list: Koala's inbox and datahub's, merged by position (a Koala `seq` and a datahub
 * `messageId` are both the global position of the event that delivered them), newest first. A page
 * reads up to `first` of each list before the cursor's position and keeps the newest `first`; the
 * total is the sum of both lists' totals for the filter. A filter one list cannot match (a datahub
 * type, level 50, the client list for Koala; type "koala" for datahub) leaves that list out.
 */
async function notifications(deps: GraphqlDeps, viewer: Viewer, args: NotificationsArgs) {
  const first = args.first ?? 20;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) throw badInput(`first must be 1-${MAX_PAGE}`);
  const filter = parseListFilter(args);
  const beforeSeq = args.after ? decodeCursor(args.after) : undefined;
  const now = deps.clock();
  const [koala, datahub] = await Promise.all([
    filter.koala
      ? deps.messaging.inbox(
          viewer,
          {
            first,
            unreadOnly: filter.unreadOnly,
            ...(beforeSeq !== undefined && { beforeSeq }),
            ...(filter.sender !== undefined && { sender: filter.sender }),
          },
          now,
        )
      : { total: 0, nodes: [], hasNextPage: false },
    filter.datahub
      ? deps.datahub.list(viewer, {
          ...filter.datahub,
          page: 1,
          // One more than the page: whether datahub's list goes on past it.
          size: first + 1,
          // Every messageId is below 2^53: a cursor past it bounds nothing.
          ...(beforeSeq !== undefined && beforeSeq <= MAX_SAFE_POSITION && { beforeMessageId: Number(beforeSeq) }),
        })
      : { total: 0, results: [] },
  ]);
  // Both lists come newest first: the page is the newest `first` of their merge.
  const nodes: ListedNotification[] = [];
  let k = 0;
  let d = 0;
  while (nodes.length < first && (k < koala.nodes.length || d < datahub.results.length)) {
    const koalaNode = koala.nodes[k];
    const datahubNode = datahub.results[d];
    if (datahubNode === undefined || (koalaNode !== undefined && BigInt(koalaNode.seq) >= datahubNode.messageId)) {
      nodes.push(toNotification(koalaNode!));
      k++;
    } else {
      nodes.push(fromReceived(viewer.appId, datahubNode));
      d++;
    }
  }
  const last = nodes[nodes.length - 1];
  return {
    total: koala.total + datahub.total,
    nodes,
    // Koala's list says whether it goes on past its `first`; datahub's, by answering `first + 1`.
    pageInfo: {
      endCursor: last ? encodeCursor(last.seq) : null,
      hasNextPage: koala.hasNextPage || koala.nodes.length + datahub.results.length > first,
    },
  };
}

/** Which lists `notifications` reads, and datahub's filter; bad values are BAD_USER_INPUT. */
function parseListFilter(args: NotificationsArgs): {
  unreadOnly: boolean;
  sender?: string;
  koala: boolean;
  datahub?: Omit<NotificationFilter, 'page' | 'size' | 'beforeMessageId'>;
} {
  const { type, sender, level } = args;
  const unreadOnly = args.unreadOnly ?? false;
  const forClient = args.forClient ?? false;
  if (type !== undefined && type !== null && !LIST_TYPES.includes(type))
    throw badInput(`type must be one of ${LIST_TYPES.join(', ')}`);
  if (sender !== undefined && sender !== null && (characterCount(sender) > USER_ID_MAX || !isStorableText(sender))) {
    throw badInput(`sender must be at most ${USER_ID_MAX} characters of text`);
  }
  if (level !== undefined && level !== null && !(LEVELS as readonly number[]).includes(level))
    throw badInput(`level must be ${LEVELS.join(' or ')}`);
  const datahubType = type !== undefined && type !== null && NotificationTypeCodec.is(type) ? type : undefined;
  // Koala messages are level 0 and in the browser's list only.
  const koala =
    (type === undefined || type === null || type === KOALA_TYPE) &&
    (level === undefined || level === null || level === 0) &&
    !forClient;
  const datahub =
    type === KOALA_TYPE
      ? undefined
      : {
          forClient,
          status: unreadOnly ? ('unread' as const) : ('either' as const),
          ...(datahubType !== undefined && { type: datahubType }),
          ...(sender !== undefined && sender !== null && { sender }),
          ...(level !== undefined && level !== null && { level }),
        };
  return { unreadOnly, koala, ...(sender !== undefined && sender !== null && { sender }), ...(datahub && { datahub }) };
}

/** A datahub notification as a node of `notifications`: see the Notification type in schema.graphql. */
function fromReceived(appId: string, notification: ReceivedNotification): ListedNotification {
  const seq = String(notification.messageId);
  const sentAt = notification.sentAt.toISOString();
  const content = notification.data['content'];
  return {
    id: notification.notificationId,
    seq,
    type: notification.type,
    title: '',
    content: typeof content === 'string' ? content : '',
    sender: notification.sender,
    sentAt,
    scheduledFor: null,
    expiresAt: null,
    props: null,
    meta: { realm: appId, seq, sender: notification.sender, stime: sentAt },
    read: notification.read,
    acknowledged: notification.read,
    level: notification.level,
    data: notification.data,
  };
}

/**
 * The user's unread counts: now, then again after each commit that changed them (the datahub
 * projection publishes the user's topic, or the app's for a site broadcast). A change only marks the
 * counts stale; the counts are read when the subscriber is ready for them, so a burst of changes —
 * during a read, or while the client is slow — is one read more, never a queue of them.
 */
async function* statsUpdates(
  deps: GraphqlDeps,
  { viewer }: UserContext,
  signal: AbortSignal,
): AsyncGenerator<Record<NotificationType, number>> {
  let stale = true; // the current counts, at once
  let wake: (() => void) | undefined;
  const changed = () => {
    stale = true;
    wake?.();
  };
  signal.addEventListener('abort', () => wake?.(), { once: true });
  // Subscribed before the first read, so no change between the two is lost; a gap on the bus may have
  // lost one, so it reads the counts again too.
  const unsubscribe = [
    deps.bus.subscribe(notificationStatsTopic(viewer.appId, viewer.userId), changed),
    deps.bus.subscribe(broadcastStatsTopic(viewer.appId), changed),
    deps.bus.onGap(changed),
  ];
  try {
    for (;;) {
      while (!stale && !signal.aborted) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      if (signal.aborted) return;
      stale = false;
      const stats = await deps.datahub.stats(viewer);
      if (signal.aborted) return;
      // A fresh object per push: sharedSubscription keys its shared results on the payload object.
      yield { ...stats };
    }
  } finally {
    for (const off of unsubscribe) off();
  }
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

/** A Koala message as a node of `notifications`: fromDelivered's fields and the inbox's, written out (no spreads: one object shape, built once). */
function toNotification(notification: Notification) {
  return {
    id: notification.messageId,
    seq: notification.seq,
    type: notification.type,
    title: notification.title,
    content: notification.content,
    sender: notification.sender,
    sentAt: notification.sentAt,
    scheduledFor: null as string | null,
    expiresAt: notification.expiresAt,
    props: notification.props,
    meta: { realm: notification.appId, seq: notification.seq, sender: notification.sender, stime: notification.sentAt },
    read: notification.readAt !== null,
    acknowledged: notification.acknowledgedAt !== null,
    level: 0,
    data: null as Record<string, unknown> | null,
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
