import { isRight } from 'fp-ts/lib/Either';
import * as t from 'io-ts';
import type { Pool, PoolClient } from 'pg';
import { InboxEvent } from '../domain/notification/inbox';
import { NotificationEvent, type NotificationType } from '../domain/notification/notification';
import type { DatahubQueries, NotificationFilter, Owner } from '../src/datahub/datahub';
import type { RecordedEvent } from '../src/eventStore/eventStore';
import type { Projection } from '../src/projection/projection';

/**
 * datahub's inboxes and their per-type unread stats. A notification's `message_id` is the position of
 * its NotificationSent event: a number, unique, growing with time (datahub's integer `messageid`).
 *
 * Stats are maintained counters: +1 per delivery, −1 per first read of a counted notification. A clear
 * records the position it happened at (`datahub_stats_cleared.up_to`); only notifications after it count,
 * so the user's counters are recounted from the (few) notifications after that position.
 */
export const datahubProjection: Projection = {
  name: 'datahub',
  version: 1,
  tables: ['datahub_notifications', 'datahub_stats', 'datahub_stats_cleared'],
  handles: (eventType) => eventType.startsWith('Notification'),
  migrations: [
    {
      id: 'projection/datahub/001',
      sql: `
        CREATE TABLE datahub_notifications (
          app_id text NOT NULL,
          user_id text NOT NULL,
          message_id bigint NOT NULL,
          notification_id uuid NOT NULL,
          type text NOT NULL,
          sender text NOT NULL,
          level smallint NOT NULL,
          for_client boolean NOT NULL,
          data jsonb NOT NULL,
          sent_at timestamptz NOT NULL,
          read_at timestamptz,
          PRIMARY KEY (app_id, user_id, message_id)
        );
        CREATE UNIQUE INDEX datahub_notifications_receiver ON datahub_notifications (notification_id, user_id);
        CREATE INDEX datahub_notifications_list ON datahub_notifications (app_id, user_id, for_client, message_id DESC);

        CREATE TABLE datahub_stats (
          app_id text NOT NULL,
          user_id text NOT NULL,
          type text NOT NULL,
          unread bigint NOT NULL,
          PRIMARY KEY (app_id, user_id, type)
        );
        CREATE TABLE datahub_stats_cleared (
          app_id text NOT NULL,
          user_id text NOT NULL,
          up_to bigint NOT NULL,
          PRIMARY KEY (app_id, user_id)
        );
      `,
    },
  ],

  // Sends, then reads, then clears: a clear recounts its users from what the two before left, so the
  // order of events inside one batch does not change the outcome (test/int/datahubProjection).
  async handle(events, tx) {
    const { sent, read, cleared } = toBatch(events);
    if (sent.id.length > 0) await tx.query({ name: 'datahub-deliver', text: DELIVER, values: Object.values(sent) });
    if (read.id.length > 0) await tx.query({ name: 'datahub-read', text: READ, values: Object.values(read) });
    if (cleared.app.length > 0) {
      await tx.query({ name: 'datahub-clear', text: CLEAR, values: Object.values(cleared) });
      await tx.query({ name: 'datahub-recount', text: RECOUNT, values: Object.values(cleared) });
    }
    return [];
  },
};

