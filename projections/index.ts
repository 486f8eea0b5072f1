import type { Pool } from 'pg';
import type { Migration } from '../src/postgres/migrations';
import type { Projection } from '../src/projection/projection';
import { projectionRunnerMigrations } from '../src/projection/projectionRunner';
import { eventRetentionMigrations } from '../src/storage/eventRetention';
import type { Prunable } from '../src/storage/retention';
import { appRetentions, appSecrets, appsProjection, pushCallbackUrls } from './apps';
import { datahubNotificationPruning, datahubProjection, datahubQueries, itemSubscribers } from './datahubNotifications';
import { deviceNumberMigrations, deviceNumbers } from './deviceNumbers';
import { deliveryPruning, deliveryQueries, deviceQueries, devicesProjection } from './devices';
import { emailPruning, emailQueries, emailsProjection } from './emails';
import { messagePruning, notificationQueries, notificationsProjection, unexpiringMessagePruning } from './koalaInbox';
import { koalaWebPushQueries } from './koalaWebPushes';
import {
  apnsCredentialStore,
  fcmCredentialStore,
  vapidCredentialStore,
  platformCredentialMigrations,
  platformPushesProjection,
  platformPushPruning,
  platformPushQueries,
} from './platformPushes';
import { reportPruning, rtioProjection, rtioReportQueries } from './rtioReports';
import { keptTicketKey, settingsMigrations } from './settings';
import { streamEndPruning, streamEndsProjection } from './streamEnds';
import { waitingApplications, whitelistProjection } from './whitelist';

/**
 * projections/ to the rest of herald: the read models' projections, their queries behind the interfaces
 * src/ declares (readModels), and the tables they need (migrations). Only the composition root
 * (src/herald.ts) and the maintenance commands (src/cli.ts) import this module, and nothing else of projections/.
 */

/** Every read model herald keeps; the composition root runs one runner for each. */
export const projections: readonly Projection[] = [
  appsProjection,
  notificationsProjection,
  datahubProjection,
  emailsProjection,
  devicesProjection,
  platformPushesProjection,
  rtioProjection,
  whitelistProjection,
  streamEndsProjection,
];

/**
 * The migration registry: every table herald keeps in PostgreSQL besides the event store's own (its
 * adapter applies those), in the order they apply. A module with tables adds its list here; an id never
 * changes once shipped.
 */
export const migrations: readonly Migration[] = [
  ...projectionRunnerMigrations,
  ...eventRetentionMigrations,
  ...settingsMigrations,
  ...deviceNumberMigrations,
  ...platformCredentialMigrations,
  ...projections.flatMap((p) => p.migrations),
];

/**
 * The read models on `pool`: for each, its projection's name (what read-your-writes waits for) and its
 * queries, behind the interfaces src/ declares where they are used.
 */
export function readModels(pool: Pool) {
  return {
    projections,
    apps: {
      name: appsProjection.name,
      secrets: appSecrets(pool),
      pushCallbackUrls: pushCallbackUrls(pool),
      retentions: appRetentions(pool),
    },
    koalaInbox: { name: notificationsProjection.name, queries: notificationQueries(pool) },
    datahub: { name: datahubProjection.name, queries: datahubQueries(pool), itemSubscribers: itemSubscribers(pool) },
    emails: { name: emailsProjection.name, pending: emailQueries(pool) },
    devices: {
      name: devicesProjection.name,
      queries: deviceQueries(pool),
      deliveries: deliveryQueries(pool),
      numbers: deviceNumbers(pool),
    },
    platformPushes: {
      name: platformPushesProjection.name,
      queries: platformPushQueries(pool),
      credentials: apnsCredentialStore(pool),
      fcmCredentials: fcmCredentialStore(pool),
      vapidCredentials: vapidCredentialStore(pool),
    },
    koalaWebPushes: koalaWebPushQueries(pool),
    rtioReports: { name: rtioProjection.name, pending: rtioReportQueries(pool) },
    whitelist: { name: whitelistProjection.name, waiting: waitingApplications(pool) },
    ticketKey: keptTicketKey(pool),
    retention: pruning(pool),
  };
}

export type ReadModels = ReturnType<typeof readModels>;

/**
 * The tables retention prunes on `pool` (src/storage/retention.ts), each by the projection that owns it;
 * a pass takes them in this order (deliveries before their pushes, platform pushes after both). On a rebuild's pool, its fresh tables.
 */
export function pruning(pool: Pool): readonly Prunable[] {
  return [
    messagePruning(pool),
    unexpiringMessagePruning(pool),
    ...deliveryPruning(pool),
    platformPushPruning(pool),
    reportPruning(pool),
    emailPruning(pool),
    ...streamEndPruning(pool),
    datahubNotificationPruning(pool),
  ];
}

export { appRetentions } from './apps';
