import * as t from 'io-ts';
import type { Pool, PoolClient } from 'pg';
import { InboxEvent } from '../domain/inbox/inbox';
import {
  BROADCAST_TYPE,
  isSiteWide,
  NotificationEvent,
  subscriptionEnded,
  type NotificationType,
} from '../domain/notification/notification';
import { UUID } from '../domain/text';
import { publication } from '../src/bus/bus';
import { broadcastStatsTopic, notificationStatsTopic } from '../src/bus/topics';
import { type DatahubQueries, type ItemSubscribers, type NotificationFilter, type Owner } from '../src/datahub/datahub';
import type { RecordedEvent } from '../src/eventStore/eventStore';
import { prepared } from '../src/postgres/database';
import { Columns } from '../src/projection/columns';
import { eventDecoder, eventTypesOf } from '../src/projection/eventDecoder';
import type { Projection } from '../src/projection/projection';
import type { AppCutoffs, AppPrunable } from '../src/storage/retention';
import { appCutoffs, RETIRE_GONE_STREAMS } from './pruning';

/** Notification and inbox events; one whose data is refused is parked by the runner, not skipped. */
const datahubEvents = eventDecoder(t.union([NotificationEvent, InboxEvent]), (event) =>
  event.type !== 'NotificationStatsCleared' && !UUID.test(event.data.notificationId)
    ? 'notificationId is not a UUID'
    : undefined,
);

/**
 * datahub's inboxes and their per-type unread stats. A notification's `message_id` is the position of
 * its NotificationSent event: a number, unique, growing with time (datahub's integer `messageid`).
 *
 * Stats are maintained counters: +1 per delivery, −1 per first read of a counted notification. A clear
 * records the position it happened at (`datahub_stats_cleared.up_to`); only notifications after it count,
 * so the user's counters are recounted from the (few) notifications after that position.
 *
 * A notification's `given_time` is the time its sender gave (the seed's `time`), exactly as written, listed
 * instead of `sent_at` (the arrival) when there is one; lists stay ordered by arrival (`message_id`).
 *
 * A site broadcast to the whole app (one that names no receiver) is one row for the app (`datahub_broadcasts`), whatever the number of users, so
 * users who appear later see it too. Each broadcast has an ordinal in its app (1, 2, …), so the app's
 * latest ordinal is the number of broadcasts sent. A user's reads of broadcasts are rows of their own;
 * `datahub_broadcast_views.uncounted` is how many of the app's broadcasts do not count as unread for the
 * user (those up to the user's last clear, and those after it the user read): unread = latest − uncounted.
 *
 * `datahub_list_counts`: each user's deliveries per list (browser, client), all and unread: the totals of
 * an unfiltered page, maintained (a filtered page counts its rows).
 *
 * `datahub_item_subscribers`: who subscribes to which item, as the subs_events herald delivered tell
 * (the latest one per user and item decides; see subscriptionEnded), for the to_subscriptions.json topic.
 */
