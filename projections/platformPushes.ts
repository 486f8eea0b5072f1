import * as t from 'io-ts';
import type { Pool } from 'pg';
import type { DeliveryStatus } from '../domain/device/delivery';
import { DeviceRegistered, NativeTokenRevoked } from '../domain/device/device';
import {
  PlatformPushFailed,
  PlatformPushRequested,
  PlatformPushSent,
  type PlatformPushServiceName,
} from '../domain/device/platformPush';
import { PushMessage } from '../domain/device/push';
import type { WebPushSubscription } from '../domain/device/webPushSubscription';
import { UUID } from '../domain/text';
import type { RecordedEvent } from '../src/eventStore/eventStore';
import type {
  ApnsCredentialStore,
  FcmCredentialStore,
  StoredApnsCredentials,
  VapidCredentialStore,
} from '../src/platformPush/credentials';
import type {
  DeliveryKey,
  PlatformPushCandidate,
  PlatformPushQueries,
  Sendability,
} from '../src/platformPush/platformPusher';
import type { Migration } from '../src/postgres/migrations';
import { eventDecoder, eventTypesOf } from '../src/projection/eventDecoder';
import type { Projection } from '../src/projection/projection';
import type { Prunable } from '../src/storage/retention';
import { keyedPruning } from './pruning';

const PlatformPushReadEvent = t.union([
  PlatformPushRequested,
  PlatformPushSent,
  PlatformPushFailed,
  NativeTokenRevoked,
  DeviceRegistered,
]);
const platformPushEvents = eventDecoder(PlatformPushReadEvent, (event) =>
  'pushId' in event.data && !UUID.test(event.data.pushId) ? 'pushId is not a UUID' : undefined,
);

/**
 * Platform pushes (docs/platform-push.md): each message requested for a device through its platform's
 * service and how far it got (what the leader's outbox finds due), and the devices whose native token
 * the service called dead (cleared by the device's next registration). A batch is folded per row in
 * position order, then one statement per table.
 */
export const platformPushesProjection: Projection = {
  name: 'platform-pushes',
  // 2: platform_pushes.expires_at (retention), filled by the replay. 3: web_push_subscriptions.user_id.
  version: 3,
  tables: ['platform_pushes', 'revoked_native_tokens', 'web_push_subscriptions'],
  eventTypes: eventTypesOf(platformPushEvents),
  migrations: [
    {
      id: 'projection/platform-pushes/001',
      sql: `
        CREATE TABLE platform_pushes (
          push_id uuid NOT NULL,
          device_id text NOT NULL,
          app_id text NOT NULL,
          service text NOT NULL,
          status text NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
          attempts integer NOT NULL,
          next_attempt_at timestamptz,
          last_error text,
          requested_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL,
          position bigint NOT NULL,
          PRIMARY KEY (push_id, device_id)
        );
        CREATE INDEX platform_pushes_due ON platform_pushes (next_attempt_at) WHERE status = 'pending';
        CREATE TABLE revoked_native_tokens (
          device_id text PRIMARY KEY,
          registration integer NOT NULL,
          reason text NOT NULL,
          revoked_at timestamptz NOT NULL,
          position bigint NOT NULL
        );
      `,
    },
    {
      // WEB devices' browser subscriptions (docs/platform-push.md, Web Push): no event of before has one.
      id: 'projection/platform-pushes/002-web-push-subscriptions',
      sql: `
        CREATE TABLE web_push_subscriptions (
          device_id text PRIMARY KEY,
          registration integer NOT NULL,
          subscription text NOT NULL,
          expires_at timestamptz,
          position bigint NOT NULL
        );
      `,
    },
    {
      // Retention (platformPushPruning): the message's expiry; the version's replay fills it.
      id: 'projection/platform-pushes/003-expiry',
      sql: `ALTER TABLE platform_pushes ADD COLUMN expires_at timestamptz NOT NULL DEFAULT 'infinity';
            ALTER TABLE platform_pushes ALTER COLUMN expires_at DROP DEFAULT;
            CREATE INDEX platform_pushes_ended ON platform_pushes (expires_at) WHERE status <> 'pending';`,
    },
    {
      // Koala web push: the user who gave the subscription with their own ticket (webPush.userId), if any.
      id: 'projection/platform-pushes/004-web-push-user',
      sql: `ALTER TABLE web_push_subscriptions ADD COLUMN user_id text;`,
    },
  ],

  async handle(events, tx) {
    const batch = toBatch(events);
    if (batch.requested.id.length > 0)
      await tx.query({ name: 'platform-push-request', text: REQUEST, values: Object.values(batch.requested) });
    if (batch.outcomes.push.length > 0)
      await tx.query({ name: 'platform-push-outcome', text: OUTCOME, values: Object.values(batch.outcomes) });
    if (batch.revoked.device.length > 0)
      await tx.query({ name: 'platform-push-revoke', text: REVOKE, values: Object.values(batch.revoked) });
    if (batch.cleared.length > 0)
      await tx.query({
        name: 'platform-push-clear',
        text: `DELETE FROM revoked_native_tokens WHERE device_id = ANY($1::text[])`,
        values: [batch.cleared],
      });
    if (batch.subscribed.device.length > 0)
      await tx.query({ name: 'platform-push-subscribe', text: SUBSCRIBE, values: Object.values(batch.subscribed) });
    if (batch.unsubscribed.length > 0)
      await tx.query({
        name: 'platform-push-unsubscribe',
        text: `DELETE FROM web_push_subscriptions WHERE device_id = ANY($1::text[])`,
        values: [batch.unsubscribed],
      });
    return [];
  },
};

