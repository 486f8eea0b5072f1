import type { Migration } from '../../../postgres/migrations';
import { eventsMigration } from './001-events';
import { eventIdsPerStreamMigration } from './002-eventIdsPerStream';
import { leanGroupAppendMigration } from './003-leanGroupAppend';
import { appendLockForEveryWriterMigration } from './004-appendLockForEveryWriter';
import { removedEventsMigration } from './005-removedEvents';
import { appendNotifyWhenAskedMigration } from './006-appendNotifyWhenAsked';

/** The PostgreSQL event store's schema, in the order it is applied; a change is a new migration at the end. */
export const postgresEventStoreMigrations: readonly Migration[] = [
  eventsMigration,
  eventIdsPerStreamMigration,
  leanGroupAppendMigration,
  appendLockForEveryWriterMigration,
  removedEventsMigration,
  appendNotifyWhenAskedMigration,
];