export const datahubProjection: Projection = {
  name: 'datahub',
  version: 2,
  tables: [
    'datahub_notifications',
    'datahub_stats',
    'datahub_stats_cleared',
    'datahub_broadcasts',
    'datahub_broadcast_reads',
    'datahub_broadcast_views',
    'datahub_item_subscribers',
    'datahub_list_counts',
  ],
  eventTypes: eventTypesOf(datahubEvents),
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
    {
      // A notification may be in both lists (the seed's message key rule); site broadcasts.
      id: 'projection/datahub/002',
      sql: `
        ALTER TABLE datahub_notifications ADD COLUMN for_browser boolean NOT NULL DEFAULT true;
        ALTER TABLE datahub_notifications ALTER COLUMN for_browser DROP DEFAULT;
        DROP INDEX datahub_notifications_list;
        CREATE INDEX datahub_notifications_browser ON datahub_notifications (app_id, user_id, message_id DESC) WHERE for_browser;
        CREATE INDEX datahub_notifications_client ON datahub_notifications (app_id, user_id, message_id DESC) WHERE for_client;

        CREATE TABLE datahub_broadcasts (
          app_id text NOT NULL,
          message_id bigint NOT NULL,
          ordinal bigint NOT NULL,
          notification_id uuid NOT NULL,
          sender text NOT NULL,
          level smallint NOT NULL,
          for_browser boolean NOT NULL,
          for_client boolean NOT NULL,
          data jsonb NOT NULL,
          sent_at timestamptz NOT NULL,
          PRIMARY KEY (app_id, message_id)
        );
        CREATE UNIQUE INDEX datahub_broadcasts_notification ON datahub_broadcasts (notification_id);
        CREATE TABLE datahub_broadcast_reads (
          app_id text NOT NULL,
          user_id text NOT NULL,
          message_id bigint NOT NULL,
          read_at timestamptz NOT NULL,
          PRIMARY KEY (app_id, user_id, message_id)
        );
        CREATE TABLE datahub_broadcast_views (
          app_id text NOT NULL,
          user_id text NOT NULL,
          uncounted bigint NOT NULL,
          PRIMARY KEY (app_id, user_id)
        );
        CREATE TABLE datahub_list_counts (
          app_id text NOT NULL,
          user_id text NOT NULL,
          list text NOT NULL,
          total bigint NOT NULL,
          unread bigint NOT NULL,
          PRIMARY KEY (app_id, user_id, list)
        );
        CREATE TABLE datahub_item_subscribers (
          app_id text NOT NULL,
          repname text NOT NULL,
          itemname text NOT NULL,
          user_id text NOT NULL,
          subscribed boolean NOT NULL,
          position bigint NOT NULL,
          PRIMARY KEY (app_id, repname, itemname, user_id)
        );
      `,
    },
    {
      // The time the sender gave (NotificationSent.time), as written: text, so it is listed byte for byte.
      // Events before it recorded none: NULL is right for them, so no rebuild is needed.
      id: 'projection/datahub/003',
      sql: `
        ALTER TABLE datahub_notifications ADD COLUMN given_time text;
        ALTER TABLE datahub_broadcasts ADD COLUMN given_time text;
      `,
    },
    {
      // Retention by app (datahubNotificationPruning): the oldest sent first.
      id: 'projection/datahub/004-retention',
      sql: `CREATE INDEX datahub_notifications_app_sent ON datahub_notifications (app_id, sent_at)`,
    },
  ],

  // Sends, then reads, then clears: a clear recounts its users from what the two before left, so the
  // order of events inside one batch does not change the outcome (test/int/datahubProjection).
  async handle(events, tx) {
    const { sent, broadcast, subscriptions, read, cleared } = toBatch(events);
    // Users whose counts changed, and apps with a new broadcast: their stats are pushed (GraphQL notificationStats).
    // Lists of rows, flattened once: a rebuild's batch may change more users than a call's arguments can hold.
    const changedRows: Array<ReadonlyArray<{ app_id: string; user_id: string }>> = [];
    if (sent.length > 0)
      changedRows.push((await tx.query({ name: 'datahub-deliver', text: DELIVER, values: sent.values() })).rows);
    if (subscriptions.length > 0)
      await tx.query({ name: 'datahub-subscribers', text: SUBSCRIBERS, values: subscriptions.values() });
    if (broadcast.length > 0)
      await tx.query({ name: 'datahub-broadcast', text: BROADCAST, values: broadcast.values() });
    if (read.length > 0) {
      changedRows.push((await tx.query({ name: 'datahub-read', text: READ, values: read.values() })).rows);
      changedRows.push(
        (await tx.query({ name: 'datahub-read-broadcast', text: READ_BROADCAST, values: read.values() })).rows,
      );
    }
    if (cleared.length > 0) {
      await tx.query({ name: 'datahub-clear', text: CLEAR, values: cleared.values() });
      await tx.query({ name: 'datahub-recount', text: RECOUNT, values: cleared.values() });
      await tx.query({ name: 'datahub-recount-broadcasts', text: RECOUNT_BROADCASTS, values: cleared.values() });
      changedRows.push(cleared.rows.map((row) => ({ app_id: row.app, user_id: row.user })));
    }
    const changed = changedRows.flat();
    const users = new Map(changed.map((row) => [notificationStatsTopic(row.app_id, row.user_id), row]));
    return [
      ...[...users].map(([topic, row]) => publication(topic, { appId: row.app_id, userId: row.user_id })),
      ...[...new Set(broadcast.rows.map((row) => row.app))].map((app) =>
        publication(broadcastStatsTopic(app), { appId: app }),
      ),
    ];
  },
};

