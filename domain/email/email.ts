import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { DomainError, unreachable, type Decider } from '../decider';
import {
  decideAttempt,
  ERROR_LENGTH,
  evolveItem,
  failedAttemptFields,
  firstAttemptAt,
  maxAttempts,
  type AttemptState,
  type RetrySchedule,
} from '../outbox';
import { characterCount, isStorableText, UUID } from '../text';

/**
 * An email other services ask herald to send (datahub's MQ topic `to_emails.json`,
 * shared/seeds/001_e25b4a10524b93b6.txt: `{to, subject, content, ishtml}`). Stream: `email-<emailId>`.
 *
 * Requesting it is the event (EmailRequested); the mailer then tries to send it and records each
 * outcome (EmailSent, or EmailFailed with the time of the next try). An email is an outbox item
 * (domain/outbox.ts): after EMAIL_MAX_ATTEMPTS failures it is failed for good, and a sent or finally
 * failed email takes no more outcomes, so mailers racing on one email record it once.
 */

export const EMAIL_LIMITS = {
  /** RFC 5321: a forward path is at most 256 octets including its angle brackets. */
  addressLength: 254,
  localPartLength: 64,
  /**
   * `to` may be a comma-separated list: a service that joined addresses the legacy way keeps working.
   * All go in one message's To header (they see each other), so the list stays short.
   */
  recipients: 10,
  subjectLength: 256,
  /** A failure's text as recorded (domain/outbox.ts): enough for an SMTP reply, not a whole transcript. */
  errorLength: ERROR_LENGTH,
  contentBytes: 64 * 1024,
  messageIdLength: 256,
} as const;

/** Wait after failed attempt n (1-based) before attempt n+1; the attempt after the last entry is the last. */
export const EMAIL_RETRY_DELAYS_MS = [60_000, 5 * 60_000, 30 * 60_000, 2 * 3600_000] as const;
export const EMAIL_SCHEDULE: RetrySchedule = { retryDelaysMs: EMAIL_RETRY_DELAYS_MS };
export const EMAIL_MAX_ATTEMPTS = maxAttempts(EMAIL_SCHEDULE);

export const EmailRequested = t.type({
  type: t.literal('EmailRequested'),
  data: t.type({
    emailId: t.string,
    appId: t.string,
    to: t.array(t.string),
    subject: t.string,
    content: t.string,
    isHtml: t.boolean,
    requestedAt: t.string,
  }),
});
export const EmailSent = t.type({
  type: t.literal('EmailSent'),
  data: t.type({
    emailId: t.string,
    appId: t.string,
    attempt: t.number,
    messageId: t.union([t.string, t.null]),
    sentAt: t.string,
  }),
});
export const EmailFailed = t.type({
  type: t.literal('EmailFailed'),
  data: t.type({
    emailId: t.string,
    appId: t.string,
    ...failedAttemptFields,
  }),
});
export const EmailEvent = t.union([EmailRequested, EmailSent, EmailFailed]);
export type EmailEvent = t.TypeOf<typeof EmailEvent>;

/** docs/events.md, email: what the codecs cannot say. */
export const emailCatalogue: CatalogueEntry = {
  title: 'email',
  stream: 'email-<emailId>',
  module: 'domain/email/email.ts',
  union: EmailEvent,
  description: [
    "datahub's `to_emails.json` (`POST /topics/to_emails.json`); the mailer records each attempt. Details, " +
      'bounds and the retry schedule: docs/email.md.',
  ],
  events: {
    EmailRequested: {
      when: 'a service asks for an email; the same request id appends nothing',
      fields: { to: 'the addresses' },
    },
    EmailSent: {
      when: 'the SMTP server accepted the message',
      fields: { attempt: '1–5', messageId: 'the Message-ID it went out with; null when unknown or not storable' },
    },
    EmailFailed: {
      when: 'an attempt failed; retried after 1 min, 5 min, 30 min, 2 h, the 5th failure is final',
      fields: {
        error: 'one line, ≤ 512 characters, secrets cut out',
        final: 'no attempt is left',
        retryAt: 'null when `final`',
      },
    },
  },
};

export interface RequestEmail {
  readonly type: 'RequestEmail';
  readonly emailId: string;
  readonly appId: string;
  /** One address, or a comma-separated list of up to EMAIL_LIMITS.recipients. */
  readonly to: string;
  readonly subject: string;
  readonly content: string;
  readonly isHtml: boolean;
  readonly now: string;
}
export interface RecordEmailSent {
  readonly type: 'RecordEmailSent';
  /** 1-based: the attempt that succeeded. */
  readonly attempt: number;
  /** The Message-ID the message went out with, if known. */
  readonly messageId?: string;
  readonly now: string;
}
export interface RecordEmailFailed {
  readonly type: 'RecordEmailFailed';
  readonly attempt: number;
  /** What went wrong, already free of secrets (the caller knows them; the decider cannot). */
  readonly error: string;
  readonly now: string;
}
export type EmailCommand = RequestEmail | RecordEmailSent | RecordEmailFailed;

export interface EmailContent {
  readonly emailId: string;
  readonly appId: string;
  readonly to: readonly string[];
  readonly subject: string;
  readonly content: string;
  readonly isHtml: boolean;
}

/** Requested: its content, and where its attempts stand (`succeeded`: sent). */
export type EmailState = { readonly status: 'none' } | (EmailContent & AttemptState);

export const emailStreamName = (emailId: string) => `email-${emailId}`;

