import { createTransport, type SendMailOptions } from 'nodemailer';
import { EMAIL_MAX_ATTEMPTS, emailStreamName, type EmailCommand, type EmailContent } from '../../domain/email/email';
import { emailAggregate } from '../command/aggregates';
import type { EventStore } from '../eventStore/eventStore';
import type { Clock } from '../runtime/clock';
import { DueWork } from '../runtime/dueWork';
import type { Logger } from '../runtime/logger';
import { outboxWork } from '../runtime/outbox';
import type { PendingEmails } from './pendingEmails';

/** What the mailer needs of a nodemailer transport (a Transporter satisfies it; tests may pass their own). */
export interface MailTransport {
  sendMail(message: SendMailOptions): Promise<{ messageId?: string }>;
  close(): void;
}

export const DEFAULT_MAIL_FROM = 'herald@localhost';

/**
 * One attempt's bound (docs/email.md): an SMTP server that does not take the message within it fails
 * that attempt ("no answer within 60000 ms"), its connection closed, and the email is retried on its
 * schedule. nodemailer's own timeouts are shorter and may end an attempt first: no connection within
 * 15 s, no greeting within 15 s ("Greeting never received"), 30 s without a byte.
 */
export const EMAIL_ATTEMPT_TIMEOUT_MS = 60_000;
const CONNECTION_TIMEOUT_MS = 15_000;
const GREETING_TIMEOUT_MS = 15_000;
const SOCKET_TIMEOUT_MS = 30_000;

export interface MailerDeps {
  readonly store: EventStore;
  readonly pending: PendingEmails;
  readonly clock: Clock;
  readonly log: Logger;
  /** The mailer owns it: `stop()` closes it. */
  readonly transport: MailTransport;
  /** The From address (e.g. `herald@example.com` or `"Herald" <herald@example.com>`). */
  readonly from: string;
  /** Resolves once the read model shows an outcome at this position (so the email is no longer due). */
  readonly readYourWrites?: (position: bigint | undefined) => Promise<void>;
  /** Text an error must never carry into an event or a log line (the SMTP password, the URL holding it). */
  readonly secrets?: readonly string[];
  /** One attempt's bound (default EMAIL_ATTEMPT_TIMEOUT_MS). */
  readonly attemptTimeoutMs?: number;
}

/**
 * Sends requested emails over SMTP and records each attempt's outcome: EmailSent, or EmailFailed with
 * the next try (domain/email/email.ts: 1 min, 5 min, 30 min, 2 h; the 5th failure is final).
 *
 * An outbox (src/runtime/outbox.ts): what is due lives in the emails read model, so a restart loses nothing;
 * each attempt is decided and recorded on the email's own stream; emails are sent side by side, each
 * attempt bounded by `attemptTimeoutMs`, so a server that never answers holds up no other email.
 * Several mailers may run side by side: the decider takes one outcome per attempt and none after a
 * success or a final failure, so the loser of a race records nothing. The email itself may then have
 * gone out twice (at least once, as SMTP itself); its Message-ID is the same on every try, so a
 * receiving server may recognise the repeat.
 */
export class Mailer extends DueWork<{ readonly emailId: string; readonly appId: string }> {
  override readonly name = 'mailer';
  private readonly transport: MailTransport;

  constructor(deps: MailerDeps) {
    const attemptTimeoutMs = deps.attemptTimeoutMs ?? EMAIL_ATTEMPT_TIMEOUT_MS;
    const describe = (error: unknown) => describeError(error, deps.secrets ?? []);
    super(
      outboxWork(deps, {
        doing: 'trying an email',
        actor: 'herald:mailer',
        aggregate: emailAggregate,
        streamOf: (email) => emailStreamName(email.emailId),
        idOf: (email) => email.emailId,
        keyOf: (email) => email.appId,
        attemptTimeoutMs,
        // A new email wakes the mailer; retries are minutes apart.
        maxWaitMs: 1000,
        attempt: (email, signal) => send(deps, email, signal),
        record: (outcome, attempt, now): EmailCommand =>
          outcome.ok
            ? { type: 'RecordEmailSent', attempt, ...(outcome.messageId && { messageId: outcome.messageId }), now }
            : { type: 'RecordEmailFailed', attempt, error: outcome.error, now },
        describe,
        logOutcome: (email, attempt, outcome) => {
          if (outcome.ok) return deps.log.info({ emailId: email.emailId, appId: email.appId, attempt }, 'email sent');
          const final = attempt >= EMAIL_MAX_ATTEMPTS;
          // SMTP replies quote the recipients; the log gets the error without them (the event keeps it whole).
          const logged = email.to.reduce((text, address) => text.split(address).join('<recipient>'), outcome.error);
          deps.log[final ? 'error' : 'warn'](
            { emailId: email.emailId, appId: email.appId, attempt, error: logged },
            final ? 'email failed for good: no attempt left' : 'sending an email failed; it will be retried',
          );
        },
      }),
    );
    this.transport = deps.transport;
  }