/** The batch, split by the statement that applies each event. */
function toBatch(events: readonly RecordedEvent[]) {
  type Sent = {
    id: string;
    app: string;
    sender: string;
    level: number;
    forBrowser: boolean;
    forClient: boolean;
    data: string;
    sentAt: string;
    position: string;
    givenTime: string | null;
  };
  const sentColumns = ['level', 'forBrowser', 'forClient', 'data', 'sentAt', 'position', 'givenTime'] as const;
  const sent = new Columns<Sent & { type: string; receivers: string }>([
    'id',
    'app',
    'type',
    'sender',
    'receivers',
    ...sentColumns,
  ]);
  const broadcast = new Columns<Sent>(['id', 'app', 'sender', ...sentColumns]);
  const subscriptions = new Columns<{
    app: string;
    repname: string;
    itemname: string;
    receivers: string;
    subscribed: boolean;
    position: string;
  }>(['app', 'repname', 'itemname', 'receivers', 'subscribed', 'position']);
  const read = new Columns<{ id: string; app: string; user: string; at: string; position: string }>([
    'id',
    'app',
    'user',
    'at',
    'position',
  ]);
  const cleared = new Columns<{ app: string; user: string; position: string }>(['app', 'user', 'position']);
  for (const recorded of events) {
    const event = datahubEvents.decode(recorded);
    if (!event) continue;
    const position = recorded.position.toString();
    switch (event.type) {
      case 'NotificationSent': {
        const d = event.data;
        const row: Sent = {
          id: d.notificationId,
          app: d.appId,
          sender: d.sender,
          level: d.level,
          forBrowser: d.forBrowser,
          forClient: d.forClient,
          data: JSON.stringify(d.data),
          sentAt: d.sentAt,
          position,
          givenTime: d.time ?? null,
        };
        if (isSiteWide(d)) {
          broadcast.push(row);
          break;
        }
        sent.push({ ...row, type: d.notificationType, receivers: JSON.stringify(d.receivers) });
        const { repname, itemname } = d.data;
        if (d.notificationType === 'subs_event' && typeof repname === 'string' && typeof itemname === 'string') {
          subscriptions.push({
            app: d.appId,
            repname,
            itemname,
            receivers: JSON.stringify(d.receivers),
            subscribed: !subscriptionEnded(d.data),
            position,
          });
        }
        break;
      }
      case 'NotificationRead':
        read.push({
          id: event.data.notificationId,
          app: event.data.appId,
          user: event.data.userId,
          at: event.data.readAt,
          position,
        });
        break;
      case 'NotificationStatsCleared':
        cleared.push({ app: event.data.appId, user: event.data.userId, position });
        break;
    }
  }
  return { sent, broadcast, subscriptions, read, cleared };
}

// A delivery per distinct receiver (a repeated NotificationSent changes nothing), each counted unread.
const DELIVER = `
  WITH delivered AS (
    INSERT INTO datahub_notifications (app_id, user_id, message_id, notification_id, type, sender, level, for_browser, for_client, data, sent_at, given_time)
    SELECT u.app, r.user_id, u.position, u.id, u.type, u.sender, u.level, u.for_browser, u.for_client, u.data, u.sent_at, u.given_time
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::smallint[], $7::boolean[], $8::boolean[], $9::jsonb[],
                  $10::timestamptz[], $11::bigint[], $12::text[])
           AS u(id, app, type, sender, receivers, level, for_browser, for_client, data, sent_at, position, given_time)
      CROSS JOIN LATERAL (SELECT DISTINCT jsonb_array_elements_text(u.receivers)) AS r(user_id)
    ON CONFLICT DO NOTHING
    RETURNING app_id, user_id, type, for_browser, for_client
  ), listed AS (
    INSERT INTO datahub_list_counts AS c (app_id, user_id, list, total, unread)
    SELECT d.app_id, d.user_id, l.list, count(*), count(*)
      FROM delivered d CROSS JOIN LATERAL (VALUES ('browser', d.for_browser), ('client', d.for_client)) AS l(list, included)
     WHERE l.included
     GROUP BY d.app_id, d.user_id, l.list
    ON CONFLICT (app_id, user_id, list) DO UPDATE SET total = c.total + excluded.total, unread = c.unread + excluded.unread
  )
  INSERT INTO datahub_stats AS s (app_id, user_id, type, unread)
  SELECT app_id, user_id, type, count(*) FROM delivered GROUP BY app_id, user_id, type
  ON CONFLICT (app_id, user_id, type) DO UPDATE SET unread = s.unread + excluded.unread
  RETURNING app_id, user_id`;

