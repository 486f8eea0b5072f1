import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type { Pool } from 'pg';
import { KOALA_WEB_PUSH_BROWSERS_PER_USER } from '../../domain/message/koalaWebPush';
import { migrations } from '../../projections';
import { koalaWebPushQueries } from '../../projections/koalaWebPushes';
import type { KoalaWebPushQueries } from '../../src/platformPush/koalaWebPushes';
import { migrate } from '../../src/postgres/migrations';
import { createTestDatabase, describeTarget, type TestDatabase } from '../support/postgres';

/**
 * The leader's look for Koala messages to users' closed browsers (docs/platform-push.md, "Koala's web
 * terminals"): a window of at most 1,000 recipients in seq order, of which only subscribed browsers become
 * candidates — a message to 600 users of whom 30 subscribed is 30 rows, not 600.
 */
describe(`Koala web push: the look's window (${describeTarget()})`, function () {
  this.timeout(60_000);
  const now = new Date();
  let testDatabase: TestDatabase;
  let pool: Pool;
  let queries: KoalaWebPushQueries;
  const [wide, wideAgain, heavy, expired, others] = [
    randomUUID(),
    randomUUID(),
    randomUUID(),
    randomUUID(),
    randomUUID(),
  ];
  const users = Array.from({ length: 600 }, (_, i) => `u${i}`);

  /** A device whose browser subscribed at `subscribedAt`; `givenBy`: the user whose ticket gave it (null: a device token). */
  const device = async (
    deviceId: string,
    app: string,
    alias: string,
    platform: string,
    subscribedAt: number,
    givenBy: string | null = alias,
  ) => {
    await pool.query(
      `INSERT INTO devices (device_id, app_id, client_id, alias, platform, native_token, tags, registration,
         registration_position, active, registered_at, updated_at, position)
       VALUES ($1, $2, (SELECT coalesce(max(client_id), 0) + 1 FROM devices), $3, $4, md5($1), '{}', 1, $5, true, $6, $6, $5)`,
      [deviceId, app, alias, platform, subscribedAt, now],
    );
    await pool.query(
      `INSERT INTO web_push_subscriptions (device_id, registration, subscription, expires_at, user_id, position)
       VALUES ($1, 1, $2, NULL, $3, $4)`,
      [deviceId, `{"endpoint":"https://push.example.com/${deviceId}"}`, givenBy, subscribedAt],
    );
  };
  const message = async (id: string, app: string, seq: number, recipients: string[], expiresAt: Date | null = null) =>
    pool.query(
      `INSERT INTO notification_messages (message_id, app_id, sender, title, content, props, recipients, status, seq, sent_at, expires_at)
       VALUES ($1, $2, 'boss', 't', 'c', NULL, $3, 'delivered', $4, $5, $6)`,
      [id, app, recipients, seq, now, expiresAt],
    );

  before(async () => {
    testDatabase = await createTestDatabase();
    pool = testDatabase.open().pool;
    await migrate(pool, migrations);
    queries = koalaWebPushQueries(pool);
    // 30 of the 600 users have a browser; u30 subscribed only after the messages; u31's device is IOS.
    for (let i = 0; i < 30; i++) await device(`web-${i}`, 'camel', `u${i}`, 'WEB', 10);
    await device('web-late', 'camel', 'u30', 'WEB', 10_000);
    await device('ios-31', 'camel', 'u31', 'IOS', 10);
    // A user with 20 browsers; the same user id in another app.
    for (let i = 0; i < 20; i++) await device(`heavy-${String(i).padStart(2, '0')}`, 'camel', 'heavy', 'WEB', 10 + i);
    await device('other-u0', 'other', 'u0', 'WEB', 10);
    // Claimed: u2's alias, a subscription given with a device token (ONE-PUSH's open register), not by u2.
    await device('claimed-u2', 'camel', 'u2', 'WEB', 10, null);
    // Another user's subscription on a device now registered for u4 (its alias changed, not its subscription).
    await device('given-by-u5', 'camel', 'u4', 'WEB', 10, 'u5');
    await message(wide, 'camel', 100, users);
    await message(wideAgain, 'camel', 101, users);
    await message(heavy, 'camel', 102, ['heavy']);
    await message(expired, 'camel', 103, ['u0'], new Date(now.getTime() - 1000));
    await message(others, 'other', 104, ['u0']);
    // Requested already: not a candidate again.
    await pool.query(
      `INSERT INTO platform_pushes (push_id, device_id, app_id, service, status, attempts, requested_at, updated_at, position, expires_at)
       VALUES ($1, 'web-1', 'camel', 'webpush', 'sent', 1, $2, $2, 200, $2)`,
      [wideAgain, now],
    );
    // The heavy user's newest browser was requested already (a look that crashed before its cursor moved).
    await pool.query(
      `INSERT INTO platform_pushes (push_id, device_id, app_id, service, status, attempts, requested_at, updated_at, position, expires_at)
       VALUES ($1, 'heavy-19', 'camel', 'webpush', 'sent', 1, $2, $2, 201, $2)`,
      [heavy, now],
    );
  });
  after(async () => {
    await testDatabase?.drop();
  });

  it('reads at most 1,000 recipients a look, in seq order, and only subscribed browsers become candidates', async () => {
    const first = await queries.window(['camel'], 0n, 1000n, now, 1000);
    // The second message would make 1,200 recipients: the window ends after the first.
    expect(first.fullThrough).to.equal(100n);
    expect(first.candidates.map((c) => c.deviceId).sort()).to.deep.equal(
      Array.from({ length: 30 }, (_, i) => `web-${i}`).sort(),
    );
    expect(first.candidates.every((c) => c.messageId === wide && c.appId === 'camel')).to.equal(true);
    // An alias is only a claim: browsers the user did not subscribe with their own ticket are not theirs.
    expect(first.candidates.map((c) => c.deviceId)).to.not.include.members(['claimed-u2']);
    expect(first.candidates.map((c) => c.deviceId)).to.not.include.members(['given-by-u5']);
    expect(first.candidates.find((c) => c.deviceId === 'web-3')).to.include({ userId: 'u3', registration: 1 });

    const second = await queries.window(['camel'], 100n, 1000n, now, 1000);
    // Not full: it reached the bound (the expired one is read but no candidate).
    expect(second.fullThrough).to.equal(undefined);
    const byMessage = (id: string) => second.candidates.filter((c) => c.messageId === id).map((c) => c.deviceId);
    // web-1 was requested already.
    expect(byMessage(wideAgain)).to.have.length(29).and.not.include('web-1');
    // The newest 16 browsers of a user, less those requested already: a re-look never reaches a 17th.
    expect(byMessage(heavy)).to.deep.equal(
      Array.from({ length: KOALA_WEB_PUSH_BROWSERS_PER_USER - 1 }, (_, i) => `heavy-${String(i + 4).padStart(2, '0')}`),
    );
    expect(byMessage(expired)).to.deep.equal([]);
    expect(second.candidates.some((c) => c.deviceId === 'other-u0')).to.equal(false);
  });

  it("an app's messages reach its own users' browsers only; the bound `upTo` is never passed", async () => {
    const other = await queries.window(['other'], 0n, 1000n, now, 1000);
    expect(other.candidates.map((c) => [c.messageId, c.deviceId])).to.deep.equal([[others, 'other-u0']]);
    expect((await queries.window(['camel', 'other'], 0n, 99n, now, 1000)).candidates).to.deep.equal([]);
    const small = await queries.window(['camel', 'other'], 101n, 1000n, now, 2);
    expect(small.fullThrough).to.equal(103n);
  });

  it('a look over 1,000 recipients (100 of them with a browser) reads 100 candidates; prints looks/s (HERALD_MEASURE=1)', async function () {
    this.timeout(300_000);
    const recipients = Array.from({ length: 1000 }, (_, i) => `load-${i}`);
    for (let i = 0; i < 100; i++) await device(`load-web-${i}`, 'load', `load-${i * 10}`, 'WEB', 50_000);
    const messages = Number(process.env.HERALD_MEASURE === '1' ? 100 : 3);
    for (let m = 0; m < messages; m++) await message(randomUUID(), 'load', 100_000 + m, recipients);
    const started = process.hrtime.bigint();
    const cpu = process.cpuUsage();
    let after = 99_999n;
    for (let m = 0; m < messages; m++) {
      const look = await queries.window(['load'], after, 200_000n, now, 1000);
      expect(look.candidates).to.have.length(100);
      after = look.fullThrough ?? 200_000n;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (process.env.HERALD_MEASURE === '1') {
      const used = process.cpuUsage(cpu);
      console.log(
        `koala web push look: ${messages} looks of 1,000 recipients (100 browsers) in ${seconds.toFixed(2)} s: ` +
          `${(messages / seconds).toFixed(1)} looks/s, ${((seconds * 1000) / messages).toFixed(1)} ms a look, ` +
          `node CPU ${((used.user + used.system) / 1000 / messages).toFixed(2)} ms a look (the rest is PostgreSQL)`,
      );
    }
  });

  it('keeps where the looks stand', async () => {
    expect(await queries.lookedThrough()).to.equal(undefined);
    await queries.recordLookedThrough(12345678901234n);
    expect(await queries.lookedThrough()).to.equal(12345678901234n);
    // A leader whose lease lapsed mid-look records an older one: the looks never go back.
    await queries.recordLookedThrough(12345678901000n);
    expect(await queries.lookedThrough()).to.equal(12345678901234n);
    await queries.recordLookedThrough(12345678901235n);
    expect(await queries.lookedThrough()).to.equal(12345678901235n);
  });
});
