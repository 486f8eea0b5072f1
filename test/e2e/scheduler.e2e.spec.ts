import { expect } from 'chai';
import type { Herald } from '../../src/herald';
import { eventually } from '../support/eventually';
import { postForm, startHeraldOn } from '../support/herald';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { koalaInboxOf } from '../support/viewerQueries';

// The scheduler is durable: a message scheduled before a restart, and due while herald was down, is
// delivered by the next herald on the same database.
describe('scheduled messages across a restart', function () {
  this.timeout(60_000);
  let testDatabase: TestDatabase;
  let running: Herald | undefined;

  before(async () => {
    testDatabase = await createTestDatabase();
  });
  after(async () => {
    await running?.close();
    await testDatabase.drop();
  });

  it('releases after restart what fell due while herald was down', async () => {
    const first = await startHeraldOn(testDatabase.connectionString);
    running = first;
    const ticket = async (herald: Herald, userId: string) =>
      (
        await postForm(`${herald.url}/koala/api/mas/tickets`, {
          app_key: 'camel',
          secret_key: 'EERWERRRRE',
          user_id: userId,
        })
      ).body.result as string;
    const execute = Math.floor(Date.now() / 1000) + 3; // 2-3 s ahead: herald stops well before it is due
    const sent = await postForm(`${first.url}/koala/api/mas/messages`, {
      ticket: await ticket(first, 'zhangbin'),
      users: 'sleeper',
      title: 'while you were out',
      content: 'c',
      execute: String(execute),
    });
    expect(sent.body.status).to.equal(0);
    // The read model has the message as scheduled before herald stops (no public view of another user's
    // scheduled message: read with SQL).
    await eventually(async () => {
      const { rows } = await first.infrastructure.database.pool.query(
        "SELECT status FROM notification_messages WHERE title = 'while you were out'",
      );
      expect(rows[0]?.status).to.equal('scheduled');
    });
    await first.close();
    running = undefined;
    await eventually(() => expect(Date.now()).to.be.greaterThan(execute * 1000 + 200));

    const second = await startHeraldOn(testDatabase.connectionString);
    running = second;
    const sleeper = await ticket(second, 'sleeper');
    const page = await eventually(async () => {
      const inbox = await koalaInboxOf(second.url, sleeper);
      expect(inbox.nodes).to.have.length(1);
      return inbox;
    });
    expect(page.nodes[0]).to.include({ title: 'while you were out' });
    expect(Date.parse(page.nodes[0]!.sentAt)).to.be.at.least(execute * 1000);
  });
});
