import type { Pool } from 'pg';
import type { DeviceNumbers } from '../src/devices/devices';
import type { Migration } from '../src/postgres/migrations';

/** Not a read model (nothing rebuilds it from events): the sequence device numbers are drawn from. */
export const deviceNumberMigrations: readonly Migration[] = [
  {
    id: 'devices/001-client-numbers',
    // topvdn's device numbers are seven digits in its examples; herald's start there.
    sql: `CREATE SEQUENCE herald_device_numbers START WITH 1000001`,
  },
];

/** The device numbers src/devices hands out, from one sequence shared by every node. */
export function deviceNumbers(pool: Pool): DeviceNumbers {
  return {
    async next() {
      const { rows } = await pool.query<{ n: string }>(`SELECT nextval('herald_device_numbers') AS n`);
      return Number(rows[0]!.n);
    },
  };
}