const REQUEST = `
  INSERT INTO platform_pushes (push_id, device_id, app_id, service, status, attempts, next_attempt_at, requested_at, updated_at, position, expires_at)
  SELECT u.push, u.device, u.app, u.service, 'pending', 0, u.at, u.at, u.at, u.position, u.expires
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[], $7::timestamptz[])
         AS u(push, device, app, service, at, position, expires)
  ON CONFLICT DO NOTHING`;

const OUTCOME = `
  UPDATE platform_pushes pp
     SET status = u.status, attempts = greatest(pp.attempts, u.attempts), next_attempt_at = u.next_attempt_at,
         last_error = coalesce(u.error, pp.last_error), updated_at = u.at, position = u.position
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::integer[], $5::timestamptz[], $6::text[], $7::timestamptz[], $8::bigint[])
         AS u(push, device, status, attempts, next_attempt_at, error, at, position)
   WHERE pp.push_id = u.push AND pp.device_id = u.device AND pp.position < u.position`;

const REVOKE = `
  INSERT INTO revoked_native_tokens AS r (device_id, registration, reason, revoked_at, position)
  SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], $4::timestamptz[], $5::bigint[])
  ON CONFLICT (device_id) DO UPDATE SET registration = excluded.registration, reason = excluded.reason,
     revoked_at = excluded.revoked_at, position = excluded.position
   WHERE r.position < excluded.position`;

const SUBSCRIBE = `
  INSERT INTO web_push_subscriptions AS w (device_id, registration, subscription, expires_at, user_id, position)
  SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], $4::timestamptz[], $5::text[], $6::bigint[])
  ON CONFLICT (device_id) DO UPDATE SET registration = excluded.registration, subscription = excluded.subscription,
     expires_at = excluded.expires_at, user_id = excluded.user_id,
     -- Where the subscription was given (a Koala message after it is pushed to it): a re-registration that
     -- changes other fields does not move it, or a message delivered just before would skip the browser.
     position = CASE WHEN (w.registration, w.subscription, w.user_id)
                          IS NOT DISTINCT FROM (excluded.registration, excluded.subscription, excluded.user_id)
                     THEN w.position ELSE excluded.position END
   WHERE w.position < excluded.position`;

