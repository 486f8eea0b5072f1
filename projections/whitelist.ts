import type { Pool, PoolClient } from 'pg';
import { UUID } from '../domain/text';
import { NotificationEvent } from '../domain/notification/notification';
import { ItemOwnerEvent } from '../domain/whitelist/itemOwner';
import { WhitelistEvent } from '../domain/whitelist/whitelistApplication';
import { whitelistNotificationId } from '../src/datahub/datahub';
import type { WaitingApplications } from '../src/datahub/whitelistOwnerNotifier';
import type { RecordedEvent } from '../src/eventStore/eventStore';
import { eventDecoder } from '../src/projection/eventDecoder';
import type { Projection } from '../src/projection/projection';

/**
 * Whitelist applications and the owners of items (datahub's `apply_whitelist`): which applications
 * still wait for their owner's notification, and who owns each item, for the owner notifier
 * (src/datahub/whitelistOwnerNotifier.ts). An application is notified once the owner's notification
 * (its id derived from the application) is recorded, whoever sent it.
 *
 * A batch is at most four statements: the applications, the owners registered (the last of each item
 * in the batch), the owners removed, and the notifications. A notification always follows its
 * application in the stream, so applying them in that order is applying the events one by one.
 */
export const whitelistProjection: Projection = {
  name: 'whitelist',
  version: 1,
  tables: ['whitelist_applications', 'item_owners'],
  handles: (eventType) => HANDLED.has(eventType),
  migrations: [
    {
      id: 'projection/whitelist/001',
      sql: `
        CREATE TABLE whitelist_applications (
          application_id uuid PRIMARY KEY,
          app_id text NOT NULL,
          repname text NOT NULL,
          itemname text NOT NULL,
          applicant text NOT NULL,
          owner text,
          notification_id uuid NOT NULL,
          notified boolean NOT NULL DEFAULT false,
          applied_at timestamptz NOT NULL
        );
        CREATE INDEX whitelist_applications_waiting ON whitelist_applications (applied_at, application_id) WHERE NOT notified;
        -- Not a UNIQUE constraint (one per application by derivation): a rebuild drops and recreates indexes.
        CREATE INDEX whitelist_applications_notification ON whitelist_applications (notification_id);
        CREATE TABLE item_owners (
          app_id text NOT NULL,
          repname text NOT NULL,
          itemname text NOT NULL,
          owner text NOT NULL,
          PRIMARY KEY (app_id, repname, itemname)
        );
      `,
    },
  ],

  async handle(events, tx) {
    const batch = toBatch(events);
    if (batch.applied.id.length > 0) await tx.query({ name: 'whitelist-applied', text: APPLIED, values: Object.values(batch.applied) });
    if (batch.owners.app.length > 0) await tx.query({ name: 'whitelist-owners', text: OWNERS, values: Object.values(batch.owners) });
    if (batch.removed.app.length > 0) await tx.query({ name: 'whitelist-owners-removed', text: REMOVED, values: Object.values(batch.removed) });
    if (batch.notified.length > 0) await tx.query({ name: 'whitelist-notified', text: NOTIFIED, values: [batch.notified] });
    return [];
  },
};

// Ids are uuid columns: an event whose id is not a UUID is parked, not retried forever.
const whitelistEvents = eventDecoder(WhitelistEvent, (event) => (UUID.test(event.data.applicationId) ? undefined : 'applicationId is not a UUID'));
const itemOwnerEvents = eventDecoder(ItemOwnerEvent);
const notificationEvents = eventDecoder(NotificationEvent);
const HANDLED = new Set(['WhitelistApplied', 'ItemOwnerRegistered', 'ItemOwnerRemoved', 'NotificationSent']);

function toBatch(events: readonly RecordedEvent[]) {
  const applied = { id: [] as string[], app: [] as string[], repname: [] as string[], itemname: [] as string[], applicant: [] as string[], owner: [] as Array<string | null>, notificationId: [] as string[], at: [] as string[] };
  // The last change of each item in the batch: its owner, or null when removed.
  const owners = new Map<string, { app: string; repname: string; itemname: string; owner: string | null }>();
  const notified: string[] = [];
  for (const recorded of events) {
    if (recorded.type === 'NotificationSent') {
      const event = notificationEvents.decode(recorded);
      // Only a UUID can be an application's notification (whitelistNotificationId).
      if (event?.type === 'NotificationSent' && event.data.notificationType === 'apply_whitelist' && UUID.test(event.data.notificationId)) notified.push(event.data.notificationId);
      continue;
    }
    const application = whitelistEvents.decode(recorded);
    if (application) {
      const d = application.data;
      applied.id.push(d.applicationId);
      applied.app.push(d.appId);
      applied.repname.push(d.repname);
      applied.itemname.push(d.itemname);
      applied.applicant.push(d.applicant);
      applied.owner.push(d.owner ?? null);
      applied.notificationId.push(whitelistNotificationId(d.applicationId));
      applied.at.push(d.appliedAt);
      continue;
    }
    const change = itemOwnerEvents.decode(recorded);
    if (change) {
      const { appId, repname, itemname } = change.data;
      owners.set(JSON.stringify([appId, repname, itemname]), { app: appId, repname, itemname, owner: change.type === 'ItemOwnerRegistered' ? change.data.owner : null });
    }
  }
  const registered = [...owners.values()].filter((o) => o.owner !== null);
  const removed = [...owners.values()].filter((o) => o.owner === null);
  return {
    applied,
    owners: { app: registered.map((o) => o.app), repname: registered.map((o) => o.repname), itemname: registered.map((o) => o.itemname), owner: registered.map((o) => o.owner!) },
    removed: { app: removed.map((o) => o.app), repname: removed.map((o) => o.repname), itemname: removed.map((o) => o.itemname) },
    notified,
  };
}

const APPLIED = `
  INSERT INTO whitelist_applications (application_id, app_id, repname, itemname, applicant, owner, notification_id, applied_at)
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::timestamptz[])
  ON CONFLICT (application_id) DO NOTHING`;

const OWNERS = `
  INSERT INTO item_owners (app_id, repname, itemname, owner)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
  ON CONFLICT (app_id, repname, itemname) DO UPDATE SET owner = excluded.owner`;

const REMOVED = `
  DELETE FROM item_owners o
   USING unnest($1::text[], $2::text[], $3::text[]) AS u(app_id, repname, itemname)
   WHERE o.app_id = u.app_id AND o.repname = u.repname AND o.itemname = u.itemname`;

const NOTIFIED = `UPDATE whitelist_applications SET notified = true WHERE notification_id = ANY($1::uuid[]) AND NOT notified`;

/** The read side of this projection, behind the interface src/datahub declares. */
export function waitingApplications(pool: Pool | PoolClient): WaitingApplications {
  return {
    async ownerKnown(limit) {
      // The owner named with the application, else the item's registered one; never the applicant.
      const { rows } = await pool.query<{ application_id: string; app_id: string }>({
        name: 'whitelist-owner-known',
        text: `SELECT a.application_id, a.app_id
                 FROM whitelist_applications a
                 LEFT JOIN item_owners o ON o.app_id = a.app_id AND o.repname = a.repname AND o.itemname = a.itemname
                WHERE NOT a.notified AND coalesce(a.owner, o.owner) IS NOT NULL AND coalesce(a.owner, o.owner) <> a.applicant
                ORDER BY a.applied_at, a.application_id
                LIMIT $1`,
        values: [limit],
      });
      return rows.map((row) => ({ applicationId: row.application_id, appId: row.app_id }));
    },
  };
}
