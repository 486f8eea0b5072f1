import { inboxDecider, type InboxEvent } from '../../domain/inbox/inbox';
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
