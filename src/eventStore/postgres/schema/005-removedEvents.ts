import type { Migration } from '../../../postgres/migrations';

/**
 * Retention removes a retired stream's events (issue 26; src/eventStore/postgres/removal.ts). A reader may
 * hold one of their positions (a projection's checkpoint, an analyst's cursor) and must still be able to
 * read after it, so the store remembers how far removals have reached: a position at or below this mark
 * is taken as `after` even when no event holds it any more. One row, moved forward only.
 */
export const removedEventsMigration: Migration = {
  id: 'event-store/005-removed-events',
  sql: `
      CREATE TABLE events_removed (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        upto bigint NOT NULL,
        events bigint NOT NULL
      );
    `,
};
