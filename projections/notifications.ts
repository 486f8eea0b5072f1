import { isRight } from 'fp-ts/lib/Either';
import type { Pool, PoolClient } from 'pg';
import { MessageEvent } from '../domain/message/message';
import type { RecordedEvent } from '../src/eventStore/eventStore';
import { inboxTopic, type DeliveredMessage, type InboxQueries, type NotificationPage } from '../src/messaging/inbox';
import type { ScheduledMessages } from '../src/messaging/messageScheduler';
import type { Projection, Publication } from '../src/projection/projection';

/**
 * Inboxes: the messages each user of an app has received, with read/acknowledged state, a counter row
 * per inbox (so a page's `total` costs one row, not a count of the inbox), and the messages themselves
 * (including scheduled ones, which the scheduler releases from here).
 *
 * A batch is applied set-based, a few statements per batch whatever its size: messages created, then
 * status changes (release, expiry), then deliveries into inboxes, then acknowledgements, each one
 * statement over `unnest` of the batch's arrays, counters upserted once per inbox in the same statement.
 * The phases run in that order because a history only ever has them in that order per message (a
 * message is created before it is released, delivered before it is acknowledged). Repeated events are
 * harmless: the first creation, status change and acknowledgement of a message wins, later ones change
 * nothing — the same tables as applying the events one by one (test/int/notificationsProjection.int.spec.ts).
 */

export const notificationsProjection: Projection = {
  name: 'notifications',
  version: 2,
  tables: ['notifications', 'notification_messages', 'inbox_counters'],
  migrations: [
    {
      id: 'projection/notifications/001',
      sql: `
        CREATE TABLE notification_messages (
          message_id text PRIMARY KEY,
          app_id text NOT NULL,
          sender text NOT NULL,
          title text NOT NULL,
          content text NOT NULL,
          props jsonb,
          recipients text[] NOT NULL,
          status text NOT NULL CHECK (status IN ('scheduled', 'delivered', 'expired')),
          seq bigint,
          sent_at timestamptz,
          release_at timestamptz,
          expires_at timestamptz
        );
        CREATE UNIQUE INDEX notification_messages_seq ON notification_messages (app_id, seq);
        CREATE INDEX notification_messages_due ON notification_messages (release_at) WHERE status = 'scheduled';

        CREATE TABLE notifications (
          app_id text NOT NULL,
          user_id text NOT NULL,
          message_id text NOT NULL REFERENCES notification_messages (message_id),
          seq bigint NOT NULL,
          type text NOT NULL,
          read_at timestamptz,
          acknowledged_at timestamptz,
          PRIMARY KEY (app_id, user_id, message_id)
        );
        CREATE INDEX notifications_inbox ON notifications (app_id, user_id, seq DESC);
      `,
    },
    {
      // Version 2: uuid keys, expiry copied onto each notification (a page is one index range scan),
      // maintained counters, no foreign key (the projection alone writes these tables). The runner
      // replays the history into them, as the version changed.
      id: 'projection/notifications/002-set-based',
      sql: `
        DROP TABLE notifications;
        DROP TABLE notification_messages;
        CREATE TABLE notification_messages (
          message_id uuid PRIMARY KEY,
          app_id text NOT NULL,
          sender text NOT NULL,
          title text NOT NULL,
          content text NOT NULL,
          props jsonb,
          recipients text[] NOT NULL,
          status text NOT NULL CHECK (status IN ('scheduled', 'delivered', 'expired')),
          seq bigint,
          sent_at timestamptz,
          release_at timestamptz,
          expires_at timestamptz
        );
        CREATE UNIQUE INDEX notification_messages_seq ON notification_messages (app_id, seq);
        CREATE INDEX notification_messages_due ON notification_messages (release_at) WHERE status = 'scheduled';

        CREATE TABLE notifications (
          message_id uuid NOT NULL,
          user_id text NOT NULL,
          app_id text NOT NULL,
          seq bigint NOT NULL,
          type text NOT NULL,
          expires_at timestamptz,
          read_at timestamptz,
          acknowledged_at timestamptz,
          PRIMARY KEY (message_id, user_id)
        );
        CREATE INDEX notifications_inbox ON notifications (app_id, user_id, seq DESC);
        CREATE INDEX notifications_expiring ON notifications (app_id, user_id, expires_at) WHERE expires_at IS NOT NULL;

        CREATE TABLE inbox_counters (
          app_id text NOT NULL,
          user_id text NOT NULL,
          total bigint NOT NULL,
          unread bigint NOT NULL,
          PRIMARY KEY (app_id, user_id)
        );
      `,
    },
  ],

  async handle(events, tx) {
    const batch = toBatch(events);
    const delivered: string[] = [];
    if (batch.created.id.length > 0) {
      const { rows } = await tx.query<{ message_id: string; status: string }>(INSERT_MESSAGES, Object.values(batch.created));
      for (const row of rows) if (row.status === 'delivered') delivered.push(row.message_id);
    }
    if (batch.changed.id.length > 0) {
      const { rows } = await tx.query<{ message_id: string; status: string }>(CHANGE_STATUS, Object.values(batch.changed));
      for (const row of rows) if (row.status === 'delivered') delivered.push(row.message_id);
    }
    const publications = delivered.length > 0 ? await deliver(tx, delivered) : [];
    if (batch.acknowledged.id.length > 0) await tx.query(ACKNOWLEDGE, Object.values(batch.acknowledged));
    return publications;
  },
};

