import type { Pool, PoolClient } from 'pg';
import { MessageEvent } from '../domain/message/message';
import { UUID } from '../domain/text';
import { publication, type Publication } from '../src/bus/bus';
import { inboxTopic } from '../src/bus/topics';
import type { RecordedEvent } from '../src/eventStore/eventStore';
import type {
  DeliveredMessage,
  InboxQueries,
  MissedRequest,
  Notification,
  NotificationPage,
} from '../src/messaging/inboxQueries';
import type { ScheduledMessages } from '../src/messaging/messageScheduler';
import { copyRows, type CopyValue } from '../src/postgres/copyRows';
import { prepared } from '../src/postgres/database';
import { withTransaction } from '../src/postgres/transaction';
import { eventDecoder, eventTypesOf } from '../src/projection/eventDecoder';
import type { Projection, ReplayFinish } from '../src/projection/projection';
import type { AppCutoffs, AppPrunable, CategoryPrunable } from '../src/storage/retention';
import { appCutoffs, RETIRE_GONE_STREAMS } from './pruning';

/**
 * Inboxes: the messages each user of an app has received, with read/acknowledged state, a counter row
 * per inbox (so a page's `total` costs one row, not a count of the inbox), and the messages themselves
 * (including scheduled ones, which the scheduler releases from here).
 *
 * A batch is applied set-based, whatever its size: one statement creates, releases and expires messages,
 * delivers them into every recipient's inbox, counts them and returns what to push; a second one applies
 * the batch's acknowledgements. Each works over `unnest` of the batch's arrays. Repeated events are
 * harmless: the first creation, status change and acknowledgement of a message wins, later ones change
 * nothing — the same tables as applying the events one by one (test/int/koalaInboxProjection.int.spec.ts).
 */

/** Message events; one whose data is refused is parked by the runner, not skipped. Other events are not this projection's. */
const messageEvents = eventDecoder(MessageEvent, (event) =>
  UUID.test(event.data.messageId) ? undefined : 'messageId is not a UUID',
);

/** A message that ended: released or expired, with an expiry (domain/retention.ts: messageRemovable). */
const MESSAGE_ENDED = `status <> 'scheduled' AND expires_at IS NOT NULL`;

/** A message without expiry that was sent (domain/retention.ts: unexpiringMessageRemovable); never a scheduled one. */
const MESSAGE_UNEXPIRING = `status = 'delivered' AND expires_at IS NULL`;

const MESSAGE_COLUMNS = 'm.message_id, m.app_id, m.seq, m.sender, m.title, m.content, m.props, m.sent_at, m.expires_at';

export const notificationsProjection: Projection = {
  name: 'notifications',
  version: 2,
  tables: ['notifications', 'notification_messages', 'inbox_counters'],
  eventTypes: eventTypesOf(messageEvents),
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
    {
      // A page opened without since reads its user's unacknowledged messages, newest first (pendingSince):
      // one range scan of these, not a walk past every acknowledged one.
      id: 'projection/notifications/003-pending',
      sql: `CREATE INDEX notifications_pending ON notifications (app_id, user_id, seq DESC) WHERE acknowledged_at IS NULL;`,
    },
    {
      // Retention (messagePruning): messages that ended, by their expiry.
      id: 'projection/notifications/004-retention',
      sql: `CREATE INDEX notification_messages_expiry ON notification_messages (expires_at) WHERE ${MESSAGE_ENDED}`,
    },
    {
      // Retention of messages without expiry by their app's setting (unexpiringMessagePruning): an app's
      // due messages are a range of it, never the messages other apps keep.
      id: 'projection/notifications/005-unexpiring-retention',
      sql: `CREATE INDEX notification_messages_unexpiring ON notification_messages (app_id, sent_at) WHERE ${MESSAGE_UNEXPIRING}`,
    },
  ],

  // A rebuild stages the events as rows (replay.ts below) and derives every table from them once, at
  // the end: a few set-based statements over the whole history instead of a join per batch.
  startReplay: (tx) => startReplay(tx),

  async handle(events, tx, options = {}) {
    if (options.replay === true) {
      await stage(events, tx);
      return [];
    }
    const { created, changed, acknowledged } = toBatch(events);
    const publications =
      created.id.length > 0 || changed.id.length > 0 ? await createAndDeliver(tx, created, changed) : [];
    if (acknowledged.id.length > 0)
      await tx.query({ name: ACKNOWLEDGE.name, text: ACKNOWLEDGE.text, values: Object.values(acknowledged) });
    return publications;
  },

  // A batch of creations and status changes, or of acknowledgements, is one statement; one with both is
  // two (the acknowledgements must see the deliveries), applied by `handle`.
  statement(events) {
    const { created, changed, acknowledged } = toBatch(events);
    const delivers = created.id.length > 0 || changed.id.length > 0;
    if (delivers && acknowledged.id.length > 0) return undefined;
    if (!delivers) {
      return { query: { ...ACKNOWLEDGE, values: Object.values(acknowledged) }, publications: () => [] };
    }
    return {
      query: { ...CREATE_AND_DELIVER, values: [...Object.values(created), ...Object.values(changed)] },
      publications: (rows: ReadonlyArray<MessageRow & { users: string[] }>) => toPublications(rows),
    };
  },

  finishReplay: (replay) => finishReplay(replay),
  finishReplayBeside: { tables: ['inbox_counters'], derive: deriveCounters },
};

