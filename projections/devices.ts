import type { Pool, PoolClient } from 'pg';
import { APP_CALLBACK_TARGET, DeliveryEvent, type DeliveryStatus } from '../domain/device/delivery';
import { DEVICE_ID, DeviceEvent, type Platform } from '../domain/device/device';
import { PushRequested, type PushMessage, type PushRequestedData, type Retry } from '../domain/device/push';
import { UUID } from '../domain/text';
import { publication, type Publication } from '../src/bus/bus';
import { APP_CALLBACKS_TOPIC, deviceTopic } from '../src/bus/topics';
import type { DevicePublication } from '../src/devices/devicePublication';
import type {
  DeliveryQueries,
  DevicePush,
  DeviceQueries,
  DeviceView,
  OpenDelivery,
  PushStatus,
} from '../src/devices/deviceQueries';
import type { RecordedEvent } from '../src/eventStore/eventStore';
import { prepared } from '../src/postgres/database';
import { Columns } from '../src/projection/columns';
import { eventDecoder, eventTypesOf } from '../src/projection/eventDecoder';
import type { Projection } from '../src/projection/projection';
import type { Prunable } from '../src/storage/retention';
import { keyedPruning } from './pruning';

// Events whose data is refused are parked by the runner, not skipped. Of a push's events only the request
// is read here: an SmsRequested reaches no device.
const deviceEvents = eventDecoder(DeviceEvent, (event) =>
  DEVICE_ID.test(event.data.deviceId) ? undefined : 'deviceId is not a device id',
);
const pushEvents = eventDecoder(PushRequested, (event) =>
  UUID.test(event.data.pushId) ? undefined : 'pushId is not a UUID',
);
const deliveryEvents = eventDecoder(DeliveryEvent, (event) =>
  UUID.test(event.data.pushId) ? undefined : 'pushId is not a UUID',
);

/** A delivery nothing more can happen to (domain/retention.ts: not isOpen), as the partial index of retention says it. */
const ENDED = `(status IN ('confirmed', 'dropped', 'expired') OR (status = 'delivered' AND NOT needs_confirm))`;

/**
 * Devices, the pushes made to them and each push's delivery to each device (docs/delivery.md).
 *
 * One projection, because a push is expanded to its devices when it is applied: the audience (aliases,
 * tags, ALL, device numbers; crossed with platform) is matched against the devices registered at that
 * point of the stream, so a replay expands every push to the same devices. A batch is cut where a
 * device event follows a push (it must not change an earlier push's audience); each part is applied
 * devices first, then pushes, then delivery outcomes, one statement each, set-based.
 *
 * After the commit, each new delivery is published on its device's topic, with the push as one shared
 * object (a connection serialises it once per wire format, not once per device).
 */
