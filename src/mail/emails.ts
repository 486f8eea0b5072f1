import { randomUUID } from 'node:crypto';
import { v5 as uuidv5 } from 'uuid';
import { emailStreamName } from '../../domain/email/email';
import { emailAggregate } from '../command/aggregates';
import { handleCommand, newStream } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import type { Logger } from '../runtime/logger';
import type { EmailStatus, PendingEmails } from './pendingEmails';

/**
 * Emails other services ask herald to send (datahub's MQ topic `to_emails.json`,
 * shared/seeds/001_e25b4a10524b93b6.txt). A request is recorded as EmailRequested; the Mailer sends it.
 * The shim parses the wire format (`ishtml` → isHtml) and calls `request`.
 */

export interface RequestEmailInput {
  /** One address or a comma-separated list (domain/email/email.ts: EMAIL_LIMITS). */
  readonly to: string;
  readonly subject: string;
  readonly content: string;
  readonly isHtml: boolean;
  /** A caller's idempotency key: the same key (per app and actor) requests the email once. */
  readonly requestId?: string;
}

const EMAIL_ID_NAMESPACE = '5f0c2d84-6a1e-4b7f-9e3a-2c8d1b6f4a90';

export class Emails {
  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly queries: PendingEmails;
      /** Resolves once the caller's next query would show the effect of a command at this position. */
      readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
      readonly log: Logger;
      /**
       * The running mailer, told of a new email so it need not wait for its next look. Absent (SMTP_URL
       * unset): emails are recorded but not sent, and each is logged as such once, when requested.
       */
      readonly mailer?: { wake(): void };
    },
  ) {}

  /** Records the email to be sent; answers once its status can be read. `actor` names the caller (e.g. `user:<id>`). */
  async request(appId: string, actor: string, input: RequestEmailInput, now: Date): Promise<{ emailId: string }> {
    const emailId = input.requestId
      ? uuidv5(JSON.stringify([appId, actor, input.requestId]), EMAIL_ID_NAMESPACE)
      : randomUUID();
    const result = await handleCommand(
      this.deps.store,
      emailAggregate,
      emailStreamName(emailId),
      {
        type: 'RequestEmail',
        emailId,
        appId,
        to: input.to,
        subject: input.subject,
        content: input.content,
        isHtml: input.isHtml,
        now: now.toISOString(),
      },
      // No commandId: a retried request lands on the same stream (its id comes from the request id), where
      // the decider appends nothing. Identical event ids would instead be taken by the store as a retry of
      // the first append and reported as appended, and the "not sent" line below would repeat.
      { appId, actor },
      newStream(emailAggregate),
    );
    // Logged where it is appended, so once per email however often the request is retried.
    // Only the id: addresses and content are the recipients' business, not the log's.
    if (result.events.length > 0 && !this.deps.mailer)
      this.deps.log.warn({ emailId, appId }, 'email not sent: SMTP_URL is not set');
    await this.deps.readYourWrites(result.position);
    this.deps.mailer?.wake();
    return { emailId };
  }

  /** The email's status, for the app that requested it only. */
  async status(appId: string, emailId: string): Promise<EmailStatus | undefined> {
    const status = await this.deps.queries.byId(emailId);
    return status?.appId === appId ? status : undefined;
  }
}
