import { expect } from 'chai';
import { PostgresEventStore } from '../../src/eventStore/postgres/postgresEventStore';
import type { Infrastructure } from '../../src/infrastructure';
import { eventually } from './eventually';

/**
 * The store's head once every event committed so far shows in its global order. The PostgreSQL store
 * lists an event only once every older transaction has ended (src/eventStore/postgres/reads.ts), so
 * a request's event can show a moment after its answer — under load, after a test's "nothing appended"
 * check has read the head, and is then taken for an append of the request under test. Other stores
 * show an event once it is committed.
 */
export async function settledHead(infrastructure: Pick<Infrastructure, 'store' | 'database'>): Promise<bigint> {
  const { store, database } = infrastructure;
  if (!(store instanceof PostgresEventStore)) return store.headPosition();
  const { rows } = await database.pool.query<{ committed: string | null }>(
    'SELECT max(position) AS committed FROM events',
  );
  const committed = rows[0]?.committed === null || rows[0] === undefined ? -1n : BigInt(rows[0].committed);
  return eventually(async () => {
    const head = await store.headPosition();
    expect(head >= committed, `the store's head ${head} shows every event committed, up to ${committed}`).to.equal(
      true,
    );
    return head;
  });
}