export const devicesProjection: Projection = {
  name: 'devices',
  version: 1,
  tables: ['devices', 'device_pushes', 'device_deliveries'],
  eventTypes: eventTypesOf(deviceEvents, pushEvents, deliveryEvents),
  migrations: [
    {
      id: 'projection/devices/001',
      sql: `
        CREATE TABLE devices (
          device_id text PRIMARY KEY,
          app_id text NOT NULL,
          client_id bigint NOT NULL,
          alias text NOT NULL,
          platform text NOT NULL,
          native_token text NOT NULL,
          mobile text,
          tags text[] NOT NULL,
          registration integer NOT NULL,
          -- Position of the registration that started the current one: older pushes are not its backlog.
          registration_position bigint NOT NULL,
          active boolean NOT NULL,
          registered_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL,
          position bigint NOT NULL
        );
        CREATE UNIQUE INDEX devices_client ON devices (client_id);
        CREATE INDEX devices_native_token ON devices (app_id, native_token);
        CREATE INDEX devices_alias ON devices (app_id, alias) WHERE active;
        CREATE INDEX devices_app ON devices (app_id, device_id) WHERE active;
        CREATE INDEX devices_tags ON devices USING gin (tags) WHERE active;

        CREATE TABLE device_pushes (
          push_id uuid PRIMARY KEY,
          app_id text NOT NULL,
          message jsonb NOT NULL,
          needs_confirm boolean NOT NULL,
          retry text NOT NULL,
          requested_at timestamptz NOT NULL,
          expires_at timestamptz NOT NULL,
          position bigint NOT NULL
        );

        CREATE TABLE device_deliveries (
          push_id uuid NOT NULL,
          device_id text NOT NULL,
          app_id text NOT NULL,
          status text NOT NULL CHECK (status IN ('pending', 'delivered', 'confirmed', 'dropped', 'expired')),
          needs_confirm boolean NOT NULL,
          attempts integer NOT NULL,
          next_attempt_at timestamptz,
          expires_at timestamptz NOT NULL,
          push_position bigint NOT NULL,
          revision bigint NOT NULL,
          position bigint NOT NULL,
          updated_at timestamptz NOT NULL,
          PRIMARY KEY (push_id, device_id)
        );
        CREATE INDEX device_deliveries_backlog ON device_deliveries (device_id, push_position)
          WHERE status = 'pending' OR (status = 'delivered' AND needs_confirm);
        CREATE INDEX device_deliveries_expiry ON device_deliveries (expires_at)
          WHERE status = 'pending' OR (status = 'delivered' AND needs_confirm);
      `,
    },
    {
      // A connected device's next attempt, found per device (the expiry index would read every open delivery).
      id: 'projection/devices/002-due',
      sql: `CREATE INDEX device_deliveries_due ON device_deliveries (device_id, next_attempt_at)
              WHERE status = 'pending' OR (status = 'delivered' AND needs_confirm)`,
    },
    {
      // Retention (deliveryPruning): ended deliveries by when they ended, pushes by when they were requested.
      id: 'projection/devices/003-retention',
      sql: `CREATE INDEX device_deliveries_ended ON device_deliveries (updated_at) WHERE ${ENDED};
            CREATE INDEX device_pushes_requested ON device_pushes (requested_at);`,
    },
    {
      // Read (not written) by the platform-push trigger (projections/platformPushes.ts, candidates): the
      // never-written deliveries in push order, looked at from where its last look ended; and the
      // attempted needConfirm ones still open. Neither grows with the deliveries already pushed offline.
      id: 'projection/devices/004-platform-push-candidates',
      sql: `CREATE INDEX device_deliveries_unwritten ON device_deliveries (push_position, device_id)
              WHERE attempts = 0 AND status = 'pending';
            CREATE INDEX device_deliveries_unconfirmed ON device_deliveries (push_position, device_id)
              WHERE needs_confirm AND attempts >= 1 AND (status = 'pending' OR status = 'delivered');`,
    },
  ],

  async handle(events, tx) {
    const publications: Publication[] = [];
    for (const part of partsOf(events)) {
      if (part.registered.length > 0)
        await tx.query({ name: 'devices-register', text: REGISTER, values: part.registered.values() });
      if (part.unregistered.length > 0)
        await tx.query({ name: 'devices-unregister', text: UNREGISTER, values: part.unregistered.values() });
      for (const row of part.ended)
        publications.push(publication(deviceTopic(row.app, row.id), { type: 'unregistered' }));
      if (part.pushes.length > 0) {
        await tx.query({ name: 'devices-push', text: INSERT_PUSHES, values: part.pushes.values() });
        const { rows } = await tx.query<{ push_id: string; device_id: string }>({
          name: 'devices-expand',
          text: EXPAND,
          values: part.pushes.values(),
        });
        for (const row of rows) {
          const push = part.pushById.get(row.push_id)!;
          const topic =
            row.device_id === APP_CALLBACK_TARGET ? APP_CALLBACKS_TOPIC : deviceTopic(push.push.appId, row.device_id);
          publications.push(publication(topic, push));
        }
      }
      if (part.outcomes.length > 0)
        await tx.query({ name: 'devices-outcome', text: OUTCOME, values: part.outcomes.values() });
    }
    return publications;
  },
};

type PushRow = {
  id: string;
  app: string;
  audienceType: string;
  platform: string;
  audience: string;
  message: string;
  needsConfirm: boolean;
  retry: string;
  requestedAt: string;
  expiresAt: string;
  position: string;
};
type Outcome = {
  push: string;
  device: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: string | null;
  events: number;
  firstPosition: string;
  position: string;
  at: string;
};