// The first read of a receiver's notification wins; it uncounts it if it counted (after the last clear).
// Only a read after the delivery reads it (before it, possible only in a corrupt history, it reads nothing).
const READ = `
  WITH first_read AS (
    SELECT DISTINCT ON (n.notification_id, n.user_id) n.notification_id, n.app_id, n.user_id, n.message_id, r.at
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[]) AS r(id, app, user_id, at, position)
      JOIN datahub_notifications n ON n.notification_id = r.id AND n.user_id = r.user_id AND n.app_id = r.app AND r.position > n.message_id
     WHERE n.read_at IS NULL
     ORDER BY n.notification_id, n.user_id, r.position
  ), marked AS (
    UPDATE datahub_notifications n SET read_at = r.at
      FROM first_read r
     -- By the primary key: the unique index on (notification_id, user_id) is dropped while rebuilding.
     WHERE n.app_id = r.app_id AND n.user_id = r.user_id AND n.message_id = r.message_id
    RETURNING n.app_id, n.user_id, n.type, n.message_id, n.for_browser, n.for_client
  ), listed AS (
    UPDATE datahub_list_counts c SET unread = c.unread - m.read
      FROM (SELECT m.app_id, m.user_id, l.list, count(*) AS read
              FROM marked m CROSS JOIN LATERAL (VALUES ('browser', m.for_browser), ('client', m.for_client)) AS l(list, included)
             WHERE l.included
             GROUP BY m.app_id, m.user_id, l.list) m
     WHERE c.app_id = m.app_id AND c.user_id = m.user_id AND c.list = m.list
  )
  INSERT INTO datahub_stats AS s (app_id, user_id, type, unread)
  SELECT m.app_id, m.user_id, m.type, -count(*)
    FROM marked m LEFT JOIN datahub_stats_cleared c ON c.app_id = m.app_id AND c.user_id = m.user_id
   WHERE m.message_id > coalesce(c.up_to, -1)
   GROUP BY m.app_id, m.user_id, m.type
  ON CONFLICT (app_id, user_id, type) DO UPDATE SET unread = s.unread + excluded.unread
  RETURNING app_id, user_id`;

// The latest subs_event per user and item decides whether the user subscribes to it.
const SUBSCRIBERS = `
  INSERT INTO datahub_item_subscribers AS s (app_id, repname, itemname, user_id, subscribed, position)
  SELECT DISTINCT ON (u.app, u.repname, u.itemname, r.user_id) u.app, u.repname, u.itemname, r.user_id, u.subscribed, u.position
    FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::boolean[], $6::bigint[]) AS u(app, repname, itemname, receivers, subscribed, position)
    CROSS JOIN LATERAL jsonb_array_elements_text(u.receivers) AS r(user_id)
   ORDER BY u.app, u.repname, u.itemname, r.user_id, u.position DESC
  ON CONFLICT (app_id, repname, itemname, user_id) DO UPDATE SET subscribed = excluded.subscribed, position = excluded.position
   WHERE excluded.position > s.position`;