/**
 * The subscription as the Web Push adapter takes it (PlatformPushRequested's `nativeToken` for `webpush`):
 * the browser's `toJSON()` shape.
 */
const subscriptionJson = (s: WebPushSubscription) =>
  JSON.stringify({ endpoint: s.endpoint, keys: { p256dh: s.p256dh, auth: s.auth } });

interface Subscribed {
  readonly registration: number;
  readonly subscription: string;
  readonly expiresAt: string | null;
  /** webPush.userId: the user whose browser it is for Koala, or null. */
  readonly userId: string | null;
  readonly position: string;
}
const sameSubscribed = (a: Subscribed, b: Subscribed) =>
  a.registration === b.registration && a.subscription === b.subscription && a.userId === b.userId;

function toBatch(events: readonly RecordedEvent[]) {
  const requested = {
    id: [] as string[],
    device: [] as string[],
    app: [] as string[],
    service: [] as string[],
    at: [] as string[],
    position: [] as string[],
    expires: [] as string[],
  };
  const outcomes = new Map<
    string,
    {
      push: string;
      device: string;
      status: string;
      attempts: number;
      next: string | null;
      error: string | null;
      at: string;
      position: string;
    }
  >();
  // Per device, the last of revoked / cleared wins.
  const tokens = new Map<string, { registration: number; reason: string; at: string; position: string } | null>();
  // Per device, its browser subscription after the batch (null: none).
  const subscriptions = new Map<string, Subscribed | null>();
  for (const recorded of events) {
    const event = platformPushEvents.decode(recorded);
    if (!event) continue;
    const position = recorded.position.toString();
    switch (event.type) {
      case 'PlatformPushRequested': {
        const d = event.data;
        requested.id.push(d.pushId);
        requested.device.push(d.deviceId);
        requested.app.push(d.appId);
        requested.service.push(d.service);
        requested.at.push(d.requestedAt);
        requested.position.push(position);
        requested.expires.push(d.expiresAt);
        break;
      }
      case 'PlatformPushSent':
      case 'PlatformPushFailed': {
        const d = event.data;
        const key = `${d.pushId}/${d.deviceId}`;
        const before = outcomes.get(key);
        const common = {
          push: d.pushId,
          device: d.deviceId,
          attempts: Math.max(before?.attempts ?? 0, d.attempt),
          position,
        };
        outcomes.set(
          key,
          event.type === 'PlatformPushSent'
            ? { ...common, status: 'sent', next: null, error: before?.error ?? null, at: event.data.sentAt }
            : {
                ...common,
                status: event.data.final ? 'failed' : 'pending',
                next: event.data.retryAt,
                error: event.data.error,
                at: event.data.failedAt,
              },
        );
        break;
      }
      case 'NativeTokenRevoked':
        // A push service dropped the browser subscription: gone, not only revoked (docs/platform-push.md).
        if (event.data.service === 'webpush') subscriptions.set(event.data.deviceId, null);
        tokens.set(event.data.deviceId, {
          registration: event.data.registration,
          reason: event.data.reason,
          at: event.data.revokedAt,
          position,
        });
        break;
      case 'DeviceRegistered': {
        // A registration gives the device a live token again.
        tokens.set(event.data.deviceId, null);
        const { webPush } = event.data;
        const before = subscriptions.get(event.data.deviceId);
        const now: Subscribed | null = webPush
          ? {
              registration: event.data.registration,
              subscription: subscriptionJson(webPush),
              expiresAt: webPush.expirationTime === null ? null : new Date(webPush.expirationTime).toISOString(),
              userId: webPush.userId ?? null,
              position,
            }
          : null;
        // Unchanged by this registration: it keeps the position it was given at (SUBSCRIBE does so across batches).
        subscriptions.set(
          event.data.deviceId,
          now && before && sameSubscribed(before, now) ? { ...now, position: before.position } : now,
        );
        break;
      }
    }
  }
  // Requests are applied before outcomes: an outcome in the same batch finds its row (its position is later).
  const o = [...outcomes.values()];
  const subscribed = [...subscriptions.entries()].filter((e): e is [string, Subscribed] => e[1] !== null);
  const revoked = [...tokens.entries()].filter(
    (e): e is [string, { registration: number; reason: string; at: string; position: string }] => e[1] !== null,
  );
  return {
    requested,
    outcomes: {
      push: o.map((x) => x.push),
      device: o.map((x) => x.device),
      status: o.map((x) => x.status),
      attempts: o.map((x) => x.attempts),
      next: o.map((x) => x.next),
      error: o.map((x) => x.error),
      at: o.map((x) => x.at),
      position: o.map((x) => x.position),
    },
    revoked: {
      device: revoked.map(([id]) => id),
      registration: revoked.map(([, r]) => r.registration),
      reason: revoked.map(([, r]) => r.reason),
      at: revoked.map(([, r]) => r.at),
      position: revoked.map(([, r]) => r.position),
    },
    cleared: [...tokens.entries()].filter(([, r]) => r === null).map(([id]) => id),
    subscribed: {
      device: subscribed.map(([id]) => id),
      registration: subscribed.map(([, s]) => s.registration),
      subscription: subscribed.map(([, s]) => s.subscription),
      expiresAt: subscribed.map(([, s]) => s.expiresAt),
      userId: subscribed.map(([, s]) => s.userId),
      position: subscribed.map(([, s]) => s.position),
    },
    unsubscribed: [...subscriptions.entries()].filter(([, s]) => s === null).map(([id]) => id),
  };
}