class Part {
  /**
   * A device's registrations in the part, folded as one at a time would leave the row: `registeredAt`
   * the part's first registration (kept on update: a device's first registration time), `at` its last
   * (updated_at), `registrationPosition` where its last registration number began, `position` its last event.
   */
  readonly registered = new Columns<{
    id: string;
    app: string;
    clientId: number;
    alias: string;
    platform: string;
    nativeToken: string;
    mobile: string | null;
    tags: string;
    registration: number;
    registrationPosition: string;
    active: boolean;
    registeredAt: string;
    at: string;
    position: string;
  }>([
    'id',
    'app',
    'clientId',
    'alias',
    'platform',
    'nativeToken',
    'mobile',
    'tags',
    'registration',
    'registrationPosition',
    'active',
    'registeredAt',
    'at',
    'position',
  ]);
  readonly unregistered = new Columns<{ id: string; app: string; position: string }>(['id', 'app', 'position']);
  /** Devices unregistered in the part (also when registered again after): their sessions end. */
  readonly ended: Array<{ id: string; app: string }> = [];
  readonly pushes = new Columns<PushRow>([
    'id',
    'app',
    'audienceType',
    'platform',
    'audience',
    'message',
    'needsConfirm',
    'retry',
    'requestedAt',
    'expiresAt',
    'position',
  ]);
  readonly pushById = new Map<string, Extract<DevicePublication, { type: 'push' }>>();
  readonly outcomes = new Columns<Outcome>([
    'push',
    'device',
    'status',
    'attempts',
    'nextAttemptAt',
    'events',
    'firstPosition',
    'position',
    'at',
  ]);
}

/** The batch cut into parts that can each be applied devices → pushes → outcomes (see above). */
function partsOf(events: readonly RecordedEvent[]): Part[] {
  const parts: Part[] = [];
  let part = new Part();
  // Folded per device / per delivery within a part; rows are made when the part is done.
  // `ended`: unregistered at some point of the part (its connections are closed, whatever follows).
  let devices = new Map<
    string,
    {
      registered?: Extract<DeviceEvent, { type: 'DeviceRegistered' }>['data'];
      firstRegisteredAt?: string;
      registrationPosition?: string;
      active: boolean;
      ended: boolean;
      app: string;
      position: string;
    }
  >();
  let outcomes = new Map<string, Outcome>();
  const finish = () => {
    for (const [id, device] of devices) {
      if (device.ended) part.ended.push({ id, app: device.app });
      const r = device.registered;
      if (r) {
        part.registered.push({
          id,
          app: r.appId,
          clientId: r.clientId,
          alias: r.alias,
          platform: r.platform,
          nativeToken: r.nativeToken,
          mobile: r.mobile,
          tags: JSON.stringify(r.tags),
          registration: r.registration,
          registrationPosition: device.registrationPosition!,
          active: device.active,
          registeredAt: device.firstRegisteredAt!,
          at: r.registeredAt,
          position: device.position,
        });
      } else if (!device.active) {
        part.unregistered.push({ id, app: device.app, position: device.position });
      }
    }
    for (const outcome of outcomes.values()) part.outcomes.push(outcome);
    parts.push(part);
    part = new Part();
    devices = new Map();
    outcomes = new Map();
  };
  for (const recorded of events) {
    const position = recorded.position.toString();
    const device = deviceEvents.decode(recorded);
    if (device) {
      if (part.pushes.length > 0) finish();
      const before = devices.get(device.data.deviceId);
      const ended = (before?.ended ?? false) || device.type === 'DeviceUnregistered';
      devices.set(
        device.data.deviceId,
        device.type === 'DeviceRegistered'
          ? {
              registered: device.data,
              firstRegisteredAt: before?.firstRegisteredAt ?? device.data.registeredAt,
              // The same registration number goes on (an update); a higher one begins here.
              registrationPosition:
                before?.registered?.registration === device.data.registration ? before.registrationPosition! : position,
              active: true,
              ended,
              app: device.data.appId,
              position,
            }
          : { ...before, active: false, ended, app: device.data.appId, position },
      );
      continue;
    }
    const push = pushEvents.decode(recorded);
    if (push) {
      if (part.pushById.has(push.data.pushId)) continue;
      const d = push.data;
      part.pushes.push({
        id: d.pushId,
        app: d.appId,
        audienceType: d.audience.type,
        platform: d.platform,
        audience: JSON.stringify(audienceValues(d)),
        message: JSON.stringify(d.message),
        needsConfirm: d.needsConfirm,
        retry: d.retry,
        requestedAt: d.requestedAt,
        expiresAt: d.expiresAt,
        position,
      });
      part.pushById.set(d.pushId, { type: 'push', push: devicePush(d), pushPosition: String(recorded.position) });
      continue;
    }
    const outcome = deliveryEvents.decode(recorded);
    if (outcome) {
      const { pushId, deviceId } = outcome.data;
      const key = `${pushId}/${deviceId}`;
      const before = outcomes.get(key);
      outcomes.set(key, applyOutcome(before, outcome, position));
    }
  }
  finish();
  return parts.filter((p) => p.registered.length + p.unregistered.length + p.pushes.length + p.outcomes.length > 0);
}

