import type { Pool, PoolClient } from 'pg';
import { NotificationSent } from '../domain/notification/notification';
import { UUID } from '../domain/text';
import { ItemOwnerEvent } from '../domain/whitelist/itemOwner';
import { WhitelistEvent } from '../domain/whitelist/whitelistApplication';
import { whitelistNotificationId } from '../src/datahub/datahub';
import type { WaitingApplications } from '../src/datahub/whitelistOwnerNotifier';
import type { RecordedEvent } from '../src/eventStore/eventStore';
import { eventDecoder, eventTypesOf } from '../src/projection/eventDecoder';
import type { Projection } from '../src/projection/projection';

// Ids are uuid columns: an event whose id is not a UUID is parked, not retried forever. Of a notification's
// events only its sending is read here (it may notify an application).
const whitelistEvents = eventDecoder(WhitelistEvent, (event) =>
  UUID.test(event.data.applicationId) ? undefined : 'applicationId is not a UUID',
);
const itemOwnerEvents = eventDecoder(ItemOwnerEvent);
const notificationEvents = eventDecoder(NotificationSent);

/**
 * Whitelist applications and the owners of items (datahub's `apply_whitelist`): which applications
 * still wait for their owner's notification, and who owns each item, for the owner notifier
 * (src/datahub/whitelistOwnerNotifier.ts). An application is notified once the owner's notification
 * (its id derived from the application) is recorded, whoever sent it.
 *
 * What the notifier asks every few seconds must not grow with the applications nobody registers an owner
 * for (they may wait forever): each waiting application carries its owner as it becomes known — its own
 * (`owner`: named, or registered when it was made, or `WhitelistOwnerNamed`), else its item's current
 * registered owner (`registered_owner`, stamped by the item's registrations and removals) — so the due
 * applications are a partial index of their own, and one look reads only them.
 *
 * Set-based, at most six statements per batch: the applications (taking their item's owner as it stood
 * before the batch), the owners named, the item owners registered and removed (the last change of each
 * item in the batch), that change stamped onto the item's waiting applications, and the notifications
 * (which also clear the stamp: it only means something while the application waits). A notification
 * always follows its application in the stream, so this order leaves what applying the events one by one
 * leaves, however the events are batched.
 */
export const whitelistProjection: Projection = {
  name: 'whitelist',
  version: 1,
  tables: ['whitelist_applications', 'item_owners'],
  eventTypes: eventTypesOf(whitelistEvents, itemOwnerEvents, notificationEvents),
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
          -- The application's own owner: named, or registered when it was made.
          owner text,
          -- While it waits: its item's registered owner (null once notified).
          registered_owner text,
          notification_id uuid NOT NULL,
          notified boolean NOT NULL DEFAULT false,
          applied_at timestamptz NOT NULL
        );
        -- The due applications (WhitelistOwnerNotifier's look): an owner known, not the applicant, not notified.
        CREATE INDEX whitelist_applications_due ON whitelist_applications (applied_at, application_id)
          WHERE NOT notified AND coalesce(owner, registered_owner) <> applicant;
        -- The waiting applications of an item, for the stamp of its registrations.
        CREATE INDEX whitelist_applications_waiting_item ON whitelist_applications (app_id, repname, itemname) WHERE NOT notified;
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
    if (batch.applied.id.length > 0)
      await tx.query({ name: 'whitelist-applied', text: APPLIED, values: Object.values(batch.applied) });
    if (batch.named.id.length > 0)
      await tx.query({ name: 'whitelist-owner-named', text: NAMED, values: Object.values(batch.named) });
    if (batch.registered.app.length > 0)
      await tx.query({ name: 'whitelist-owners', text: OWNERS, values: Object.values(batch.registered) });
    if (batch.removed.app.length > 0)
      await tx.query({ name: 'whitelist-owners-removed', text: REMOVED, values: Object.values(batch.removed) });
    if (batch.changed.app.length > 0)
      await tx.query({ name: 'whitelist-owners-stamped', text: STAMPED, values: Object.values(batch.changed) });
    if (batch.notified.length > 0)
      await tx.query({ name: 'whitelist-notified', text: NOTIFIED, values: [batch.notified] });
    return [];
  },
};

