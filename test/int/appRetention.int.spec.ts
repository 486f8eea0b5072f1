import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type { Pool } from 'pg';
import pino from 'pino';
import type { AppEvent } from '../../domain/app/app';
import type { InboxEvent } from '../../domain/inbox/inbox';
import type { MessageEvent } from '../../domain/message/message';
import type { NotificationEvent, NotificationType } from '../../domain/notification/notification';
import { DEFAULT_RETENTION, type RetentionPolicy } from '../../domain/retention';
import { migrations, readModels } from '../../projections';
import { appsProjection } from '../../projections/apps';
import { datahubNotificationPruning, datahubProjection } from '../../projections/datahubNotifications';
import { notificationsProjection, unexpiringMessagePruning } from '../../projections/koalaInbox';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import type { Database } from '../../src/postgres/database';
import { migrate } from '../../src/postgres/migrations';
import { nextPassCounts, RetentionPass } from '../../src/storage/retention';
import { createTestDatabase, describeTarget, type TestDatabase } from '../support/postgres';

/**
 * Issue 26: a Koala message with `expire` 0 (000: 永久有效) is kept "while the app wants it". Each app
 * sets how long (AppRetentionSet); apps that set nothing follow HERALD_RETENTION_UNEXPIRING_MESSAGES
 * (default forever). Given events applied by the real projections, one pass, then what is left.
 */