/** One delivery event on what the part has folded so far for its delivery (events after an end never come). */
function applyOutcome(before: Outcome | undefined, event: DeliveryEvent, position: string): Outcome {
  const common = {
    push: event.data.pushId,
    device: event.data.deviceId,
    events: (before?.events ?? 0) + 1,
    firstPosition: before?.firstPosition ?? position,
    position,
  };
  const attempts = before?.attempts ?? 0;
  switch (event.type) {
    case 'MessageDelivered':
      return {
        ...common,
        status: 'delivered',
        attempts: Math.max(attempts, event.data.attempt),
        nextAttemptAt: event.data.nextAttemptAt,
        at: event.data.deliveredAt,
      };
    case 'DeliveryRetried':
      return {
        ...common,
        status: 'delivered',
        attempts: Math.max(attempts, event.data.attempt),
        nextAttemptAt: event.data.nextAttemptAt,
        at: event.data.retriedAt,
      };
    case 'DeliveryConfirmed':
      return { ...common, status: 'confirmed', attempts, nextAttemptAt: null, at: event.data.confirmedAt };
    case 'DeliveryDropped':
      return { ...common, status: 'dropped', attempts, nextAttemptAt: null, at: event.data.droppedAt };
    case 'DeliveryExpired':
      return { ...common, status: 'expired', attempts, nextAttemptAt: null, at: event.data.expiredAt };
  }
}

function audienceValues(push: PushRequestedData): ReadonlyArray<string | number> {
  const { audience } = push;
  switch (audience.type) {
    case 'ALIAS':
      return audience.aliases;
    case 'TAG':
      return audience.tags;
    case 'CLIENTS':
      return audience.clientIds;
    case 'ALL':
      return [];
  }
}

const devicePush = ({ audience: _a, platform: _p, ...push }: PushRequestedData): DevicePush => push;

/** How long after a push its connected devices' connections look for a delivery the live push missed. */
const PENDING_FALLBACK_SECONDS = 2;

// A registration raising `registration` (new, or back after an unregister) starts a new backlog.
const REGISTER = `
  INSERT INTO devices AS d (device_id, app_id, client_id, alias, platform, native_token, mobile, tags, registration, registration_position, active, registered_at, updated_at, position)
  SELECT u.id, u.app, u.client_id, u.alias, u.platform, u.native_token, u.mobile, ARRAY(SELECT jsonb_array_elements_text(u.tags)), u.registration, u.registration_position, u.active, u.registered_at, u.at, u.position
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[], $9::integer[], $10::bigint[], $11::boolean[], $12::timestamptz[], $13::timestamptz[], $14::bigint[])
         AS u(id, app, client_id, alias, platform, native_token, mobile, tags, registration, registration_position, active, registered_at, at, position)
  ON CONFLICT (device_id) DO UPDATE
     SET alias = excluded.alias, platform = excluded.platform, native_token = excluded.native_token, mobile = excluded.mobile, tags = excluded.tags,
         registration_position = CASE WHEN excluded.registration <> d.registration THEN excluded.registration_position ELSE d.registration_position END,
         registration = excluded.registration, active = excluded.active, updated_at = excluded.updated_at, position = excluded.position
   WHERE d.position < excluded.position`;

