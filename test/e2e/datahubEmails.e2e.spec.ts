import { expect } from 'chai';
import { validate as isUuid } from 'uuid';
import { emailStreamName } from '../../domain/email/email';
import { appendedEvents, appendedSince, TEST_METRICS_TOKEN } from '../support/appendedEvents';
import { eventually } from '../support/eventually';
import { issueTicket, startTestHerald, TestClock } from '../support/herald';
import { startSmtpPeer, type ReceivedEmail, type SmtpPeer } from '../support/smtpPeer';
import { streamEventTypes } from '../support/storedEvents';

/**
 * datahub's `to_emails.json` topic (shared/seeds/001_e25b4a10524b93b6.txt, "topic: to_emails.json")
 * over HTTP: a back-end service POSTs the seed's message unchanged to /topics/to_emails.json with the
 * app's credentials; herald answers 202 `{"emailid"}` and its mailer sends the email over SMTP to a real
 * SMTP server (smtp-server, started here). See docs/email.md.
 */

// The seed's sample, byte for byte as the seed writes it.
const SEED_SAMPLE = `{
		"to": "zhang3@example.com",
		"subject": "你的订购申请通过了",
		"content": "你的订购申请通过了，请可以下载数据了。http://hub.dataos.io/mySubscribe.html 。此邮件是系统自动转发，请不要回复。",
		"ishtml": false
	}`;
