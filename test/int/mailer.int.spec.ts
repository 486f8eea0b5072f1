import net from 'node:net';
import { expect } from 'chai';
import { createTransport } from 'nodemailer';
import pino from 'pino';
import { DomainError } from '../../domain/decider';
import { EMAIL_RETRY_DELAYS_MS, emailStreamName } from '../../domain/email/email';
import { emailQueries, emailsProjection } from '../../projections/emails';
import { InProcessBus } from '../../src/bus/bus';
import { StreamNotFoundError, type RecordedEvent } from '../../src/eventStore/eventStore';
import { Emails } from '../../src/mail/emails';
import { createMailer, Mailer, type MailTransport } from '../../src/mail/mailer';
import type { PendingEmails } from '../../src/mail/pendingEmails';
import { ProjectionProgress } from '../../src/projection/projectionProgress';
import { ProjectionRunner } from '../../src/projection/projectionRunner';
import { eventually } from '../support/eventually';
import { TestClock } from '../support/herald';
import { openTestInfrastructure } from '../support/infrastructure';
import { freePort } from '../support/postgres';
import { startSmtpPeer, type SmtpPeer } from '../support/smtpPeer';

/**
 * datahub's `to_emails.json` (shared/seeds/001_e25b4a10524b93b6.txt) end to end on this side of the
 * HTTP shim: Emails records the request, the emails projection makes it due, the Mailer sends it over
 * SMTP to a real SMTP server (smtp-server, started here) and records the outcome.
 */

// The seed's example message.
const SEED = {
  to: 'zhang3@example.com',
  subject: '你的订购申请通过了',
  content:
    '你的订购申请通过了，请可以下载数据了。http://hub.dataos.io/mySubscribe.html 。此邮件是系统自动转发，请不要回复。',
  isHtml: false,
};
// Characters a URL must encode, so the test also shows the mailer decodes SMTP_URL's password.
const PASSWORD = 's3cr3t p@ss/wörd:x';
const ACTOR = 'service:datahub';