const UNREGISTER = `
  UPDATE devices d SET active = false, position = u.position
    FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(id, app, position)
   WHERE d.device_id = u.id AND d.position < u.position`;

const PUSH_COLUMNS = `unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::boolean[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::bigint[])
         AS p(push_id, app_id, audience_type, platform, audience, message, needs_confirm, retry, requested_at, expires_at, position)`;

const INSERT_PUSHES = `
  INSERT INTO device_pushes (push_id, app_id, message, needs_confirm, retry, requested_at, expires_at, position)
  SELECT p.push_id, p.app_id, p.message, p.needs_confirm, p.retry, p.requested_at, p.expires_at, p.position FROM ${PUSH_COLUMNS}
  ON CONFLICT (push_id) DO NOTHING`;

// Each audience type its own branch, so each is answered from its index; UNION drops a device a push
// reaches twice (two of its tags). A pending delivery's next attempt is a fallback for a connected
// device whose live push went astray: its connection tries it then.
const EXPAND = `
  WITH p AS (SELECT * FROM ${PUSH_COLUMNS}),
  targets AS (
    SELECT p.push_id, d.device_id, d.platform FROM p JOIN devices d ON d.app_id = p.app_id AND d.active
     WHERE p.audience_type = 'ALL'
    UNION
    SELECT p.push_id, d.device_id, d.platform FROM p CROSS JOIN LATERAL jsonb_array_elements_text(p.audience) AS a(alias)
      JOIN devices d ON d.app_id = p.app_id AND d.alias = a.alias AND d.active
     WHERE p.audience_type = 'ALIAS'
    UNION
    SELECT p.push_id, d.device_id, d.platform FROM p
      JOIN devices d ON d.tags && ARRAY(SELECT jsonb_array_elements_text(p.audience)) AND d.app_id = p.app_id AND d.active
     WHERE p.audience_type = 'TAG'
    UNION
    SELECT p.push_id, d.device_id, d.platform FROM p CROSS JOIN LATERAL jsonb_array_elements_text(p.audience) AS c(client_id)
      JOIN devices d ON d.client_id = c.client_id::bigint AND d.app_id = p.app_id AND d.active
     WHERE p.audience_type = 'CLIENTS'
    UNION
    SELECT p.push_id, '${APP_CALLBACK_TARGET}', NULL FROM p WHERE p.message @> '{"callback": true}'
  )
  INSERT INTO device_deliveries (push_id, device_id, app_id, status, needs_confirm, attempts, next_attempt_at, expires_at, push_position, revision, position, updated_at)
  SELECT t.push_id, t.device_id, p.app_id, 'pending', p.needs_confirm, 0, p.requested_at + interval '${PENDING_FALLBACK_SECONDS} seconds', p.expires_at, p.position, -1, p.position, p.requested_at
    FROM targets t JOIN p USING (push_id)
   WHERE p.platform = 'ALL' OR t.platform = p.platform
  ON CONFLICT DO NOTHING
  RETURNING push_id, device_id`;

const OUTCOME = `
  UPDATE device_deliveries d
     SET status = u.status, attempts = greatest(d.attempts, u.attempts), next_attempt_at = u.next_attempt_at,
         revision = d.revision + u.events, position = u.position, updated_at = u.at
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::integer[], $5::timestamptz[], $6::integer[], $7::bigint[], $8::bigint[], $9::timestamptz[])
         AS u(push_id, device_id, status, attempts, next_attempt_at, events, first_position, position, at)
   WHERE d.push_id = u.push_id AND d.device_id = u.device_id AND d.position < u.first_position`;

const OPEN = `(dd.status = 'pending' OR (dd.status = 'delivered' AND dd.needs_confirm))`;