// One row per broadcast, numbered on from its app's latest ordinal (a repeated NotificationSent, possible
// only in a corrupt history, is skipped so the ordinals stay a count).
const BROADCAST = `
  INSERT INTO datahub_broadcasts (app_id, message_id, ordinal, notification_id, sender, level, for_browser, for_client, data, sent_at, given_time)
  SELECT u.app, u.position,
         coalesce((SELECT max(b.ordinal) FROM datahub_broadcasts b WHERE b.app_id = u.app), 0)
           + row_number() OVER (PARTITION BY u.app ORDER BY u.position),
         u.id, u.sender, u.level, u.for_browser, u.for_client, u.data, u.sent_at, u.given_time
    FROM (SELECT DISTINCT ON (id) *
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::smallint[], $5::boolean[], $6::boolean[], $7::jsonb[], $8::timestamptz[], $9::bigint[],
                        $10::text[])
                 AS u(id, app, sender, level, for_browser, for_client, data, sent_at, position, given_time)
           ORDER BY id, position) u
   WHERE NOT EXISTS (SELECT 1 FROM datahub_broadcasts b WHERE b.notification_id = u.id)`;

// A user's first read of a broadcast of the app, after it was sent; it uncounts it if it counted (after the last clear).
const READ_BROADCAST = `
  WITH first_read AS (
    SELECT DISTINCT ON (b.app_id, r.user_id, b.message_id) b.app_id, r.user_id, b.message_id, r.at
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[]) AS r(id, app, user_id, at, position)
      JOIN datahub_broadcasts b ON b.notification_id = r.id AND b.app_id = r.app AND r.position > b.message_id
     ORDER BY b.app_id, r.user_id, b.message_id, r.position
  ), marked AS (
    INSERT INTO datahub_broadcast_reads (app_id, user_id, message_id, read_at) SELECT app_id, user_id, message_id, at FROM first_read
    ON CONFLICT DO NOTHING
    RETURNING app_id, user_id, message_id
  )
  INSERT INTO datahub_broadcast_views AS v (app_id, user_id, uncounted)
  SELECT m.app_id, m.user_id, count(*)
    FROM marked m LEFT JOIN datahub_stats_cleared c ON c.app_id = m.app_id AND c.user_id = m.user_id
   WHERE m.message_id > coalesce(c.up_to, -1)
   GROUP BY m.app_id, m.user_id
  ON CONFLICT (app_id, user_id) DO UPDATE SET uncounted = v.uncounted + excluded.uncounted
  RETURNING app_id, user_id`;

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

// After a clear: the broadcasts sent before it, and those after it the user has read.
const RECOUNT_BROADCASTS = `
  WITH cleared AS (${CLEARED_USERS})
  INSERT INTO datahub_broadcast_views AS v (app_id, user_id, uncounted)
  SELECT cleared.app, cleared.user_id,
         (SELECT count(*) FROM datahub_broadcasts b WHERE b.app_id = cleared.app AND b.message_id < cleared.up_to)
           + (SELECT count(*) FROM datahub_broadcast_reads r WHERE r.app_id = cleared.app AND r.user_id = cleared.user_id AND r.message_id > cleared.up_to)
    FROM cleared
  ON CONFLICT (app_id, user_id) DO UPDATE SET uncounted = excluded.uncounted`;

interface NotificationRow {
  total: string;
  message_id: string | null;
  notification_id: string;
  type: NotificationType;
  sender: string;
  level: number;
  data: Record<string, unknown>;
  sent_at: Date;
  given_time: string | null;
  read_at: Date | null;
}