// --- applying a batch ----------------------------------------------------------------------------

interface CreatedMessage {
  readonly id: string;
  readonly position: bigint;
  readonly event: MessageSent | MessageScheduled;
  status: 'delivered' | 'scheduled' | 'expired';
  seq: string | null;
  sentAt: string | null;
}

/**
 * The batch as column arrays, each set in the order of its statement's parameters (passed as
 * `Object.values`). A message created in this batch is created as the batch leaves it: its first release
 * or expiry after its creation is folded in here, since one statement cannot update a row it inserts.
 * Every status change also goes to the UPDATE, for messages created in earlier batches.
 */
function toBatch(events: readonly RecordedEvent[]) {
  const createdById = new Map<string, CreatedMessage>();
  const changed = { id: [] as string[], position: [] as string[], status: [] as string[], at: [] as string[] };
  const acknowledged = {
    id: [] as string[],
    position: [] as string[],
    app: [] as string[],
    user: [] as string[],
    at: [] as string[],
  };
  for (const recorded of events) {
    const event = messageEvents.decode(recorded);
    if (!event) continue;
    switch (event.type) {
      case 'MessageSent':
      case 'MessageScheduled': {
        if (createdById.has(event.data.messageId)) break; // the first creation wins
        const sent = event.type === 'MessageSent';
        createdById.set(event.data.messageId, {
          id: event.data.messageId,
          position: recorded.position,
          event,
          status: sent ? 'delivered' : 'scheduled',
          seq: sent ? recorded.position.toString() : null,
          sentAt: sent ? event.data.sentAt : null,
        });
        break;
      }
      case 'MessageReleased':
      case 'MessageExpired': {
        const released = event.type === 'MessageReleased';
        const at = released ? event.data.releasedAt : event.data.expiredAt;
        changed.id.push(event.data.messageId);
        changed.position.push(recorded.position.toString());
        changed.status.push(released ? 'delivered' : 'expired');
        changed.at.push(at);
        const created = createdById.get(event.data.messageId);
        if (created && created.status === 'scheduled' && created.position < recorded.position) {
          created.status = released ? 'delivered' : 'expired';
          if (released) {
            created.seq = recorded.position.toString();
            created.sentAt = at;
          }
        }
        break;
      }
      case 'MessageAcknowledged':
        acknowledged.id.push(event.data.messageId);
        acknowledged.position.push(recorded.position.toString());
        acknowledged.app.push(event.data.appId);
        acknowledged.user.push(event.data.userId);
        acknowledged.at.push(event.data.acknowledgedAt);
        break;
    }
  }
  const messages = [...createdById.values()];
  const created = {
    id: messages.map((m) => m.id),
    app: messages.map((m) => m.event.data.appId),
    sender: messages.map((m) => m.event.data.sender),
    title: messages.map((m) => m.event.data.title),
    content: messages.map((m) => m.event.data.content),
    props: messages.map((m) => (m.event.data.props === null ? null : JSON.stringify(m.event.data.props))),
    recipients: messages.map((m) => JSON.stringify(m.event.data.recipients)),
    status: messages.map((m) => m.status),
    seq: messages.map((m) => m.seq),
    sentAt: messages.map((m) => m.sentAt),
    releaseAt: messages.map((m) => (m.event.type === 'MessageScheduled' ? m.event.data.releaseAt : null)),
    expiresAt: messages.map((m) => m.event.data.expiresAt),
  };
  return { created, changed, acknowledged };
}

