import type { Pool } from 'pg';
import type { KeptTicketKey } from '../src/identity/tickets';
import type { Migration } from '../src/postgres/migrations';

/** Not a read model (nothing rebuilds it from events): values herald keeps for every node, by name. */
export const settingsMigrations: readonly Migration[] = [
  {
    id: 'tickets/001-settings',
    sql: `CREATE TABLE herald_settings (name text PRIMARY KEY, value text NOT NULL)`,
  },
];

/** The ticket key, kept in herald_settings: the first node to start sets it, every node reads the same. */
export function keptTicketKey(pool: Pool): KeptTicketKey {
  return {
    async keep(candidate) {
      await pool.query(
        `INSERT INTO herald_settings (name, value) VALUES ('ticket_key', $1) ON CONFLICT (name) DO NOTHING`,
        [candidate],
      );
      const { rows } = await pool.query<{ value: string }>(
        `SELECT value FROM herald_settings WHERE name = 'ticket_key'`,
      );
      return rows[0]!.value;
    },
  };
}
