import { expect } from 'chai';
import { DomainError } from '../../domain/decider';
import {
  EMAIL_LIMITS,
  EMAIL_MAX_ATTEMPTS,
  emailDecider,
  EmailEvent,
  type EmailState,
  type RequestEmail,
} from '../../domain/email/email';
import { deciderSpecification } from '../support/deciderSpecification';

/** datahub's `to_emails.json` (shared/seeds/001_e25b4a10524b93b6.txt) as events. */
describe('email decider', () => {
  const spec = deciderSpecification(emailDecider);
  const emailId = '00000000-0000-4000-8000-00000000e001';
  const now = '2026-11-22T10:00:00.000Z';
  // The seed's example message.
  const request: RequestEmail = {
    type: 'RequestEmail',
    emailId,
    appId: 'camel',
    to: 'zhang3@example.com',
    subject: '你的订购申请通过了',
    content:
      '你的订购申请通过了，请可以下载数据了。http://hub.dataos.io/mySubscribe.html 。此邮件是系统自动转发，请不要回复。',
    isHtml: false,
    now,
  };
  const requested: EmailEvent = {
    type: 'EmailRequested',
    data: {
      emailId,
      appId: 'camel',
      to: ['zhang3@example.com'],
      subject: request.subject,
      content: request.content,
      isHtml: false,
      requestedAt: now,
    },
  };
  const at = (minutes: number) => new Date(Date.parse(now) + minutes * 60_000).toISOString();
  const failed = (attempt: number, failedAt: string, retryAt: string | null): EmailEvent => ({
    type: 'EmailFailed',
    data: { emailId, appId: 'camel', attempt, error: '450 mailbox busy', final: retryAt === null, failedAt, retryAt },
  });
  const sent = (attempt: number, sentAt: string): EmailEvent => ({
    type: 'EmailSent',
    data: { emailId, appId: 'camel', attempt, messageId: '<m@x>', sentAt },
  });
  const stateAfter = (events: readonly EmailEvent[]): EmailState =>
    events.reduce(emailDecider.evolve, emailDecider.initialState());

  const refused = (command: RequestEmail, field: string) =>
    spec
      .given([])
      .when(command)
      .thenThrows(DomainError, (error) => {
        expect(error.code).to.equal('invalid');
        expect(error.message).to.match(new RegExp(`^${field}: `));
      });

  describe('RequestEmail', () => {
    it('records the seed example as EmailRequested, due at once', () => {
      spec.given([]).when(request).then([requested]);
      const state = stateAfter([requested]);
      expect(state).to.include({ status: 'pending', attempts: 0, nextAttemptAt: now });
    });

    it('its events pass their codec (what the store decodes them with)', () => {
      for (const event of [requested, failed(1, at(0), at(1)), sent(2, at(1))])
        expect(EmailEvent.is(event)).to.equal(true);
    });

    it('a repeated request of the same email appends nothing', () => {
      spec.given([requested]).when(request).then([]);
      spec
        .given([requested, sent(1, at(0))])
        .when(request)
        .then([]);
    });

    it('keeps html as html', () => {
      spec
        .given([])
        .when({ ...request, isHtml: true, content: '<p>ok</p>' })
        .then([{ type: 'EmailRequested', data: { ...requested.data, isHtml: true, content: '<p>ok</p>' } }]);
    });

    it('accepts a comma-separated list of up to 10 addresses, trimmed, repeats dropped', () => {
      spec
        .given([])
        .when({ ...request, to: ' a@example.com, b@example.org ,A@EXAMPLE.COM,, ' })
        .then([{ type: 'EmailRequested', data: { ...requested.data, to: ['a@example.com', 'b@example.org'] } }]);
      const ten = Array.from({ length: EMAIL_LIMITS.recipients }, (_, i) => `u${i}@example.com`);
      expect(emailDecider.decide({ ...request, to: ten.join(',') }, stateAfter([]))[0]?.data).to.include.keys('to');
      refused({ ...request, to: [...ten, 'u10@example.com'].join(',') }, 'to');
    });

    it('accepts Unicode domains and plus-addressing', () => {
      const to = ['li.si+hub@example.com', '张三@例子.中国'];
      const [event] = emailDecider.decide({ ...request, to: to.join(', ') }, stateAfter([]));
      expect(event?.type === 'EmailRequested' && event.data.to).to.deep.equal(to);
    });

    it('refuses what is not an email address, naming the field', () => {
      for (const to of [
        '',
        ' , ',
        'zhang3',
        'zhang3@',
        '@example.com',
        'zhang3@localhost',
        'a b@example.com',
        'zhang3@example.com; x@example.com',
        '"q"@example.com',
        'zhang3@example.com\r\nBcc: x@example.com',
        'Zhang <zhang3@example.com>',
        'a@b@example.com',
        'a@-example.com',
        'a@example..com',
        'a\u0000@example.com',
      ]) {
        refused({ ...request, to }, 'to');
      }
    });

    it('bounds an address at 254 characters and its local part at 64', () => {
      const domain = `${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(60)}.example.com`;
      const longest = `${'l'.repeat(254 - domain.length - 1)}@${domain}`;
      expect(longest.length).to.equal(254);
      spec
        .given([])
        .when({ ...request, to: longest })
        .then([{ type: 'EmailRequested', data: { ...requested.data, to: [longest] } }]);
      refused({ ...request, to: `x${longest}` }, 'to');
      refused({ ...request, to: `${'l'.repeat(65)}@example.com` }, 'to');
      spec
        .given([])
        .when({ ...request, to: `${'l'.repeat(64)}@example.com` })
        .then([{ type: 'EmailRequested', data: { ...requested.data, to: [`${'l'.repeat(64)}@example.com`] } }]);
    });

    it('takes a subject of 1-256 characters of one line of text', () => {
      const longest = '字'.repeat(EMAIL_LIMITS.subjectLength);
      spec
        .given([])
        .when({ ...request, subject: longest })
        .then([{ type: 'EmailRequested', data: { ...requested.data, subject: longest } }]);
      for (const subject of [
        '',
        '   ',
        `${longest}x`,
        'a\r\nBcc: x@example.com',
        'a\nb',
        'nul\u0000',
        'lone \uD800 surrogate',
      ])
        refused({ ...request, subject }, 'subject');
      // Counted in characters (code points): 256 emoji are 256 characters, not 512.
      const emoji = '😀'.repeat(EMAIL_LIMITS.subjectLength);
      spec
        .given([])
        .when({ ...request, subject: emoji })
        .then([{ type: 'EmailRequested', data: { ...requested.data, subject: emoji } }]);
      refused({ ...request, subject: `${emoji}x` }, 'subject');
    });

    it('takes content up to 64 KB of UTF-8 (empty allowed) and no control characters', () => {
      const full = 'a'.repeat(EMAIL_LIMITS.contentBytes);
      spec
        .given([])
        .when({ ...request, content: full })
        .then([{ type: 'EmailRequested', data: { ...requested.data, content: full } }]);
      spec
        .given([])
        .when({ ...request, content: '' })
        .then([{ type: 'EmailRequested', data: { ...requested.data, content: '' } }]);
      spec
        .given([])
        .when({ ...request, content: 'line 1\r\nline 2\ttab' })
        .then([{ type: 'EmailRequested', data: { ...requested.data, content: 'line 1\r\nline 2\ttab' } }]);
      // Counted in bytes: 3 bytes per CJK character.
      refused({ ...request, content: '字'.repeat(Math.floor(EMAIL_LIMITS.contentBytes / 3) + 1) }, 'content');
      refused({ ...request, content: `${full}a` }, 'content');
      refused({ ...request, content: 'nul\u0000' }, 'content');
    });

    it('refuses an isHtml that is not a boolean', () => {
      refused({ ...request, isHtml: 'false' as unknown as boolean }, 'isHtml');
    });

    it('refuses an email id that is not a UUID', () => {
      refused({ ...request, emailId: 'e-1' }, 'emailId');
    });
  });

  describe('outcomes', () => {
    it('records a success once; a second mailer racing records nothing', () => {
      spec
        .given([requested])
        .when({ type: 'RecordEmailSent', attempt: 1, messageId: '<m@x>', now: at(0) })
        .then([sent(1, at(0))]);
      spec
        .given([requested, sent(1, at(0))])
        .when({ type: 'RecordEmailSent', attempt: 1, messageId: '<m@x>', now: at(0) })
        .then([]);
      spec
        .given([requested, sent(1, at(0))])
        .when({ type: 'RecordEmailFailed', attempt: 1, error: 'late', now: at(0) })
        .then([]);
    });

    it('without a Message-ID, or with one it cannot store, records the success with none', () => {
      const none: EmailEvent = {
        type: 'EmailSent',
        data: { emailId, appId: 'camel', attempt: 1, messageId: null, sentAt: at(0) },
      };
      spec
        .given([requested])
        .when({ type: 'RecordEmailSent', attempt: 1, now: at(0) })
        .then([none]);
      spec
        .given([requested])
        .when({ type: 'RecordEmailSent', attempt: 1, messageId: 'a\r\nb', now: at(0) })
        .then([none]);
    });

    it('retries after 1 min, 5 min, 30 min, 2 h; the 5th failure is final', () => {
      const history: EmailEvent[] = [requested];
      const delays = [1, 5, 30, 120];
      let clock = 0;
      for (let attempt = 1; attempt <= EMAIL_MAX_ATTEMPTS; attempt++) {
        const last = attempt === EMAIL_MAX_ATTEMPTS;
        const expected = failed(attempt, at(clock), last ? null : at(clock + delays[attempt - 1]!));
        spec
          .given(history)
          .when({ type: 'RecordEmailFailed', attempt, error: '450 mailbox busy', now: at(clock) })
          .then([expected]);
        history.push(expected);
        clock += last ? 0 : delays[attempt - 1]!;
        expect(stateAfter(history)).to.include({
          status: last ? 'failed' : 'pending',
          attempts: attempt,
          nextAttemptAt: last ? null : at(clock),
        });
      }
      expect(EMAIL_MAX_ATTEMPTS).to.equal(5);
      // Failed for good: no outcome is taken any more.
      spec
        .given(history)
        .when({ type: 'RecordEmailSent', attempt: 5, now: at(clock) })
        .then([]);
      spec
        .given(history)
        .when({ type: 'RecordEmailFailed', attempt: 6, error: 'x', now: at(clock) })
        .then([]);
    });

    it('a failure of an attempt already recorded (a racing mailer) records nothing', () => {
      const first = failed(1, at(0), at(1));
      spec
        .given([requested, first])
        .when({ type: 'RecordEmailFailed', attempt: 1, error: 'same attempt', now: at(0) })
        .then([]);
    });

    it('a success of an attempt whose failure a racing mailer recorded is still a success', () => {
      spec
        .given([requested, failed(1, at(0), at(1))])
        .when({ type: 'RecordEmailSent', attempt: 1, messageId: '<m@x>', now: at(0) })
        .then([sent(1, at(0))]);
      expect(stateAfter([requested, failed(1, at(0), at(1)), sent(1, at(0))])).to.include({
        status: 'succeeded',
        attempts: 1,
        nextAttemptAt: null,
      });
    });

    it('refuses an attempt that skips ahead, and outcomes of an email never requested', () => {
      spec
        .given([requested])
        .when({ type: 'RecordEmailFailed', attempt: 2, error: 'x', now: at(0) })
        .thenThrows(DomainError, (e) => expect(e.message).to.match(/^attempt: /));
      spec
        .given([requested])
        .when({ type: 'RecordEmailSent', attempt: 0, now: at(0) })
        .thenThrows(DomainError, (e) => expect(e.code).to.equal('invalid'));
      spec
        .given([])
        .when({ type: 'RecordEmailSent', attempt: 1, now: at(0) })
        .thenThrows(DomainError, (e) => expect(e.code).to.equal('not_found'));
      spec
        .given([])
        .when({ type: 'RecordEmailFailed', attempt: 1, error: 'x', now: at(0) })
        .thenThrows(DomainError, (e) => expect(e.code).to.equal('not_found'));
    });

    it('keeps a failure storable and bounded rather than refusing it', () => {
      const [event] = emailDecider.decide(
        { type: 'RecordEmailFailed', attempt: 1, error: `550\r\n${'x'.repeat(5000)}\u0000\uD800`, now: at(0) },
        stateAfter([requested]),
      );
      const error = event?.type === 'EmailFailed' ? event.data.error : '';
      expect(Array.from(error)).to.have.length(EMAIL_LIMITS.errorLength);
      expect(error).to.match(/^550 x+…$/);
      const [empty] = emailDecider.decide(
        { type: 'RecordEmailFailed', attempt: 1, error: '\r\n', now: at(0) },
        stateAfter([requested]),
      );
      expect(empty?.type === 'EmailFailed' && empty.data.error).to.equal('unknown error');
    });
  });
});