type MessageSent = Extract<MessageEvent, { type: 'MessageSent' }>;
type MessageScheduled = Extract<MessageEvent, { type: 'MessageScheduled' }>;

/**
 * One statement for messages created (a repeated creation changes nothing), released or expired (only a
 * scheduled message changes; its first change wins), the deliveries into every recipient's inbox with
 * their counters, and what to push: each delivered message once, with the users it reached.
 */
// Named, so each connection parses and plans this statement once, not per batch.
const CREATE_AND_DELIVER = {
  name: 'notifications-create-and-deliver',
  text: `
  WITH created AS (
    INSERT INTO notification_messages
      (message_id, app_id, sender, title, content, props, recipients, status, seq, sent_at, release_at, expires_at)
    SELECT u.id, u.app, u.sender, u.title, u.content, u.props, ARRAY(SELECT jsonb_array_elements_text(u.recipients)),
           u.status, u.seq, u.sent_at, u.release_at, u.expires_at
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::text[],
                  $9::bigint[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[])
           AS u(id, app, sender, title, content, props, recipients, status, seq, sent_at, release_at, expires_at)
    ON CONFLICT (message_id) DO NOTHING
    RETURNING *
  ), changed AS (
    UPDATE notification_messages m
       SET status = c.status,
           seq = CASE WHEN c.status = 'delivered' THEN c.position ELSE m.seq END,
           sent_at = CASE WHEN c.status = 'delivered' THEN c.at ELSE m.sent_at END
      FROM (SELECT DISTINCT ON (u.id) u.*
              FROM unnest($13::uuid[], $14::bigint[], $15::text[], $16::timestamptz[]) AS u(id, position, status, at)
             ORDER BY u.id, u.position) c
     WHERE m.message_id = c.id AND m.status = 'scheduled'
    RETURNING m.*
  ), delivered_messages AS (
    SELECT * FROM created WHERE status = 'delivered'
    UNION ALL
    SELECT * FROM changed WHERE status = 'delivered'
  ), delivered AS (
    INSERT INTO notifications (message_id, user_id, app_id, seq, type, expires_at)
    -- A message is delivered once (only a new message, or a scheduled one released), so its rows cannot
    -- exist yet: a plain insert, with the recipients made distinct, needs no conflict handling.
    SELECT m.message_id, r.user_id, m.app_id, m.seq, 'koala', m.expires_at
      FROM delivered_messages m CROSS JOIN LATERAL (SELECT DISTINCT unnest(m.recipients)) AS r(user_id)
    RETURNING message_id, user_id, app_id
  ), counted AS (
    INSERT INTO inbox_counters AS c (app_id, user_id, total, unread)
    SELECT app_id, user_id, count(*), count(*) FROM delivered GROUP BY app_id, user_id
    ON CONFLICT (app_id, user_id) DO UPDATE SET total = c.total + excluded.total, unread = c.unread + excluded.unread
  )
  SELECT ${MESSAGE_COLUMNS}, d.users
    FROM (SELECT message_id, array_agg(user_id) AS users FROM delivered GROUP BY message_id) d
    JOIN delivered_messages m USING (message_id)
   ORDER BY m.seq`,
};

// The first acknowledgement of a notification wins; it also reads it, once, for the unread counter.
const ACK_TARGETS = `
  WITH ack AS (
    SELECT DISTINCT ON (u.id, u.user_id) u.*
      FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[]) AS u(id, position, app, user_id, at)
     ORDER BY u.id, u.user_id, u.position
  ), target AS (
    SELECT n.message_id, n.user_id, n.read_at IS NULL AS was_unread, ack.at
      FROM notifications n JOIN ack ON n.message_id = ack.id AND n.user_id = ack.user_id AND n.app_id = ack.app
     WHERE n.acknowledged_at IS NULL
       FOR UPDATE OF n
  )`;
const ACK_UPDATE = `
  UPDATE notifications n SET acknowledged_at = t.at, read_at = coalesce(n.read_at, t.at)
    FROM target t
   WHERE n.message_id = t.message_id AND n.user_id = t.user_id
  RETURNING n.app_id, n.user_id, t.was_unread`;
const ACKNOWLEDGE = {
  name: 'notifications-acknowledge',
  text: `${ACK_TARGETS}, acknowledged AS (${ACK_UPDATE})
  INSERT INTO inbox_counters AS c (app_id, user_id, total, unread)
  SELECT app_id, user_id, 0, -count(*) FROM acknowledged WHERE was_unread GROUP BY app_id, user_id
  ON CONFLICT (app_id, user_id) DO UPDATE SET unread = c.unread + excluded.unread`,
};