describe(`retention of messages without expiry, by app (${describeTarget()})`, function () {
  this.timeout(60_000);
  const DAY = 24 * 3600_000;
  const now = new Date(Date.UTC(2026, 5, 1));
  const daysAgo = (days: number) => new Date(now.getTime() - days * DAY).toISOString();
  let testDatabase: TestDatabase;
  let database: Database;
  let pool: Pool;
  let position = 100n;
  type Given = AppEvent | MessageEvent | NotificationEvent | InboxEvent;

  beforeEach(async () => {
    testDatabase = await createTestDatabase();
    database = testDatabase.open();
    pool = database.pool;
    await migrate(pool, migrations);
  });
  afterEach(async () => {
    await testDatabase.drop();
  });

  /** Applies the events through their projection, in one transaction each, positions growing. */
  async function apply(events: readonly Given[], on: Pool = pool, positions?: readonly bigint[]): Promise<bigint[]> {
    const stream = (e: Given) =>
      'messageId' in e.data
        ? `message-${e.data.messageId}`
        : 'notificationId' in e.data
          ? `notification-${e.data.notificationId}`
          : e.type === 'NotificationStatsCleared'
            ? `inbox-${e.data.appId}.${e.data.userId}`
            : `app-${e.data.appId}`;
    const records: RecordedEvent[] = events.map((event, i) => ({
      id: randomUUID(),
      streamName: stream(event),
      revision: 0n,
      position: positions?.[i] ?? (position += 1n),
      type: event.type,
      data: event.data,
      metadata: {},
      createdAt: now,
    }));
    const client = await on.connect();
    try {
      await client.query('BEGIN');
      await appsProjection.handle(records, client);
      await notificationsProjection.handle(records, client);
      await datahubProjection.handle(records, client);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    return records.map((r) => r.position);
  }

  const registered = (appId: string): AppEvent => ({
    type: 'AppRegistered',
    data: { appId, secretHash: 'scrypt:x', registeredAt: daysAgo(100) },
  });
  const retentionSet = (
    appId: string,
    unexpiringMessages: string | null,
    datahubNotifications: string | null = null,
  ): AppEvent => ({
    type: 'AppRetentionSet',
    data: { appId, unexpiringMessages, datahubNotifications, setAt: daysAgo(1) },
  });
  const sent = (appId: string, sentDaysAgo: number, expiresAt: string | null = null): MessageEvent => ({
    type: 'MessageSent',
    data: {
      messageId: randomUUID(),
      appId,
      sender: 'admin',
      recipients: ['bob', 'carol'],
      title: 't',
      content: 'c',
      props: null,
      expiresAt,
      sentAt: daysAgo(sentDaysAgo),
    },
  });
  const scheduled = (appId: string): MessageEvent => ({
    type: 'MessageScheduled',
    data: {
      messageId: randomUUID(),
      appId,
      sender: 'admin',
      recipients: ['bob'],
      title: 't',
      content: 'c',
      props: null,
      expiresAt: null,
      scheduledAt: daysAgo(60),
      releaseAt: new Date(now.getTime() + DAY).toISOString(),
    },
  });
  const idOf = (event: MessageEvent) => event.data.messageId;

  const pass = (policy: RetentionPolicy = DEFAULT_RETENTION) =>
    new RetentionPass({
      prunables: readModels(pool).retention,
      policy,
      appRetentions: readModels(pool).apps.retentions,
      clock: () => now,
      log: pino({ level: 'silent' }),
      batchSize: 3,
      intervalMs: 60_000,
    }).runOnce();

  const messageIds = async () =>
    (await pool.query<{ message_id: string }>('SELECT message_id FROM notification_messages ORDER BY 1')).rows.map(
      (r) => r.message_id,
    );
  const inboxOf = async (appId: string) =>
    (
      await pool.query<{ user_id: string; total: string; unread: string; rows: string }>(
        `SELECT c.user_id, c.total, c.unread,
                (SELECT count(*) FROM notifications n WHERE n.app_id = c.app_id AND n.user_id = c.user_id) AS rows
           FROM inbox_counters c WHERE c.app_id = $1 ORDER BY c.user_id`,
        [appId],
      )
    ).rows.map((r) => [r.user_id, Number(r.total), Number(r.unread), Number(r.rows)]);
  const retired = async () =>
    (await pool.query<{ stream_name: string }>('SELECT stream_name FROM retired_streams ORDER BY 1')).rows.map(
      (r) => r.stream_name,
    );

  it("removes an app's messages without expiry sent before its setting, with inbox rows and counters; another app's stay", async () => {
    const old = [sent('camel', 40), sent('camel', 31), sent('camel', 31)];
    const recent = sent('camel', 29);
    const otherApps = [sent('llama', 400), sent('alpaca', 400)];
    const waiting = scheduled('camel');
    const expiring = sent('camel', 400, daysAgo(-1)); // still inside its expiry, however old
    await apply([registered('camel'), registered('llama'), registered('alpaca')]);
    await apply([...old, recent, ...otherApps, waiting, expiring]);
    await apply([retentionSet('camel', '30d'), retentionSet('llama', 'forever')]);
    // bob acknowledged one of the old ones: the app's setting wins over unacknowledged and acknowledged alike.
    await apply([
      {
        type: 'MessageAcknowledged',
        data: { messageId: idOf(old[0]!), appId: 'camel', userId: 'bob', acknowledgedAt: daysAgo(39) },
      },
    ]);

    const report = await pass();
    const unexpiring = report.filter((r) => r.table === 'notification_messages').map((r) => r.removed);
    expect(unexpiring).to.deep.equal([0, 3]); // the expired messages' rule: none; the app's: three, in batches of 3 rows

    const kept = [recent, ...otherApps, waiting, expiring].map(idOf).sort();
    expect(await messageIds()).to.deep.equal(kept);
    // camel's inboxes: recent and expiring left; bob read (acknowledged) one of the removed.
    expect(await inboxOf('camel')).to.deep.equal([
      ['bob', 2, 2, 2],
      ['carol', 2, 2, 2],
    ]);
    expect(await inboxOf('llama')).to.deep.equal([
      ['bob', 1, 1, 1],
      ['carol', 1, 1, 1],
    ]);
    expect(await retired()).to.deep.equal(old.map((m) => `message-${idOf(m)}`).sort());
  });

  it('keeps every message without expiry by default (forever), and removes them by the deployment’s setting where an app set none', async () => {
    const messages = [sent('camel', 400), sent('llama', 400), sent('alpaca', 0.5)];
    await apply([registered('camel'), registered('llama'), registered('alpaca')]);
    const waiting = scheduled('camel');
    await apply([...messages, waiting]);
    const counts = (policy: RetentionPolicy) =>
      nextPassCounts(readModels(pool).retention, policy, readModels(pool).apps.retentions, now);

    expect((await pass()).reduce((n, r) => n + r.removed, 0)).to.equal(0);
    expect(await messageIds()).to.have.length(4);
    expect((await counts(DEFAULT_RETENTION)).filter((c) => c.category === 'unexpiringMessages')).to.deep.equal([
      { table: 'notification_messages', category: 'unexpiringMessages', removable: null },
    ]);

    // The operator's default is a day; llama keeps forever, alpaca's message is younger.
    await apply([retentionSet('llama', 'forever')]);
    const policy = { ...DEFAULT_RETENTION, unexpiringMessages: DAY };
    expect((await counts(policy)).find((c) => c.category === 'unexpiringMessages')?.removable).to.equal(1);
    await pass(policy);
    expect(await messageIds()).to.deep.equal([messages[1]!, messages[2]!, waiting].map(idOf).sort());

    // Back to the deployment's default: llama's goes too; the scheduled one never.
    await apply([retentionSet('llama', null)]);
    await pass(policy);
    const left = await pool.query<{ status: string; app_id: string }>(
      'SELECT status, app_id FROM notification_messages ORDER BY app_id',
    );
    expect(left.rows).to.deep.equal([
      { status: 'delivered', app_id: 'alpaca' },
      { status: 'scheduled', app_id: 'camel' },
    ]);
  });

  it('walks only the due rows of an app, never the old rows another app keeps forever (Koala and datahub)', async () => {
    await apply([sent('camel', 40), sent('camel', 10)]);
    // llama keeps forever 20,000 messages and notifications older than camel's cutoff.
    await pool.query(
      `INSERT INTO notification_messages (message_id, app_id, sender, title, content, recipients, status, seq, sent_at)
       SELECT gen_random_uuid(), 'llama', 's', 't', 'c', '{bob}', 'delivered', 1000 + i, $1::timestamptz
         FROM generate_series(1, 20000) AS i`,
      [daysAgo(400)],
    );
    await pool.query(
      `INSERT INTO datahub_notifications (app_id, user_id, message_id, notification_id, type, sender, level, for_browser, for_client, data, sent_at)
       SELECT 'llama', 'u' || i, i, gen_random_uuid(), 'private_message', 's', 0, true, false, '{}', $1::timestamptz
         FROM generate_series(1, 20000) AS i`,
      [daysAgo(400)],
    );
    await pool.query(
      `INSERT INTO datahub_notifications (app_id, user_id, message_id, notification_id, type, sender, level, for_browser, for_client, data, sent_at)
       VALUES ('camel', 'bob', 1, gen_random_uuid(), 'private_message', 's', 0, true, false, '{}', $1::timestamptz)`,
      [daysAgo(40)],
    );
    await pool.query('ANALYZE notification_messages; ANALYZE datahub_notifications');

    // Each statement is first explained (analyzed, rolled back): the rows its scans of the two tables visit.
    let visited = 0;
    const tables = ['notification_messages', 'datahub_notifications'];
    type PlanNode = Record<string, unknown> & { Plans?: PlanNode[] };
    const count = (node: PlanNode): number =>
      (tables.includes(node['Relation Name'] as string)
        ? ((node['Actual Rows'] as number) +
            ((node['Rows Removed by Filter'] as number | undefined) ?? 0) +
            ((node['Rows Removed by Index Recheck'] as number | undefined) ?? 0)) *
          (node['Actual Loops'] as number)
        : 0) + (node.Plans ?? []).reduce((sum, child) => sum + count(child), 0);
    const explaining = {
      async query(config: { text: string; values: unknown[] }) {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
            `EXPLAIN (ANALYZE, FORMAT JSON) ${config.text}`,
            config.values,
          );
          visited += count(rows[0]!['QUERY PLAN'][0]!.Plan);
          await client.query('ROLLBACK');
        } finally {
          client.release();
        }
        return pool.query(config);
      },
      connect: () => pool.connect(),
    } as unknown as Pool;
    // camel by the deployment's setting (its app found in the index), llama's own: forever.
    const cutoffs = { byApp: new Map([['llama', null]]), otherwise: new Date(now.getTime() - 30 * DAY) };
    const prunables = [unexpiringMessagePruning(explaining), datahubNotificationPruning(explaining)];
    for (const prunable of prunables) {
      expect(await prunable.countRemovable(cutoffs)).to.equal(1);
      expect(await prunable.prune(cutoffs, 100)).to.equal(1);
      expect(await prunable.prune(cutoffs, 100)).to.equal(0);
    }
    expect(visited).to.be.within(1, 99);
  });

  it("reads every app's setting, however many apps set one (none falls back to the deployment's)", async () => {
    await pool.query(
      `INSERT INTO apps (app_id, secret_hash, registered_at, updated_at, retention)
       SELECT 'app' || lpad(i::text, 5, '0'), 'scrypt:x', now(), now(), '{"unexpiringMessages": "forever", "datahubNotifications": null}'
         FROM generate_series(1, 10001) AS i`,
    );
    const all = await readModels(pool).apps.retentions.all();
    expect(all.size).to.equal(10_001);
    expect(all.get('app10001')).to.deep.equal({ unexpiringMessages: 'forever' });
  });

  describe('datahub notifications', () => {
    const notification = (
      appId: string,
      sentDaysAgo: number,
      receivers: string[],
      notificationType: NotificationType = 'private_message',
      forClient = false,
    ): Extract<NotificationEvent, { type: 'NotificationSent' }> => ({
      type: 'NotificationSent',
      data: {
        notificationId: randomUUID(),
        appId,
        notificationType,
        sender: 'zhang3',
        receivers,
        level: 0,
        forClient,
        forBrowser: true,
        data: notificationType === 'subs_event' ? { repname: 'r', itemname: 'i', phase: 1 } : { text: 'x' },
        sentAt: daysAgo(sentDaysAgo),
      },
    });
    const read = (n: NotificationEvent, userId: string): NotificationEvent => ({
      type: 'NotificationRead',
      data: { notificationId: n.data.notificationId, appId: n.data.appId, userId, readAt: daysAgo(1) },
    });
    const cleared = (appId: string, userId: string): InboxEvent => ({
      type: 'NotificationStatsCleared',
      data: { appId, userId, clearedAt: daysAgo(1) },
    });
    /** The datahub tables, counters without their zero rows (a pruned counter stays as a zero row). */
    const tables = async (on: Pool) => ({
      notifications: (
        await on.query(
          'SELECT app_id, user_id, message_id, notification_id, type, read_at FROM datahub_notifications ORDER BY 1, 2, 3',
        )
      ).rows,
      stats: (
        await on.query('SELECT app_id, user_id, type, unread FROM datahub_stats WHERE unread <> 0 ORDER BY 1, 2, 3')
      ).rows,
      lists: (
        await on.query(
          'SELECT app_id, user_id, list, total, unread FROM datahub_list_counts WHERE total <> 0 OR unread <> 0 ORDER BY 1, 2, 3',
        )
      ).rows,
      subscribers: (await on.query('SELECT * FROM datahub_item_subscribers ORDER BY 1, 2, 3, 4')).rows,
    });

    it("removes an app's notifications sent before its setting, read or not, with their counts: as a rebuild of what is kept", async () => {
      const camelOld = [
        notification('camel', 40, ['bob', 'carol']),
        notification('camel', 35, ['bob'], 'comment_reply', true),
        notification('camel', 33, ['carol', 'dave', 'erin']),
        notification('camel', 32, ['bob'], 'subs_event'),
      ];
      const camelRecent = [notification('camel', 20, ['bob', 'carol']), notification('camel', 1, ['dave'])];
      const llama = [notification('llama', 400, ['bob']), notification('llama', 1, ['bob'])];
      const history: Given[] = [
        registered('camel'),
        registered('llama'),
        camelOld[0]!,
        camelOld[1]!,
        read(camelOld[0]!, 'bob'),
        cleared('camel', 'carol'), // carol's first notification no longer counts in her stats
        camelOld[2]!,
        camelOld[3]!,
        read(camelOld[2]!, 'dave'),
        ...camelRecent,
        read(camelRecent[0]!, 'carol'),
        ...llama,
        retentionSet('camel', null, '30d'),
      ];
      const positions = await apply(history);

      // A batch of 2 rows: a notification's receivers are split over batches, its stream retired with the last.
      const report = await new RetentionPass({
        prunables: readModels(pool).retention,
        policy: DEFAULT_RETENTION,
        appRetentions: readModels(pool).apps.retentions,
        clock: () => now,
        log: pino({ level: 'silent' }),
        batchSize: 2,
        intervalMs: 60_000,
      }).runOnce();
      expect(report.find((r) => r.table === 'datahub_notifications')).to.deep.include({ removed: 7, batches: 5 });

      // The same history without what was removed (its notifications' events and reads), on a fresh database.
      const removed = new Set(camelOld.map((n) => n.data.notificationId));
      const kept = history
        .map((event, i) => ({ event, position: positions[i]! }))
        .filter(({ event }) => !('notificationId' in event.data) || !removed.has(event.data.notificationId));
      const fresh = await createTestDatabase();
      const freshDatabase = fresh.open();
      try {
        await migrate(freshDatabase.pool, migrations);
        await apply(
          kept.map((k) => k.event),
          freshDatabase.pool,
          kept.map((k) => k.position),
        );
        const live = await tables(pool);
        const rebuilt = await tables(freshDatabase.pool);
        // Who subscribes to an item: its subs_event stays in the store (retired: no), so it is no rebuild's loss.
        expect(live.subscribers).to.have.length(1);
        expect({ ...live, subscribers: [] }).to.deep.equal({ ...rebuilt, subscribers: [] });
        expect(live.notifications.map((n: { app_id: string }) => n.app_id)).to.deep.equal([
          'camel',
          'camel',
          'camel',
          'llama',
          'llama',
        ]);
      } finally {
        await fresh.drop();
      }
      expect(await retired()).to.deep.equal(
        camelOld
          .filter((n) => n.data.notificationType !== 'subs_event')
          .map((n) => `notification-${n.data.notificationId}`)
          .sort(),
      );
    });

    /**
     * A projection transaction held open on bob's counters while a batch runs: `during` applies its first
     * events in it, the batch starts (and waits on a lock), `then` are applied in it too, it commits.
     */
    async function pruneDuring(during: Given[], then: Given[]): Promise<{ projection: string; pruned: string }> {
      const client = await pool.connect();
      let projection = 'committed';
      try {
        await client.query('BEGIN');
        const handle = async (events: Given[]) => {
          const records = events.map((event) => ({
            id: randomUUID(),
            streamName: 'x',
            revision: 0n,
            position: (position += 1n),
            type: event.type,
            data: event.data,
            metadata: {},
            createdAt: now,
          }));
          await datahubProjection.handle(records, client);
        };
        await handle(during);
        const pruned = datahubNotificationPruning(pool)
          .prune({ byApp: new Map([['camel', new Date(now.getTime() - 30 * DAY)]]), otherwise: null }, 100)
          .then(
            (n) => `removed ${n}`,
            (error: Error) => `failed: ${error.message}`,
          );
        const deadline = Date.now() + 10_000;
        const waiting = async () =>
          (
            await pool.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%datahub%'`,
            )
          ).rows[0]!.n;
        while ((await waiting()) === 0) {
          if (Date.now() > deadline) throw new Error('the batch never waited on the projection');
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        try {
          await handle(then);
          await client.query('COMMIT');
        } catch (error) {
          projection = `failed: ${(error as Error).message}`;
          await client.query('ROLLBACK');
        }
        return { projection, pruned: await pruned };
      } finally {
        client.release();
      }
    }
    const bobsCounters = async () => ({
      stats: (await pool.query("SELECT type, unread::int FROM datahub_stats WHERE user_id = 'bob' ORDER BY 1")).rows,
      lists: (
        await pool.query(
          "SELECT list, total::int, unread::int FROM datahub_list_counts WHERE user_id = 'bob' ORDER BY 1",
        )
      ).rows,
    });

    it('takes a clear committed while its batch waited into account: the counters never go below zero', async () => {
      await apply([
        registered('camel'),
        notification('camel', 40, ['bob'], 'item_event'),
        notification('camel', 40, ['bob'], 'item_event'),
      ]);
      const outcome = await pruneDuring([cleared('camel', 'bob')], []);
      expect(outcome).to.deep.equal({ projection: 'committed', pruned: 'removed 2' });
      expect(await bobsCounters()).to.deep.equal({
        stats: [{ type: 'item_event', unread: 0 }],
        lists: [{ list: 'browser', total: 0, unread: 0 }],
      });
      await apply([notification('camel', 0, ['bob'], 'item_event')]);
      expect((await bobsCounters()).stats).to.deep.equal([{ type: 'item_event', unread: 1 }]);
    });

    it('never deadlocks with a projection batch that delivers to a user, then reads one of their old notifications', async () => {
      const old = notification('camel', 40, ['bob']);
      await apply([registered('camel'), old]);
      const outcome = await pruneDuring([notification('camel', 0, ['bob'])], [read(old, 'bob')]);
      expect(outcome).to.deep.equal({ projection: 'committed', pruned: 'removed 1' });
      expect(await bobsCounters()).to.deep.equal({
        stats: [{ type: 'private_message', unread: 1 }],
        lists: [{ list: 'browser', total: 1, unread: 1 }],
      });
    });
  });
});
