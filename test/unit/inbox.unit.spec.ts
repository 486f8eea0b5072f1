import { broadcastReadDecider, inboxDecider, type BroadcastReadEvent, type InboxEvent } from '../../domain/inbox/inbox';
import { deciderSpecification } from '../support/deciderSpecification';

// datahub's DELETE /notification_stat (shared/seeds/001_e25b4a10524b93b6.txt) as a decision; issue 21, item 4.
describe('inbox decider: clearing the notification stats', () => {
  const spec = deciderSpecification(inboxDecider);
  const cleared = (at: string): InboxEvent => ({
    type: 'NotificationStatsCleared',
    data: { appId: 'camel', userId: 'bob', clearedAt: at },
  });
  const clear = (clearsSeen: number, now: string) => ({
    type: 'ClearNotificationStats' as const,
    appId: 'camel',
    userId: 'bob',
    clearsSeen,
    now,
  });

  it('clears, and clears again later: each clear resets the stats at its point of the history', () => {
    spec
      .given([])
      .when(clear(0, 't1'))
      .then([cleared('t1')]);
    spec
      .given([cleared('t1')])
      .when(clear(1, 't2'))
      .then([cleared('t2')]);
  });

  it('a clear appended after the request arrived (a concurrent one) answers it: nothing appended, nothing to contend for', () => {
    spec
      .given([cleared('t1')])
      .when(clear(0, 't1'))
      .then([]);
    spec
      .given([cleared('t1'), cleared('t2')])
      .when(clear(1, 't2'))
      .then([]);
  });
});

describe('inbox decider: reading a site broadcast (its own stream since issue 26)', () => {
  const spec = deciderSpecification(broadcastReadDecider);
  const markRead = (notificationId: string, now = 't1') => ({
    type: 'MarkBroadcastRead' as const,
    appId: 'camel',
    userId: 'bob',
    notificationId,
    now,
  });
  const read = (notificationId: string, at = 't1'): BroadcastReadEvent => ({
    type: 'NotificationRead',
    data: { notificationId, appId: 'camel', userId: 'bob', readAt: at },
  });

  it("records the user's read of the broadcast on the stream of that user and broadcast", () => {
    spec
      .given([])
      .when(markRead('b1'))
      .then([read('b1')]);
  });

  it('reading it again records nothing: once per user', () => {
    spec
      .given([read('b1')])
      .when(markRead('b1', 't2'))
      .then([]);
  });
});

describe('inbox decider: an inbox written before issue 26 holds broadcast reads', () => {
  const spec = deciderSpecification(inboxDecider);
  const clear = { type: 'ClearNotificationStats' as const, appId: 'camel', userId: 'bob', now: 't2' };
  const read: InboxEvent = {
    type: 'NotificationRead',
    data: { notificationId: 'b1', appId: 'camel', userId: 'bob', readAt: 't1' },
  };

  it('a read does not count as a clear', () => {
    spec
      .given([read, read])
      .when({ ...clear, clearsSeen: 0 })
      .then([{ type: 'NotificationStatsCleared', data: { appId: 'camel', userId: 'bob', clearedAt: 't2' } }]);
  });
});
