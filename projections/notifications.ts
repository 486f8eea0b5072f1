import { isRight } from 'fp-ts/lib/Either';
import type { Pool, PoolClient } from 'pg';
import { MessageEvent, type MessageContent } from '../domain/message/message';
import type { Projection, Publication } from '../src/projection';

/**
 * Inboxes: the messages each user of an app has received, with read/acknowledged state, and the
 * messages themselves (including scheduled ones, which the scheduler releases from here).
 *
 * A message's `seq` is the global position of the event that delivered it (MessageSent, or
 * MessageReleased for a scheduled one): increasing, so it doubles as Koala's `Message_t.meta.seq`, as
 * the acknowledgement id (`sids`) and as the resume point of a reconnecting subscriber (`since`).
 */

/** What a recipient is pushed when a message reaches their inbox; topic `inboxTopic(appId, userId)`. */
export interface DeliveredMessage {
  readonly messageId: string;
  readonly appId: string;
  readonly seq: string;
  readonly sender: string;
  readonly title: string;
  readonly content: string;
  readonly props: Record<string, string> | null;
  readonly sentAt: string;
  readonly expiresAt: string | null;
}

export const inboxTopic = (appId: string, userId: string) => `inbox:${appId}:${userId}`;

export const notificationsProjection: Projection = {
  name: 'notifications',
  version: 1,
  tables: ['notifications', 'notification_messages'],
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
  ],

  async handle(events, tx) {
    const publications: Publication[] = [];
    for (const recorded of events) {
      const decoded = MessageEvent.decode({ type: recorded.type, data: recorded.data });
      if (!isRight(decoded)) continue;
      const event = decoded.right;
      switch (event.type) {
        case 'MessageSent':
          await insertMessage(tx, event.data, 'delivered', { seq: recorded.position, sentAt: event.data.sentAt, releaseAt: null });
          publications.push(...(await deliver(tx, event.data.messageId)));
          break;
        case 'MessageScheduled':
          await insertMessage(tx, event.data, 'scheduled', { seq: null, sentAt: null, releaseAt: event.data.releaseAt });
          break;
        case 'MessageReleased':
          await tx.query(`UPDATE notification_messages SET status = 'delivered', seq = $2, sent_at = $3 WHERE message_id = $1`, [
            event.data.messageId,
            recorded.position.toString(),
            event.data.releasedAt,
          ]);
          publications.push(...(await deliver(tx, event.data.messageId)));
          break;
        case 'MessageExpired':
          await tx.query(`UPDATE notification_messages SET status = 'expired' WHERE message_id = $1`, [event.data.messageId]);
          break;
        case 'MessageAcknowledged':
          await tx.query(
            `UPDATE notifications SET acknowledged_at = $4, read_at = coalesce(read_at, $4)
              WHERE app_id = $1 AND user_id = $2 AND message_id = $3`,
            [event.data.appId, event.data.userId, event.data.messageId, event.data.acknowledgedAt],
          );
          break;
      }
    }
    return publications;
  },
};