/**
 * One push per new notification, in seq order (a subscriber drops a seq at or below the last it sent);
 * the payload is made once per message and shared by its recipients.
 */
async function createAndDeliver(
  tx: PoolClient,
  created: Record<string, unknown[]>,
  changed: Record<string, unknown[]>,
): Promise<Publication[]> {
  const { rows } = await tx.query<MessageRow & { users: string[] }>({
    ...CREATE_AND_DELIVER,
    values: [...Object.values(created), ...Object.values(changed)],
  });
  return toPublications(rows);
}

function toPublications(rows: ReadonlyArray<MessageRow & { users: string[] }>): Publication[] {
  return rows.flatMap((row) => {
    const message = toDeliveredMessage(row);
    return row.users.map((userId) => publication(inboxTopic(message.appId, userId), message));
  });
}

// --- a rebuild's replay ---------------------------------------------------------------------------

/**
 * A rebuild hands the history over in large batches into empty tables. Each batch only appends its
 * events to three staging tables (no index, no lookup); finishReplay then derives the read model from
 * the whole history at once, as applying the events one by one would: a message's first creation wins;
 * a scheduled one takes its first release or expiry after that creation (a release delivers it, at the
 * release's position); a delivered message reaches each of its recipients once; a notification takes the
 * first acknowledgement of the right app that came after its delivery; each inbox is then counted.
 */
const STAGED = ['notifications_replay_created', 'notifications_replay_changed', 'notifications_replay_acks'];
/** Where the upper half of the history is derived when the server skips WAL (finishReplay). */
const REPLAY_PARTS = {
  messages: 'notifications_replay_part_messages',
  notifications: 'notifications_replay_part_notifications',
};

async function startReplay(tx: PoolClient): Promise<void> {
  await tx.query(`
    CREATE UNLOGGED TABLE notifications_replay_created (
      position bigint, message_id uuid, app_id text, sender text, title text, content text, props jsonb,
      recipients text[], scheduled boolean, sent_at timestamptz, release_at timestamptz, expires_at timestamptz);
    CREATE UNLOGGED TABLE notifications_replay_changed (position bigint, message_id uuid, status text, at timestamptz);
    CREATE UNLOGGED TABLE notifications_replay_acks (
      position bigint, message_id uuid, app_id text, user_id text, at timestamptz);
    CREATE UNLOGGED TABLE ${REPLAY_PARTS.messages} (LIKE notification_messages);
    CREATE UNLOGGED TABLE ${REPLAY_PARTS.notifications} (LIKE notifications)`);
}

async function stage(events: readonly RecordedEvent[], tx: PoolClient): Promise<void> {
  const created: CopyValue[][] = [];
  const changed: CopyValue[][] = [];
  const acks: CopyValue[][] = [];
  for (const recorded of events) {
    const event = messageEvents.decode(recorded);
    if (!event) continue;
    const position = recorded.position.toString();
    switch (event.type) {
      case 'MessageSent':
      case 'MessageScheduled': {
        const { data } = event;
        const sent = event.type === 'MessageSent';
        created.push([
          position,
          data.messageId,
          data.appId,
          data.sender,
          data.title,
          data.content,
          data.props === null ? null : JSON.stringify(data.props),
          data.recipients,
          !sent,
          sent ? event.data.sentAt : null,
          sent ? null : event.data.releaseAt,
          data.expiresAt,
        ]);
        break;
      }
      case 'MessageReleased':
        changed.push([position, event.data.messageId, 'delivered', event.data.releasedAt]);
        break;
      case 'MessageExpired':
        changed.push([position, event.data.messageId, 'expired', event.data.expiredAt]);
        break;
      case 'MessageAcknowledged':
        acks.push([position, event.data.messageId, event.data.appId, event.data.userId, event.data.acknowledgedAt]);
        break;
    }
  }
  // COPY, not INSERT … unnest: no array parameter per column to build, send and take apart again.
  await copyRows(tx, 'notifications_replay_created', CREATED_COLUMNS, created);
  await copyRows(tx, 'notifications_replay_changed', ['position', 'message_id', 'status', 'at'], changed);
  await copyRows(tx, 'notifications_replay_acks', ['position', 'message_id', 'app_id', 'user_id', 'at'], acks);
}

const CREATED_COLUMNS = [
  'position',
  'message_id',
  'app_id',
  'sender',
  'title',
  'content',
  'props',
  'recipients',
  'scheduled',
  'sent_at',
  'release_at',
  'expires_at',
];

