import { expect } from 'chai';
import { deviceNumberMigrations, deviceNumbers } from '../../projections/deviceNumbers';
import { keptTicketKey, settingsMigrations } from '../../projections/settings';
import { migrate } from '../../src/postgres/migrations';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/** The tables that are no read model: the ticket key every node shares, and device numbers. */
describe('settings and device numbers (projections/settings.ts, projections/deviceNumbers.ts)', () => {
  let testDatabase: TestDatabase;
  let pool: ReturnType<TestDatabase['open']>['pool'];
  before(async () => {
    testDatabase = await createTestDatabase();
    pool = testDatabase.open().pool;
    await migrate(pool, [...settingsMigrations, ...deviceNumberMigrations]);
  });
  after(() => testDatabase?.drop());

  it('keeps the first ticket key offered; every later start (another node) gets that one', async () => {
    const key = keptTicketKey(pool);
    expect(await key.keep('first')).to.equal('first');
    expect(await key.keep('second')).to.equal('first');
    const [a, b] = await Promise.all([keptTicketKey(pool).keep('third'), keptTicketKey(pool).keep('fourth')]);
    expect([a, b]).to.deep.equal(['first', 'first']);
  });

  it("hands out device numbers from topvdn's seven digits on, never one twice", async () => {
    const numbers = deviceNumbers(pool);
    const drawn = await Promise.all(Array.from({ length: 20 }, () => numbers.next()));
    expect(new Set(drawn).size).to.equal(20);
    expect(Math.min(...drawn)).to.equal(1_000_001);
  });
});