describe('mailer: to_emails.json sent over SMTP', () => {
  let world: World;
  let peer: SmtpPeer | undefined;
  let mailers: Mailer[] = [];
  afterEach(async () => {
    await Promise.all(mailers.map((m) => m.close()));
    mailers = [];
    await peer?.close();
    peer = undefined;
    await world?.close();
  });

  const smtpUrl = (port: number, password = PASSWORD) =>
    `smtp://herald:${encodeURIComponent(password)}@127.0.0.1:${port}`;

  /** A mailer as herald starts it (its loop running), or one the test drives through `sendDue`. */
  function runningMailer(port: number, from = 'Herald <noreply@herald.example>'): Mailer {
    const mailer = createMailer({
      store: world.store,
      pending: world.pending,
      clock: world.clock.now,
      log: world.log,
      smtpUrl: smtpUrl(port),
      from,
      readYourWrites: world.readYourWrites,
    });
    if (!mailer) throw new Error('no mailer made');
    mailer.start();
    mailers.push(mailer);
    return mailer;
  }
  function drivenMailer(
    port: number,
    wrap: (transport: MailTransport) => MailTransport = (t) => t,
    password = PASSWORD,
  ): Mailer {
    const url = smtpUrl(port, password);
    const transport = wrap(createTransport({ url, logger: false }));
    const mailer = new Mailer({
      store: world.store,
      pending: world.pending,
      clock: world.clock.now,
      log: world.log,
      transport,
      from: 'herald@herald.example',
      readYourWrites: world.readYourWrites,
      secrets: [url, password],
    });
    mailers.push(mailer);
    return mailer;
  }
  const emailsWith = (mailer: Mailer | undefined) =>
    new Emails({
      store: world.store,
      queries: world.pending,
      readYourWrites: world.readYourWrites,
      log: world.log,
      ...(mailer && { mailer }),
    });

  it('sends a requested email with its to, subject and body (text or html) and records EmailSent', async () => {
    world = await openWorld();
    peer = await startSmtpPeer({ user: 'herald', password: PASSWORD });
    const emails = emailsWith(runningMailer(peer.port));
    const text = await emails.request('camel', ACTOR, SEED, world.clock.now());
    const html = await emails.request(
      'camel',
      ACTOR,
      {
        to: 'li4@example.com, wang5@example.com',
        subject: '订阅 <b>',
        content: '<p>订购 <b>通过</b> &amp; ok</p>',
        isHtml: true,
      },
      world.clock.now(),
    );

    const received = await eventually(() => {
      expect(peer!.received).to.have.length(2);
      return new Map(peer!.received.map((r) => [r.message.messageId, r]));
    });
    const textMail = received.get(`<${text.emailId}@herald.example>`)!;
    expect(textMail.envelope).to.deep.equal({ from: 'noreply@herald.example', to: ['zhang3@example.com'] });
    expect(textMail.message.to).to.deep.include({
      value: [{ address: 'zhang3@example.com', name: '' }],
      text: 'zhang3@example.com',
    });
    expect(textMail.message.from).to.deep.include({ value: [{ address: 'noreply@herald.example', name: 'Herald' }] });
    expect(textMail.message.subject).to.equal(SEED.subject);
    expect(textMail.message.headers.get('content-type')).to.deep.equal({
      value: 'text/plain',
      params: { charset: 'utf-8' },
    });
    expect(textMail.body).to.equal(SEED.content);
    expect(textMail.message.html).to.equal(false);
    const htmlMail = received.get(`<${html.emailId}@herald.example>`)!;
    expect(htmlMail.envelope.to).to.deep.equal(['li4@example.com', 'wang5@example.com']);
    expect(htmlMail.message.to).to.deep.include({
      value: [
        { address: 'li4@example.com', name: '' },
        { address: 'wang5@example.com', name: '' },
      ],
      text: 'li4@example.com, wang5@example.com',
    });
    expect(htmlMail.message.subject).to.equal('订阅 <b>');
    expect(htmlMail.message.headers.get('content-type')).to.deep.equal({
      value: 'text/html',
      params: { charset: 'utf-8' },
    });
    expect(htmlMail.body).to.equal('<p>订购 <b>通过</b> &amp; ok</p>');
    expect(htmlMail.message.text).to.equal('');

    for (const { emailId } of [text, html]) {
      const status = await eventually(async () => {
        const status = await emails.status('camel', emailId);
        expect(status?.status).to.equal('sent');
        return status!;
      });
      expect(status).to.include({ attempts: 1, messageId: `<${emailId}@herald.example>` });
      expect(status.nextAttemptAt).to.equal(undefined);
      const events = await world.events(emailId);
      expect(events.map((e) => e.type)).to.deep.equal(['EmailRequested', 'EmailSent']);
      expect(events[1]!.data).to.include({
        emailId,
        appId: 'camel',
        attempt: 1,
        messageId: `<${emailId}@herald.example>`,
      });
      expect(events[1]!.metadata).to.include({ appId: 'camel', actor: 'herald:mailer' });
    }
    // Nothing of one app is visible to another.
    expect(await emails.status('other', text.emailId)).to.equal(undefined);
    world.expectNoSecretLogged();
  });

  it('a refusing server records EmailFailed with a retry time; past it, the mailer retries and succeeds', async () => {
    world = await openWorld();
    peer = await startSmtpPeer();
    peer.refuse = true;
    const mailer = runningMailer(peer.port);
    const emails = emailsWith(mailer);
    const { emailId } = await emails.request('camel', ACTOR, SEED, world.clock.now());

    const failure = await eventually(async () => {
      const status = await emails.status('camel', emailId);
      expect(status).to.include({ status: 'pending', attempts: 1 });
      return status!;
    });
    const [, failed] = await world.events(emailId);
    expect(failed?.type).to.equal('EmailFailed');
    const data = failed!.data as { failedAt: string; retryAt: string; final: boolean; error: string };
    expect(data.final).to.equal(false);
    expect(Date.parse(data.retryAt) - Date.parse(data.failedAt)).to.equal(EMAIL_RETRY_DELAYS_MS[0]);
    expect(data.error)
      .to.match(/450/)
      .and.match(/mailbox busy/);
    expect(failure.lastError).to.equal(data.error);
    expect(failure.nextAttemptAt?.toISOString()).to.equal(data.retryAt);
    // Until its retry time it is not due.
    expect(await world.pending.due(world.clock.now(), 10)).to.deep.equal([]);
    expect(peer.rcptAttempts).to.equal(1);

    peer.refuse = false;
    world.clock.advance(EMAIL_RETRY_DELAYS_MS[0] + 1000);
    mailer.wake();
    await eventually(async () =>
      expect(await emails.status('camel', emailId)).to.include({ status: 'sent', attempts: 2 }),
    );
    expect((await world.events(emailId)).map((e) => [e.type, (e.data as { attempt?: number }).attempt])).to.deep.equal([
      ['EmailRequested', undefined],
      ['EmailFailed', 1],
      ['EmailSent', 2],
    ]);
    expect(peer.received).to.have.length(1);
    expect(peer.received[0]!.body).to.equal(SEED.content);
  });

  it('fails an email for good after 5 attempts (1 min, 5 min, 30 min, 2 h apart) and tries it no more', async () => {
    world = await openWorld();
    peer = await startSmtpPeer();
    peer.refuse = true;
    const mailer = drivenMailer(peer.port);
    const { emailId } = await emailsWith(mailer).request('camel', ACTOR, SEED, world.clock.now());

    for (let attempt = 1; attempt <= 5; attempt++) {
      expect(await mailer.sendDue(), `attempt ${attempt}`).to.equal(1);
      const last = (await world.events(emailId)).at(-1)!;
      expect(last.type).to.equal('EmailFailed');
      expect(last.data).to.include({ attempt, final: attempt === 5 });
      if (attempt === 5) break;
      // Not before its time: advancing to just short of it tries nothing.
      const delay = EMAIL_RETRY_DELAYS_MS[attempt - 1]!;
      world.clock.advance(delay - 5000);
      expect(await mailer.sendDue()).to.equal(0);
      world.clock.advance(6000);
    }
    const status = await world.emailsOf('camel').status('camel', emailId);
    expect(status).to.include({ status: 'failed', attempts: 5 });
    expect(status?.nextAttemptAt).to.equal(undefined);
    expect(await world.pending.nextAttemptAt()).to.equal(undefined);

    peer.refuse = false;
    world.clock.advance(7 * 24 * 3600_000);
    expect(await mailer.sendDue()).to.equal(0);
    expect(peer.rcptAttempts).to.equal(5);
    expect(peer.received).to.have.length(0);
    expect(await world.events(emailId)).to.have.length(6);
  });

  it('a server that is down records EmailFailed; once it is up and the retry is due, the email goes out', async () => {
    world = await openWorld();
    const port = await freePort();
    const mailer = drivenMailer(port);
    const { emailId } = await emailsWith(mailer).request('camel', ACTOR, SEED, world.clock.now());

    expect(await mailer.sendDue()).to.equal(1);
    const [, failed] = await world.events(emailId);
    expect(failed?.type).to.equal('EmailFailed');
    expect((failed!.data as { error: string }).error).to.match(/ECONNREFUSED/);

    peer = await startSmtpPeer({ port });
    world.clock.advance(EMAIL_RETRY_DELAYS_MS[0] + 1000);
    expect(await mailer.sendDue()).to.equal(1);
    expect((await world.events(emailId)).map((e) => e.type)).to.deep.equal([
      'EmailRequested',
      'EmailFailed',
      'EmailSent',
    ]);
    expect(peer.received).to.have.length(1);
    world.expectNoSecretLogged();
  });

  it('a refused login is a failure like any other; the password reaches no event and no log', async () => {
    world = await openWorld();
    peer = await startSmtpPeer({ user: 'herald', password: 'the right one' });
    const mailer = drivenMailer(peer.port);
    const { emailId } = await emailsWith(mailer).request('camel', ACTOR, SEED, world.clock.now());
    expect(await mailer.sendDue()).to.equal(1);
    const events = await world.events(emailId);
    expect(events.map((e) => e.type)).to.deep.equal(['EmailRequested', 'EmailFailed']);
    expect((events[1]!.data as { error: string }).error).to.match(/535|EAUTH/);
    expect(JSON.stringify(events.map((e) => [e.data, e.metadata])))
      .to.not.include(PASSWORD)
      .and.not.include(encodeURIComponent(PASSWORD));
    world.expectNoSecretLogged();
  });

  it('a transport error carrying the password is recorded without it', async () => {
    world = await openWorld();
    const leaky: MailTransport = {
      sendMail: () => Promise.reject(new Error(`cannot log in to ${smtpUrl(25)} with ${PASSWORD}`)),
      close: () => undefined,
    };
    const mailer = drivenMailer(25, () => leaky);
    const { emailId } = await emailsWith(mailer).request('camel', ACTOR, SEED, world.clock.now());
    expect(await mailer.sendDue()).to.equal(1);
    const error = ((await world.events(emailId))[1]!.data as { error: string }).error;
    expect(error).to.equal('cannot log in to [redacted] with [redacted]');
    world.expectNoSecretLogged();
  });

  it('decides on the stream of the email: a lagging read model makes it send nothing early and nothing twice', async () => {
    world = await openWorld();
    peer = await startSmtpPeer();
    peer.refuse = true;
    const { emailId } = await emailsWith(undefined).request('camel', ACTOR, SEED, world.clock.now());
    // A read model that still shows the email due whatever happened since.
    const lagging: PendingEmails = { ...world.pending, due: async () => [{ emailId, appId: 'camel' }] };
    const url = smtpUrl(peer.port);
    const mailer = new Mailer({
      store: world.store,
      pending: lagging,
      clock: world.clock.now,
      log: world.log,
      transport: createTransport({ url, logger: false }),
      from: 'herald@herald.example',
    });
    mailers.push(mailer);

    expect(await mailer.sendDue()).to.equal(1);
    expect(await mailer.sendDue(), 'retried before its time').to.equal(0);
    expect(peer.rcptAttempts).to.equal(1);
    peer.refuse = false;
    world.clock.advance(EMAIL_RETRY_DELAYS_MS[0] + 1000);
    // The look that found it not due rests it a moment in real time (src/runtime/dueWork.ts), then it is sent.
    await eventually(async () => expect(await mailer.sendDue()).to.equal(1));
    expect(await mailer.sendDue(), 'sent again').to.equal(0);
    expect(peer.received).to.have.length(1);
    expect((await world.events(emailId)).map((e) => e.type)).to.deep.equal([
      'EmailRequested',
      'EmailFailed',
      'EmailSent',
    ]);
  });

  it('two mailers racing on one email record its outcome once', async () => {
    world = await openWorld();
    peer = await startSmtpPeer();
    // Both mailers read the email's stream and reach the server before either records anything.
    const raced = (mailers: number) => {
      let arrived = 0;
      let open: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        open = resolve;
        setTimeout(resolve, 10_000).unref(); // a guard, not a wait: the assertion on `arrived` then fails
      });
      const wrap = (transport: MailTransport): MailTransport => ({
        async sendMail(message) {
          if (++arrived === mailers) open();
          await gate;
          return transport.sendMail(message);
        },
        close: () => transport.close(),
      });
      return { wrap, arrived: () => arrived };
    };

    for (const refuse of [false, true]) {
      peer.refuse = refuse;
      const race = raced(2);
      const [a, b] = [drivenMailer(peer.port, race.wrap), drivenMailer(peer.port, race.wrap)];
      const { emailId } = await emailsWith(a).request(
        'camel',
        ACTOR,
        { ...SEED, subject: `race ${refuse}` },
        world.clock.now(),
      );
      const recorded = await Promise.all([a.sendDue(), b.sendDue()]);
      expect(race.arrived()).to.equal(2);
      expect(recorded.reduce((x, y) => x + y)).to.equal(1);
      expect((await world.events(emailId)).map((e) => e.type)).to.deep.equal([
        'EmailRequested',
        refuse ? 'EmailFailed' : 'EmailSent',
      ]);
    }
    // Both went out (at least once, as SMTP is), with one Message-ID a receiving server can dedupe by.
    expect(peer.received).to.have.length(2);
    expect(new Set(peer.received.map((r) => r.message.messageId)).size).to.equal(1);
  });

  // Issue 21, item 9 (docs/email.md: "a failing email holds up no other"): emails to an SMTP server
  // that accepts the connection and never greets take one attempt timeout each, side by side, while an
  // email to a working server goes out at once. One after the other, each would hold the mailer 30 s.
  it('a server that never greets holds up no other email: each of its attempts ends at the timeout', async () => {
    world = await openWorld();
    peer = await startSmtpPeer();
    const silent = new Set<net.Socket>();
    const mute = net.createServer((socket) => {
      silent.add(socket);
      socket.on('close', () => silent.delete(socket));
    });
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    try {
      const working = createTransport({ url: smtpUrl(peer.port), logger: false });
      const hung = createTransport({
        url: `smtp://127.0.0.1:${(mute.address() as net.AddressInfo).port}`,
        logger: false,
      });
      // One mailer, two servers: the silent one gets the mail for hung.example.
      const routed: MailTransport = {
        sendMail: (message) => (String(message.to).includes('@hung.example') ? hung : working).sendMail(message),
        close: () => {
          working.close();
          hung.close();
        },
      };
      const attemptTimeoutMs = 1500;
      const mailer = new Mailer({
        store: world.store,
        pending: world.pending,
        clock: world.clock.now,
        log: world.log,
        transport: routed,
        from: 'herald@herald.example',
        readYourWrites: world.readYourWrites,
        attemptTimeoutMs,
      });
      mailers.push(mailer);
      mailer.start();
      const emails = emailsWith(mailer);
      const stuck = [];
      for (const name of ['a', 'b', 'c'])
        stuck.push(await emails.request('camel', ACTOR, { ...SEED, to: `${name}@hung.example` }, world.clock.now()));
      await eventually(() => expect(silent.size).to.equal(3));
      const { emailId } = await emails.request('camel', ACTOR, SEED, world.clock.now());
      await eventually(async () => expect((await emails.status('camel', emailId))?.status).to.equal('sent'));
      expect(peer.received).to.have.length(1);

      for (const email of stuck) {
        const status = await eventually(async () => {
          const status = await emails.status('camel', email.emailId);
          expect(status?.attempts).to.equal(1);
          return status!;
        });
        expect(status).to.include({ status: 'pending', lastError: `no answer within ${attemptTimeoutMs} ms` });
        // Retried on its own schedule: 1 min after the failure.
        const [, failed] = await world.events(email.emailId);
        const data = failed!.data as { failedAt: string; retryAt: string };
        expect(Date.parse(data.retryAt) - Date.parse(data.failedAt)).to.equal(EMAIL_RETRY_DELAYS_MS[0]);
      }
    } finally {
      for (const socket of silent) socket.destroy();
      await new Promise((resolve) => mute.close(resolve));
    }
  });

  // Issue 21, item 9 (review): a server that greets, then answers MAIL FROM a byte at a time (never idle
  // long enough for a socket timeout) and only after the attempt has timed out. The attempt is recorded
  // as "no answer", so herald must close that connection: kept open, it went on to deliver the email
  // (a duplicate of the retry), outside the limit on attempts in flight.
  it('an attempt that times out closes its connection: a dripping server never gets the email', async () => {
    world = await openWorld();
    const attemptTimeoutMs = 1000;
    const dripForMs = 8 * attemptTimeoutMs;
    const sessions: Array<{ commands: string[]; closedAt?: number; delivered: boolean }> = [];
    const timers = new Set<NodeJS.Timeout>();
    const sockets = new Set<net.Socket>();
    const drip = net.createServer((socket) => {
      sockets.add(socket);
      const session: (typeof sessions)[number] = { commands: [], delivered: false };
      sessions.push(session);
      socket.on('close', () => (session.closedAt = Date.now()));
      socket.on('error', () => undefined);
      let buffered = '';
      let inData = false;
      socket.write('220 drip.example ESMTP\r\n');
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        if (inData) {
          if (!buffered.includes('\r\n.\r\n')) return;
          inData = false;
          buffered = '';
          session.delivered = true;
          socket.write('250 queued\r\n');
          return;
        }
        let end: number;
        while ((end = buffered.indexOf('\r\n')) !== -1) {
          const line = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const verb = line.slice(0, 4).toUpperCase();
          session.commands.push(verb);
          if (verb === 'EHLO' || verb === 'HELO') socket.write('250-drip.example\r\n250 8BITMIME\r\n');
          else if (verb === 'MAIL') {
            const started = Date.now();
            const timer = setInterval(() => {
              if (socket.destroyed) return clearInterval(timer);
              if (Date.now() - started < dripForMs) return void socket.write('250-still thinking\r\n');
              clearInterval(timer);
              socket.write('250 OK\r\n');
            }, 100);
            timers.add(timer);
          } else if (verb === 'RCPT') socket.write('250 OK\r\n');
          else if (verb === 'DATA') {
            inData = true;
            socket.write('354 go on\r\n');
          } else if (verb === 'QUIT') socket.end('221 bye\r\n');
          else socket.write('250 OK\r\n');
        }
      });
    });
    await new Promise<void>((resolve) => drip.listen(0, '127.0.0.1', resolve));
    try {
      const transport = createTransport({
        url: `smtp://127.0.0.1:${(drip.address() as net.AddressInfo).port}`,
        logger: false,
      });
      const mailer = new Mailer({
        store: world.store,
        pending: world.pending,
        clock: world.clock.now,
        log: world.log,
        transport,
        from: 'herald@herald.example',
        readYourWrites: world.readYourWrites,
        attemptTimeoutMs,
      });
      mailers.push(mailer);
      mailer.start();
      const emails = emailsWith(mailer);
      const { emailId } = await emails.request('camel', ACTOR, SEED, world.clock.now());
      await eventually(() => expect(sessions.map((x) => x.commands)).to.deep.equal([['EHLO', 'MAIL']]));
      const status = await eventually(async () => {
        const status = await emails.status('camel', emailId);
        expect(status?.attempts).to.equal(1);
        return status!;
      });
      expect(status).to.include({ status: 'pending', lastError: `no answer within ${attemptTimeoutMs} ms` });
      // herald closes the connection (well before the server would have let the email through).
      const [session] = sessions;
      await eventually(() => expect(session!.closedAt, 'the server saw the connection close').to.be.a('number'), {
        timeoutMs: dripForMs / 2,
      });
      expect(session!.commands).to.not.include('DATA');
      expect(session!.delivered).to.equal(false);
    } finally {
      for (const timer of timers) clearInterval(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => drip.close(resolve));
    }
  });

  it('with no SMTP_URL nothing is sent: each email is recorded, and logged once as not sent', async () => {
    world = await openWorld();
    peer = await startSmtpPeer();
    const mailer = createMailer({
      store: world.store,
      pending: world.pending,
      clock: world.clock.now,
      log: world.log,
      smtpUrl: undefined,
      readYourWrites: world.readYourWrites,
    });
    expect(mailer).to.equal(undefined);
    expect(world.logged().some((l) => l.msg === 'SMTP_URL is not set: emails are recorded but not sent')).to.equal(
      true,
    );

    const emails = emailsWith(undefined);
    const first = await emails.request('camel', ACTOR, { ...SEED, requestId: 'mq-offset-42' }, world.clock.now());
    const retried = await emails.request('camel', ACTOR, { ...SEED, requestId: 'mq-offset-42' }, world.clock.now());
    const other = await emails.request('camel', ACTOR, SEED, world.clock.now());
    expect(retried.emailId).to.equal(first.emailId);
    expect(other.emailId).to.not.equal(first.emailId);

    const notSent = world
      .logged()
      .filter((l) => typeof l.msg === 'string' && l.msg.includes('not sent: SMTP_URL is not set'));
    expect(notSent.map((l) => l.emailId)).to.deep.equal([first.emailId, other.emailId]);
    // Only the id: the recipient and the content stay out of the log.
    expect(JSON.stringify(world.logged())).to.not.include(SEED.to).and.not.include(SEED.subject);
    expect((await world.events(first.emailId)).map((e) => e.type)).to.deep.equal(['EmailRequested']);
    expect(await emails.status('camel', first.emailId)).to.include({ status: 'pending', attempts: 0 });
    expect(peer.rcptAttempts).to.equal(0);
  });

  it('refuses a bad request naming the field, and appends nothing', async () => {
    world = await openWorld();
    const emails = emailsWith(undefined);
    for (const [input, field] of [
      [{ ...SEED, to: 'not an address' }, 'to'],
      [{ ...SEED, subject: '' }, 'subject'],
      [{ ...SEED, content: 'x'.repeat(64 * 1024 + 1) }, 'content'],
    ] as const) {
      let thrown: unknown;
      await emails
        .request('camel', ACTOR, { ...input, requestId: field }, world.clock.now())
        .catch((error: unknown) => (thrown = error));
      expect(thrown).to.be.instanceOf(DomainError);
      expect((thrown as DomainError).code).to.equal('invalid');
      expect((thrown as DomainError).message).to.match(new RegExp(`^${field}: `));
    }
    expect(await world.store.headPosition()).to.equal(-1n);
  });
});