/**
 * The history's messages split at the median message_id into two ranges, each derived in a transaction
 * of its own, side by side (the derivation is PostgreSQL's CPU; each range's sorts and hashes are half
 * the size). Every event of a message is in that message's range, so each range is derived as the whole
 * would be. The lower range writes the tables. The upper one writes its messages to a table of its own
 * (its ANALYZE would otherwise wait for the lower one's transaction), which the lower transaction then
 * appends; its notifications too when the server skips WAL (walSkip), as only the transaction that
 * truncated a table writes it without WAL, and holds it alone until it commits. Either way the messages
 * end up in message_id order (so their primary key's sort finds them sorted), the notifications too with
 * walSkip. The counters come after, beside the index builds (finishReplayBeside).
 */
async function finishReplay({ pool, walSkip }: ReplayFinish): Promise<void> {
  await pool.query(`ANALYZE ${STAGED.join(', ')}`);
  const { rows } = await pool.query<{ split: string | null }>(
    'SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY message_id) AS split FROM notifications_replay_created',
  );
  const split = rows[0]?.split ?? null;
  if (split !== null) {
    const lower = { range: '< $1', messages: 'notification_messages', notifications: 'notifications' };
    const upper = {
      range: '>= $1',
      messages: REPLAY_PARTS.messages,
      notifications: walSkip ? REPLAY_PARTS.notifications : 'notifications',
    };
    const derive = async (tx: PoolClient, into: DerivedRange) => {
      // The sorts and hashes below are over half the history each: in memory, not in temporary files
      // (the creations' sort by message_id, which also lays the tables out in primary-key order, took
      // 265 MB for the whole of 1M events).
      await tx.query(`SET LOCAL work_mem = '1GB'`);
      if (walSkip) await tx.query(`TRUNCATE ${into.messages}, ${into.notifications}`);
      await deriveRange(tx, into, split);
    };
    const upperDone = withTransaction(pool, (tx) => derive(tx, upper));
    const lowerDone = withTransaction(pool, async (tx) => {
      await derive(tx, lower);
      await upperDone;
      await tx.query(`INSERT INTO notification_messages SELECT * FROM ${REPLAY_PARTS.messages}`);
      if (walSkip) await tx.query(`INSERT INTO notifications SELECT * FROM ${REPLAY_PARTS.notifications}`);
    });
    // Both ended before this returns (the pool may be closed next), the first failure thrown.
    const [u, l] = await Promise.allSettled([upperDone, lowerDone]);
    if (u.status === 'rejected') throw u.reason;
    if (l.status === 'rejected') throw l.reason;
  }
  await pool.query(`DROP TABLE ${[...STAGED, REPLAY_PARTS.messages, REPLAY_PARTS.notifications].join(', ')}`);
}

/** Where one range of the history is derived to, and the range: a condition on message_id (`$1` the split). */
interface DerivedRange {
  readonly range: string;
  readonly messages: string;
  readonly notifications: string;
}

async function deriveRange(tx: PoolClient, into: DerivedRange, split: string): Promise<void> {
  const values = [split];
  const inRange = (column: string) => `${column} ${into.range}`;
  await tx.query(
    `WITH created AS MATERIALIZED (
       SELECT DISTINCT ON (message_id) * FROM notifications_replay_created
        WHERE ${inRange('message_id')} ORDER BY message_id, position
     ), changed AS (
       SELECT DISTINCT ON (ch.message_id) ch.message_id, ch.status, ch.position, ch.at
         FROM notifications_replay_changed ch JOIN created c ON c.message_id = ch.message_id
        WHERE ${inRange('ch.message_id')} AND c.scheduled AND ch.position > c.position
        ORDER BY ch.message_id, ch.position
     )
     INSERT INTO ${into.messages}
       (message_id, app_id, sender, title, content, props, recipients, status, seq, sent_at, release_at, expires_at)
     SELECT c.message_id, c.app_id, c.sender, c.title, c.content, c.props, c.recipients,
            CASE WHEN NOT c.scheduled THEN 'delivered' ELSE coalesce(ch.status, 'scheduled') END,
            CASE WHEN NOT c.scheduled THEN c.position WHEN ch.status = 'delivered' THEN ch.position END,
            CASE WHEN NOT c.scheduled THEN c.sent_at WHEN ch.status = 'delivered' THEN ch.at END,
            c.release_at, c.expires_at
       FROM created c LEFT JOIN changed ch USING (message_id)`,
    values,
  );
  await tx.query(`ANALYZE ${into.messages}`);
  await tx.query(
    `INSERT INTO ${into.notifications} (message_id, user_id, app_id, seq, type, expires_at, read_at, acknowledged_at)
     SELECT m.message_id, r.user_id, m.app_id, m.seq, 'koala', m.expires_at, a.at, a.at
       FROM ${into.messages} m CROSS JOIN LATERAL (SELECT DISTINCT unnest(m.recipients)) AS r(user_id)
       LEFT JOIN (SELECT DISTINCT ON (a.message_id, a.user_id) a.message_id, a.user_id, a.at
                    FROM notifications_replay_acks a JOIN ${into.messages} am ON am.message_id = a.message_id
                   WHERE ${inRange('a.message_id')} AND ${inRange('am.message_id')}
                     AND am.status = 'delivered' AND a.position > am.seq AND a.app_id = am.app_id
                   ORDER BY a.message_id, a.user_id, a.position) a
              ON a.message_id = m.message_id AND a.user_id = r.user_id
      WHERE ${inRange('m.message_id')} AND m.status = 'delivered'`,
    values,
  );
}