/**
 * Retention of deliveries and pushes (domain/retention.ts): a delivery once it ended (not OPEN) longer
 * ago than the cutoff and its platform push (if any) is no longer pending (its stream waits in
 * `push_delivery_streams` and retires with its push's); a push requested before the cutoff once none of its deliveries is left (it goes
 * in the pass that removes its last), so an open delivery always finds its push.
 */
export function deliveryPruning(pool: Pool): readonly Prunable[] {
  return [
    keyedPruning(pool, {
      table: 'device_deliveries',
      category: 'deliveries',
      key: 'push_id, device_id',
      // Nor while its platform push is still open: a retry must find the delivery ended, not removed.
      // (platform_pushes is the platformPushes projection's table; schema-qualified for a rebuild's pruning.)
      removable: `${ENDED} AND updated_at < $1 AND NOT EXISTS (SELECT 1 FROM public.platform_pushes pp
        WHERE pp.push_id = device_deliveries.push_id AND pp.device_id = device_deliveries.device_id
          AND pp.status = 'pending')`,
      orderBy: 'updated_at',
      // domain/device/delivery.ts deliveryStreamName: a uuid holds neither `.` nor `%`, so nothing to encode.
      stream: `'delivery-' || push_id || '.' || device_id`,
      // Not retired yet: kept beside its push until the push's row goes (a replay of `push-<id>` without
      // its deliveries' streams would bring them back open).
      retire: `retired AS (INSERT INTO public.push_delivery_streams (push_id, stream_name)
        SELECT push_id, stream_name FROM gone ON CONFLICT DO NOTHING)`,
    }),
    keyedPruning(pool, {
      table: 'device_pushes',
      category: 'pushes',
      key: 'push_id',
      removable: `requested_at < $1 AND NOT EXISTS (SELECT 1 FROM device_deliveries d WHERE d.push_id = device_pushes.push_id)`,
      orderBy: 'requested_at',
      stream: `'push-' || push_id`,
      // The push's stream and its deliveries' streams retire together: a rebuild replays all or none.
      retire: `released AS (
          DELETE FROM public.push_delivery_streams w USING gone WHERE w.push_id = gone.push_id RETURNING w.stream_name
        ), retired AS (INSERT INTO public.retired_streams (stream_name)
          SELECT stream_name FROM gone UNION ALL SELECT stream_name FROM released
          ON CONFLICT (stream_name) DO NOTHING)`,
    }),
  ];
}
const OPEN_DELIVERY_COLUMNS = `dd.push_id, dd.device_id, dd.status, dd.attempts, dd.revision, dd.push_position,
  p.app_id, p.message, p.needs_confirm, p.retry, p.requested_at, p.expires_at`;

interface OpenDeliveryRow {
  push_id: string;
  device_id: string;
  status: DeliveryStatus;
  attempts: number;
  revision: string;
  push_position: string;
  app_id: string;
  message: PushMessage;
  needs_confirm: boolean;
  retry: Retry;
  requested_at: Date;
  expires_at: Date;
}

function toOpenDelivery(row: OpenDeliveryRow): OpenDelivery {
  return {
    push: {
      pushId: row.push_id,
      appId: row.app_id,
      message: row.message,
      needsConfirm: row.needs_confirm,
      retry: row.retry,
      requestedAt: row.requested_at.toISOString(),
      expiresAt: row.expires_at.toISOString(),
    },
    deviceId: row.device_id,
    status: row.status,
    attempts: row.attempts,
    revision: BigInt(row.revision),
    pushPosition: BigInt(row.push_position),
  };
}

interface DeviceRow {
  device_id: string;
  app_id: string;
  client_id: string;
  alias: string;
  platform: Platform;
  mobile: string | null;
  tags: string[];
  registration: number;
  active: boolean;
  registered_at: Date;
  updated_at: Date;
}

const DEVICE_COLUMNS =
  'device_id, app_id, client_id, alias, platform, mobile, tags, registration, active, registered_at, updated_at';

function toDevice(row: DeviceRow): DeviceView {
  return {
    deviceId: row.device_id,
    appId: row.app_id,
    clientId: Number(row.client_id),
    alias: row.alias,
    platform: row.platform,
    mobile: row.mobile,
    tags: row.tags,
    registration: row.registration,
    active: row.active,
    registeredAt: row.registered_at,
    updatedAt: row.updated_at,
  };
}