/**
 * What the leader reads: candidates for a platform push, the items due, and a push's message. Candidates
 * are read from the devices read model's tables (read only) with this one's: open ONE-PUSH deliveries to
 * IOS devices of the apps with APNs credentials and ANDROID devices of those with an FCM service account,
 * never written (attempts 0: the device had no connection when it was pushed) or needing confirmation and
 * unconfirmed when its first re-send fell due (attempts ≥ 2, or attempts 1 and its re-send time passed:
 * re-sends are made only to connected devices, so one that went away after the first write — an iOS app
 * sent to the background — stays at 1), not yet requested, whose
 * device's token is not revoked.
 */
interface CandidateRow {
  push_id: string | null;
  device_id: string | null;
  app_id: string | null;
  attempts: number | null;
  native_token: string | null;
  registration: number | null;
  expires_at: Date | null;
  platform: 'IOS' | 'ANDROID' | 'WEB' | null;
}

/**
 * An open ONE-PUSH delivery that may need a platform push: to an IOS device of an app with APNs
 * credentials ($1), an ANDROID device of an app with an FCM service account ($4) or a WEB device with a
 * current browser subscription of an app with a VAPID key pair ($5), unexpired at $2, not yet requested,
 * its device active since before the push and its token not revoked. The token is the subscription for a
 * WEB device. The callers add which deliveries they look at.
 */
const CANDIDATE = `
  SELECT dd.push_id, dd.device_id, dd.app_id, dd.attempts, coalesce(w.subscription, d.native_token) AS native_token,
         d.registration, p.expires_at, d.platform
    FROM device_deliveries dd
    JOIN devices d ON d.device_id = dd.device_id
    JOIN device_pushes p ON p.push_id = dd.push_id
    LEFT JOIN web_push_subscriptions w ON d.platform = 'WEB' AND w.device_id = d.device_id
          AND w.registration = d.registration AND (w.expires_at IS NULL OR w.expires_at > $2)
   WHERE dd.app_id = ANY($1::text[] || $4::text[] || $5::text[])
     AND (dd.status = 'pending' OR (dd.status = 'delivered' AND dd.needs_confirm)) AND dd.expires_at > $2
     AND ((d.platform = 'IOS' AND dd.app_id = ANY($1::text[])) OR (d.platform = 'ANDROID' AND dd.app_id = ANY($4::text[]))
          OR (d.platform = 'WEB' AND dd.app_id = ANY($5::text[]) AND w.device_id IS NOT NULL))
     AND d.active AND dd.push_position > d.registration_position
     AND p.message->>'kind' = 'onepush'
     AND NOT EXISTS (SELECT 1 FROM platform_pushes pp WHERE pp.push_id = dd.push_id AND pp.device_id = dd.device_id)
     AND NOT EXISTS (SELECT 1 FROM revoked_native_tokens r WHERE r.device_id = d.device_id AND r.registration = d.registration)`;

