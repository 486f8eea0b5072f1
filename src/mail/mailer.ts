import { createTransport, type SendMailOptions } from 'nodemailer';
import { EMAIL_MAX_ATTEMPTS, emailStreamName, type RecordEmailFailed, type RecordEmailSent } from '../../domain/email/email';
import { emailAggregate } from '../command/aggregates';
import { handleCommand, loadState } from '../command/commandHandler';
import type { Clock } from '../clock';
import type { EventStore } from '../eventStore/eventStore';
import type { Logger } from '../logger';
import { DueWork, isStopping, untilAborted } from '../dueWork';
import type { PendingEmails } from './pendingEmails';

/** What the mailer needs of a nodemailer transport (a Transporter satisfies it; tests may pass their own). */
export interface MailTransport {
  sendMail(message: SendMailOptions): Promise<{ messageId?: string }>;
  close(): void;
}

export const DEFAULT_MAIL_FROM = 'herald@localhost';

/**
 * One attempt's bound (docs/email.md): an SMTP server that does not take the message within it fails
 * that attempt, and the email is retried on its schedule. nodemailer's own timeouts are shorter, so its
 * connection ends about when the attempt does (its default would hold it for 10 minutes).
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
 * Durable like the message scheduler: what is due lives in the emails read model, so a restart loses
 * nothing. The email's own stream decides: the mailer sends what the stream says is due now (a lagging
 * read model cannot make it send an email again that is already sent), and records the outcome with the
 * revision it read. Several mailers may run side by side: the decider takes one outcome per attempt and
 * none after a success or a final failure, so the loser of a race records nothing. The email itself may
 * then have gone out twice (at least once, as SMTP itself); its Message-ID is the same on every try, so
 * a receiving server may recognise the repeat.
 */
export class Mailer {
  /** Due emails, each on its own: one whose attempt cannot even be recorded (the store down) backs off alone. */
  private readonly work: DueWork<{ readonly emailId: string; readonly appId: string }>;

  constructor(private readonly deps: MailerDeps) {
    this.work = new DueWork({
      clock: deps.clock,
      log: deps.log,
      doing: 'trying an email',
      // A new email wakes the mailer; retries are minutes apart.
      maxWaitMs: 1000,
      attemptTimeoutMs: deps.attemptTimeoutMs ?? EMAIL_ATTEMPT_TIMEOUT_MS,
      due: (now, limit) => deps.pending.due(now, limit),
      nextDueAt: () => deps.pending.nextAttemptAt(),
      idOf: (email) => email.emailId,
      keyOf: (email) => email.appId,
      perform: (email, _now, signal) => this.attempt(email.emailId, signal),
      readYourWrites: deps.readYourWrites,
      describe: (error) => this.describe(error),
    });
  }

  start(): void {
    this.work.start();
  }

  /** Stops sending; `start()` goes on again (when this node leads again: src/nodes/leadership.ts). */
  async stop(): Promise<void> {
    await this.work.stop();
  }

  /** Stops for good, and closes the SMTP transport. */
  async close(): Promise<void> {
    await this.stop();
    this.deps.transport.close();
  }

  /** Look for due emails now (a new one was requested, or a test moved the clock). */
  wake(): void {
    this.work.wake();
  }

  /** Tries every email due now, one after the other; returns how many outcomes were recorded. */
  sendDue(): Promise<number> {
    return this.work.doDue();
  }

  /** One attempt at one email, decided on its stream; undefined when the stream says it is not due. */
  private async attempt(emailId: string, signal: AbortSignal) {
    const streamName = emailStreamName(emailId);
    const loaded = await loadState(this.deps.store, emailAggregate, streamName);
    const { state } = loaded;
    if (state.status !== 'pending' || state.nextAttemptAt === null || Date.parse(state.nextAttemptAt) > this.deps.clock().getTime()) return undefined;
    const attempt = state.attempts + 1;
    let outcome: RecordEmailSent | RecordEmailFailed;
    try {
      // nodemailer takes no signal: the attempt ends at the signal, its connection at nodemailer's timeouts.
      const info = await untilAborted(signal, this.deps.transport.sendMail({
        from: this.deps.from,
        to: [...state.to],
        subject: state.subject,
        ...(state.isHtml ? { html: state.content } : { text: state.content }),
        messageId: `<${emailId}@${domainOf(this.deps.from)}>`,
        // The content is the caller's text: never let it name a file or URL for nodemailer to fetch.
        disableFileAccess: true,
        disableUrlAccess: true,
      }));
      outcome = { type: 'RecordEmailSent', attempt, ...(info.messageId && { messageId: info.messageId }), now: this.deps.clock().toISOString() };
      this.deps.log.info({ emailId, appId: state.appId, attempt }, 'email sent');
    } catch (error) {
      if (isStopping(signal)) throw error;
      const described = signal.aborted ? `no answer within ${this.deps.attemptTimeoutMs ?? EMAIL_ATTEMPT_TIMEOUT_MS} ms` : this.describe(error);
      outcome = { type: 'RecordEmailFailed', attempt, error: described, now: this.deps.clock().toISOString() };
      const final = attempt >= EMAIL_MAX_ATTEMPTS;
      // SMTP replies quote the recipients; the log gets the error without them (the event keeps it whole).
      const logged = state.to.reduce((text, address) => text.split(address).join('<recipient>'), described);
      this.deps.log[final ? 'error' : 'warn']({ emailId, appId: state.appId, attempt, error: logged }, final ? 'email failed for good: no attempt left' : 'sending an email failed; it will be retried');
    }
    return handleCommand(
      this.deps.store,
      emailAggregate,
      streamName,
      outcome,
      // No commandId: the decider alone keeps racing mailers from recording twice, and the events it
      // returns are then what was appended (the store would take identical ids as a retry and say so too).
      { appId: state.appId, actor: 'herald:mailer' },
      loaded,
    );
  }

  /** An error as text fit for an event and a log: its code and message, with every secret cut out. */
  private describe(error: unknown): string {
    const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? `${error.code}: ` : '';
    let text = `${code}${error instanceof Error ? error.message : String(error)}`;
    for (const secret of this.deps.secrets ?? []) if (secret.length > 0) text = text.split(secret).join('[redacted]');
    return text;
  }
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
  const mailer = new Mailer({ ...deps, transport, from: options.from ?? DEFAULT_MAIL_FROM, secrets: secretsOf(smtpUrl) });
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