/** Each inbox counted, once every notification is derived; beside the index builds (it reads no index). */
async function deriveCounters(tx: PoolClient, { walSkip }: Pick<ReplayFinish, 'walSkip'>): Promise<void> {
  await tx.query(`SET LOCAL work_mem = '1GB'`);
  if (walSkip) await tx.query('TRUNCATE inbox_counters');
  await tx.query(`
    INSERT INTO inbox_counters (app_id, user_id, total, unread)
    SELECT app_id, user_id, count(*), count(*) FILTER (WHERE read_at IS NULL) FROM notifications GROUP BY app_id, user_id`);
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

/** The columns of a row LEFT JOINed to nothing. */
type NullRow<Row> = { [K in keyof Row]: null };

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
      // One statement, one round trip: the total as one row, the page (keyset paging on
      // notifications_inbox, only its rows joined to their messages) joined to it, so an empty page is
      // still one row carrying the total. A named statement per variant, each planned once per
      // connection; the cursor and the sender are clauses only when given, so that a generic plan keeps
      // `seq < cursor` in the index condition (`$n IS NULL OR …` would be a filter over the whole inbox).
      const values: unknown[] = [owner.appId, owner.userId, options.now, options.first + 1];
      const parameter = (value: unknown) => `$${values.push(value)}`;
      const sender = options.sender === undefined ? undefined : parameter(options.sender);
      const before = options.beforeSeq === undefined ? '' : `AND n.seq < ${parameter(options.beforeSeq.toString())}`;
      // With a sender, the total is a count of the user's messages from that sender (no counter keeps it).
      const total =
        sender === undefined
          ? `SELECT coalesce((SELECT ${options.unreadOnly ? 'unread' : 'total'} FROM inbox_counters WHERE app_id = $1 AND user_id = $2), 0)
                  -- the maintained counter, less what has expired since (expiry is a time, not an event)
                  - (SELECT count(*) FROM notifications n
                      WHERE n.app_id = $1 AND n.user_id = $2 AND n.expires_at IS NOT NULL AND n.expires_at <= $3 ${unread})
                  AS total`
          : `SELECT count(*) AS total FROM notifications n JOIN notification_messages m USING (message_id)
            WHERE n.app_id = $1 AND n.user_id = $2 AND (n.expires_at IS NULL OR n.expires_at > $3) ${unread} AND m.sender = ${sender}`;
      const fromSender =
        sender === undefined
          ? ''
          : `AND EXISTS (SELECT 1 FROM notification_messages s WHERE s.message_id = n.message_id AND s.sender = ${sender})`;
      const { rows } = await pool.query<
        { total: string } & (MessageRow | NullRow<MessageRow>) & {
            type: string;
            read_at: Date | null;
            acknowledged_at: Date | null;
          }
      >(
        prepared(
          `SELECT t.total, p.*
             FROM (${total}) t
             LEFT JOIN LATERAL (
                  SELECT ${MESSAGE_COLUMNS}, n.type, n.read_at, n.acknowledged_at
                    FROM (SELECT * FROM notifications n
                           WHERE n.app_id = $1 AND n.user_id = $2 AND (n.expires_at IS NULL OR n.expires_at > $3) ${unread}
                             ${before} ${fromSender}
                           ORDER BY n.seq DESC LIMIT $4) n
                    JOIN notification_messages m USING (message_id)) p ON true
            ORDER BY p.seq DESC`,
          values,
        ),
      );
      const found = rows.filter((row): row is typeof row & MessageRow => row.message_id !== null);
      const nodes = found.slice(0, options.first).map((row): Notification => ({
        ...toDeliveredMessage(row),
        type: row.type,
        readAt: row.read_at?.toISOString() ?? null,
        acknowledgedAt: row.acknowledged_at?.toISOString() ?? null,
      }));
      return { total: Number(rows[0]!.total), nodes, hasNextPage: found.length > options.first };
    },

    deliveredSince(requests) {
      return missedMessages(pool, requests, 'delivered');
    },

    pendingSince(requests) {
      return missedMessages(pool, requests, 'pending');
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
      const { rows } = await pool.query<{ release_at: Date | null }>(
        `SELECT min(release_at) AS release_at FROM notification_messages WHERE status = 'scheduled'`,
      );
      return rows[0]?.release_at ?? undefined;
    },
  };
}

