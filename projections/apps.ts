import type { Pool } from 'pg';
import { AppEvent, retentionOf } from '../domain/app/app';
import type { AppRetention } from '../domain/retention';
import type { PushCallbackUrls } from '../src/devices/appCallbacks';
import type { AppSecrets } from '../src/identity/tickets';
import { eventDecoder, eventTypesOf } from '../src/projection/eventDecoder';
import type { Projection } from '../src/projection/projection';
import type { AppRetentions } from '../src/storage/retention';

/** App events; one whose data is refused is parked by the runner, not skipped. */
const appEvents = eventDecoder(AppEvent);

/** Apps and their secret hashes, for authenticating app_key/secret_key, X-APP-ID/X-APP-Key, appId/appKey. */
export const appsProjection: Projection = {
  name: 'apps',
  version: 1,
  tables: ['apps'],
  eventTypes: eventTypesOf(appEvents),
  migrations: [
    {
      id: 'projection/apps/001',
      sql: `CREATE TABLE apps (
              app_id text PRIMARY KEY,
              secret_hash text NOT NULL,
              registered_at timestamptz NOT NULL,
              updated_at timestamptz NOT NULL
            )`,
    },
    {
      id: 'projection/apps/002-push-callback',
      sql: `ALTER TABLE apps ADD COLUMN push_callback_url text`,
    },
    {
      // AppRetentionSet's data (null: the app set nothing). No event before it had any: no replay needed.
      id: 'projection/apps/003-retention',
      sql: `ALTER TABLE apps ADD COLUMN retention jsonb`,
    },
  ],

  async handle(events, tx) {
    for (const recorded of events) {
      const event = appEvents.decode(recorded);
      if (!event) continue;
      switch (event.type) {
        case 'AppRegistered':
          await tx.query(
            `INSERT INTO apps (app_id, secret_hash, registered_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (app_id) DO UPDATE SET secret_hash = excluded.secret_hash, updated_at = excluded.updated_at`,
            [event.data.appId, event.data.secretHash, event.data.registeredAt],
          );
          break;
        case 'AppSecretChanged':
          await tx.query('UPDATE apps SET secret_hash = $2, updated_at = $3 WHERE app_id = $1', [
            event.data.appId,
            event.data.secretHash,
            event.data.changedAt,
          ]);
          break;
        case 'AppPushCallbackSet':
          await tx.query('UPDATE apps SET push_callback_url = $2, updated_at = $3 WHERE app_id = $1', [
            event.data.appId,
            event.data.url,
            event.data.setAt,
          ]);
          break;
        case 'AppRetentionSet': {
          const { unexpiringMessages, datahubNotifications, setAt } = event.data;
          await tx.query('UPDATE apps SET retention = $2, updated_at = $3 WHERE app_id = $1', [
            event.data.appId,
            JSON.stringify({ unexpiringMessages, datahubNotifications }),
            setAt,
          ]);
          break;
        }
      }
    }
    return [];
  },
};

/** Where apps receive topvdn callbacks, behind the interface src/devices declares. */
export function pushCallbackUrls(pool: Pool): PushCallbackUrls {
  return {
    async urlOf(appId) {
      const { rows } = await pool.query<{ push_callback_url: string | null }>(
        'SELECT push_callback_url FROM apps WHERE app_id = $1',
        [appId],
      );
      return rows[0]?.push_callback_url ?? undefined;
    },
  };
}

/** The read side of this projection, behind the interface tickets declare. */
export function appSecrets(pool: Pool): AppSecrets {
  return {
    async secretHash(appId) {
      const { rows } = await pool.query<{ secret_hash: string }>('SELECT secret_hash FROM apps WHERE app_id = $1', [
        appId,
      ]);
      return rows[0]?.secret_hash;
    },
  };
}

/** Apps' own retention settings (domain/retention.ts, APP_RETENTION_CATEGORIES), behind the interface src/storage declares. */
export function appRetentions(pool: Pool): AppRetentions {
  const toRetention = (retention: unknown): AppRetention =>
    typeof retention === 'object' && retention !== null
      ? retentionOf({
          appId: '',
          setAt: '',
          unexpiringMessages: stringOrNull((retention as Record<string, unknown>)['unexpiringMessages']),
          datahubNotifications: stringOrNull((retention as Record<string, unknown>)['datahubNotifications']),
        })
      : {};
  return {
    async of(appId) {
      const { rows } = await pool.query<{ retention: unknown }>('SELECT retention FROM apps WHERE app_id = $1', [
        appId,
      ]);
      return toRetention(rows[0]?.retention);
    },
    async all() {
      // Every app that set something, a page at a time (a bounded read each; none left out: an app past
      // a cap would fall back to the deployment's default and lose what it keeps).
      const all = new Map<string, AppRetention>();
      for (let after = ''; ;) {
        const { rows } = await pool.query<{ app_id: string; retention: unknown }>(
          'SELECT app_id, retention FROM apps WHERE retention IS NOT NULL AND app_id > $1 ORDER BY app_id LIMIT $2',
          [after, APPS_PAGE],
        );
        for (const r of rows) all.set(r.app_id, toRetention(r.retention));
        if (rows.length < APPS_PAGE) return all;
        after = rows[rows.length - 1]!.app_id;
      }
    },
  };
}

/** Apps read per query by `all()`. */
const APPS_PAGE = 1_000;

const stringOrNull = (value: unknown): string | null => (typeof value === 'string' ? value : null);