  /** Stops for good, and closes the SMTP transport (`stop()` only stops sending, until this node leads again). */
  async close(): Promise<void> {
    await this.stop();
    this.transport.close();
  }

  /** Tries every email due now, side by side; returns how many outcomes were recorded. */
  sendDue(): Promise<number> {
    return this.doDue();
  }
}

/** One attempt: hands the email to the SMTP server. */
async function send(
  deps: MailerDeps,
  email: EmailContent,
  signal: AbortSignal,
): Promise<{ readonly ok: true; readonly messageId: string | undefined }> {
  const info = await deps.transport.sendMail({
    from: deps.from,
    to: [...email.to],
    subject: email.subject,
    ...(email.isHtml ? { html: email.content } : { text: email.content }),
    messageId: `<${email.emailId}@${domainOf(deps.from)}>`,
    // The content is the caller's text: never let it name a file or URL for nodemailer to fetch.
    disableFileAccess: true,
    disableUrlAccess: true,
    // At the signal nodemailer fails the send and closes its connection (a pooled one too): an attempt
    // recorded as "no answer" cannot go on to deliver the email over a server that drips bytes
    // (which no socket timeout notices), and no abandoned connection outlives its attempt.
    signal,
  });
  return { ok: true, messageId: info.messageId };
}

/** An error as text fit for an event and a log: its code and message, with every secret cut out. */
function describeError(error: unknown, secrets: readonly string[]): string {
  const code =
    typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
      ? `${error.code}: `
      : '';
  let text = `${code}${error instanceof Error ? error.message : String(error)}`;
  for (const secret of secrets) if (secret.length > 0) text = text.split(secret).join('[redacted]');
  return text;
}

/**
 * The mailer for SMTP_URL (`smtp://user:password@host:587`, `smtps://…:465`; nodemailer's URL options
 * such as `?pool=true` apply), not yet started (`start()`: the node that leads does). SMTP_URL unset: no mailer; emails are recorded and not sent
 * (the Emails service logs each as it is requested).
 */
export function createMailer(options: {
  readonly store: EventStore;
  readonly pending: PendingEmails;
  readonly clock: Clock;
  readonly log: Logger;
  readonly smtpUrl: string | undefined;
  readonly from?: string;
  readonly readYourWrites?: (position: bigint | undefined) => Promise<void>;
}): Mailer | undefined {
  const { smtpUrl, ...deps } = options;
  if (!smtpUrl) {
    options.log.warn('SMTP_URL is not set: emails are recorded but not sent');
    return undefined;
  }
  const transport = createTransport({
    url: smtpUrl,
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    // nodemailer's own logger stays off: at debug level it would print the SMTP conversation, AUTH included.
    logger: false,
  });
  const mailer = new Mailer({
    ...deps,
    transport,
    from: options.from ?? DEFAULT_MAIL_FROM,
    secrets: secretsOf(smtpUrl),
  });
  // The URL holds the password: only where it points is logged.
  options.log.info({ smtp: hostOf(smtpUrl) }, 'mailer ready (it sends on the node that leads)');
  return mailer;
}

/** The SMTP URL and the password in it, as given and as decoded. */
function secretsOf(smtpUrl: string): string[] {
  const secrets = [smtpUrl];
  try {
    const { password } = new URL(smtpUrl);
    if (password.length > 0) {
      secrets.push(password);
      try {
        secrets.push(decodeURIComponent(password));
      } catch {
        // not percent-encoded after all: the raw form is already listed
      }
    }
  } catch {
    // not a URL: nodemailer refuses it on the first send, and the whole string is listed anyway
  }
  // Longest first, so a password inside the URL does not leave the rest of the URL behind.
  return [...new Set(secrets)].sort((a, b) => b.length - a.length);
}

function hostOf(smtpUrl: string): string {
  try {
    const url = new URL(smtpUrl);
    return `${url.protocol}//${url.host}`;
  } catch {
    return '(not a URL)';
  }
}

/** The domain of the From address, for Message-IDs. */
function domainOf(from: string): string {
  return /@([^\s<>@]+)>?\s*$/.exec(from)?.[1] ?? 'herald';
}