/**
 * InboxQueries.deliveredSince and pendingSince: for each request, its owner's unexpired messages after
 * `since`, oldest first — every delivered one from the oldest, or the newest `limit` unacknowledged ones.
 */
async function missedMessages(
  pool: Pool,
  requests: readonly MissedRequest[],
  which: 'delivered' | 'pending',
): Promise<DeliveredMessage[][]> {
  const pendingOnly = which === 'pending' ? ' AND n.acknowledged_at IS NULL' : '';
  const newestFirst = which === 'pending' ? 'DESC' : 'ASC';
  const { rows } = await pool.query<MessageRow & { request: string }>({
    name: `notifications-${which}-since`,
    text: `SELECT r.request, ${MESSAGE_COLUMNS}
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::integer[], $5::timestamptz[]) WITH ORDINALITY AS r(app_id, user_id, since, lim, at, request)
            CROSS JOIN LATERAL (SELECT message_id, seq FROM notifications n
                                 WHERE n.app_id = r.app_id AND n.user_id = r.user_id AND n.seq > r.since AND (n.expires_at IS NULL OR n.expires_at > r.at)${pendingOnly}
                                 ORDER BY n.seq ${newestFirst} LIMIT r.lim) n
             JOIN notification_messages m USING (message_id)
            ORDER BY r.request, n.seq ASC`,
    values: [
      requests.map((r) => r.owner.appId),
      requests.map((r) => r.owner.userId),
      requests.map((r) => r.sinceSeq.toString()),
      requests.map((r) => r.limit),
      requests.map((r) => r.now),
    ],
  });
  const results = requests.map((): DeliveredMessage[] => []);
  // One object per message, as the live push: its GraphQL result is then made once (sharedSubscription.ts).
  const messages = new Map<string, DeliveredMessage>();
  for (const row of rows) {
    let message = messages.get(row.message_id);
    if (!message) messages.set(row.message_id, (message = toDeliveredMessage(row)));
    results[Number(row.request) - 1]!.push(message);
  }
  return results;
}

/**
 * Retention of Koala messages (domain/retention.ts): a message whose expiry is before the cutoff goes
 * with its inbox rows, and the inboxes' counters lose what they counted of them — so a page's `total`
 * (the counter less the expired rows still kept) stays what it was. A message without expiry (`expire`
 * 0, 永久有效) is its app's to drop (unexpiringMessagePruning); one still scheduled is never removed.
 */
