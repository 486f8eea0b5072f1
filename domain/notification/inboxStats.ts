import * as t from 'io-ts';
import { unreachable, type Decider } from '../decider';

/**
 * A user's notification stats (datahub's `DELETE /notification_stat`): clearing them is an event, so a
 * rebuilt read model clears them at the same point of the history. After a clear, the stats count only
 * the unread notifications that arrived after it; the notifications themselves stay unread.
 * Stream: `inbox-<appId>.<userId>`.
 */

export const NotificationStatsCleared = t.type({
  type: t.literal('NotificationStatsCleared'),
  data: t.type({ appId: t.string, userId: t.string, clearedAt: t.string }),
});
export const InboxStatsEvent = NotificationStatsCleared;
export type InboxStatsEvent = t.TypeOf<typeof InboxStatsEvent>;

export interface ClearNotificationStats {
  readonly type: 'ClearNotificationStats';
  readonly appId: string;
  readonly userId: string;
  readonly now: string;
}
export type InboxStatsCommand = ClearNotificationStats;
export type InboxStatsState = null;

export const inboxStreamName = (appId: string, userId: string) => `inbox-${appId}.${userId}`;

export const inboxStatsDecider: Decider<InboxStatsCommand, InboxStatsEvent, InboxStatsState> = {
  initialState: () => null,
  evolve: (state) => state,
  decide(command) {
    switch (command.type) {
      // Every clear counts: each one resets the stats at its point of the history.
      case 'ClearNotificationStats':
        return [{ type: 'NotificationStatsCleared', data: { appId: command.appId, userId: command.userId, clearedAt: command.now } }];
      default:
        return unreachable(command.type);
    }
  },
};
