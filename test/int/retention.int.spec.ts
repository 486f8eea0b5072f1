import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type { Pool } from 'pg';
import pino from 'pino';
import type { DeliveryStatus } from '../../domain/device/delivery';
import {
  DEFAULT_RETENTION,
  deliveryRemovable,
  emailRemovable,
  messageRemovable,
  platformPushRemovable,
  pushRemovable,
  reportRemovable,
  RETENTION_CATEGORIES,
  streamEndRemovable,
  type RetentionPolicy,
} from '../../domain/retention';
import { migrations, readModels } from '../../projections';
import { CALL_OUTCOME_GRACE_MS, streamEndsProjection } from '../../projections/streamEnds';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import type { Database } from '../../src/postgres/database';
import { migrate } from '../../src/postgres/migrations';
import { prunePass, RetentionPass, type CategoryPrunable, type Prunable } from '../../src/storage/retention';
import { eventually } from '../support/eventually';
import { describeTarget, createTestDatabase, type TestDatabase } from '../support/postgres';

/**
 * Retention on the read models (issue 26): every kind of row each pruned table can hold — each status,
 * with and without confirmation or expiry, ended before, at and after the cutoff — is written, one pass
 * runs, and what is left must be exactly what the rules of domain/retention.ts keep. The protected rows
 * the issue names (a message inside its expiry or without one, an open needConfirm delivery, an
 * unforwarded report, an unsent email) are also checked by name. Then a large prune in small batches,
 * while reads go on.
 */