export function messagePruning(pool: Pool): CategoryPrunable {
  const removable = `${MESSAGE_ENDED} AND expires_at < $1`;
  const prune = pruneMessages(
    `SELECT message_id, expires_at AS ended_at, cardinality(recipients) AS inbox_rows FROM notification_messages
      WHERE ${removable} ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
  );
  return {
    table: 'notification_messages',
    category: 'messages',
    async countRemovable(cutoff) {
      const { rows } = await pool.query<{ n: number }>(
        prepared(`SELECT count(*)::int AS n FROM notification_messages WHERE ${removable}`, [cutoff]),
      );
      return rows[0]!.n;
    },
    async prune(cutoff, limit) {
      return (await pool.query<{ n: number }>(prepared(prune, [cutoff, limit]))).rows[0]!.n;
    },
  };
}

/**
 * Retention of Koala messages without expiry (`expire` 0: 永久有效, kept "while the app wants it"): one
 * sent before its app's cutoff (AppCutoffs: the app's own setting, else the deployment's) goes, as an
 * expired one does — inbox rows, counters, its stream retired —, acknowledged or not: the app decided.
 * A scheduled message not yet released has not been sent and is never removed.
 */
export function unexpiringMessagePruning(pool: Pool): AppPrunable {
  // Per app with a cutoff (appCutoffs: `$1`, `$3`, `$4`): a range of the partial index on `(app_id,
  // sent_at)` each, so the messages other apps keep are never walked; `$2` the batch's limit.
  const due = (columns: string, limit: string) => `
      FROM set_cutoffs s
     CROSS JOIN LATERAL (SELECT ${columns} FROM notification_messages m
                          WHERE m.app_id = s.app_id AND m.status = 'delivered' AND m.expires_at IS NULL
                            AND m.sent_at < s.cutoff ${limit}) m`;
  const CUTOFFS = appCutoffs('notification_messages', MESSAGE_UNEXPIRING);
  const prune = `${CUTOFFS}, ${pruneMessages(
    `SELECT m.message_id, m.sent_at AS ended_at, m.inbox_rows
      ${due('m.message_id, m.sent_at, cardinality(m.recipients) AS inbox_rows', 'ORDER BY m.sent_at LIMIT $2 FOR UPDATE OF m SKIP LOCKED')}
      ORDER BY m.sent_at LIMIT $2`,
  ).replace(/^WITH /, '')}`;
  const count = `${CUTOFFS} SELECT coalesce(sum(m.n), 0)::int AS n ${due('count(*) AS n', '')} WHERE $2::int > 0`;
  const values = (cutoffs: AppCutoffs, limit: number) => [
    [...cutoffs.byApp.keys()],
    limit,
    [...cutoffs.byApp.values()],
    cutoffs.otherwise,
  ];
  return {
    table: 'notification_messages',
    category: 'unexpiringMessages',
    byApp: true,
    async countRemovable(cutoffs) {
      return (await pool.query<{ n: number }>(prepared(count, values(cutoffs, 1)))).rows[0]!.n;
    },
    async prune(cutoffs, limit) {
      return (await pool.query<{ n: number }>(prepared(prune, values(cutoffs, limit)))).rows[0]!.n;
    },
  };
}

/**
 * The statement that removes the messages `candidates` selects (`message_id`, `ended_at`, `inbox_rows`;
 * `$2` its limit, the rows locked) with their inbox rows, takes them off the counters and retires their
 * streams. One statement per batch, bounded by the inbox rows it removes (not by messages: one has up to
 * 1,000 recipients), so the counters it locks (in key order, as two writers of several counters must: the
 * projection's upsert and this) are held for a short statement.
 */
function pruneMessages(candidates: string): string {
  return `WITH candidates AS (${candidates}
           ), doomed AS (
             -- The limit bounds the rows the statement touches, inbox rows included (a message has up to
             -- 1,000): the oldest messages whose inbox rows fit in it, and at least one.
             SELECT message_id FROM (
               SELECT message_id, sum(inbox_rows) OVER (ORDER BY ended_at, message_id) AS running,
                      row_number() OVER (ORDER BY ended_at, message_id) AS k
                 FROM candidates) w
              WHERE running <= $2 OR k = 1
           ), locked AS (
             SELECT c.app_id, c.user_id FROM inbox_counters c
              WHERE (c.app_id, c.user_id) IN (SELECT n.app_id, n.user_id FROM notifications n JOIN doomed USING (message_id))
              ORDER BY c.app_id, c.user_id FOR UPDATE OF c
           ), gone_rows AS (
             DELETE FROM notifications n USING doomed d WHERE n.message_id = d.message_id
             RETURNING n.app_id, n.user_id, n.read_at IS NULL AS unread
           ), counted AS (
             UPDATE inbox_counters c SET total = c.total - g.total, unread = c.unread - g.unread
               FROM (SELECT app_id, user_id, count(*) AS total, count(*) FILTER (WHERE unread) AS unread
                       FROM gone_rows JOIN locked USING (app_id, user_id) GROUP BY app_id, user_id) g
              WHERE c.app_id = g.app_id AND c.user_id = g.user_id
           ), gone AS (
             DELETE FROM notification_messages m USING doomed d WHERE m.message_id = d.message_id
             RETURNING 'message-' || m.message_id AS stream_name
           ), retired AS (${RETIRE_GONE_STREAMS})
           SELECT count(*)::int AS n FROM gone`;
}