function toBatch(events: readonly RecordedEvent[]) {
  const applied = {
    id: [] as string[],
    app: [] as string[],
    repname: [] as string[],
    itemname: [] as string[],
    applicant: [] as string[],
    owner: [] as Array<string | null>,
    notificationId: [] as string[],
    at: [] as string[],
  };
  const named = new Map<string, string>();
  // The last change of each item in the batch: its owner, or null when removed.
  const owners = new Map<string, { app: string; repname: string; itemname: string; owner: string | null }>();
  const notified: string[] = [];
  for (const recorded of events) {
    const sent = notificationEvents.decode(recorded);
    if (sent) {
      // Only a UUID can be an application's notification (whitelistNotificationId).
      if (sent.data.notificationType === 'apply_whitelist' && UUID.test(sent.data.notificationId))
        notified.push(sent.data.notificationId);
      continue;
    }
    const application = whitelistEvents.decode(recorded);
    if (application?.type === 'WhitelistOwnerNamed') {
      named.set(application.data.applicationId, application.data.owner);
      continue;
    }
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
      owners.set(JSON.stringify([appId, repname, itemname]), {
        app: appId,
        repname,
        itemname,
        owner: change.type === 'ItemOwnerRegistered' ? change.data.owner : null,
      });
    }
  }
  const changes = [...owners.values()];
  const registered = changes.filter((o) => o.owner !== null);
  const removed = changes.filter((o) => o.owner === null);
  return {
    applied,
    named: { id: [...named.keys()], owner: [...named.values()] },
    registered: {
      app: registered.map((o) => o.app),
      repname: registered.map((o) => o.repname),
      itemname: registered.map((o) => o.itemname),
      owner: registered.map((o) => o.owner!),
    },
    removed: {
      app: removed.map((o) => o.app),
      repname: removed.map((o) => o.repname),
      itemname: removed.map((o) => o.itemname),
    },
    changed: {
      app: changes.map((o) => o.app),
      repname: changes.map((o) => o.repname),
      itemname: changes.map((o) => o.itemname),
      owner: changes.map((o) => o.owner),
    },
    notified,
  };
}

// An application takes its item's owner as it stood before the batch; the batch's own changes are stamped after.
const APPLIED = `
  INSERT INTO whitelist_applications (application_id, app_id, repname, itemname, applicant, owner, registered_owner, notification_id, applied_at)
  SELECT u.id, u.app, u.repname, u.itemname, u.applicant, u.owner, o.owner, u.notification_id, u.at
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::timestamptz[])
         AS u(id, app, repname, itemname, applicant, owner, notification_id, at)
    LEFT JOIN item_owners o ON o.app_id = u.app AND o.repname = u.repname AND o.itemname = u.itemname
  ON CONFLICT (application_id) DO NOTHING`;

const NAMED = `
  UPDATE whitelist_applications a SET owner = u.owner
    FROM unnest($1::uuid[], $2::text[]) AS u(id, owner)
   WHERE a.application_id = u.id`;

const OWNERS = `
  INSERT INTO item_owners (app_id, repname, itemname, owner)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
  ON CONFLICT (app_id, repname, itemname) DO UPDATE SET owner = excluded.owner`;

const REMOVED = `
  DELETE FROM item_owners o
   USING unnest($1::text[], $2::text[], $3::text[]) AS u(app_id, repname, itemname)
   WHERE o.app_id = u.app_id AND o.repname = u.repname AND o.itemname = u.itemname`;

// Each changed item's owner (null: removed) onto its waiting applications, in one statement.
const STAMPED = `
  UPDATE whitelist_applications a SET registered_owner = u.owner
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(app_id, repname, itemname, owner)
   WHERE a.app_id = u.app_id AND a.repname = u.repname AND a.itemname = u.itemname AND NOT a.notified
     AND a.registered_owner IS DISTINCT FROM u.owner`;

const NOTIFIED = `UPDATE whitelist_applications SET notified = true, registered_owner = NULL WHERE notification_id = ANY($1::uuid[]) AND NOT notified`;

/** The read side of this projection, behind the interface src/datahub declares. */
export function waitingApplications(pool: Pool | PoolClient): WaitingApplications {
  return {
    async ownerKnown(limit) {
      // Exactly the predicate of whitelist_applications_due: a read of that index alone.
      const { rows } = await pool.query<{ application_id: string; app_id: string }>({
        name: 'whitelist-owner-known',
        text: `SELECT application_id, app_id
                 FROM whitelist_applications
                WHERE NOT notified AND coalesce(owner, registered_owner) <> applicant
                ORDER BY applied_at, application_id
                LIMIT $1`,
        values: [limit],
      });
      return rows.map((row) => ({ applicationId: row.application_id, appId: row.app_id }));
    },
  };
}