/** The read side of this projection, behind the interface src/datahub declares. */
export function datahubQueries(pool: Pool | PoolClient): DatahubQueries {
  return {
    async list(owner: Owner, filter: NotificationFilter) {
      // The user's own notifications and the app's broadcasts, each filtered on its index; one statement
      // for the total (one row) and the page joined to it (an empty page still carries the total).
      const list = filter.forClient ? 'for_client' : 'for_browser';
      const status =
        filter.status === 'unread' ? 'AND read_at IS NULL' : filter.status === 'read' ? 'AND read_at IS NOT NULL' : '';
      const mine = `
        SELECT message_id, notification_id, type, sender, level, data, sent_at, given_time, read_at
          FROM datahub_notifications
         WHERE app_id = $1 AND user_id = $2 AND ${list}
           AND ($3::text IS NULL OR type = $3) AND ($4::text IS NULL OR sender = $4) AND ($5::smallint IS NULL OR level = $5) ${status}`;
      const broadcasts = `
        SELECT b.message_id, b.notification_id, '${BROADCAST_TYPE}' AS type, b.sender, b.level, b.data, b.sent_at, b.given_time, r.read_at
          FROM datahub_broadcasts b
          LEFT JOIN datahub_broadcast_reads r ON r.app_id = b.app_id AND r.user_id = $2 AND r.message_id = b.message_id
         WHERE b.app_id = $1 AND b.${list}
           AND ($3::text IS NULL OR $3 = '${BROADCAST_TYPE}') AND ($4::text IS NULL OR b.sender = $4) AND ($5::smallint IS NULL OR b.level = $5) ${status}`;
      // The page is keyset (before a message id) or offset; the total counts the filter without either.
      // Unfiltered but for the list and status, the user's part of it is a maintained counter (the
      // app's broadcasts are few: counted).
      // (A clause only when there is a cursor: a named statement's generic plan would not see through `$8 IS NULL OR`.)
      const before = (query: string, column: string) =>
        filter.beforeMessageId === undefined ? query : `${query} AND ${column} < $8`;
      const counter = filter.status === 'either' ? 'total' : filter.status === 'unread' ? 'unread' : 'total - unread';
      const mineTotal =
        filter.type === undefined && filter.sender === undefined && filter.level === undefined
          ? `coalesce((SELECT ${counter} FROM datahub_list_counts WHERE app_id = $1 AND user_id = $2 AND list = '${filter.forClient ? 'client' : 'browser'}'), 0)`
          : `(SELECT count(*) FROM (${mine}) m)`;
      const { rows } = await pool.query<NotificationRow>(
        prepared(
          `SELECT t.total, p.*
             FROM (SELECT ${mineTotal} + (SELECT count(*) FROM (${broadcasts}) b) AS total) t
             LEFT JOIN LATERAL (
                  SELECT * FROM ((${before(mine, 'message_id')} ORDER BY message_id DESC LIMIT $6::bigint + $7::bigint)
                                 UNION ALL (${before(broadcasts, 'b.message_id')} ORDER BY b.message_id DESC LIMIT $6::bigint + $7::bigint)) u
                   ORDER BY message_id DESC OFFSET $6 LIMIT $7) p ON true
            ORDER BY p.message_id DESC`,
          [
            owner.appId,
            owner.userId,
            filter.type ?? null,
            filter.sender ?? null,
            filter.level ?? null,
            (filter.page - 1) * filter.size,
            filter.size,
            ...(filter.beforeMessageId === undefined ? [] : [filter.beforeMessageId]),
          ],
        ),
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
          givenTime: row.given_time ?? undefined,
          read: row.read_at !== null,
        }));
      return { total: Number(rows[0]?.total ?? 0), results };
    },

    async unreadStats(owner) {
      // The maintained counters, and the app's latest broadcast ordinal less what the user does not count
      // (site broadcasts addressed to the user are counted in the first: the two add up).
      const { rows } = await pool.query<{ type: string; unread: string }>({
        name: 'datahub-stats',
        text: `SELECT type, sum(unread) AS unread FROM (
                 SELECT type, unread FROM datahub_stats WHERE app_id = $1 AND user_id = $2 AND unread > 0
                 UNION ALL
                 SELECT '${BROADCAST_TYPE}', latest.ordinal - coalesce(v.uncounted, 0)
                   FROM (SELECT max(ordinal) AS ordinal FROM datahub_broadcasts WHERE app_id = $1) latest
                   LEFT JOIN datahub_broadcast_views v ON v.app_id = $1 AND v.user_id = $2) counts
               GROUP BY type`,
        values: [owner.appId, owner.userId],
      });
      return new Map(rows.filter((row) => Number(row.unread) > 0).map((row) => [row.type, Number(row.unread)]));
    },

    async findReceived(owner, messageId) {
      const { rows } = await pool.query<{ notification_id: string; broadcast: boolean; read: boolean }>(
        `SELECT notification_id, false AS broadcast, read_at IS NOT NULL AS read FROM datahub_notifications
          WHERE app_id = $1 AND user_id = $2 AND message_id = $3
         UNION ALL
         SELECT b.notification_id, true, r.message_id IS NOT NULL FROM datahub_broadcasts b
           LEFT JOIN datahub_broadcast_reads r ON r.app_id = b.app_id AND r.user_id = $2 AND r.message_id = b.message_id
          WHERE b.app_id = $1 AND b.message_id = $3`,
        [owner.appId, owner.userId, messageId],
      );
      const [row] = rows;
      return row && { notificationId: row.notification_id, broadcast: row.broadcast, read: row.read };
    },
  };
}