describe(`retention prunes the read models (${describeTarget()})`, function () {
  this.timeout(60_000);
  const DAY = 24 * 3600_000;
  const now = new Date(Date.UTC(2026, 5, 1));
  const cutoff = new Date(now.getTime() - DAY);
  // The records that never end keep their default (forever) unless a test says otherwise.
  const policy: RetentionPolicy = {
    ...(Object.fromEntries(RETENTION_CATEGORIES.map((c) => [c, DAY])) as RetentionPolicy),
    unexpiringMessages: 'forever',
    datahubNotifications: 'forever',
  };
  // Ended well before the cutoff, exactly at it (kept: "before" is strict), after it.
  const times = [new Date(cutoff.getTime() - 3600_000), cutoff, new Date(cutoff.getTime() + 3600_000)];
  let testDatabase: TestDatabase;
  let database: Database;
  let pool: Pool;

  const pass = (batchSize = 1000, p: RetentionPolicy = policy) =>
    new RetentionPass({
      prunables: readModels(pool).retention,
      policy: p,
      appRetentions: readModels(pool).apps.retentions,
      clock: () => now,
      log: pino({ level: 'silent' }),
      batchSize,
      intervalMs: 60_000,
    });

  /** The table's pruning by one cutoff (not by app). */
  const byCutoff = (table: string) =>
    readModels(pool).retention.find((p): p is CategoryPrunable => p.table === table && !p.byApp)!;

  beforeEach(async () => {
    testDatabase = await createTestDatabase();
    database = testDatabase.open();
    pool = database.pool;
    await migrate(pool, migrations);
  });
  afterEach(async () => {
    await testDatabase.drop();
  });

  /** The streams the pruning retired for the event store's retention, sorted. */
  const retired = async () =>
    (
      await pool.query<{ stream_name: string }>('SELECT stream_name FROM retired_streams ORDER BY stream_name')
    ).rows.map((r) => r.stream_name);

  async function insertDelivery(d: {
    pushId: string;
    deviceId: string;
    status: DeliveryStatus;
    needsConfirm: boolean;
    updatedAt: Date;
  }): Promise<void> {
    await pool.query(
      `INSERT INTO device_deliveries (push_id, device_id, app_id, status, needs_confirm, attempts, expires_at,
         push_position, revision, position, updated_at)
       VALUES ($1, $2, 'camel', $3, $4, 1, $5, 1, 0, 1, $5)`,
      [d.pushId, d.deviceId, d.status, d.needsConfirm, d.updatedAt],
    );
  }
  async function insertPush(pushId: string, requestedAt: Date): Promise<void> {
    await pool.query(
      `INSERT INTO device_pushes (push_id, app_id, message, needs_confirm, retry, requested_at, expires_at, position)
       VALUES ($1, 'camel', '{}', false, 'once', $2, $2, 1)`,
      [pushId, requestedAt],
    );
  }

  it('removes exactly the ended deliveries and pushes past retention; an open needConfirm delivery stays', async () => {
    const statuses: DeliveryStatus[] = ['pending', 'delivered', 'confirmed', 'dropped', 'expired'];
    const deliveries = statuses.flatMap((status) =>
      [true, false].flatMap((needsConfirm) =>
        times.map((updatedAt) => ({ pushId: randomUUID(), deviceId: 'dev-1', status, needsConfirm, updatedAt })),
      ),
    );
    for (const d of deliveries) {
      await insertPush(d.pushId, times[0]!);
      await insertDelivery(d);
    }
    // Pushes without deliveries: requested before, at and after the cutoff.
    const bare = times.map((requestedAt) => ({ pushId: randomUUID(), requestedAt }));
    for (const p of bare) await insertPush(p.pushId, p.requestedAt);

    const report = await pass().runOnce();

    const { rows: leftDeliveries } = await pool.query<{ push_id: string }>('SELECT push_id FROM device_deliveries');
    const kept = deliveries.filter((d) => !deliveryRemovable(d, cutoff));
    expect(leftDeliveries.map((r) => r.push_id).sort()).to.deep.equal(kept.map((d) => d.pushId).sort());
    expect(kept.some((d) => d.status === 'delivered' && d.needsConfirm && d.updatedAt < cutoff)).to.equal(true);
    expect(kept.some((d) => d.status === 'pending' && d.updatedAt < cutoff)).to.equal(true);

    const { rows: leftPushes } = await pool.query<{ push_id: string }>('SELECT push_id FROM device_pushes');
    const keptPushes = [
      ...deliveries.filter(
        (d) => !pushRemovable({ requestedAt: times[0]!, deliveriesKept: kept.includes(d) ? 1 : 0 }, cutoff),
      ),
      ...bare.filter((p) => !pushRemovable({ requestedAt: p.requestedAt, deliveriesKept: 0 }, cutoff)),
    ].map((p) => p.pushId);
    expect(leftPushes.map((r) => r.push_id).sort()).to.deep.equal(keptPushes.sort());
    expect(report.find((r) => r.table === 'device_deliveries')?.removed).to.equal(deliveries.length - kept.length);
    // Each pruned row's stream, and only those, is retired for the event store (src/storage/eventRetention.ts).
    const pushIds = new Set([...deliveries, ...bare].map((p) => p.pushId));
    expect(await retired()).to.deep.equal(
      [
        ...deliveries.filter((d) => !kept.includes(d)).map((d) => `delivery-${d.pushId}.${d.deviceId}`),
        ...[...pushIds].filter((id) => !keptPushes.includes(id)).map((id) => `push-${id}`),
      ].sort(),
    );
  });

  it('retires a push’s delivery streams together with its push stream, when the push’s row goes', async () => {
    const pushId = randomUUID();
    await insertPush(pushId, times[0]!);
    await insertDelivery({ pushId, deviceId: 'dev-a', status: 'confirmed', needsConfirm: true, updatedAt: times[0]! });
    await insertDelivery({ pushId, deviceId: 'dev-b', status: 'pending', needsConfirm: true, updatedAt: times[0]! });

    await pass().runOnce();
    // A's row went; its stream waits, or a rebuild would replay `push-<id>` and bring A back pending.
    const deliveries = await pool.query<{ device_id: string }>('SELECT device_id FROM device_deliveries');
    expect(deliveries.rows).to.deep.equal([{ device_id: 'dev-b' }]);
    expect(await retired()).to.deep.equal([]);

    await pool.query(`UPDATE device_deliveries SET status = 'confirmed' WHERE device_id = 'dev-b'`);
    await pass().runOnce();
    expect((await pool.query('SELECT 1 FROM device_pushes')).rowCount).to.equal(0);
    expect(await retired()).to.deep.equal(
      [`delivery-${pushId}.dev-a`, `delivery-${pushId}.dev-b`, `push-${pushId}`].sort(),
    );
    expect((await pool.query('SELECT 1 FROM push_delivery_streams')).rowCount).to.equal(0);
  });

  it('keeps an ended delivery while its platform push is still open (pending); once sent or failed it goes', async () => {
    const old = times[0]!;
    const deliveries = (['pending', 'sent', 'failed'] as const).map((platform) => ({ pushId: randomUUID(), platform }));
    for (const d of deliveries) {
      await insertPush(d.pushId, old);
      await insertDelivery({
        pushId: d.pushId,
        deviceId: 'dev-1',
        status: 'confirmed',
        needsConfirm: true,
        updatedAt: old,
      });
      await pool.query(
        `INSERT INTO platform_pushes (push_id, device_id, app_id, service, status, attempts, next_attempt_at,
           requested_at, updated_at, position, expires_at)
         VALUES ($1, 'dev-1', 'camel', 'apns', $2, 1, $3, $4, $4, 1, $4)`,
        [d.pushId, d.platform, d.platform === 'pending' ? old : null, old],
      );
    }
    await pass().runOnce();
    const { rows } = await pool.query<{ push_id: string }>('SELECT push_id FROM device_deliveries');
    expect(rows.map((r) => r.push_id)).to.deep.equal([deliveries[0]!.pushId]);
    expect(await retired()).to.not.include(`delivery-${deliveries[0]!.pushId}.dev-1`);
  });

  it('removes platform pushes with their deliveries: attempts over and the message expired before the cutoff; a pending one stays', async () => {
    const statuses = ['pending', 'sent', 'failed'] as const;
    const rows = statuses.flatMap((status) =>
      times.map((expiresAt) => ({ pushId: randomUUID(), deviceId: 'dev-1', status, expiresAt })),
    );
    for (const r of rows)
      await pool.query(
        `INSERT INTO platform_pushes (push_id, device_id, app_id, service, status, attempts, next_attempt_at,
           requested_at, updated_at, position, expires_at)
         VALUES ($1, $2, 'camel', 'apns', $3, 1, NULL, $4, $4, 1, $4)`,
        [r.pushId, r.deviceId, r.status, r.expiresAt],
      );

    const report = await pass().runOnce();

    const { rows: left } = await pool.query<{ push_id: string }>('SELECT push_id FROM platform_pushes');
    const kept = rows.filter((r) => !platformPushRemovable(r, cutoff));
    expect(left.map((r) => r.push_id).sort()).to.deep.equal(kept.map((r) => r.pushId).sort());
    expect(kept.some((r) => r.status === 'pending' && r.expiresAt < cutoff)).to.equal(true);
    expect(report.find((r) => r.table === 'platform_pushes')?.removed).to.equal(rows.length - kept.length);
    expect(rows.length - kept.length).to.equal(2);
  });

  it('retires a platform push’s stream with its push group while the push’s row is kept, at once once it is gone', async () => {
    const old = times[0]!;
    const insertPlatformPush = (pushId: string, deviceId: string) =>
      pool.query(
        `INSERT INTO platform_pushes (push_id, device_id, app_id, service, status, attempts, next_attempt_at,
           requested_at, updated_at, position, expires_at)
         VALUES ($1, $2, 'camel', 'apns', 'sent', 1, NULL, $3, $3, 1, $3)`,
        [pushId, deviceId, old],
      );
    // A push still kept (one of its deliveries is open), and one whose deliveries and row went already.
    const kept = randomUUID();
    await insertPush(kept, old);
    await insertDelivery({ pushId: kept, deviceId: 'dev-a', status: 'confirmed', needsConfirm: true, updatedAt: old });
    await insertDelivery({ pushId: kept, deviceId: 'dev-b', status: 'delivered', needsConfirm: true, updatedAt: old });
    await insertPlatformPush(kept, 'dev-a');
    const gone = randomUUID();
    await insertPlatformPush(gone, 'dev-c');

    await pass().runOnce();
    expect((await pool.query('SELECT 1 FROM platform_pushes')).rowCount).to.equal(0);
    expect(await retired()).to.deep.equal([`platformpush-${gone}.dev-c`]);

    await pool.query(`UPDATE device_deliveries SET status = 'confirmed' WHERE device_id = 'dev-b'`);
    await pass().runOnce();
    expect(await retired()).to.deep.equal(
      [
        `delivery-${kept}.dev-a`,
        `delivery-${kept}.dev-b`,
        `platformpush-${kept}.dev-a`,
        `platformpush-${gone}.dev-c`,
        `push-${kept}`,
      ].sort(),
    );
    expect((await pool.query('SELECT 1 FROM push_delivery_streams')).rowCount).to.equal(0);
  });

  it('retires RTIO calls with their nonces and tickets once ended past retention; never before; a device’s nonce stays', async () => {
    const seconds = (at: Date, s: number) => new Date(at.getTime() + s * 1000).toISOString();
    let position = 0n;
    const recorded = (streamName: string, type: string, data: unknown): RecordedEvent => ({
      id: randomUUID(),
      streamName,
      revision: 0n,
      position: ++position,
      type,
      data,
      metadata: {},
      createdAt: now,
    });
    // Each begun so that it ends before, at and after the cutoff: a call at its expiry (time_live 6 s), a
    // call's nonce 30 s (the longest time_live) after its use, a ticket at its expiry.
    const ends: Array<{ stream: string; endsAt: Date }> = [];
    const events: RecordedEvent[] = [];
    for (const end of times) {
      const id = randomUUID().replace(/-/g, '');
      // A call's outcome may land after its expiry: both end a grace later.
      const calledAt = new Date(end.getTime() - 6000 - CALL_OUTCOME_GRACE_MS);
      const usedAt = new Date(end.getTime() - 30_000 - CALL_OUTCOME_GRACE_MS);
      const call = { callId: id, appId: 'camel', deviceId: 'd1' };
      events.push(
        recorded(`rtio-nonce-${id}`, 'RtioNonceUsed', {
          appId: 'camel',
          nonce: id,
          request: 'call/send',
          usedAt: usedAt.toISOString(),
        }),
        recorded(`rtio-call-${id}`, 'RtioDeviceCalled', {
          ...call,
          nonce: id,
          message: 'm',
          timeLiveSeconds: 6,
          calledAt: calledAt.toISOString(),
          expiresAt: seconds(calledAt, 6),
        }),
        recorded(`rtio-call-${id}`, 'RtioCallFailed', { ...call, reason: 'timeout', failedAt: end.toISOString() }),
        recorded(`ticket-${id}`, 'TicketIssued', {
          ticketId: id,
          appId: 'camel',
          userId: 'bob',
          roles: [],
          issuedAt: seconds(end, -3600),
          expiresAt: end.toISOString(),
        }),
        // A device's nonce: kept with its device, whenever it was used.
        recorded(`rtio-nonce-d${id}`, 'RtioNonceUsed', {
          appId: 'camel',
          nonce: `d${id}`,
          request: 'create_device',
          usedAt: seconds(end, -3600),
        }),
      );
      ends.push(
        { stream: `rtio-nonce-${id}`, endsAt: end },
        { stream: `rtio-call-${id}`, endsAt: end },
        { stream: `ticket-${id}`, endsAt: end },
      );
    }
    const client = await pool.connect();
    try {
      // Twice: a replayed batch changes nothing.
      await streamEndsProjection.handle(events, client);
      await streamEndsProjection.handle(events, client);
    } finally {
      client.release();
    }
    expect((await pool.query('SELECT 1 FROM stream_ends')).rowCount).to.equal(ends.length);

    const report = await pass().runOnce();

    const removed = ends.filter((e) => streamEndRemovable(e, cutoff)).map((e) => e.stream);
    expect(removed).to.have.length(3);
    expect(await retired()).to.deep.equal(removed.sort());
    const { rows } = await pool.query<{ stream: string }>('SELECT stream FROM stream_ends ORDER BY stream');
    expect(rows.map((r) => r.stream)).to.deep.equal(
      ends
        .filter((e) => !streamEndRemovable(e, cutoff))
        .map((e) => e.stream)
        .sort(),
    );
    expect(report.filter((r) => r.table === 'stream_ends').reduce((n, r) => n + r.removed, 0)).to.equal(3);
  });

  it('removes Koala messages past their expiry and retention with their inbox rows; the counters follow; 永久有效 stays', async () => {
    type Message = { id: string; status: 'scheduled' | 'delivered' | 'expired'; expiresAt: Date | null };
    const messages: Message[] = (['scheduled', 'delivered', 'expired'] as const).flatMap((status) =>
      [null, ...times].map((expiresAt) => ({ id: randomUUID(), status, expiresAt })),
    );
    let seq = 0;
    for (const m of messages) {
      seq += 1;
      await pool.query(
        `INSERT INTO notification_messages (message_id, app_id, sender, title, content, recipients, status, seq, sent_at, expires_at)
         VALUES ($1, 'camel', 'alice', 't', 'c', ARRAY['bob', 'carol'], $2, $3, $4, $5)`,
        [m.id, m.status, seq, times[0], m.expiresAt],
      );
      if (m.status === 'delivered')
        // bob has read it, carol has not.
        await pool.query(
          `INSERT INTO notifications (message_id, user_id, app_id, seq, type, expires_at, read_at)
           VALUES ($1, 'bob', 'camel', $2, 'koala', $3, $4), ($1, 'carol', 'camel', $2, 'koala', $3, NULL)`,
          [m.id, seq, m.expiresAt, times[0]],
        );
    }
    const inboxed = messages.filter((m) => m.status === 'delivered').length;
    await pool.query(
      `INSERT INTO inbox_counters (app_id, user_id, total, unread) VALUES ('camel', 'bob', $1, 0), ('camel', 'carol', $1, $1)`,
      [inboxed],
    );

    await pass().runOnce();

    const keptIds = messages.filter((m) => !messageRemovable(m, cutoff)).map((m) => m.id);
    const { rows } = await pool.query<{ message_id: string }>('SELECT message_id FROM notification_messages');
    expect(rows.map((r) => r.message_id).sort()).to.deep.equal([...keptIds].sort());
    const removedInboxed = messages.filter((m) => m.status === 'delivered' && messageRemovable(m, cutoff)).length;
    expect(removedInboxed).to.equal(1);
    const { rows: notifications } = await pool.query<{ message_id: string }>('SELECT message_id FROM notifications');
    expect(notifications).to.have.length(2 * (inboxed - removedInboxed));
    expect(notifications.every((n) => keptIds.includes(n.message_id))).to.equal(true);
    const { rows: counters } = await pool.query<{ user_id: string; total: string; unread: string }>(
      'SELECT user_id, total, unread FROM inbox_counters ORDER BY user_id',
    );
    expect(counters.map((c) => [c.user_id, Number(c.total), Number(c.unread)])).to.deep.equal([
      ['bob', inboxed - removedInboxed, 0],
      ['carol', inboxed - removedInboxed, inboxed - removedInboxed],
    ]);
    // By name: no expiry (expire 0) and still scheduled stay, whatever their age.
    for (const m of messages.filter((m) => m.expiresAt === null || m.status === 'scheduled'))
      expect(keptIds).to.include(m.id);
    // Only the removed messages' streams are retired: the kept ones stay in the event store.
    expect(await retired()).to.deep.equal(
      messages
        .filter((m) => !keptIds.includes(m.id))
        .map((m) => `message-${m.id}`)
        .sort(),
    );
  });

  it('bounds a Koala batch by the inbox rows it removes, not by messages (one has up to 1,000 recipients)', async () => {
    // Five expired messages of three recipients each: a batch of 7 rows removes two messages (6 rows).
    const ids = Array.from({ length: 5 }, () => randomUUID());
    for (const [i, id] of ids.entries()) {
      await pool.query(
        `INSERT INTO notification_messages (message_id, app_id, sender, title, content, recipients, status, seq, sent_at, expires_at)
         VALUES ($1, 'camel', 'alice', 't', 'c', ARRAY['bob', 'carol', 'dave'], 'delivered', $2, $3, $3)`,
        [id, i + 1, times[0]],
      );
      await pool.query(
        `INSERT INTO notifications (message_id, user_id, app_id, seq, type, expires_at)
         SELECT $1, u, 'camel', $2, 'koala', $3 FROM unnest(ARRAY['bob', 'carol', 'dave']) AS u`,
        [id, i + 1, times[0]],
      );
    }
    await pool.query(
      `INSERT INTO inbox_counters (app_id, user_id, total, unread)
       SELECT 'camel', u, 5, 5 FROM unnest(ARRAY['bob', 'carol', 'dave']) AS u`,
    );
    const koala = byCutoff('notification_messages');
    expect(await koala.prune(cutoff, 7)).to.equal(2);
    const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM notifications');
    expect(rows[0]!.n).to.equal(9);
    // A batch smaller than one message's rows still removes that message; the pass goes on to the end.
    expect(await koala.prune(cutoff, 1)).to.equal(1);
    const report = await pass(7).runOnce();
    expect(report.find((r) => r.table === 'notification_messages')?.removed).to.equal(2);
    const { rows: counters } = await pool.query<{ total: number }>('SELECT total::int FROM inbox_counters');
    expect(counters.map((c) => c.total)).to.deep.equal([0, 0, 0]);
  });

  it('removes sent emails and forwarded reports past retention; pending and failed ones stay', async () => {
    const emails = ['pending', 'sent', 'failed'].flatMap((status) =>
      times.map((updatedAt) => ({ id: randomUUID(), status, updatedAt })),
    );
    for (const e of emails)
      await pool.query(
        `INSERT INTO emails (email_id, app_id, recipients, subject, is_html, status, attempts, requested_at, updated_at, position)
         VALUES ($1, 'camel', ARRAY['a@example.com'], 's', false, $2, 1, $3, $3, 1)`,
        [e.id, e.status, e.updatedAt],
      );
    const reports = ['pending', 'forwarded', 'failed'].flatMap((status) =>
      times.map((updatedAt) => ({ id: randomUUID(), status, updatedAt })),
    );
    for (const r of reports)
      await pool.query(
        `INSERT INTO rtio_reports (report_id, app_id, device_id, status, attempts, reported_at, updated_at, position)
         VALUES ($1, 'camel', 'dev-1', $2, 1, $3, $3, 1)`,
        [r.id, r.status, r.updatedAt],
      );

    const removable = async (table: string) => byCutoff(table).countRemovable(cutoff);
    expect(await removable('emails')).to.equal(1);
    expect(await removable('rtio_reports')).to.equal(1);

    await pass().runOnce();

    const ids = async (sql: string) => (await pool.query<{ id: string }>(sql)).rows.map((r) => r.id).sort();
    expect(await ids('SELECT email_id AS id FROM emails')).to.deep.equal(
      emails
        .filter((e) => !emailRemovable(e, cutoff))
        .map((e) => e.id)
        .sort(),
    );
    expect(await ids('SELECT report_id AS id FROM rtio_reports')).to.deep.equal(
      reports
        .filter((r) => !reportRemovable(r, cutoff))
        .map((r) => r.id)
        .sort(),
    );
    expect(await removable('emails')).to.equal(0);
    expect(await retired()).to.deep.equal(
      [
        ...emails.filter((e) => emailRemovable(e, cutoff)).map((e) => `email-${e.id}`),
        ...reports.filter((r) => reportRemovable(r, cutoff)).map((r) => `rtio-report-${r.id}`),
      ].sort(),
    );
  });

  it('keeps everything of a category kept forever', async () => {
    const pushId = randomUUID();
    await insertPush(pushId, times[0]!);
    await insertDelivery({ pushId, deviceId: 'dev-1', status: 'confirmed', needsConfirm: true, updatedAt: times[0]! });
    const report = await pass(1000, { ...DEFAULT_RETENTION, deliveries: 'forever' }).runOnce();
    expect(report.find((r) => r.table === 'device_deliveries')).to.deep.equal({
      table: 'device_deliveries',
      removed: 0,
      batches: 0,
    });
    expect((await pool.query('SELECT 1 FROM device_deliveries')).rowCount).to.equal(1);
  });

  it('a large prune runs in batches, and reads answer while it runs', async () => {
    const rows = 30_000;
    await pool.query(
      `INSERT INTO device_deliveries (push_id, device_id, app_id, status, needs_confirm, attempts, expires_at,
         push_position, revision, position, updated_at)
       SELECT gen_random_uuid(), 'dev-' || (i % 100), 'camel', 'confirmed', true, 1, $1, i, 1, i, $1
         FROM generate_series(1, $2) AS i`,
      [times[0], rows],
    );
    // One open delivery a device's backlog read finds throughout.
    const open = randomUUID();
    await insertPush(open, new Date(now.getTime() + DAY));
    await pool.query(
      `INSERT INTO devices (device_id, app_id, client_id, alias, platform, native_token, tags, registration,
         registration_position, active, registered_at, updated_at, position)
       VALUES ('dev-open', 'camel', 1, 'a', 'ANDROID', 'n', '{}', 1, 0, true, $1, $1, 1)`,
      [times[0]],
    );
    await pool.query(
      `INSERT INTO device_deliveries (push_id, device_id, app_id, status, needs_confirm, attempts, expires_at,
         push_position, revision, position, updated_at)
       VALUES ($1, 'dev-open', 'camel', 'delivered', true, 1, $2, 5, 1, 5, $3)`,
      [open, new Date(now.getTime() + DAY), times[0]],
    );
    const deliveries = readModels(pool).devices.deliveries;
    const batchSize = 2000;
    let running = true;
    let reads = 0;
    let slowestReadMs = 0;
    const reader = (async () => {
      while (running) {
        const started = performance.now();
        const backlog = await deliveries.backlog('dev-open', now, 0n, 10);
        slowestReadMs = Math.max(slowestReadMs, performance.now() - started);
        expect(backlog.map((d) => d.pushPosition)).to.deep.equal([5n]);
        reads += 1;
      }
    })();
    const report = await pass(batchSize)
      .runOnce()
      .finally(() => (running = false));
    await reader;
    const pruned = report.find((r) => r.table === 'device_deliveries')!;
    expect(pruned.removed).to.equal(rows);
    expect(pruned.batches).to.equal(rows / batchSize + 1);
    expect(reads, 'reads made while the pass ran').to.be.greaterThan(pruned.batches);
    expect(slowestReadMs, 'the slowest read during the pass').to.be.lessThan(1000);
    expect((await pool.query('SELECT 1 FROM device_deliveries')).rowCount).to.equal(1);
  });

  it('one read-model pass at a time across processes: a second waits for the first (a platform push never strands)', async () => {
    // Two passes as two processes would run them (the leader's, `herald storage prune`): their own pools.
    const other = testDatabase.open();
    const running: string[] = [];
    let overlapped = false;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const prunable = (name: string, wait?: Promise<void>): Prunable => ({
      table: name,
      category: 'deliveries',
      countRemovable: async () => 0,
      prune: async () => {
        if (running.length > 0) overlapped = true;
        running.push(name);
        await wait;
        running.pop();
        return 0;
      },
    });
    const terms = (p: Pool, name: string, wait?: Promise<void>) => ({
      pool: p,
      prunables: [prunable(name, wait)],
      policy,
      clock: () => now,
      batchSize: 10,
      appRetentions: readModels(p).apps.retentions,
    });
    try {
      const first = prunePass(terms(pool, 'first', held));
      await eventually(() => expect(running).to.deep.equal(['first']));
      const second = prunePass(terms(other.pool, 'second'));
      // The second has not begun while the first holds its pass (polled: it would have by now).
      const deadline = Date.now() + 300;
      while (Date.now() < deadline) {
        expect(running).to.deep.equal(['first']);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      release();
      await Promise.all([first, second]);
      expect(overlapped).to.equal(false);
    } finally {
      release();
      await other.close();
    }
  });
});
