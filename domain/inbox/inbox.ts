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
 *   per user, here, not on the broadcast's own stream (which would grow with every user of the app).
 */

export const NotificationStatsCleared = t.type({
  type: t.literal('NotificationStatsCleared'),
  data: t.type({ appId: t.string, userId: t.string, clearedAt: t.string }),
});
export const InboxEvent = t.union([NotificationStatsCleared, NotificationRead]);
export type InboxEvent = t.TypeOf<typeof InboxEvent>;

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
        'the user reads a **site broadcast** (`PUT /notifications/{messageid}`); once per user. Kept here, not on ' +
        "the broadcast's stream, which would otherwise grow with every user of the app",
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
export type InboxCommand = ClearNotificationStats | MarkBroadcastRead;
export interface InboxState {
  readonly broadcastsRead: ReadonlySet<string>;
  /** NotificationStatsCleared events so far. */
  readonly statsClears: number;
}

/** `inbox-<appId>.<userId>`, the app id's `.` and `%` percent-encoded (streamNameOf): no two inboxes share a stream. */
export const inboxStreamName = (appId: string, userId: string) => streamNameOf('inbox', appId, userId);

export const inboxDecider: Decider<InboxCommand, InboxEvent, InboxState> = {
  initialState: () => ({ broadcastsRead: new Set(), statsClears: 0 }),
  evolve(state, event) {
    switch (event.type) {
      case 'NotificationStatsCleared':
        return { ...state, statsClears: state.statsClears + 1 };
      case 'NotificationRead':
        return { ...state, broadcastsRead: new Set([...state.broadcastsRead, event.data.notificationId]) };
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
      case 'MarkBroadcastRead': {
        if (state.broadcastsRead.has(command.notificationId)) return [];
        const { notificationId, appId, userId, now } = command;
        return [{ type: 'NotificationRead', data: { notificationId, appId, userId, readAt: now } }];
      }
      default:
        return unreachable(command);
    }
  },
};