/** The subscribers the datahub projection knows, behind the interface src/datahub declares. */
export function itemSubscribers(pool: Pool | PoolClient): ItemSubscribers {
  return {
    async page(appId, item, after, limit) {
      const { rows } = await pool.query<{ user_id: string }>(
        `SELECT DISTINCT user_id FROM datahub_item_subscribers
          WHERE app_id = $1 AND repname = $2 AND ($3::text IS NULL OR itemname = $3) AND subscribed AND user_id > $4
          ORDER BY user_id LIMIT $5`,
        [appId, item.repname, item.itemname ?? null, after, limit],
      );
      return rows.map((row) => row.user_id);
    },
  };
}

/**
 * Retention of datahub notifications (issue 26: the seed, 001_…, gives them no end, so they are kept
 * while their app wants them): a receiver's notification sent before its app's cutoff (AppCutoffs: the
 * app's own setting, else HERALD_RETENTION_DATAHUB_NOTIFICATIONS; forever by default) goes, read or not,
 * and its counters lose what it counted — a list's total and unread, and the type's unread if it counted
 * (after the receiver's last clear) — so they stay what a rebuild of what is kept gives. Counters are
 * locked in key order, as the projection's upserts take them. A notification's stream is retired with
 * its last receiver's row, except where another read model reads its event (STREAMS_KEPT): the store
 * keeps those and a rebuild prunes their rows again. Site broadcasts to every user (`datahub_broadcasts`: one row per broadcast, not per user, their
 * count the unread arithmetic) are not pruned.
 */
/**
 * Types whose NotificationSent another read model reads, and keeps: a subs_event says who subscribes to
 * an item (`datahub_item_subscribers`), an apply_whitelist that the item's owner was told
 * (projections/whitelist.ts `notified`: replayed without it, the owner would be told again).
 */
const STREAMS_KEPT = ['subs_event', 'apply_whitelist'] satisfies NotificationType[];