export function platformPushQueries(pool: Pool): PlatformPushQueries {
  return {
    async candidates(apps, now, limit, { tail, sweep }, again) {
      if (apps.IOS.length === 0 && apps.ANDROID.length === 0 && apps.WEB.length === 0)
        return { candidates: [], tailThrough: tail, sweepThrough: sweep?.before, tailFull: false, sweepDone: true };
      const values = [apps.IOS, now, limit, apps.ANDROID, apps.WEB];
      // Unnamed statements, planned each time on the tables as they are: a prepared statement's generic
      // plan, chosen while the tables were nearly empty (herald just started, a send to ALL not projected
      // yet), may be kept once they hold thousands of rows (bench:platformPush: 0.5 s a look, 25 ms planned
      // afresh on the same rows).
      // Never written: a window of `limit` in push order after `after` (ascending) or before `before`
      // (descending; the sweep), every row of it passed over, a candidate or not: a look costs its windows,
      // not every delivery pushed offline before.
      const window = (from: DeliveryKey | undefined, descending: boolean) =>
        pool.query<CandidateRow & { window_position: string; window_device: string }>({
          text: `
            SELECT win.push_position::text AS window_position, win.device_id AS window_device, c.*
              FROM (SELECT push_id, device_id, push_position FROM device_deliveries
                     WHERE attempts = 0 AND status = 'pending'
                       AND (push_position, device_id) ${descending ? '<' : '>'} ($6::bigint, $7::text)
                     ORDER BY push_position ${descending ? 'DESC' : ''}, device_id ${descending ? 'DESC' : ''} LIMIT $3) win
              LEFT JOIN LATERAL (${CANDIDATE} AND dd.push_id = win.push_id AND dd.device_id = win.device_id) c ON true
             ORDER BY win.push_position ${descending ? 'DESC' : ''}, win.device_id ${descending ? 'DESC' : ''}`,
          values: [...values, from?.position ?? (descending ? '9223372036854775807' : '-1'), from?.deviceId ?? ''],
        });
      const [unwritten, swept, unconfirmed, looked] = await Promise.all([
        window(tail, false),
        sweep ? window(sweep.before, true) : { rows: [] },
        pool.query<CandidateRow>({
          text: `${CANDIDATE}
             AND dd.needs_confirm AND dd.attempts >= 1 AND (dd.status = 'pending' OR dd.status = 'delivered')
             AND (dd.attempts >= 2 OR dd.next_attempt_at <= $2)
           ORDER BY dd.push_position, dd.device_id LIMIT $3`,
          values,
        }),
        // Looked at before and passed over only for now (their devices were connected, or their request failed).
        again.length === 0
          ? { rows: [] }
          : pool.query<CandidateRow>({
              text: `${CANDIDATE}
                 AND (dd.push_id, dd.device_id) IN (SELECT * FROM unnest($6::uuid[], $7::text[]))
                 AND dd.attempts = 0
               LIMIT $3`,
              values: [...values, again.map((k) => k.pushId), again.map((k) => k.deviceId)],
            }),
      ]);
      const lastOf = (rows: ReadonlyArray<{ window_position: string; window_device: string }>) => {
        const last = rows[rows.length - 1];
        return last && { position: last.window_position, deviceId: last.window_device };
      };
      return {
        candidates: [...unwritten.rows, ...swept.rows, ...unconfirmed.rows, ...looked.rows]
          .filter((r) => r.push_id !== null)
          .map((r): PlatformPushCandidate => ({
            pushId: r.push_id!,
            deviceId: r.device_id!,
            appId: r.app_id!,
            attempts: r.attempts!,
            nativeToken: r.native_token!,
            registration: r.registration!,
            expiresAt: r.expires_at!.toISOString(),
            platform: r.platform!,
          })),
        tailThrough: lastOf(unwritten.rows) ?? tail,
        sweepThrough: lastOf(swept.rows) ?? sweep?.before,
        tailFull: unwritten.rows.length === limit || unconfirmed.rows.length === limit,
        sweepDone: swept.rows.length < limit,
      };
    },
    async latestDelivery() {
      const { rows } = await pool.query<{ position: string; device_id: string }>(
        `SELECT push_position::text AS position, device_id FROM device_deliveries
          WHERE attempts = 0 AND status = 'pending' ORDER BY push_position DESC, device_id DESC LIMIT 1`,
      );
      return rows[0] && { position: rows[0].position, deviceId: rows[0].device_id };
    },
    async due(now, limit) {
      const { rows } = await pool.query<{
        push_id: string;
        device_id: string;
        app_id: string;
        service: PlatformPushServiceName;
      }>({
        name: 'platform-push-due',
        text: `SELECT push_id, device_id, app_id, service FROM platform_pushes WHERE status = 'pending' AND next_attempt_at <= $1
                ORDER BY next_attempt_at LIMIT $2`,
        values: [now, limit],
      });
      return rows.map((r) => ({ pushId: r.push_id, deviceId: r.device_id, appId: r.app_id, service: r.service }));
    },
    async nextAttemptAt() {
      const { rows } = await pool.query<{ next: Date | null }>(
        `SELECT min(next_attempt_at) AS next FROM platform_pushes WHERE status = 'pending'`,
      );
      return rows[0]?.next ?? undefined;
    },
    async messageOf(pushId) {
      const { rows } = await pool.query<{ message: unknown; needs_confirm: boolean }>({
        name: 'platform-push-message',
        text: `SELECT message, needs_confirm FROM device_pushes WHERE push_id = $1`,
        values: [pushId],
      });
      const row = rows[0];
      const decoded = row && PushMessage.decode(row.message);
      return decoded && decoded._tag === 'Right'
        ? { message: decoded.right, needsConfirm: row.needs_confirm }
        : undefined;
    },
    async sendability(items) {
      if (items.length === 0) return [];
      // The device (its registration live, its token not revoked: a revocation names the registration) and
      // the delivery, from the devices read model (read only) and this one's revocations. Each by its key
      // (a LIMIT keeps PostgreSQL from flattening the lateral into a join): a batch is a few hundred items,
      // and on tables of ten thousand rows the planner otherwise hashed whole scans of devices and
      // device_deliveries per batch (15–19 ms a batch of ~125 in bench:platformPush, now ~2 ms).
      const { rows } = await pool.query<{
        n: string;
        token_live: boolean | null;
        status: DeliveryStatus | null;
        needs_confirm: boolean | null;
      }>({
        text: `
          SELECT i.n, d.live IS NOT NULL AND r.revoked IS NULL AS token_live, dd.status, dd.needs_confirm
            FROM unnest($1::uuid[], $2::text[], $3::integer[]) WITH ORDINALITY AS i(push_id, device_id, registration, n)
            LEFT JOIN LATERAL (SELECT true AS live FROM devices d
                                WHERE d.device_id = i.device_id AND d.active AND d.registration = i.registration
                                LIMIT 1) d ON true
            LEFT JOIN LATERAL (SELECT true AS revoked FROM revoked_native_tokens r
                                WHERE r.device_id = i.device_id AND r.registration = i.registration LIMIT 1) r ON true
            LEFT JOIN LATERAL (SELECT status, needs_confirm FROM device_deliveries dd
                                WHERE dd.push_id = i.push_id AND dd.device_id = i.device_id LIMIT 1) dd ON true
           ORDER BY i.n`,
        values: [items.map((i) => i.pushId), items.map((i) => i.deviceId), items.map((i) => i.registration)],
      });
      return rows.map((r): Sendability => ({
        tokenLive: r.token_live === true,
        delivery: r.status === null ? undefined : { status: r.status, needsConfirm: r.needs_confirm === true },
      }));
    },
    async statusOf(pushId, deviceId) {
      const { rows } = await pool.query<{ status: string; attempts: number; last_error: string | null }>(
        `SELECT status, attempts, last_error FROM platform_pushes WHERE push_id = $1 AND device_id = $2`,
        [pushId, deviceId],
      );
      const row = rows[0];
      return row && { status: row.status, attempts: row.attempts, lastError: row.last_error };
    },
  };
}