/** The read side of the devices, behind the interface src/devices declares. */
export function deviceQueries(pool: Pool | PoolClient): DeviceQueries {
  const one = async (text: string, values: unknown[]) => {
    const { rows } = await pool.query<DeviceRow>(prepared(text, values));
    return rows[0] && toDevice(rows[0]);
  };
  return {
    byId: (deviceId) =>
      DEVICE_ID.test(deviceId)
        ? one(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE device_id = $1`, [deviceId])
        : Promise.resolve(undefined),
    byNativeToken: (appId, nativeToken) =>
      one(
        `SELECT ${DEVICE_COLUMNS} FROM devices WHERE app_id = $1 AND native_token = $2 ORDER BY registered_at LIMIT 1`,
        [appId, nativeToken],
      ),
    byClientId: (clientId) =>
      Number.isSafeInteger(clientId) && clientId > 0
        ? one(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE client_id = $1`, [clientId])
        : Promise.resolve(undefined),
    async list(appId, filter) {
      const conditions = ['app_id = $1', 'active'];
      const values: unknown[] = [appId];
      const add = (clause: (n: number) => string, value: unknown) => {
        values.push(value);
        conditions.push(clause(values.length));
      };
      if (filter.alias !== undefined) add((n) => `alias = $${n}`, filter.alias);
      if (filter.tag !== undefined) add((n) => `tags @> ARRAY[$${n}::text]`, filter.tag);
      if (filter.platform !== undefined) add((n) => `platform = $${n}`, filter.platform);
      if (filter.afterDeviceId !== undefined) add((n) => `device_id > $${n}`, filter.afterDeviceId);
      values.push(filter.first);
      const { rows } = await pool.query<DeviceRow>(
        prepared(
          `SELECT ${DEVICE_COLUMNS} FROM devices WHERE ${conditions.join(' AND ')} ORDER BY device_id LIMIT $${values.length}`,
          values,
        ),
      );
      return rows.map(toDevice);
    },
  };
}

