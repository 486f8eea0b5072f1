import type { Pool, PoolClient } from 'pg';
import { EmailEvent } from '../domain/email/email';
import { UUID } from '../domain/text';
import type { RecordedEvent } from '../src/eventStore/eventStore';
import type { EmailStatus, PendingEmails } from '../src/mail/pendingEmails';
import { eventDecoder, eventTypesOf } from '../src/projection/eventDecoder';
import type { Projection } from '../src/projection/projection';
import type { Prunable } from '../src/storage/retention';
import { keyedPruning } from './pruning';

/** Email events; one whose data is refused is parked by the runner, not skipped. */
const emailEvents = eventDecoder(EmailEvent, (event) =>
  UUID.test(event.data.emailId) ? undefined : 'emailId is not a UUID',
);

/**
 * The emails herald was asked to send and how far each got: what the mailer finds due, and an email's
 * status. The content is not copied here: the mailer reads it from the email's stream, which is also
 * where it decides, so it never sends from a lagging copy.
 *
 * A batch is two statements whatever its size: one inserts the batch's requested emails, one applies
 * each email's outcomes, folded per email in position order first. Every outcome sets absolute values
 * (status, attempt number, next try), guarded by the position of the last event applied to the row, so
 * a repeated event changes nothing and the tables are those of applying the events one by one.
 */
export const emailsProjection: Projection = {
  name: 'emails',
  version: 1,
  tables: ['emails'],
  eventTypes: eventTypesOf(emailEvents),
  migrations: [
    {
      id: 'projection/emails/001',
      sql: `
        CREATE TABLE emails (
          email_id uuid PRIMARY KEY,
          app_id text NOT NULL,
          recipients text[] NOT NULL,
          subject text NOT NULL,
          is_html boolean NOT NULL,
          status text NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
          attempts integer NOT NULL,
          next_attempt_at timestamptz,
          last_error text,
          message_id text,
          requested_at timestamptz NOT NULL,
          sent_at timestamptz,
          updated_at timestamptz NOT NULL,
          position bigint NOT NULL
        );
        CREATE INDEX emails_due ON emails (next_attempt_at, email_id) WHERE status = 'pending';
      `,
    },
    {
      // Retention (emailPruning): sent emails by when they were sent.
      id: 'projection/emails/002-retention',
      sql: `CREATE INDEX emails_sent ON emails (updated_at) WHERE status = 'sent'`,
    },
  ],

  // Requests first: an outcome in the same batch as its request updates the row the first statement made.
  async handle(events, tx) {
    const { requested, outcomes } = toBatch(events);
    if (requested.id.length > 0)
      await tx.query({ name: 'emails-request', text: REQUEST, values: Object.values(requested) });
    if (outcomes.id.length > 0)
      await tx.query({ name: 'emails-outcome', text: OUTCOME, values: Object.values(outcomes) });
    return [];
  },
};

interface Outcome {
  status: 'pending' | 'sent' | 'failed';
  attempts: number;
  nextAttemptAt: string | null;
  lastError: string | null;
  messageId: string | null;
  sentAt: string | null;
  at: string;
  position: bigint;
}

/** The batch as column arrays, each in the order of its statement's parameters (passed as `Object.values`). */
function toBatch(events: readonly RecordedEvent[]) {
  const requested = {
    id: [] as string[],
    app: [] as string[],
    recipients: [] as string[],
    subject: [] as string[],
    isHtml: [] as boolean[],
    requestedAt: [] as string[],
    position: [] as string[],
  };
  const seen = new Set<string>();
  const outcomeById = new Map<string, Outcome>();
  for (const recorded of events) {
    const event = emailEvents.decode(recorded);
    if (!event) continue;
    const id = event.data.emailId;
    switch (event.type) {
      case 'EmailRequested': {
        if (seen.has(id)) break; // the first request wins
        seen.add(id);
        const d = event.data;
        requested.id.push(id);
        requested.app.push(d.appId);
        requested.recipients.push(JSON.stringify(d.to));
        requested.subject.push(d.subject);
        requested.isHtml.push(d.isHtml);
        requested.requestedAt.push(d.requestedAt);
        requested.position.push(recorded.position.toString());
        break;
      }
      case 'EmailSent':
      case 'EmailFailed': {
        const before = outcomeById.get(id);
        const attempts = Math.max(before?.attempts ?? 0, event.data.attempt);
        const common = {
          attempts,
          lastError: before?.lastError ?? null,
          messageId: before?.messageId ?? null,
          sentAt: before?.sentAt ?? null,
          position: recorded.position,
        };
        outcomeById.set(
          id,
          event.type === 'EmailSent'
            ? {
                ...common,
                status: 'sent',
                nextAttemptAt: null,
                messageId: event.data.messageId ?? common.messageId,
                sentAt: event.data.sentAt,
                at: event.data.sentAt,
              }
            : {
                ...common,
                status: event.data.final ? 'failed' : 'pending',
                nextAttemptAt: event.data.retryAt,
                lastError: event.data.error,
                at: event.data.failedAt,
              },
        );
        break;
      }
    }
  }
  const ids = [...outcomeById.keys()];
  const outcomes = [...outcomeById.values()];
  return {
    requested,
    outcomes: {
      id: ids,
      status: outcomes.map((o) => o.status),
      attempts: outcomes.map((o) => o.attempts),
      nextAttemptAt: outcomes.map((o) => o.nextAttemptAt),
      lastError: outcomes.map((o) => o.lastError),
      messageId: outcomes.map((o) => o.messageId),
      sentAt: outcomes.map((o) => o.sentAt),
      at: outcomes.map((o) => o.at),
      position: outcomes.map((o) => o.position.toString()),
    },
  };
}