// --- test support --------------------------------------------------------------------------------

interface World {
  readonly store: Awaited<ReturnType<typeof openTestInfrastructure>>['store'];
  readonly pending: PendingEmails;
  readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
  readonly clock: TestClock;
  readonly log: pino.Logger;
  logged(): Array<Record<string, unknown>>;
  expectNoSecretLogged(): void;
  events(emailId: string): Promise<RecordedEvent[]>;
  emailsOf(appId: string): Emails;
  close(): Promise<void>;
}

/** A fresh database with the event store, the emails projection running, and read-your-writes on it. */
async function openWorld(): Promise<World> {
  const infrastructure = await openTestInfrastructure([emailsProjection]);
  const lines: string[] = [];
  // Every level: a secret must not reach even a debug line.
  const log = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) });
  const progress = new ProjectionProgress({ database: infrastructure.database, log });
  await progress.start();
  const runner = new ProjectionRunner({
    database: infrastructure.database,
    store: infrastructure.store,
    projection: emailsProjection,
    bus: new InProcessBus(),
    log,
    onCommitted: (name, position) => progress.advance(name, position),
  });
  runner.start();
  const pending = emailQueries(infrastructure.database.pool);
  const readYourWrites = progress.readYourWrites([emailsProjection.name], 10_000);
  return {
    store: infrastructure.store,
    pending,
    readYourWrites,
    clock: new TestClock(),
    log,
    logged: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    expectNoSecretLogged() {
      const all = lines.join('\n');
      expect(lines.length).to.be.greaterThan(0);
      expect(all).to.not.include(PASSWORD).and.not.include(encodeURIComponent(PASSWORD)).and.not.include('s3cr3t');
    },
    async events(emailId) {
      try {
        return await infrastructure.store.readStream(emailStreamName(emailId));
      } catch (error) {
        if (error instanceof StreamNotFoundError) return [];
        throw error;
      }
    },
    emailsOf: () => new Emails({ store: infrastructure.store, queries: pending, readYourWrites, log }),
    async close() {
      await runner.stop();
      await progress.close();
      await infrastructure.close();
    },
  };
}