/** The read side of the deliveries, behind the interface src/devices declares. */
export function deliveryQueries(pool: Pool | PoolClient): DeliveryQueries {
  const open = async (text: string, values: unknown[]) =>
    (await pool.query<OpenDeliveryRow>(prepared(text, values))).rows.map(toOpenDelivery);
  return {
    backlog: (deviceId, now, afterPushPosition, limit) =>
      open(
        `SELECT ${OPEN_DELIVERY_COLUMNS} FROM device_deliveries dd JOIN device_pushes p USING (push_id) JOIN devices d ON d.device_id = dd.device_id
          WHERE dd.device_id = $1 AND ${OPEN} AND dd.expires_at > $2 AND dd.push_position > $3 AND dd.push_position > d.registration_position
          ORDER BY dd.push_position LIMIT $4`,
        [deviceId, now, afterPushPosition.toString(), limit],
      ),
    // Per connected device from the due index; deliveries of pushes from before the device's current
    // registration are not its (a device unregistered and registered again, by another user, say).
    dueAttempts: (deviceIds, now, limit) =>
      deviceIds.length === 0
        ? Promise.resolve([])
        : open(
            `SELECT ${OPEN_DELIVERY_COLUMNS}
               FROM unnest($1::text[]) AS c(device_id)
               JOIN devices d ON d.device_id = c.device_id
               CROSS JOIN LATERAL (SELECT * FROM device_deliveries dd
                                    WHERE dd.device_id = c.device_id AND ${OPEN} AND dd.next_attempt_at <= $2 AND dd.expires_at > $2
                                      AND dd.push_position > d.registration_position
                                    ORDER BY dd.next_attempt_at LIMIT $3) dd
               JOIN device_pushes p USING (push_id)
              ORDER BY dd.next_attempt_at, dd.push_position LIMIT $3`,
            [deviceIds, now, limit],
          ),
    dueCallbacks: (now, limit) =>
      open(
        `SELECT ${OPEN_DELIVERY_COLUMNS} FROM device_deliveries dd JOIN device_pushes p USING (push_id)
          WHERE dd.device_id = '${APP_CALLBACK_TARGET}' AND ${OPEN} AND dd.next_attempt_at <= $1 AND dd.expires_at > $1
          ORDER BY dd.next_attempt_at LIMIT $2`,
        [now, limit],
      ),
    expired: (now, limit) =>
      open(
        `SELECT ${OPEN_DELIVERY_COLUMNS} FROM device_deliveries dd JOIN device_pushes p USING (push_id)
          WHERE ${OPEN} AND dd.expires_at <= $1 ORDER BY dd.expires_at LIMIT $2`,
        [now, limit],
      ),
    async nextDue(deviceIds) {
      const { rows } = await pool.query<{ next: Date | null }>(
        prepared(
          `SELECT least((SELECT min(expires_at) FROM device_deliveries dd WHERE ${OPEN}),
                        (SELECT min(n.next_attempt_at) FROM unnest($1::text[]) AS c(device_id)
                           CROSS JOIN LATERAL (SELECT next_attempt_at FROM device_deliveries dd
                                                WHERE dd.device_id = c.device_id AND ${OPEN} AND dd.next_attempt_at IS NOT NULL
                                                ORDER BY dd.next_attempt_at LIMIT 1) n)) AS next`,
          [deviceIds],
        ),
      );
      return rows[0]?.next ?? undefined;
    },
    async byKey(pushId, deviceId) {
      if (!UUID.test(pushId) || !DEVICE_ID.test(deviceId)) return undefined;
      const [delivery] = await open(
        `SELECT ${OPEN_DELIVERY_COLUMNS} FROM device_deliveries dd JOIN device_pushes p USING (push_id) JOIN devices d ON d.device_id = dd.device_id
          WHERE dd.push_id = $1 AND dd.device_id = $2 AND dd.push_position > d.registration_position`,
        [pushId, deviceId],
      );
      return delivery;
    },
    async statusOf(appId, pushId) {
      if (!UUID.test(pushId)) return undefined;
      const { rows } = await pool.query<{
        requested_at: Date;
        expires_at: Date;
        counts: Record<string, number> | null;
        callback: DeliveryStatus | null;
      }>(
        prepared(
          `SELECT p.requested_at, p.expires_at,
                  (SELECT jsonb_object_agg(status, n) FROM (SELECT status, count(*)::int AS n FROM device_deliveries
                     WHERE push_id = p.push_id AND device_id <> '${APP_CALLBACK_TARGET}' GROUP BY status) s) AS counts,
                  (SELECT status FROM device_deliveries WHERE push_id = p.push_id AND device_id = '${APP_CALLBACK_TARGET}') AS callback
             FROM device_pushes p WHERE p.push_id = $1 AND p.app_id = $2`,
          [pushId, appId],
        ),
      );
      const row = rows[0];
      if (!row) return undefined;
      const deliveries = { pending: 0, delivered: 0, confirmed: 0, dropped: 0, expired: 0, ...row.counts };
      return {
        pushId,
        appId,
        requestedAt: row.requested_at,
        expiresAt: row.expires_at,
        deliveries,
        callback: row.callback,
      } satisfies PushStatus;
    },
    async mobiles(pushId, deviceIds) {
      if (deviceIds.length === 0) return [];
      const { rows } = await pool.query<{ device_id: string; mobile: string }>(
        prepared(
          `SELECT d.device_id, d.mobile FROM device_deliveries dd JOIN devices d ON d.device_id = dd.device_id
            WHERE dd.push_id = $1 AND dd.device_id = ANY($2) AND d.mobile IS NOT NULL ORDER BY d.device_id`,
          [pushId, deviceIds],
        ),
      );
      return rows.map((row) => ({ deviceId: row.device_id, mobile: row.mobile }));
    },
    async addressed(pushId, afterDeviceId, limit) {
      const { rows } = await pool.query<{ device_id: string }>(
        prepared(
          `SELECT device_id FROM device_deliveries WHERE push_id = $1 AND device_id > $2 ORDER BY device_id LIMIT $3`,
          [pushId, afterDeviceId ?? '', limit],
        ),
      );
      return rows.map((row) => row.device_id);
    },
  };
}