/** The batch as column arrays, each in the order of its statement's parameters (passed as `Object.values`). */
function toBatch(events: readonly RecordedEvent[]) {
  const sent = {
    id: [] as string[],
    app: [] as string[],
    type: [] as string[],
    sender: [] as string[],
    receivers: [] as string[],
    level: [] as number[],
    forClient: [] as boolean[],
    data: [] as string[],
    sentAt: [] as string[],
    position: [] as string[],
  };
  const read = { id: [] as string[], app: [] as string[], user: [] as string[], at: [] as string[], position: [] as string[] };
  const cleared = { app: [] as string[], user: [] as string[], position: [] as string[] };
  for (const recorded of events) {
    const event = decode(recorded);
    if (!event) continue;
    const position = recorded.position.toString();
    switch (event.type) {
      case 'NotificationSent': {
        const d = event.data;
        if (!UUID.test(d.notificationId)) break;
        sent.id.push(d.notificationId);
        sent.app.push(d.appId);
        sent.type.push(d.notificationType);
        sent.sender.push(d.sender);
        sent.receivers.push(JSON.stringify(d.receivers));
        sent.level.push(d.level);
        sent.forClient.push(d.forClient);
        sent.data.push(JSON.stringify(d.data));
        sent.sentAt.push(d.sentAt);
        sent.position.push(position);
        break;
      }
      case 'NotificationRead':
        if (!UUID.test(event.data.notificationId)) break;
        read.id.push(event.data.notificationId);
        read.app.push(event.data.appId);
        read.user.push(event.data.userId);
        read.at.push(event.data.readAt);
        read.position.push(position);
        break;
      case 'NotificationStatsCleared':
        cleared.app.push(event.data.appId);
        cleared.user.push(event.data.userId);
        cleared.position.push(position);
        break;
    }
  }
  return { sent, read, cleared };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An event this projection applies; anything else (other events, a malformed one) is skipped. */
const DatahubEvent = t.union([NotificationEvent, InboxEvent]);

function decode(recorded: RecordedEvent): t.TypeOf<typeof DatahubEvent> | undefined {
  const decoded = DatahubEvent.decode({ type: recorded.type, data: recorded.data });
  return isRight(decoded) ? decoded.right : undefined;
}

// A delivery per distinct receiver (a repeated NotificationSent changes nothing), each counted unread.
const DELIVER = `
  WITH delivered AS (
    INSERT INTO datahub_notifications (app_id, user_id, message_id, notification_id, type, sender, level, for_client, data, sent_at)
    SELECT u.app, r.user_id, u.position, u.id, u.type, u.sender, u.level, u.for_client, u.data, u.sent_at
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::smallint[], $7::boolean[], $8::jsonb[],
                  $9::timestamptz[], $10::bigint[])
           AS u(id, app, type, sender, receivers, level, for_client, data, sent_at, position)
      CROSS JOIN LATERAL (SELECT DISTINCT jsonb_array_elements_text(u.receivers)) AS r(user_id)
    ON CONFLICT DO NOTHING
    RETURNING app_id, user_id, type
  )
  INSERT INTO datahub_stats AS s (app_id, user_id, type, unread)
  SELECT app_id, user_id, type, count(*) FROM delivered GROUP BY app_id, user_id, type
  ON CONFLICT (app_id, user_id, type) DO UPDATE SET unread = s.unread + excluded.unread`;

// The first read of a receiver's notification wins; it uncounts it if it counted (after the last clear).
// Only a read after the delivery reads it (before it, possible only in a corrupt history, it reads nothing).
const READ = `
  WITH first_read AS (
    SELECT DISTINCT ON (n.notification_id, n.user_id) n.notification_id, n.user_id, r.at
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[]) AS r(id, app, user_id, at, position)
      JOIN datahub_notifications n ON n.notification_id = r.id AND n.user_id = r.user_id AND n.app_id = r.app AND r.position > n.message_id
     WHERE n.read_at IS NULL
     ORDER BY n.notification_id, n.user_id, r.position
  ), marked AS (
    UPDATE datahub_notifications n SET read_at = r.at
      FROM first_read r
     WHERE n.notification_id = r.notification_id AND n.user_id = r.user_id
    RETURNING n.app_id, n.user_id, n.type, n.message_id
  )
  INSERT INTO datahub_stats AS s (app_id, user_id, type, unread)
  SELECT m.app_id, m.user_id, m.type, -count(*)
    FROM marked m LEFT JOIN datahub_stats_cleared c ON c.app_id = m.app_id AND c.user_id = m.user_id
   WHERE m.message_id > coalesce(c.up_to, -1)
   GROUP BY m.app_id, m.user_id, m.type
  ON CONFLICT (app_id, user_id, type) DO UPDATE SET unread = s.unread + excluded.unread`;

const CLEARED_USERS = `
  SELECT app, user_id, max(position) AS up_to
    FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(app, user_id, position)
   GROUP BY app, user_id`;

const CLEAR = `
  WITH cleared AS (${CLEARED_USERS}), saved AS (
    INSERT INTO datahub_stats_cleared AS c (app_id, user_id, up_to) SELECT app, user_id, up_to FROM cleared
    ON CONFLICT (app_id, user_id) DO UPDATE SET up_to = greatest(c.up_to, excluded.up_to)
  )
  UPDATE datahub_stats s SET unread = 0 FROM cleared WHERE s.app_id = cleared.app AND s.user_id = cleared.user_id`;

// What counts after a clear: the unread notifications after it (a range of the primary key).
const RECOUNT = `
  WITH cleared AS (${CLEARED_USERS})
  INSERT INTO datahub_stats AS s (app_id, user_id, type, unread)
  SELECT n.app_id, n.user_id, n.type, count(*)
    FROM cleared JOIN datahub_notifications n ON n.app_id = cleared.app AND n.user_id = cleared.user_id AND n.message_id > cleared.up_to
   WHERE n.read_at IS NULL
   GROUP BY n.app_id, n.user_id, n.type
  ON CONFLICT (app_id, user_id, type) DO UPDATE SET unread = excluded.unread`;

interface NotificationRow {
  total: string;
  message_id: string | null;
  notification_id: string;
  type: NotificationType;
  sender: string;
  level: number;
  data: Record<string, unknown>;
  sent_at: Date;
  read_at: Date | null;
}

/** The read side of this projection, behind the interface src/datahub declares. */
export function datahubQueries(pool: Pool | PoolClient): DatahubQueries {
  return {
    async list(owner: Owner, filter: NotificationFilter) {
      // One statement: the total as one row, the page joined to it (an empty page still carries the total).
      const where = `app_id = $1 AND user_id = $2 AND for_client = $3
        AND ($4::text IS NULL OR type = $4) AND ($5::text IS NULL OR sender = $5) AND ($6::smallint IS NULL OR level = $6)
        ${filter.status === 'unread' ? 'AND read_at IS NULL' : filter.status === 'read' ? 'AND read_at IS NOT NULL' : ''}`;
      const { rows } = await pool.query<NotificationRow>(
        `SELECT t.total, p.*
           FROM (SELECT count(*) AS total FROM datahub_notifications WHERE ${where}) t
           LEFT JOIN LATERAL (
                SELECT message_id, notification_id, type, sender, level, data, sent_at, read_at
                  FROM datahub_notifications WHERE ${where}
                 ORDER BY message_id DESC OFFSET $7 LIMIT $8) p ON true
          ORDER BY p.message_id DESC`,
        [owner.appId, owner.userId, filter.forClient, filter.type ?? null, filter.sender ?? null, filter.level ?? null, (filter.page - 1) * filter.size, filter.size],
      );
      const results = rows
        .filter((row) => row.message_id !== null)
        .map((row) => ({
          messageId: Number(row.message_id),
          notificationId: row.notification_id,
          type: row.type,
          sender: row.sender,
          level: row.level,
          data: row.data,
          sentAt: row.sent_at,
          read: row.read_at !== null,
        }));
      return { total: Number(rows[0]?.total ?? 0), results };
    },

    async unreadStats(owner) {
      const { rows } = await pool.query<{ type: string; unread: string }>({
        name: 'datahub-stats',
        text: 'SELECT type, unread FROM datahub_stats WHERE app_id = $1 AND user_id = $2 AND unread > 0',
        values: [owner.appId, owner.userId],
      });
      return new Map(rows.map((row) => [row.type, Number(row.unread)]));
    },

    async notificationIdOf(owner, messageId) {
      const { rows } = await pool.query<{ notification_id: string }>(
        'SELECT notification_id FROM datahub_notifications WHERE app_id = $1 AND user_id = $2 AND message_id = $3',
        [owner.appId, owner.userId, messageId],
      );
      return rows[0]?.notification_id;
    },
  };
}