/**
 * Retention of platform pushes (domain/retention.ts, platformPushRemovable): with their deliveries, once
 * their attempts are over and their message has expired — by the row's own columns, so a rebuild (its
 * schema alone on the search path) prunes its fresh table the same way.
 */
export function platformPushPruning(pool: Pool): Prunable {
  return keyedPruning(pool, {
    table: 'platform_pushes',
    category: 'deliveries',
    key: 'push_id, device_id',
    removable: `status <> 'pending' AND expires_at < $1`,
    orderBy: 'expires_at',
    // domain/device/platformPush.ts platformPushStreamName: a uuid and a device id hold neither `.` nor `%`.
    stream: `'platformpush-' || push_id || '.' || device_id`,
    // With its push group while the push's row is kept (it retires with its push and deliveries: a rebuild
    // replays all or none of them); at once once it is gone (a delivery confirmed early goes, and its push
    // with it, long before its message expires). Either way the delivery is past its message's expiry, so
    // the leader, which asks only for unexpired deliveries, never asks again for a push whose stream went.
    // (device_pushes is the devices projection's table, the live one: schema-qualified for a rebuild's pruning.)
    retire: `waiting AS (INSERT INTO public.push_delivery_streams (push_id, stream_name)
        SELECT push_id, stream_name FROM gone
         WHERE EXISTS (SELECT 1 FROM public.device_pushes p WHERE p.push_id = gone.push_id)
        ON CONFLICT DO NOTHING
      ), retired AS (INSERT INTO public.retired_streams (stream_name)
        SELECT stream_name FROM gone
         WHERE NOT EXISTS (SELECT 1 FROM public.device_pushes p WHERE p.push_id = gone.push_id)
        ON CONFLICT (stream_name) DO NOTHING)`,
  });
}