const SEED = JSON.parse(SEED_SAMPLE) as { to: string; subject: string; content: string; ishtml: boolean };
const APP = { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' };
const MAIL_FROM = 'noreply@herald.example';

type TestHerald = Awaited<ReturnType<typeof startTestHerald>>;

async function postEmail(test: TestHerald, body: unknown, headers: Record<string, string> = APP) {
  const response = await fetch(`${test.url}/topics/to_emails.json`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

/** POSTs an email that must be accepted; returns its id. */
async function accepted(test: TestHerald, body: unknown, headers: Record<string, string> = APP): Promise<string> {
  const response = await postEmail(test, body, headers);
  expect(response.status, response.text).to.equal(202);
  const answer = response.json();
  expect(Object.keys(answer)).to.deep.equal(['emailid']);
  expect(isUuid(answer.emailid), response.text).to.equal(true);
  return answer.emailid as string;
}

/** One admin ticket of the app per herald, issued once: an issued ticket is an event of its own. */
const admins = new Map<TestHerald, Promise<string>>();
/** The email's recorded events, as the app's admin reads them (GraphQL `events`). */
const eventTypes = async (test: TestHerald, emailId: string) => {
  if (!admins.has(test)) admins.set(test, issueTicket(test.url, 'email-auditor', 'admin'));
  return streamEventTypes(test.url, await admins.get(test)!, emailStreamName(emailId));
};

describe('datahub to_emails.json (seed 001) over HTTP, sent over SMTP', function () {
  this.timeout(60_000);
  let peer: SmtpPeer;
  let test: TestHerald;
  const clock = new TestClock();

  before(async () => {
    peer = await startSmtpPeer();
    test = await startTestHerald(
      { smtpUrl: `smtp://127.0.0.1:${peer.port}`, mailFrom: MAIL_FROM, metricsToken: TEST_METRICS_TOKEN },
      clock.now,
    );
  });
  after(async () => {
    await test?.stop();
    await peer?.close();
  });

  const messageIdOf = (emailId: string) => `<${emailId}@herald.example>`;
  const withId = (emailId: string) => peer.received.filter((r) => r.message.messageId === messageIdOf(emailId));
  /** Waits for the email to reach the peer and its EmailSent to be recorded. */
  async function delivered(emailId: string): Promise<ReceivedEmail> {
    const mail = await eventually(() => {
      const found = withId(emailId);
      expect(found, `email ${emailId} at the SMTP peer`).to.have.length(1);
      return found[0]!;
    });
    await eventually(async () =>
      expect(await eventTypes(test, emailId)).to.deep.equal(['EmailRequested', 'EmailSent']),
    );
    return mail;
  }

  it("accepts the seed's sample unchanged (202 {emailid}) and sends it as text with its To, Subject and body", async () => {
    const emailId = await accepted(test, SEED_SAMPLE);
    const mail = await delivered(emailId);
    expect(mail.envelope).to.deep.equal({ from: MAIL_FROM, to: [SEED.to] });
    expect(mail.message.to).to.deep.include({ value: [{ address: SEED.to, name: '' }], text: SEED.to });
    expect(mail.message.from).to.deep.include({ value: [{ address: MAIL_FROM, name: '' }] });
    expect(mail.message.subject).to.equal(SEED.subject);
    expect(mail.message.headers.get('content-type')).to.deep.equal({
      value: 'text/plain',
      params: { charset: 'utf-8' },
    });
    expect(mail.body).to.equal(SEED.content);
    expect(mail.message.html).to.equal(false);
  });

  it('sends an ishtml: true email as text/html', async () => {
    const content = '<p>你的订购申请通过了，请<a href="http://hub.dataos.io/mySubscribe.html">下载数据</a>。</p>';
    const emailId = await accepted(test, { ...SEED, to: 'li4@example.com', content, ishtml: true });
    const mail = await delivered(emailId);
    expect(mail.envelope.to).to.deep.equal(['li4@example.com']);
    expect(mail.message.subject).to.equal(SEED.subject);
    expect(mail.message.headers.get('content-type')).to.deep.equal({
      value: 'text/html',
      params: { charset: 'utf-8' },
    });
    expect(mail.body).to.equal(content);
    expect(mail.message.text).to.equal('');
  });

  it('with a repeated X-Request-Id sends one email, answering the same emailid', async () => {
    const headers = { ...APP, 'x-request-id': 'mq-offset-4242' };
    const emailId = await accepted(test, SEED_SAMPLE, headers);
    await delivered(emailId);
    const before = await appendedEvents(test.url);
    expect(await accepted(test, SEED_SAMPLE, headers)).to.equal(emailId);
    expect(await appendedSince(test.url, before), 'the repeat appended events').to.deep.equal({});
    expect(await eventTypes(test, emailId)).to.deep.equal(['EmailRequested', 'EmailSent']);
    expect(withId(emailId)).to.have.length(1);
  });

  it('refuses bad requests (400 naming the field, 413, 401) and sends nothing for any of them', async () => {
    const refused: Array<[string, { body: unknown; headers?: Record<string, string> }, number, string, RegExp]> = [
      ['no to', { body: { subject: SEED.subject, content: SEED.content, ishtml: false } }, 400, 'bad_request', /^to:/],
      ['a bad address', { body: { ...SEED, to: 'zhang3 at example.com' } }, 400, 'bad_request', /^to:/],
      ['a display name', { body: { ...SEED, to: 'Zhang <zhang3@example.com>' } }, 400, 'bad_request', /^to:/],
      [
        'a subject with a line break',
        { body: { ...SEED, subject: '你的订购申请\r\nBcc: everyone@example.com' } },
        400,
        'bad_request',
        /^subject:/,
      ],
      ['ishtml not a boolean', { body: { ...SEED, ishtml: 'false' } }, 400, 'bad_request', /^ishtml:/],
      ['not JSON', { body: '{"to": "zhang3@example.com", ' }, 400, 'bad_request', /JSON/],
      // 64 KB + 1 fits the body limit, so it is the domain that refuses it.
      [
        'content over 64 KB',
        { body: { ...SEED, content: 'x'.repeat(64 * 1024 + 1) } },
        400,
        'bad_request',
        /^content:/,
      ],
      ['a body over 256 KB', { body: { ...SEED, content: 'x'.repeat(256 * 1024) } }, 413, 'too_large', /256 KB/],
      ['a wrong app key', { body: SEED_SAMPLE, headers: { ...APP, 'x-app-key': 'wrong' } }, 401, 'unauthorized', /./],
      [
        'an unknown app',
        { body: SEED_SAMPLE, headers: { 'x-app-id': 'nobody', 'x-app-key': 'EERWERRRRE' } },
        401,
        'unauthorized',
        /./,
      ],
      ['no app credentials', { body: SEED_SAMPLE, headers: {} }, 401, 'unauthorized', /X-App-Id/],
    ];
    const rcptAttempts = peer.rcptAttempts;
    const received = peer.received.length;
    const beforeAll = await appendedEvents(test.url);
    for (const [what, request, status, code, message] of refused) {
      const before = await appendedEvents(test.url);
      const response = await postEmail(test, request.body, request.headers);
      expect(response.status, `${what}: ${response.text}`).to.equal(status);
      const answer = response.json();
      expect(Object.keys(answer).sort(), what).to.deep.equal(['code', 'message']);
      expect(answer.code, what).to.equal(code);
      expect(answer.message, what).to.match(message);
      expect(await appendedSince(test.url, before), `${what}: appended events`).to.deep.equal({});
    }
    // An email accepted after them is the only one the peer gets: none of the refused ones went out.
    const after = await accepted(test, { ...SEED, subject: 'after the refused ones' });
    await delivered(after);
    expect(peer.received.slice(received).map((r) => r.message.messageId)).to.deep.equal([messageIdOf(after)]);
    expect(peer.rcptAttempts).to.equal(rcptAttempts + 1);
    // The counts see an append when one happens: the accepted email's two events.
    expect(await appendedSince(test.url, beforeAll)).to.include({ EmailRequested: 1, EmailSent: 1 });
  });
});

describe('datahub to_emails.json (seed 001) over HTTP, herald without SMTP_URL', function () {
  this.timeout(60_000);
  let test: TestHerald;

  before(async () => {
    test = await startTestHerald({}, new TestClock().now);
  });
  after(() => test?.stop());

  it('accepts the email (202 {emailid}) and records it, but sends nothing: no mailer records an outcome', async () => {
    const emailId = await accepted(test, SEED_SAMPLE);
    // 202 answers once the request is recorded; with no SMTP_URL no mailer runs to record EmailSent or EmailFailed.
    expect(await eventTypes(test, emailId)).to.deep.equal(['EmailRequested']);
  });
});
