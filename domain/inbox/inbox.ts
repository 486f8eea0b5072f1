import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { unreachable, type Decider } from '../decider';
import { NotificationRead } from '../notification/notification';
import { streamNameOf } from '../streamName';

/**
 * A user's inbox in one app (datahub): what belongs to the user rather than to one notification.
 * Stream: `inbox-<appId>.<userId>`.
 *
 * - Clearing the stats (`DELETE /notification_stat`) is an event, so a rebuilt read model clears them at
 *   the same point of the history. After a clear the stats count only the unread notifications that
 *   arrived after it; the notifications themselves stay unread.
 * - Reading a site broadcast: a broadcast is one event for the whole app, so who has read it is kept
 *   per user and broadcast, on a stream of its own (`broadcast-read-…`, below): neither on the broadcast's
 *   stream (which would grow with every user of the app) nor on the inbox (which grew with every broadcast
 *   the user read, and was read whole on each; inboxes written before issue 26 still hold such reads).
 *
 * Neither decision needs the inbox's history (docs/architecture.md, "Stream bounds"): a clear needs only
 * the clears appended since the request arrived, a read only its own stream of at most one event.
 */

export const NotificationStatsCleared = t.type({
  type: t.literal('NotificationStatsCleared'),
  data: t.type({ appId: t.string, userId: t.string, clearedAt: t.string }),
});
export const InboxEvent = t.union([NotificationStatsCleared, NotificationRead]);
export type InboxEvent = t.TypeOf<typeof InboxEvent>;
/** The one event of a `broadcast-read-…` stream. */
export const BroadcastReadEvent = NotificationRead;
export type BroadcastReadEvent = t.TypeOf<typeof BroadcastReadEvent>;

/** docs/events.md, inbox: what the codecs cannot say. */
export const inboxCatalogue: CatalogueEntry = {
  title: 'inbox',
  stream: 'inbox-<appId>.<userId>',
  module: 'domain/inbox/inbox.ts',
  union: InboxEvent,
  events: {
    NotificationStatsCleared: {
      when:
        '`DELETE /notification_stat`, GraphQL `clearNotificationStats`; afterwards the stats count only unread notifications ' +
        'delivered after it. Clears made at once by one user append one event (each later one finds it and appends nothing)',
    },
    NotificationRead: {
      when:
        'before issue 26 (stream bounds): the user read a **site broadcast**. No longer appended here (see broadcast read ' +
        'below), still read: projections take it as they take the broadcast read',
    },
  },
  notes: [
    "A clear reads only the inbox's last event (its revision), never the whole stream: the inbox grows with every " +
      'clear, without bound (docs/architecture.md, "Stream bounds").',
  ],
};

/** docs/events.md, broadcast read. */
export const broadcastReadCatalogue: CatalogueEntry = {
  title: 'broadcast read',
  stream: 'broadcast-read-<appId>.<notificationId>.<userId>',
  module: 'domain/inbox/inbox.ts',
  union: BroadcastReadEvent,
  description: [
    "A user's read of a site broadcast to the whole app: a stream per user and broadcast, of one event, so " +
      '"once per user" is the store\'s (an append expecting no stream) and no stream grows with the reads. Since ' +
      'issue 26; before it these reads were appended to the `inbox-…` stream.',
  ],
  events: {
    NotificationRead: {
      when: 'the user reads a **site broadcast** (`PUT /notifications/{messageid}`, GraphQL); once per user',
    },
  },
};

export interface ClearNotificationStats {
  readonly type: 'ClearNotificationStats';
  readonly appId: string;
  readonly userId: string;
  /** How many clears the inbox held when the request arrived (`statsClears` of the state read first). */
  readonly clearsSeen: number;
  readonly now: string;
}
/** The caller found the broadcast in its app's read model; reading it twice records one read. */
export interface MarkBroadcastRead {
  readonly type: 'MarkBroadcastRead';
  readonly appId: string;
  readonly userId: string;
  readonly notificationId: string;
  readonly now: string;
}
export type InboxCommand = ClearNotificationStats;
export interface InboxState {
  /** NotificationStatsCleared events folded (those since the revision it was loaded at: inboxAggregate's window). */
  readonly statsClears: number;
}

/** `inbox-<appId>.<userId>`, the app id's `.` and `%` percent-encoded (streamNameOf): no two inboxes share a stream. */
export const inboxStreamName = (appId: string, userId: string) => streamNameOf('inbox', appId, userId);

export const inboxDecider: Decider<InboxCommand, InboxEvent, InboxState> = {
  initialState: () => ({ statsClears: 0 }),
  evolve(state, event) {
    switch (event.type) {
      case 'NotificationStatsCleared':
        return { statsClears: state.statsClears + 1 };
      // A broadcast read of an inbox written before issue 26: decided on its own stream now.
      case 'NotificationRead':
        return state;
      default:
        return unreachable(event);
    }
  },
  decide(command, state) {
    switch (command.type) {
      // Each clear resets the stats at its point of the history. A clear appended after this request
      // arrived (a concurrent one: the user's other tab, a retry) already cleared them within this
      // request's lifetime, so this one is answered by it and appends nothing: concurrent clears do not
      // contend for the stream.
      case 'ClearNotificationStats':
        if (state.statsClears > command.clearsSeen) return [];
        return [
          {
            type: 'NotificationStatsCleared',
            data: { appId: command.appId, userId: command.userId, clearedAt: command.now },
          },
        ];
      default:
        return unreachable(command.type);
    }
  },
};

/**
 * `broadcast-read-<appId>.<notificationId>.<userId>`. Not `inbox-read-…`: an inbox's stream is `inbox-` then
 * an app id, which may itself begin `read-`, and its user id is written as given.
 */
export const broadcastReadStreamName = (appId: string, notificationId: string, userId: string) =>
  streamNameOf('broadcast-read', appId, notificationId, userId);

export const broadcastReadDecider: Decider<MarkBroadcastRead, BroadcastReadEvent, { readonly read: boolean }> = {
  initialState: () => ({ read: false }),
  evolve: () => ({ read: true }),
  decide(command, state) {
    if (state.read) return [];
    const { notificationId, appId, userId, now } = command;
    return [{ type: 'NotificationRead', data: { notificationId, appId, userId, readAt: now } }];
  },
};