/**
 * Not a read model (nothing rebuilds it from events; the key is sealed): apps' APNs credentials, and (tables
 * of their own: what is shown differs) their FCM service accounts and VAPID key pairs.
 */
export const platformCredentialMigrations: readonly Migration[] = [
  {
    id: 'platform-push/001-credentials',
    sql: `CREATE TABLE platform_credentials (
            app_id text NOT NULL,
            service text NOT NULL,
            key_id text NOT NULL,
            team_id text NOT NULL,
            topic text NOT NULL,
            environment text NOT NULL,
            sealed_key text NOT NULL,
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (app_id, service)
          )`,
  },
  {
    id: 'platform-push/002-fcm-credentials',
    sql: `CREATE TABLE fcm_credentials (
            app_id text PRIMARY KEY,
            project_id text NOT NULL,
            client_email text NOT NULL,
            token_uri text NOT NULL,
            sealed_key text NOT NULL,
            updated_at timestamptz NOT NULL
          )`,
  },
  {
    // Web Push: the app's VAPID key pair, the private key sealed; the public key is what browsers subscribe with.
    id: 'platform-push/003-vapid-credentials',
    sql: `CREATE TABLE vapid_credentials (
            app_id text PRIMARY KEY,
            public_key text NOT NULL,
            subject text NOT NULL,
            sealed_key text NOT NULL,
            updated_at timestamptz NOT NULL
          )`,
  },
];