// --- applying a batch ----------------------------------------------------------------------------

/**
 * The batch as column arrays, one set per statement, each in the order of its statement's parameters
 * (passed as `Object.values`); each keeps the event's position, for "the first one wins".
 */
function toBatch(events: readonly RecordedEvent[]) {
  const created = {
    id: [] as string[], position: [] as string[], app: [] as string[], sender: [] as string[], title: [] as string[],
    content: [] as string[], props: [] as (string | null)[], recipients: [] as string[], status: [] as string[],
    sentAt: [] as (string | null)[], releaseAt: [] as (string | null)[], expiresAt: [] as (string | null)[],
  };
  const changed = { id: [] as string[], position: [] as string[], status: [] as string[], at: [] as string[] };
  const acknowledged = { id: [] as string[], position: [] as string[], app: [] as string[], user: [] as string[], at: [] as string[] };
  for (const recorded of events) {
    const event = decodeMessageEvent(recorded);
    if (!event) continue;
    const position = recorded.position.toString();
    switch (event.type) {
      case 'MessageSent':
      case 'MessageScheduled': {
        const d = event.data;
        created.id.push(d.messageId);
        created.position.push(position);
        created.app.push(d.appId);
        created.sender.push(d.sender);
        created.title.push(d.title);
        created.content.push(d.content);
        created.props.push(d.props === null ? null : JSON.stringify(d.props));
        created.recipients.push(JSON.stringify(d.recipients));
        created.status.push(event.type === 'MessageSent' ? 'delivered' : 'scheduled');
        created.sentAt.push(event.type === 'MessageSent' ? event.data.sentAt : null);
        created.releaseAt.push(event.type === 'MessageScheduled' ? event.data.releaseAt : null);
        created.expiresAt.push(d.expiresAt);
        break;
      }
      case 'MessageReleased':
      case 'MessageExpired':
        changed.id.push(event.data.messageId);
        changed.position.push(position);
        changed.status.push(event.type === 'MessageReleased' ? 'delivered' : 'expired');
        changed.at.push(event.type === 'MessageReleased' ? event.data.releasedAt : event.data.expiredAt);
        break;
      case 'MessageAcknowledged':
        acknowledged.id.push(event.data.messageId);
        acknowledged.position.push(position);
        acknowledged.app.push(event.data.appId);
        acknowledged.user.push(event.data.userId);
        acknowledged.at.push(event.data.acknowledgedAt);
        break;
    }
  }
  return { created, changed, acknowledged };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A message event this projection can apply; anything else (other events, a malformed one) is skipped. */
export function decodeMessageEvent(recorded: RecordedEvent): MessageEvent | undefined {
  if (!recorded.type.startsWith('Message')) return undefined;
  const decoded = MessageEvent.decode({ type: recorded.type, data: recorded.data });
  if (!isRight(decoded) || !UUID.test(decoded.right.data.messageId)) return undefined;
  return decoded.right;
}

// The first creation of a message id wins; a seq only for a message delivered at once.
const INSERT_MESSAGES = `
  INSERT INTO notification_messages
    (message_id, app_id, sender, title, content, props, recipients, status, seq, sent_at, release_at, expires_at)
  SELECT DISTINCT ON (u.id) u.id, u.app, u.sender, u.title, u.content, u.props,
         ARRAY(SELECT jsonb_array_elements_text(u.recipients)), u.status,
         CASE WHEN u.status = 'delivered' THEN u.position END, u.sent_at, u.release_at, u.expires_at
    FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::jsonb[],
                $9::text[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[])
         AS u(id, position, app, sender, title, content, props, recipients, status, sent_at, release_at, expires_at)
   ORDER BY u.id, u.position
  ON CONFLICT (message_id) DO NOTHING
  RETURNING message_id, status`;

// Release or expiry: only a scheduled message changes, and the first change of it wins.
const CHANGE_STATUS = `
  UPDATE notification_messages m
     SET status = c.status,
         seq = CASE WHEN c.status = 'delivered' THEN c.position ELSE m.seq END,
         sent_at = CASE WHEN c.status = 'delivered' THEN c.at ELSE m.sent_at END
    FROM (SELECT DISTINCT ON (u.id) u.*
            FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[]) AS u(id, position, status, at)
           ORDER BY u.id, u.position) c
   WHERE m.message_id = c.id AND m.status = 'scheduled'
  RETURNING m.message_id, m.status`;

// Into every recipient's inbox, counting each new notification once in its inbox's counters.
const DELIVER = `
  WITH delivered AS (
    INSERT INTO notifications (message_id, user_id, app_id, seq, type, expires_at)
    SELECT m.message_id, r.user_id, m.app_id, m.seq, 'koala', m.expires_at
      FROM notification_messages m CROSS JOIN unnest(m.recipients) AS r(user_id)
     WHERE m.message_id = ANY ($1::uuid[])
    ON CONFLICT DO NOTHING
    RETURNING message_id, user_id, app_id
  ), counted AS (
    INSERT INTO inbox_counters AS c (app_id, user_id, total, unread)
    SELECT app_id, user_id, count(*), count(*) FROM delivered GROUP BY app_id, user_id
    ON CONFLICT (app_id, user_id) DO UPDATE SET total = c.total + excluded.total, unread = c.unread + excluded.unread
  )
  SELECT message_id, user_id FROM delivered`;

// The first acknowledgement of a notification wins; it also reads it, once, for the unread counter.
const ACKNOWLEDGE = `
  WITH ack AS (
    SELECT DISTINCT ON (u.id, u.user_id) u.*
      FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[]) AS u(id, position, app, user_id, at)
     ORDER BY u.id, u.user_id, u.position
  ), target AS (
    SELECT n.message_id, n.user_id, n.read_at IS NULL AS was_unread, ack.at
      FROM notifications n JOIN ack ON n.message_id = ack.id AND n.user_id = ack.user_id AND n.app_id = ack.app
     WHERE n.acknowledged_at IS NULL
       FOR UPDATE OF n
  ), acknowledged AS (
    UPDATE notifications n SET acknowledged_at = t.at, read_at = coalesce(n.read_at, t.at)
      FROM target t
     WHERE n.message_id = t.message_id AND n.user_id = t.user_id
    RETURNING n.app_id, n.user_id, t.was_unread
  )
  INSERT INTO inbox_counters AS c (app_id, user_id, total, unread)
  SELECT app_id, user_id, 0, -count(*) FROM acknowledged WHERE was_unread GROUP BY app_id, user_id
  ON CONFLICT (app_id, user_id) DO UPDATE SET unread = c.unread + excluded.unread`;

/** Puts delivered messages into their recipients' inboxes; one push per new notification, one payload per message. */
async function deliver(tx: PoolClient, messageIds: readonly string[]): Promise<Publication[]> {
  const { rows } = await tx.query<{ message_id: string; user_id: string }>(DELIVER, [messageIds]);
  if (rows.length === 0) return [];
  const messages = await tx.query<MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM notification_messages m WHERE m.message_id = ANY ($1::uuid[])`, [
    [...new Set(rows.map((r) => r.message_id))],
  ]);
  const byId = new Map(messages.rows.map((row) => [row.message_id, toDeliveredMessage(row)]));
  return rows.map((row) => {
    const message = byId.get(row.message_id)!;
    return { topic: inboxTopic(message.appId, row.user_id), payload: message };
  });
}

// --- queries -------------------------------------------------------------------------------------

interface MessageRow {
  message_id: string;
  app_id: string;
  seq: string;
  sender: string;
  title: string;
  content: string;
  props: Record<string, string> | null;
  sent_at: Date;
  expires_at: Date | null;
}

const MESSAGE_COLUMNS = 'm.message_id, m.app_id, m.seq, m.sender, m.title, m.content, m.props, m.sent_at, m.expires_at';

function toDeliveredMessage(row: MessageRow): DeliveredMessage {
  return {
    messageId: row.message_id,
    appId: row.app_id,
    seq: String(row.seq),
    sender: row.sender,
    title: row.title,
    content: row.content,
    props: row.props,
    sentAt: row.sent_at.toISOString(),
    expiresAt: row.expires_at?.toISOString() ?? null,
  };
}

/** The read side of this projection, behind the query interfaces messaging declares. */
export function notificationQueries(pool: Pool): InboxQueries & ScheduledMessages {
  return {
    async page(owner, options): Promise<NotificationPage> {
      const unread = options.unreadOnly ? 'AND n.read_at IS NULL' : '';
      const [page, total] = await Promise.all([
        // Keyset paging on notifications_inbox; only the page's rows are joined to their messages.
        pool.query<MessageRow & { type: string; read_at: Date | null; acknowledged_at: Date | null }>(
          `SELECT ${MESSAGE_COLUMNS}, n.type, n.read_at, n.acknowledged_at
             FROM (SELECT * FROM notifications n
                    WHERE n.app_id = $1 AND n.user_id = $2 AND (n.expires_at IS NULL OR n.expires_at > $3) ${unread}
                      AND ($4::bigint IS NULL OR n.seq < $4)
                    ORDER BY n.seq DESC LIMIT $5) n
             JOIN notification_messages m USING (message_id)
            ORDER BY n.seq DESC`,
          [owner.appId, owner.userId, options.now, options.beforeSeq?.toString() ?? null, options.first + 1],
        ),
        // The maintained counter, less what has expired since (expiry is a time, not an event).
        pool.query<{ total: string }>(
          `SELECT coalesce((SELECT ${options.unreadOnly ? 'unread' : 'total'} FROM inbox_counters WHERE app_id = $1 AND user_id = $2), 0)
                - (SELECT count(*) FROM notifications n WHERE n.app_id = $1 AND n.user_id = $2 AND n.expires_at IS NOT NULL AND n.expires_at <= $3 ${unread})
                  AS total`,
          [owner.appId, owner.userId, options.now],
        ),
      ]);
      const nodes = page.rows.slice(0, options.first).map((row) => ({
        ...toDeliveredMessage(row),
        type: row.type,
        readAt: row.read_at?.toISOString() ?? null,
        acknowledgedAt: row.acknowledged_at?.toISOString() ?? null,
      }));
      return { total: Number(total.rows[0]!.total), nodes, hasNextPage: page.rows.length > options.first };
    },

    async deliveredSince(owner, sinceSeq, limit, now) {
      const { rows } = await pool.query<MessageRow>(
        `SELECT ${MESSAGE_COLUMNS}
           FROM (SELECT message_id, seq FROM notifications n
                  WHERE n.app_id = $1 AND n.user_id = $2 AND n.seq > $3 AND (n.expires_at IS NULL OR n.expires_at > $4)
                  ORDER BY n.seq ASC LIMIT $5) n
           JOIN notification_messages m USING (message_id)
          ORDER BY n.seq ASC`,
        [owner.appId, owner.userId, sinceSeq.toString(), now, limit],
      );
      return rows.map(toDeliveredMessage);
    },

    async messageIdsBySeq(appId, seqs) {
      const { rows } = await pool.query<{ seq: string; message_id: string }>(
        'SELECT seq, message_id FROM notification_messages WHERE app_id = $1 AND seq = ANY ($2::bigint[])',
        [appId, seqs.map(String)],
      );
      return new Map(rows.map((r) => [BigInt(r.seq), r.message_id]));
    },

    async due(now, limit) {
      const { rows } = await pool.query<{ message_id: string; app_id: string }>(
        `SELECT message_id, app_id FROM notification_messages WHERE status = 'scheduled' AND release_at <= $1 ORDER BY release_at LIMIT $2`,
        [now, limit],
      );
      return rows.map((r) => ({ messageId: r.message_id, appId: r.app_id }));
    },

    async nextReleaseAt() {
      const { rows } = await pool.query<{ release_at: Date | null }>(`SELECT min(release_at) AS release_at FROM notification_messages WHERE status = 'scheduled'`);
      return rows[0]?.release_at ?? undefined;
    },
  };
}