async function insertMessage(
  tx: PoolClient,
  message: Omit<MessageContent, 'sentAt'>,
  status: 'delivered' | 'scheduled',
  at: { seq: bigint | null; sentAt: string | null; releaseAt: string | null },
): Promise<void> {
  await tx.query(
    `INSERT INTO notification_messages
       (message_id, app_id, sender, title, content, props, recipients, status, seq, sent_at, release_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      message.messageId,
      message.appId,
      message.sender,
      message.title,
      message.content,
      message.props === null ? null : JSON.stringify(message.props),
      message.recipients,
      status,
      at.seq?.toString() ?? null,
      at.sentAt,
      at.releaseAt,
      message.expiresAt,
    ],
  );
}

/** Puts a delivered message into its recipients' inboxes and returns one push per recipient. */
async function deliver(tx: PoolClient, messageId: string): Promise<Publication[]> {
  const { rows } = await tx.query<{ user_id: string }>(
    `INSERT INTO notifications (app_id, user_id, message_id, seq, type)
     SELECT m.app_id, r.user_id, m.message_id, m.seq, 'koala'
       FROM notification_messages m CROSS JOIN unnest(m.recipients) AS r(user_id)
      WHERE m.message_id = $1
     ON CONFLICT DO NOTHING
     RETURNING user_id`,
    [messageId],
  );
  if (rows.length === 0) return [];
  const message = await tx.query<MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM notification_messages m WHERE m.message_id = $1`, [messageId]);
  const delivered = toDeliveredMessage(message.rows[0]!);
  return rows.map((row) => ({ topic: inboxTopic(delivered.appId, row.user_id), payload: delivered }));
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

export interface Notification extends DeliveredMessage {
  readonly type: string;
  readonly readAt: string | null;
  readonly acknowledgedAt: string | null;
}

export interface NotificationPage {
  readonly total: number;
  readonly nodes: readonly Notification[];
  readonly hasNextPage: boolean;
}

/** A user's inbox, newest first, without expired messages; `beforeSeq` continues a previous page. */
export async function listNotifications(
  pool: Pool,
  viewer: { appId: string; userId: string },
  options: { first: number; beforeSeq?: bigint; unreadOnly: boolean; now: Date },
): Promise<NotificationPage> {
  const where = `n.app_id = $1 AND n.user_id = $2 AND (m.expires_at IS NULL OR m.expires_at > $3) ${options.unreadOnly ? 'AND n.read_at IS NULL' : ''}`;
  const params = [viewer.appId, viewer.userId, options.now];
  const [page, total] = await Promise.all([
    pool.query<MessageRow & { type: string; read_at: Date | null; acknowledged_at: Date | null }>(
      `SELECT ${MESSAGE_COLUMNS}, n.type, n.read_at, n.acknowledged_at
         FROM notifications n JOIN notification_messages m USING (message_id)
        WHERE ${where} AND ($4::bigint IS NULL OR n.seq < $4)
        ORDER BY n.seq DESC LIMIT $5`,
      [...params, options.beforeSeq?.toString() ?? null, options.first + 1],
    ),
    pool.query<{ total: string }>(`SELECT count(*) AS total FROM notifications n JOIN notification_messages m USING (message_id) WHERE ${where}`, params),
  ]);
  const nodes = page.rows.slice(0, options.first).map((row) => ({
    ...toDeliveredMessage(row),
    type: row.type,
    readAt: row.read_at?.toISOString() ?? null,
    acknowledgedAt: row.acknowledged_at?.toISOString() ?? null,
  }));
  return { total: Number(total.rows[0]!.total), nodes, hasNextPage: page.rows.length > options.first };
}

/** Messages delivered to the user after `sinceSeq`, oldest first, unexpired; at most `limit`. */
export async function deliveredSince(pool: Pool, viewer: { appId: string; userId: string }, sinceSeq: bigint, limit: number, now: Date): Promise<DeliveredMessage[]> {
  const { rows } = await pool.query<MessageRow>(
    `SELECT ${MESSAGE_COLUMNS}
       FROM notifications n JOIN notification_messages m USING (message_id)
      WHERE n.app_id = $1 AND n.user_id = $2 AND n.seq > $3 AND (m.expires_at IS NULL OR m.expires_at > $4)
      ORDER BY n.seq ASC LIMIT $5`,
    [viewer.appId, viewer.userId, sinceSeq.toString(), now, limit],
  );
  return rows.map(toDeliveredMessage);
}

/** Message ids of an app's delivered messages by seq (Koala `sids`); unknown seqs are left out. */
export async function messageIdsBySeq(pool: Pool, appId: string, seqs: readonly bigint[]): Promise<Map<bigint, string>> {
  const { rows } = await pool.query<{ seq: string; message_id: string }>(
    'SELECT seq, message_id FROM notification_messages WHERE app_id = $1 AND seq = ANY ($2::bigint[])',
    [appId, seqs.map(String)],
  );
  return new Map(rows.map((r) => [BigInt(r.seq), r.message_id]));
}

/** Scheduled messages whose release time has come, for the scheduler. */
export async function dueScheduledMessages(pool: Pool, now: Date, limit: number): Promise<Array<{ messageId: string; appId: string }>> {
  const { rows } = await pool.query<{ message_id: string; app_id: string }>(
    `SELECT message_id, app_id FROM notification_messages WHERE status = 'scheduled' AND release_at <= $1 ORDER BY release_at LIMIT $2`,
    [now, limit],
  );
  return rows.map((r) => ({ messageId: r.message_id, appId: r.app_id }));
}

/** When the next scheduled message is due, if any. */
export async function nextReleaseAt(pool: Pool): Promise<Date | undefined> {
  const { rows } = await pool.query<{ release_at: Date | null }>(`SELECT min(release_at) AS release_at FROM notification_messages WHERE status = 'scheduled'`);
  return rows[0]?.release_at ?? undefined;
}