export function apnsCredentialStore(pool: Pool): ApnsCredentialStore {
  return {
    async put(appId, c, now) {
      await pool.query(
        `INSERT INTO platform_credentials (app_id, service, key_id, team_id, topic, environment, sealed_key, updated_at)
         VALUES ($1, 'apns', $2, $3, $4, $5, $6, $7)
         ON CONFLICT (app_id, service) DO UPDATE SET key_id = excluded.key_id, team_id = excluded.team_id,
           topic = excluded.topic, environment = excluded.environment, sealed_key = excluded.sealed_key, updated_at = excluded.updated_at`,
        [appId, c.keyId, c.teamId, c.topic, c.environment, c.sealedKey, now],
      );
    },
    async get(appId) {
      const { rows } = await pool.query<{
        key_id: string;
        team_id: string;
        topic: string;
        environment: StoredApnsCredentials['environment'];
        sealed_key: string;
      }>(
        `SELECT key_id, team_id, topic, environment, sealed_key FROM platform_credentials WHERE app_id = $1 AND service = 'apns'`,
        [appId],
      );
      const r = rows[0];
      return (
        r && { keyId: r.key_id, teamId: r.team_id, topic: r.topic, environment: r.environment, sealedKey: r.sealed_key }
      );
    },
    async apps() {
      const { rows } = await pool.query<{ app_id: string }>(
        `SELECT app_id FROM platform_credentials WHERE service = 'apns' ORDER BY app_id LIMIT 10000`,
      );
      return rows.map((r) => r.app_id);
    },
  };
}

export function fcmCredentialStore(pool: Pool): FcmCredentialStore {
  return {
    async put(appId, c, now) {
      await pool.query(
        `INSERT INTO fcm_credentials (app_id, project_id, client_email, token_uri, sealed_key, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (app_id) DO UPDATE SET project_id = excluded.project_id, client_email = excluded.client_email,
           token_uri = excluded.token_uri, sealed_key = excluded.sealed_key, updated_at = excluded.updated_at`,
        [appId, c.projectId, c.clientEmail, c.tokenUri, c.sealedKey, now],
      );
    },
    async get(appId) {
      const { rows } = await pool.query<{
        project_id: string;
        client_email: string;
        token_uri: string;
        sealed_key: string;
      }>(`SELECT project_id, client_email, token_uri, sealed_key FROM fcm_credentials WHERE app_id = $1`, [appId]);
      const r = rows[0];
      return (
        r && { projectId: r.project_id, clientEmail: r.client_email, tokenUri: r.token_uri, sealedKey: r.sealed_key }
      );
    },
    async apps() {
      const { rows } = await pool.query<{ app_id: string }>(
        `SELECT app_id FROM fcm_credentials ORDER BY app_id LIMIT 10000`,
      );
      return rows.map((r) => r.app_id);
    },
  };
}

export function vapidCredentialStore(pool: Pool): VapidCredentialStore {
  return {
    async put(appId, c, now) {
      await pool.query(
        `INSERT INTO vapid_credentials (app_id, public_key, subject, sealed_key, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (app_id) DO UPDATE SET public_key = excluded.public_key, subject = excluded.subject,
           sealed_key = excluded.sealed_key, updated_at = excluded.updated_at`,
        [appId, c.publicKey, c.subject, c.sealedKey, now],
      );
    },
    async get(appId) {
      const { rows } = await pool.query<{ public_key: string; subject: string; sealed_key: string }>(
        `SELECT public_key, subject, sealed_key FROM vapid_credentials WHERE app_id = $1`,
        [appId],
      );
      const r = rows[0];
      return r && { publicKey: r.public_key, subject: r.subject, sealedKey: r.sealed_key };
    },
    async apps() {
      const { rows } = await pool.query<{ app_id: string }>(
        `SELECT app_id FROM vapid_credentials ORDER BY app_id LIMIT 10000`,
      );
      return rows.map((r) => r.app_id);
    },
  };
}
