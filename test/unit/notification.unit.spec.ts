import { expect } from 'chai';
import { DomainError, type DomainErrorCode } from '../../domain/decider';
import {
  NOTIFICATION_LIMITS,
  notificationDecider,
  type NotificationEvent,
  type NotificationSent,
  type SendNotification,
} from '../../domain/notification/notification';
import { deciderSpecification } from '../support/deciderSpecification';

// datahub's typed notifications (shared/seeds/001_e25b4a10524b93b6.txt): POST /notifications, PUT /notifications/{messageid}.
describe('notification decider', () => {
  const spec = deciderSpecification(notificationDecider);
  const send: SendNotification = {
    type: 'SendNotification',
    notificationId: 'n1',
    appId: 'camel',
    notificationType: 'comment_reply',
    sender: 'li4',
    senderIsAdmin: false,
    receivers: ['zhang3', 'wang5'],
    level: 0,
    forBrowser: true,
    forClient: false,
    data: { commentid: 7, text: 'hi' },
    now: 't1',
  };
  const sent = (change: Partial<NotificationSent['data']> = {}): NotificationEvent => ({
    type: 'NotificationSent',
    data: {
      notificationId: 'n1',
      appId: 'camel',
      notificationType: 'comment_reply',
      sender: 'li4',
      receivers: ['zhang3', 'wang5'],
      level: 0,
      forBrowser: true,
      forClient: false,
      data: { commentid: 7, text: 'hi' },
      sentAt: 't1',
      ...change,
    },
  });
  const read = (userId: string, now = 't2') => ({ type: 'MarkNotificationRead' as const, appId: 'camel', userId, now });
  const wasRead = (userId: string, at = 't2'): NotificationEvent => ({
    type: 'NotificationRead',
    data: { notificationId: 'n1', appId: 'camel', userId, readAt: at },
  });
  const refused = (code: DomainErrorCode, fragment: string) => (error: DomainError) => {
    expect(error.code).to.equal(code);
    expect(error.message).to.include(fragment);
  };

  describe('sending', () => {
    it('records the notification: receivers, level, lists and data as given, sent now', () => {
      spec.given([]).when(send).then([sent()]);
    });
    it("records the sender's time as written, once it is a time (RFC 3339, or the seed's …Z08:00)", () => {
      for (const time of ['2015-11-10T15:06:09+08:00', '2015-11-10T15:06:09Z08:00'])
        spec
          .given([])
          .when({ ...send, time })
          .then([sent({ time })]);
      spec
        .given([])
        .when({ ...send, time: 'yesterday' })
        .thenThrows(DomainError, refused('invalid', 'time: must be an RFC 3339 time'));
    });
    it('trims receivers, drops blank ones and repeats, keeping their order', () => {
      spec
        .given([])
        .when({ ...send, receivers: [' zhang3 ', '', 'wang5', 'zhang3', '  '] })
        .then([sent()]);
    });
    it('may be in both lists, and must be in one', () => {
      spec
        .given([])
        .when({ ...send, forClient: true })
        .then([sent({ forClient: true })]);
      spec
        .given([])
        .when({ ...send, forBrowser: false, forClient: true })
        .then([sent({ forBrowser: false, forClient: true })]);
      spec
        .given([])
        .when({ ...send, forBrowser: false })
        .thenThrows(DomainError, refused('invalid', 'the browser, the client or both'));
    });
    it('sent again (a retried request) records nothing, whatever the retry says', () => {
      spec.given([sent()]).when(send).then([]);
      spec
        .given([sent()])
        .when({ ...send, receivers: ['someone-else'], level: 50 })
        .then([]);
      spec
        .given([sent()])
        .when({ ...send, forBrowser: false })
        .then([]);
    });
  });

  describe('who may send what, to whom', () => {
    it('admin_message and site_broadcast only from an admin', () => {
      for (const notificationType of ['admin_message', 'site_broadcast'] as const) {
        spec
          .given([])
          .when({ ...send, notificationType })
          .thenThrows(DomainError, refused('forbidden', `only an admin may send ${notificationType}`));
        spec
          .given([])
          .when({ ...send, notificationType, senderIsAdmin: true })
          .then([sent({ notificationType })]);
      }
    });
    it('a site_broadcast naming no receiver is to the whole app; any other type needs a receiver', () => {
      spec
        .given([])
        .when({ ...send, notificationType: 'site_broadcast', senderIsAdmin: true, receivers: [' '] })
        .then([sent({ notificationType: 'site_broadcast', receivers: [] })]);
      spec
        .given([])
        .when({ ...send, receivers: ['', ' '] })
        .thenThrows(DomainError, refused('invalid', 'receiver: at least one user is required'));
    });
    it('a private_message to one user, an admin_message to at most 100, others to at most 1000', () => {
      const users = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);
      spec
        .given([])
        .when({ ...send, notificationType: 'private_message', receivers: users(2) })
        .thenThrows(DomainError, refused('invalid', 'receiver: at most 1 user for private_message'));
      spec
        .given([])
        .when({ ...send, notificationType: 'private_message', receivers: users(1) })
        .then([sent({ notificationType: 'private_message', receivers: users(1) })]);
      const admin = { ...send, notificationType: 'admin_message' as const, senderIsAdmin: true };
      spec
        .given([])
        .when({ ...admin, receivers: users(NOTIFICATION_LIMITS.adminReceivers) })
        .then([sent({ notificationType: 'admin_message', receivers: users(NOTIFICATION_LIMITS.adminReceivers) })]);
      spec
        .given([])
        .when({ ...admin, receivers: users(NOTIFICATION_LIMITS.adminReceivers + 1) })
        .thenThrows(DomainError, refused('invalid', 'receiver: at most 100 users for admin_message'));
      spec
        .given([])
        .when({ ...send, receivers: users(NOTIFICATION_LIMITS.receivers) })
        .then([sent({ receivers: users(NOTIFICATION_LIMITS.receivers) })]);
      spec
        .given([])
        .when({ ...send, receivers: users(NOTIFICATION_LIMITS.receivers + 1) })
        .thenThrows(DomainError, refused('invalid', 'receiver: at most 1000 users for comment_reply'));
      // Counted after repeats are dropped: the same user twice is one receiver.
      spec
        .given([])
        .when({ ...send, notificationType: 'private_message', receivers: ['zhang3', ' zhang3'] })
        .then([sent({ notificationType: 'private_message', receivers: ['zhang3'] })]);
    });
    it('receivers and the sender are user ids of at most 128 characters of text; the sender may be "" (the system)', () => {
      for (const receiver of ['x'.repeat(129), 'nul\u0000', '\ud800'])
        spec
          .given([])
          .when({ ...send, receivers: [receiver] })
          .thenThrows(DomainError, refused('invalid', 'receiver: user ids are 1-128 characters of text'));
      for (const sender of ['x'.repeat(129), 'bell\u0007'])
        spec
          .given([])
          .when({ ...send, sender })
          .thenThrows(DomainError, refused('invalid', 'sender: at most 128 characters of text'));
      // Counted in characters (code points): 128 emoji are one id.
      spec
        .given([])
        .when({ ...send, sender: '', receivers: ['😀'.repeat(128)] })
        .then([sent({ sender: '', receivers: ['😀'.repeat(128)] })]);
    });
    it('the level is 0 or 50', () => {
      spec
        .given([])
        .when({ ...send, level: 50 })
        .then([sent({ level: 50 })]);
      for (const level of [1, 49, 100, -1])
        spec
          .given([])
          .when({ ...send, level })
          .thenThrows(DomainError, refused('invalid', 'level must be 0 or 50'));
    });
  });

  describe("the type's data", () => {
    it('at most 16,384 bytes of JSON', () => {
      // {"t":"…"} is 8 bytes around the text.
      const fits = { t: 'x'.repeat(NOTIFICATION_LIMITS.dataBytes - 8) };
      spec
        .given([])
        .when({ ...send, data: fits })
        .then([sent({ data: fits })]);
      spec
        .given([])
        .when({ ...send, data: { t: 'x'.repeat(NOTIFICATION_LIMITS.dataBytes - 7) } })
        .thenThrows(DomainError, refused('invalid', 'data: at most 16384 bytes of JSON'));
    });
    it('nested at most 8 levels', () => {
      const nested = (depth: number): Record<string, unknown> => (depth === 0 ? {} : { n: nested(depth - 1) });
      spec
        .given([])
        .when({ ...send, data: nested(NOTIFICATION_LIMITS.dataDepth) })
        .then([sent({ data: nested(NOTIFICATION_LIMITS.dataDepth) })]);
      spec
        .given([])
        .when({ ...send, data: nested(NOTIFICATION_LIMITS.dataDepth + 1) })
        .thenThrows(DomainError, refused('invalid', 'data: nested at most 8 levels'));
    });
    it('no control characters or lone surrogates in its keys or strings, however deep', () => {
      for (const data of [{ t: 'nul\u0000' }, { 'k\u0001': 1 }, { list: [1, { deep: '\udc00' }] }])
        spec
          .given([])
          .when({ ...send, data })
          .thenThrows(DomainError, refused('invalid', 'data: text may not contain control characters'));
      // TAB, LF and CR are text.
      spec
        .given([])
        .when({ ...send, data: { t: 'a\tb\nc\r' } })
        .then([sent({ data: { t: 'a\tb\nc\r' } })]);
    });
    it('is copied, not kept by reference: a later change to the request does not reach the event', () => {
      const data: Record<string, unknown> = { a: 1 };
      const [event] = notificationDecider.decide({ ...send, data }, notificationDecider.initialState());
      data['a'] = 2;
      expect(event!.data).to.deep.include({ data: { a: 1 } });
    });
  });

  describe('reading', () => {
    it('a receiver reads it once; reading again records nothing', () => {
      spec
        .given([sent()])
        .when(read('zhang3'))
        .then([wasRead('zhang3')]);
      spec
        .given([sent(), wasRead('zhang3')])
        .when(read('zhang3', 't3'))
        .then([]);
      // One receiver's read is not another's.
      spec
        .given([sent(), wasRead('zhang3')])
        .when(read('wang5', 't3'))
        .then([wasRead('wang5', 't3')]);
    });
    it('does not exist for a user who did not receive it, in another app, or before it was sent: not_found', () => {
      spec.given([sent()]).when(read('li4')).thenThrows(DomainError, refused('not_found', 'no such notification'));
      spec
        .given([sent()])
        .when({ ...read('zhang3'), appId: 'other' })
        .thenThrows(DomainError, refused('not_found', 'no such notification'));
      spec.given([]).when(read('zhang3')).thenThrows(DomainError, refused('not_found', 'no such notification'));
    });
    it("a site broadcast to the whole app has no receivers here: its reads are kept on each reader's inbox", () => {
      const broadcast = sent({ notificationType: 'site_broadcast', receivers: [] });
      spec
        .given([broadcast])
        .when(read('zhang3'))
        .thenThrows(DomainError, refused('not_found', 'no such notification'));
    });
  });
});
