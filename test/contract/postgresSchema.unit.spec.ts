import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { postgresEventStoreMigrations } from '../../src/eventStore/postgres/schema/migrations';

/**
 * A database records only the ids of the migrations it applied (src/postgres/migrations.ts), so a shipped
 * migration edited in place would leave old and new databases with different functions. The schema
 * modules share pieces of SQL (schema/appendFunctions.ts): this pins what each shipped migration runs, to
 * the byte. A change to the store's schema is a new migration at the end of the list.
 */
const SHIPPED: ReadonlyArray<readonly [id: string, sha256: string]> = [
  ['event-store/001-events', '9e22735018e6724aeda68a967378d50144fc0968a0258c3c38a7e0a3641bd00c'],
  ['event-store/002-event-ids-per-stream', 'd30776748a28c7250d9b0944e148ba583e6d796ffcab5daea65435282b28311e'],
  ['event-store/003-lean-group-append', 'e0565fd5bd4120d7157e540defc762a7aef17da50c2927ced2ab40790d7025db'],
  ['event-store/004-append-lock-for-every-writer', 'c262fc9fc00cec1d1482d00ff3838ffff5175916df31a6df1722dd32a1a536d1'],
  ['event-store/005-removed-events', '559b8c11fbd8ddc6a651f907b2e2b240fc342d51d5b0fcb3d37e55544e4628fa'],
];

describe('PostgreSQL event store schema', () => {
  it('keeps every shipped migration, in order, with the SQL it shipped with', () => {
    const shipped = postgresEventStoreMigrations
      .slice(0, SHIPPED.length)
      .map((migration) => [migration.id, createHash('sha256').update(migration.sql).digest('hex')]);
    expect(shipped).to.deep.equal(SHIPPED);
  });
});