export const emailDecider: Decider<EmailCommand, EmailEvent, EmailState> = {
  initialState: () => ({ status: 'none' }),

  evolve(state, event) {
    switch (event.type) {
      case 'EmailRequested': {
        const { emailId, appId, to, subject, content, isHtml, requestedAt } = event.data;
        return { emailId, appId, to, subject, content, isHtml, ...firstAttemptAt(requestedAt) };
      }
      case 'EmailSent':
        return evolveItem(state, { succeeded: true, attempt: event.data.attempt });
      case 'EmailFailed':
        return evolveItem(state, { succeeded: false, ...event.data });
      default:
        return unreachable(event);
    }
  },

  decide(command, state) {
    switch (command.type) {
      case 'RequestEmail':
        // Requested already (a redelivered message, a client's retry): nothing new.
        return state.status === 'none' ? decideRequest(command) : [];
      case 'RecordEmailSent':
      case 'RecordEmailFailed': {
        if (state.status === 'none') throw new DomainError('not_found', 'no such email');
        const outcome =
          command.type === 'RecordEmailSent' ? { ok: true as const } : { ok: false as const, error: command.error };
        const recorded = decideAttempt(EMAIL_SCHEDULE, state, command.attempt, outcome, command.now);
        if (!recorded) return [];
        const { emailId, appId } = state;
        if (recorded.succeeded) {
          const messageId = command.type === 'RecordEmailSent' ? messageIdOf(command.messageId) : null;
          return [
            { type: 'EmailSent', data: { emailId, appId, attempt: recorded.attempt, messageId, sentAt: command.now } },
          ];
        }
        const { attempt, error, final, retryAt } = recorded;
        return [
          { type: 'EmailFailed', data: { emailId, appId, attempt, error, final, failedAt: command.now, retryAt } },
        ];
      }
      default:
        return unreachable(command);
    }
  },
};

function decideRequest(command: RequestEmail): EmailEvent[] {
  const L = EMAIL_LIMITS;
  // The read model keys emails by uuid; ids are made by herald, so a bad one is a caller's bug.
  if (!UUID.test(command.emailId)) throw new DomainError('invalid', 'emailId: must be a UUID');
  const to = parseRecipients(command.to);
  if (
    typeof command.subject !== 'string' ||
    command.subject.trim().length === 0 ||
    characterCount(command.subject) > L.subjectLength
  ) {
    throw new DomainError('invalid', `subject: must be 1-${L.subjectLength} characters`);
  }
  // A subject is one header line; a line break in it is someone's attempt at header injection or a bug.
  if (!isStorableText(command.subject) || /[\r\n]/.test(command.subject))
    throw new DomainError('invalid', 'subject: must be one line of text without control characters');
  if (typeof command.content !== 'string' || !isStorableText(command.content)) {
    throw new DomainError(
      'invalid',
      'content: text may not contain control characters (other than tab, line feed, carriage return) or lone surrogates',
    );
  }
  if (Buffer.byteLength(command.content, 'utf8') > L.contentBytes)
    throw new DomainError('invalid', `content: at most ${L.contentBytes} bytes (UTF-8)`);
  if (typeof command.isHtml !== 'boolean') throw new DomainError('invalid', 'isHtml: must be true or false');
  const { emailId, appId, subject, content, isHtml, now } = command;
  return [{ type: 'EmailRequested', data: { emailId, appId, to, subject, content, isHtml, requestedAt: now } }];
}

/**
 * A sane address, not RFC 5322's full grammar: `local@domain` with no whitespace, quotes, brackets or
 * separators in it (so it cannot smuggle a second recipient or a header), a domain of dot-separated
 * labels (Unicode allowed; nodemailer encodes it). Quoted local parts and address literals are refused.
 */
const ADDRESS =
  /^[^\s@<>()[\]\\,;:"]+@[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?)+$/u;

/** The `to` field: one address or a comma-separated list; blanks between commas are ignored, repeats dropped. */
function parseRecipients(to: string): string[] {
  const L = EMAIL_LIMITS;
  if (typeof to !== 'string') throw new DomainError('invalid', 'to: must be an email address');
  // Bounds the work before splitting: no valid list is longer.
  if (to.length > L.recipients * (L.addressLength + 2))
    throw new DomainError('invalid', `to: at most ${L.recipients} addresses`);
  const seen = new Set<string>();
  const addresses: string[] = [];
  for (const part of to.split(',')) {
    const address = part.trim();
    if (address.length === 0) continue;
    const at = address.lastIndexOf('@');
    if (
      address.length > L.addressLength ||
      at > L.localPartLength ||
      !isStorableText(address) ||
      !ADDRESS.test(address) ||
      /[\u0000-\u001F\u007F]/.test(address)
    ) {
      throw new DomainError(
        'invalid',
        `to: ${JSON.stringify(address.slice(0, 64))} is not an email address (at most ${L.addressLength} characters)`,
      );
    }
    // Domains are case-insensitive; local parts in practice too: a list naming one mailbox twice sends once.
    const key = address.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    addresses.push(address);
  }
  if (addresses.length === 0) throw new DomainError('invalid', 'to: an email address is required');
  if (addresses.length > L.recipients) throw new DomainError('invalid', `to: at most ${L.recipients} addresses`);
  return addresses;
}

/** The Message-ID is informational: one that cannot be stored is dropped, not a reason to lose the success. */
function messageIdOf(messageId: string | undefined): string | null {
  return messageId !== undefined &&
    messageId.length > 0 &&
    messageId.length <= EMAIL_LIMITS.messageIdLength &&
    isStorableText(messageId) &&
    !/[\r\n]/.test(messageId)
    ? messageId
    : null;
}