export function datahubNotificationPruning(pool: Pool): AppPrunable {
  // The due rows, oldest first: per app (an index range of `(app_id, sent_at)` from its own cutoff, so the
  // rows other apps keep are never walked), then merged. `$2` the limit.
  const CUTOFFS = appCutoffs('datahub_notifications', 'true');
  const due = `${CUTOFFS}
    SELECT d.app_id, d.user_id, d.message_id FROM set_cutoffs s
     CROSS JOIN LATERAL (SELECT n.app_id, n.user_id, n.message_id, n.sent_at FROM datahub_notifications n
                          WHERE n.app_id = s.app_id AND n.sent_at < s.cutoff ORDER BY n.sent_at LIMIT $2) d
     ORDER BY d.sent_at LIMIT $2`;
  const count = `${CUTOFFS}
    SELECT coalesce(sum(d.n), 0)::int AS n FROM set_cutoffs s
     CROSS JOIN LATERAL (SELECT count(*) AS n FROM datahub_notifications n WHERE n.app_id = s.app_id AND n.sent_at < s.cutoff) d
     WHERE $2::int > 0`;
  // The counters of the batch's receivers, locked in key order and before any notification row, as the
  // projection takes them (a batch delivering to a user then reading one of the user's rows holds the
  // counters first; a read alone takes its row, then the counters: the rows below are skipped if locked).
  const lockCounters = `
    WITH users AS (SELECT DISTINCT app_id, user_id FROM unnest($1::text[], $2::text[]) AS u(app_id, user_id)),
    listed AS (
      SELECT c.app_id, c.user_id, c.list FROM datahub_list_counts c JOIN users USING (app_id, user_id)
       ORDER BY c.app_id, c.user_id, c.list FOR UPDATE OF c
    ), typed AS (
      SELECT s.app_id, s.user_id, s.type FROM datahub_stats s JOIN users USING (app_id, user_id)
       ORDER BY s.app_id, s.user_id, s.type FOR UPDATE OF s
    )
    SELECT (SELECT count(*) FROM listed) + (SELECT count(*) FROM typed) AS n`;
  // A statement after the counters are held, so its snapshot sees what a projection transaction holding
  // them committed (a clear's recount, a read): it subtracts from the counters what they count now.
  const prune = `
    WITH doomed AS (
      SELECT n.app_id, n.user_id, n.message_id FROM datahub_notifications n
       WHERE (n.app_id, n.user_id, n.message_id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]))
       FOR UPDATE OF n SKIP LOCKED
    ), gone_rows AS (
      DELETE FROM datahub_notifications n USING doomed d
       WHERE n.app_id = d.app_id AND n.user_id = d.user_id AND n.message_id = d.message_id
      RETURNING n.app_id, n.user_id, n.message_id, n.notification_id, n.type, n.for_browser, n.for_client, n.read_at IS NULL AS unread
    ), uncounted_lists AS (
      UPDATE datahub_list_counts c SET total = c.total - g.total, unread = c.unread - g.unread
        FROM (SELECT g.app_id, g.user_id, l.list, count(*) AS total, count(*) FILTER (WHERE g.unread) AS unread
                FROM gone_rows g CROSS JOIN LATERAL (VALUES ('browser', g.for_browser), ('client', g.for_client)) AS l(list, included)
               WHERE l.included
               GROUP BY g.app_id, g.user_id, l.list) g
       WHERE c.app_id = g.app_id AND c.user_id = g.user_id AND c.list = g.list
    ), uncounted_types AS (
      UPDATE datahub_stats s SET unread = s.unread - g.unread
        FROM (SELECT g.app_id, g.user_id, g.type, count(*) AS unread
                FROM gone_rows g LEFT JOIN datahub_stats_cleared c ON c.app_id = g.app_id AND c.user_id = g.user_id
               WHERE g.unread AND g.message_id > coalesce(c.up_to, -1)
               GROUP BY g.app_id, g.user_id, g.type) g
       WHERE s.app_id = g.app_id AND s.user_id = g.user_id AND s.type = g.type
    ), gone AS (
      -- A notification's last rows: none of it is left outside this batch (the statement's snapshot
      -- still shows the rows it deletes, so those are told apart by key).
      SELECT DISTINCT 'notification-' || g.notification_id AS stream_name
        FROM gone_rows g
       WHERE g.type <> ALL (ARRAY[${STREAMS_KEPT.map((t) => `'${t}'`).join(', ')}])
         AND NOT EXISTS (SELECT 1 FROM datahub_notifications o
                          WHERE o.notification_id = g.notification_id
                            AND (o.app_id, o.user_id, o.message_id) NOT IN (SELECT app_id, user_id, message_id FROM doomed))
    ), retired AS (${RETIRE_GONE_STREAMS})
    SELECT count(*)::int AS n FROM gone_rows`;
  const values = (cutoffs: AppCutoffs, limit: number) => [
    [...cutoffs.byApp.keys()],
    limit,
    [...cutoffs.byApp.values()],
    cutoffs.otherwise,
  ];
  return {
    table: 'datahub_notifications',
    category: 'datahubNotifications',
    byApp: true,
    async countRemovable(cutoffs) {
      return (await pool.query<{ n: number }>(prepared(count, values(cutoffs, 1)))).rows[0]!.n;
    },
    async prune(cutoffs, limit) {
      // Picked without locks; then, in one short transaction, the counters, then the rows.
      const { rows } = await pool.query<{ app_id: string; user_id: string; message_id: string }>(
        prepared(due, values(cutoffs, limit)),
      );
      if (rows.length === 0) return 0;
      const keys = [rows.map((r) => r.app_id), rows.map((r) => r.user_id), rows.map((r) => r.message_id)];
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(prepared(lockCounters, keys.slice(0, 2)));
        const n = (await client.query<{ n: number }>(prepared(prune, keys))).rows[0]!.n;
        await client.query('COMMIT');
        return n;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
  };
}
