import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type { Pool } from 'pg';
import { migrations } from '../../projections';
import { platformPushQueries } from '../../projections/platformPushes';
import type { DeliveryKey, PlatformPushQueries } from '../../src/platformPush/platformPusher';
import { migrate } from '../../src/postgres/migrations';
import { createTestDatabase, describeTarget, type TestDatabase } from '../support/postgres';

/**
 * The platform-push trigger's look (issue 25 throughput): never-written deliveries are read as a window
 * in push order after where the last look ended, so a look does not rescan what earlier looks passed over
 * (a send to ALL's devices stay open, pushed offline, for 7 days); the deliveries it names again (their
 * devices were connected) and the unconfirmed needConfirm ones are read whatever the window.
 */
describe(`platform-push candidates: a window after the last look (${describeTarget()})`, function () {
  this.timeout(60_000);
  const now = new Date();
  const apps = { IOS: ['camel'], ANDROID: [], WEB: [] };
  let testDatabase: TestDatabase;
  let pool: Pool;
  let queries: PlatformPushQueries;
  const pushes = [randomUUID(), randomUUID()];

  before(async () => {
    testDatabase = await createTestDatabase();
    pool = testDatabase.open().pool;
    await migrate(pool, migrations);
    queries = platformPushQueries(pool);
    await pool.query(
      `INSERT INTO devices (device_id, app_id, client_id, alias, platform, native_token, tags, registration,
         registration_position, active, registered_at, updated_at, position)
       SELECT 'dev-' || lpad(i::text, 2, '0'), 'camel', i, 'a' || i, CASE WHEN i % 5 = 0 THEN 'WEB' ELSE 'IOS' END,
              md5(i::text), '{}', 1, i, true, $1, $1, i
         FROM generate_series(1, 20) i`,
      [now],
    );
    // Two pushes to the 20 devices: 40 never-written deliveries, 8 of them to WEB devices (no platform push).
    for (const [n, pushId] of pushes.entries()) {
      await pool.query(
        `INSERT INTO device_pushes (push_id, app_id, message, needs_confirm, retry, requested_at, expires_at, position)
         VALUES ($1, 'camel', '{"kind":"onepush"}', false, 'once', $2, $3, $4)`,
        [pushId, now, new Date(now.getTime() + 3600_000), 100 + n],
      );
      await pool.query(
        `INSERT INTO device_deliveries (push_id, device_id, app_id, status, needs_confirm, attempts, next_attempt_at,
           expires_at, push_position, revision, position, updated_at)
         SELECT $1, device_id, 'camel', 'pending', false, 0, $2, $3, $4, -1, $4, $2 FROM devices`,
        [pushId, now, new Date(now.getTime() + 3600_000), 100 + n],
      );
    }
  });
  after(async () => {
    await testDatabase?.drop();
  });

  const look = (
    after: DeliveryKey | undefined,
    again: ReadonlyArray<{ pushId: string; deviceId: string }> = [],
    sweep?: { before: DeliveryKey | undefined },
  ) =>
    queries.candidates(
      apps,
      now,
      15,
      { tail: after, sweep },
      again.map((k) => ({ ...k, appId: 'camel' })),
    );

  it('reads each never-written delivery once, window after window, and nothing when none is new', async () => {
    const seen: string[] = [];
    let after: DeliveryKey | undefined;
    let windows = 0;
    for (;;) {
      const page = await look(after);
      windows++;
      seen.push(...page.candidates.map((c) => `${c.pushId}/${c.deviceId}`));
      expect(page.candidates.every((c) => c.platform === 'IOS' && c.attempts === 0)).to.equal(true);
      after = page.tailThrough;
      if (!page.tailFull) break;
    }
    expect(windows).to.equal(3); // 15 + 15 + 10 deliveries looked at
    expect(seen).to.have.length(32);
    expect(new Set(seen).size).to.equal(32);
    // Nothing new: the next look reads an empty window and stays where it was.
    const idle = await look(after);
    expect(idle.candidates).to.deep.equal([]);
    expect(idle.tailThrough).to.deep.equal(after);
    expect(idle.tailFull).to.equal(false);
    expect(await queries.latestDelivery()).to.deep.equal(after);
  });

  it('sweeps back from the newest, window after window, to the oldest, whatever the tail', async () => {
    const end = await queries.latestDelivery();
    const seen: string[] = [];
    let sweep: { before: DeliveryKey | undefined } = { before: undefined };
    let windows = 0;
    for (;;) {
      const page = await look(end, [], sweep);
      windows++;
      seen.push(...page.candidates.map((c) => `${c.pushId}/${c.deviceId}`));
      if (page.sweepDone) break;
      sweep = { before: page.sweepThrough };
    }
    expect(windows).to.equal(3);
    expect(new Set(seen).size).to.equal(32);
  });

  it('reads again the deliveries it is told (passed over while their devices were connected), unless requested', async () => {
    const end = { position: '101', deviceId: 'dev-20' };
    const again = [
      { pushId: pushes[0]!, deviceId: 'dev-01' },
      { pushId: pushes[1]!, deviceId: 'dev-02' },
    ];
    expect((await look(end, again)).candidates.map((c) => c.deviceId).sort()).to.deep.equal(['dev-01', 'dev-02']);
    await pool.query(
      `INSERT INTO platform_pushes (push_id, device_id, app_id, service, status, attempts, next_attempt_at,
         requested_at, updated_at, position, expires_at)
       VALUES ($1, 'dev-01', 'camel', 'apns', 'pending', 0, $2, $2, $2, 200, $2)`,
      [pushes[0], now],
    );
    expect((await look(end, again)).candidates.map((c) => c.deviceId)).to.deep.equal(['dev-02']);
    // From the start again: everything not requested yet.
    const full = await look(undefined);
    expect(full.candidates.map((c) => `${c.pushId}/${c.deviceId}`)).to.not.include(`${pushes[0]}/dev-01`);
  });

  it('reads the unconfirmed needConfirm deliveries whatever the window', async () => {
    const pushId = randomUUID();
    await pool.query(
      `INSERT INTO device_pushes (push_id, app_id, message, needs_confirm, retry, requested_at, expires_at, position)
       VALUES ($1, 'camel', '{"kind":"onepush"}', true, 'once', $2, $3, 50)`,
      [pushId, now, new Date(now.getTime() + 3600_000)],
    );
    await pool.query(
      `INSERT INTO device_deliveries (push_id, device_id, app_id, status, needs_confirm, attempts, next_attempt_at,
         expires_at, push_position, revision, position, updated_at)
       VALUES ($1, 'dev-03', 'camel', 'delivered', true, 1, $2, $3, 50, 0, 50, $2)`,
      [pushId, new Date(now.getTime() - 1000), new Date(now.getTime() + 3600_000)],
    );
    const page = await look({ position: '101', deviceId: 'dev-20' });
    expect(page.candidates.map((c) => [c.pushId, c.deviceId, c.attempts])).to.deep.equal([[pushId, 'dev-03', 1]]);
  });
});
