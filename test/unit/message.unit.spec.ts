import { expect } from 'chai';
import { DomainError } from '../../domain/decider';
import { messageDecider, type MessageEvent, type SendMessage } from '../../domain/message/message';
import { deciderSpecification } from '../support/deciderSpecification';

describe('message decider', () => {
  const spec = deciderSpecification(messageDecider);
  const now = '2026-11-22T10:00:00.000Z';
  const send: SendMessage = {
    type: 'SendMessage',
    messageId: 'm-1',
    appId: 'camel',
    sender: 'zhangbin',
    recipients: ['jiangxiaoyu', 'zhouyang'],
    title: 'system upgrade',
    content: 'system patching 20:21',
    props: null,
    expireSeconds: 0,
    executeAt: null,
    now,
  };
  const content = {
    messageId: 'm-1',
    appId: 'camel',
    sender: 'zhangbin',
    recipients: ['jiangxiaoyu', 'zhouyang'],
    title: 'system upgrade',
    content: 'system patching 20:21',
    props: null,
  };
  const sent: MessageEvent = { type: 'MessageSent', data: { ...content, expiresAt: null, sentAt: now } };

  it('sends at once when execute is absent; expire 0 means forever', () => {
    spec.given([]).when(send).then([sent]);
  });

  it('a resend of the same message id changes nothing', () => {
    spec.given([sent]).when(send).then([]);
  });

  it('schedules when execute is ahead; expiry counts from delivery', () => {
    spec
      .given([])
      .when({ ...send, executeAt: '2026-11-22T11:00:00.000Z', expireSeconds: 60 })
      .then([
        {
          type: 'MessageScheduled',
          data: {
            ...content,
            expiresAt: '2026-11-22T11:01:00.000Z',
            scheduledAt: now,
            releaseAt: '2026-11-22T11:00:00.000Z',
          },
        },
      ]);
  });

  it('dedupes and trims recipients', () => {
    spec
      .given([])
      .when({ ...send, recipients: [' jiangxiaoyu', 'zhouyang', 'jiangxiaoyu', ''] })
      .then([sent]);
  });

  it('keeps title and content exactly as sent: blanks around them and line breaks are text', () => {
    const exact = { title: ' padded title ', content: 'line one\nline two\n' };
    spec
      .given([])
      .when({ ...send, ...exact })
      .then([{ type: 'MessageSent', data: { ...content, ...exact, expiresAt: null, sentAt: now } }]);
  });

  it('counts limits in characters (code points): 256 emoji are a title, a 1,024-emoji prop value is one', () => {
    const emoji = { title: '😀'.repeat(256), content: '😀'.repeat(16_384), props: { key: '😀'.repeat(1024) } };
    spec
      .given([])
      .when({ ...send, ...emoji })
      .then([{ type: 'MessageSent', data: { ...content, ...emoji, expiresAt: null, sentAt: now } }]);
  });

  const scheduled: MessageEvent = {
    type: 'MessageScheduled',
    data: {
      ...content,
      expiresAt: '2026-11-22T11:01:00.000Z',
      scheduledAt: now,
      releaseAt: '2026-11-22T11:00:00.000Z',
    },
  };

  it('releases a scheduled message when due, once', () => {
    const released: MessageEvent = {
      type: 'MessageReleased',
      data: { messageId: 'm-1', appId: 'camel', releasedAt: '2026-11-22T11:00:00.100Z' },
    };
    spec.given([scheduled]).when({ type: 'ReleaseMessage', now: '2026-11-22T11:00:00.100Z' }).then([released]);
    spec.given([scheduled, released]).when({ type: 'ReleaseMessage', now: '2026-11-22T11:00:01.000Z' }).then([]);
  });

  it('a scheduled message released after its expiry (herald was down) expires instead of being delivered', () => {
    spec
      .given([scheduled])
      .when({ type: 'ReleaseMessage', now: '2026-11-22T12:00:00.000Z' })
      .then([
        { type: 'MessageExpired', data: { messageId: 'm-1', appId: 'camel', expiredAt: '2026-11-22T12:00:00.000Z' } },
      ]);
  });

  describe('acknowledge', () => {
    const ack = (userId: string, appId = 'camel', at = now) => ({
      type: 'AcknowledgeMessage' as const,
      appId,
      userId,
      now: at,
    });

    it('by a recipient, once', () => {
      const acknowledged: MessageEvent = {
        type: 'MessageAcknowledged',
        data: { messageId: 'm-1', appId: 'camel', userId: 'zhouyang', acknowledgedAt: now },
      };
      spec.given([sent]).when(ack('zhouyang')).then([acknowledged]);
      spec.given([sent, acknowledged]).when(ack('zhouyang')).then([]);
    });

    it('refuses another user (forbidden), another app (not found), a message not delivered yet (not found)', () => {
      const code = (expected: string) => (error: DomainError) => expect(error.code).to.equal(expected);
      spec.given([sent]).when(ack('stranger')).thenThrows(DomainError, code('forbidden'));
      spec.given([sent]).when(ack('zhouyang', 'other')).thenThrows(DomainError, code('not_found'));
      spec.given([]).when(ack('zhouyang')).thenThrows(DomainError, code('not_found'));
      spec.given([scheduled]).when(ack('zhouyang')).thenThrows(DomainError, code('not_found'));
    });

    it('takes an expired message as done: nothing is left to acknowledge, nothing is appended, nothing refused', () => {
      const short: MessageEvent = {
        type: 'MessageSent',
        data: { ...content, expiresAt: '2026-11-22T10:00:01.000Z', sentAt: now },
      };
      spec
        .given([short])
        .when(ack('zhouyang', 'camel', '2026-11-22T10:00:02.000Z'))
        .then([]);
      const expired: MessageEvent = {
        type: 'MessageExpired',
        data: { messageId: 'm-1', appId: 'camel', expiredAt: now },
      };
      spec.given([scheduled, expired]).when(ack('zhouyang')).then([]);
      // still only for its recipients
      spec
        .given([short])
        .when(ack('stranger', 'camel', '2026-11-22T10:00:02.000Z'))
        .thenThrows(DomainError, (error) => expect(error.code).to.equal('forbidden'));
    });
  });

  describe('refuses bad input', () => {
    const cases: Array<[string, Partial<SendMessage>]> = [
      ['no recipients', { recipients: [' '] }],
      ['1,001 recipients', { recipients: Array.from({ length: 1001 }, (_, i) => `u${i}`) }],
      ['an empty title', { title: '' }],
      ['a 257-character title', { title: 'x'.repeat(257) }],
      ['257 emoji as a title', { title: '😀'.repeat(257) }],
      ['a blank title', { title: ' \t\n' }],
      ['blank content', { content: '   ' }],
      ['a recipient with a blank (no ticket is issued for one)', { recipients: ['jiangxiaoyu', 'jiang xiaoyu'] }],
      ['a recipient with a comma', { recipients: ['a,b'] }],
      ['a recipient of 129 characters', { recipients: ['x'.repeat(129)] }],
      ['content over 16,384 characters', { content: 'x'.repeat(16_385) }],
      ['empty content', { content: '' }],
      ['a NUL in the title', { title: 'a\u0000b' }],
      ['a control character in the content', { content: 'bell \u0007' }],
      ['a lone surrogate in the content', { content: 'half \ud800 of a pair' }],
      ['a NUL in a recipient', { recipients: ['ok', 'n\u0000l'] }],
      ['a control character in a prop', { props: { key: 'v\u001b[31m' } }],
      ['a negative expire', { expireSeconds: -1 }],
      ['execute more than a year ahead', { executeAt: '2028-01-01T00:00:00.000Z' }],
      ['an unreadable execute', { executeAt: 'tomorrow' }],
    ];
    for (const [what, change] of cases) {
      it(what, () => {
        spec
          .given([])
          .when({ ...send, ...change })
          .thenThrows(DomainError, (error) => expect(error.code).to.equal('invalid'));
      });
    }
  });
});