// jsonb for the recipient lists: a text[][] parameter would have to be rectangular.
const REQUEST = `
  INSERT INTO emails (email_id, app_id, recipients, subject, is_html, status, attempts, next_attempt_at, requested_at, updated_at, position)
  SELECT u.id, u.app, ARRAY(SELECT jsonb_array_elements_text(u.recipients)), u.subject, u.is_html, 'pending', 0, u.requested_at, u.requested_at, u.requested_at, u.position
    FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::text[], $5::boolean[], $6::timestamptz[], $7::bigint[])
         AS u(id, app, recipients, subject, is_html, requested_at, position)
  ON CONFLICT (email_id) DO NOTHING`;

// An outcome only moves a row forward: one already past its position (a replayed batch) is left alone.
const OUTCOME = `
  UPDATE emails e
     SET status = u.status,
         attempts = greatest(e.attempts, u.attempts),
         next_attempt_at = u.next_attempt_at,
         last_error = coalesce(u.last_error, e.last_error),
         message_id = coalesce(u.message_id, e.message_id),
         sent_at = coalesce(u.sent_at, e.sent_at),
         updated_at = u.at,
         position = u.position
    FROM unnest($1::uuid[], $2::text[], $3::integer[], $4::timestamptz[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::bigint[])
         AS u(id, status, attempts, next_attempt_at, last_error, message_id, sent_at, at, position)
   WHERE e.email_id = u.id AND e.position < u.position`;

interface EmailRow {
  email_id: string;
  app_id: string;
  recipients: string[];
  subject: string;
  is_html: boolean;
  status: EmailStatus['status'];
  attempts: number;
  next_attempt_at: Date | null;
  last_error: string | null;
  message_id: string | null;
  requested_at: Date;
  sent_at: Date | null;
  updated_at: Date;
}

/** The read side of this projection, behind the interface src/mail declares. */
export function emailQueries(pool: Pool | PoolClient): PendingEmails {
  return {
    async due(now, limit) {
      const { rows } = await pool.query<{ email_id: string; app_id: string }>({
        name: 'emails-due',
        text: `SELECT email_id, app_id FROM emails
                WHERE status = 'pending' AND next_attempt_at <= $1
                ORDER BY next_attempt_at, email_id LIMIT $2`,
        values: [now, limit],
      });
      return rows.map((row) => ({ emailId: row.email_id, appId: row.app_id }));
    },

    async nextAttemptAt() {
      const { rows } = await pool.query<{ next: Date | null }>({
        name: 'emails-next',
        text: `SELECT min(next_attempt_at) AS next FROM emails WHERE status = 'pending'`,
      });
      return rows[0]?.next ?? undefined;
    },

    async byId(emailId) {
      if (!UUID.test(emailId)) return undefined;
      const { rows } = await pool.query<EmailRow>({
        name: 'emails-by-id',
        text: `SELECT email_id, app_id, recipients, subject, is_html, status, attempts, next_attempt_at, last_error, message_id, requested_at, sent_at, updated_at
                 FROM emails WHERE email_id = $1`,
        values: [emailId],
      });
      const row = rows[0];
      if (!row) return undefined;
      return {
        emailId: row.email_id,
        appId: row.app_id,
        to: row.recipients,
        subject: row.subject,
        isHtml: row.is_html,
        status: row.status,
        attempts: row.attempts,
        ...(row.next_attempt_at && { nextAttemptAt: row.next_attempt_at }),
        ...(row.last_error !== null && { lastError: row.last_error }),
        ...(row.message_id !== null && { messageId: row.message_id }),
        requestedAt: row.requested_at,
        ...(row.sent_at && { sentAt: row.sent_at }),
        updatedAt: row.updated_at,
      };
    },
  };
}

/** Retention of emails (domain/retention.ts): a sent one, sent before the cutoff; pending and failed ones are kept. */
export function emailPruning(pool: Pool): Prunable {
  return keyedPruning(pool, {
    table: 'emails',
    category: 'emails',
    key: 'email_id',
    removable: `status = 'sent' AND updated_at < $1`,
    orderBy: 'updated_at',
    stream: `'email-' || email_id`,
  });
}
