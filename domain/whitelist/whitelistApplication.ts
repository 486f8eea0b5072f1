import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { DomainError, unreachable, type Decider } from '../decider';
import type { SendNotification } from '../notification/notification';
import { checkItemNames, checkOwner, type ItemOwnerState } from './itemOwner';

/**
 * A user's application to be whitelisted for a data item (datahub's `apply_whitelist`): one stream per
 * (app, repository, item, applicant), `whitelist-<applicationId>`. Applying again while the application
 * stands changes nothing, so the item's owner is notified once.
 *
 * The seed's own request names no owner (herald keeps no catalogue of items): such an application waits
 * for its owner, who is known once the app registers the item's owner (domain/whitelist/itemOwner.ts), or
 * once the applicant applies again naming one (`WhitelistOwnerNamed`). Either way the owner gets one
 * `apply_whitelist` notification per application, decided here (ownerNotification) and sent with an id
 * derived from the application, so sending it again is a no-op.
 */

export const WhitelistApplied = t.type({
  type: t.literal('WhitelistApplied'),
  data: t.intersection([
    t.type({
      applicationId: t.string,
      appId: t.string,
      repname: t.string,
      itemname: t.string,
      applicant: t.string,
      appliedAt: t.string,
    }),
    // Absent: the owner was not known when the user applied (the seed's request names none).
    t.partial({ owner: t.string }),
  ]),
});
export const WhitelistOwnerNamed = t.type({
  type: t.literal('WhitelistOwnerNamed'),
  data: t.type({ applicationId: t.string, appId: t.string, owner: t.string, namedAt: t.string }),
});
export const WhitelistEvent = t.union([WhitelistApplied, WhitelistOwnerNamed]);
export type WhitelistEvent = t.TypeOf<typeof WhitelistEvent>;

/** docs/events.md, whitelist: what the codecs cannot say. */
export const whitelistCatalogue: CatalogueEntry = {
  title: 'whitelist',
  stream: 'whitelist-<applicationId>',
  module: 'domain/whitelist/whitelistApplication.ts',
  union: WhitelistEvent,
  description: ['`applicationId` is a UUID v5 of (app, repname, itemname, applicant): one stream per application.'],
  events: {
    WhitelistApplied: {
      when:
        '`POST /notifications` with `type: apply_whitelist` (or GraphQL `applyWhitelist`). Once the owner is known (here, later ' +
        'from `ItemOwnerRegistered`, or from `WhitelistOwnerNamed`) the owner gets one `NotificationSent` (`apply_whitelist`, ' +
        'level 50, sender the applicant), whose id derives from the application',
      fields: {
        owner:
          "the owner known when the user applied: the `receiver` named, else the item's registered owner; absent when neither " +
          'was known (the application then waits for `ItemOwnerRegistered` of its item, or `WhitelistOwnerNamed`)',
      },
    },
    WhitelistOwnerNamed: {
      when:
        'The applicant applies again naming a `receiver` while the application still has no owner (none named, none registered ' +
        "for the item): that owner gets the application's `NotificationSent`, once. Naming an owner once one is known appends nothing",
      fields: { owner: 'one user id (1-128 characters, no blanks or commas), not the applicant' },
    },
  },
};

export interface ApplyWhitelist {
  readonly type: 'ApplyWhitelist';
  readonly applicationId: string;
  readonly appId: string;
  readonly repname: string;
  readonly itemname: string;
  readonly applicant: string;
  /** The owner the request names (datahub's `receiver`, GraphQL's `owner`), if any. */
  readonly namedOwner: string | undefined;
  /** The item's registered owner when the request was made, if any. */
  readonly registeredOwner: string | undefined;
  readonly now: string;
}
export type WhitelistCommand = ApplyWhitelist;
export type WhitelistState =
  | { readonly status: 'none' }
  | {
      readonly status: 'applied';
      readonly applicationId: string;
      readonly appId: string;
      readonly repname: string;
      readonly itemname: string;
      readonly applicant: string;
      /** The application's own owner (named, or registered when it was made); undefined while it waits. */
      readonly owner: string | undefined;
    };

export const whitelistStreamName = (applicationId: string) => `whitelist-${applicationId}`;

export const whitelistDecider: Decider<WhitelistCommand, WhitelistEvent, WhitelistState> = {
  initialState: () => ({ status: 'none' }),
  evolve(state, event) {
    switch (event.type) {
      case 'WhitelistApplied': {
        const { applicationId, appId, repname, itemname, applicant, owner } = event.data;
        return { status: 'applied', applicationId, appId, repname, itemname, applicant, owner };
      }
      case 'WhitelistOwnerNamed':
        return state.status === 'applied' ? { ...state, owner: event.data.owner } : state;
      default:
        return unreachable(event);
    }
  },
  decide(command, state) {
    switch (command.type) {
      case 'ApplyWhitelist': {
        // Bad input is refused whether or not the application stands: every entry point has one rule.
        checkItemNames(command.repname, command.itemname, 'data.');
        const { applicationId, appId, repname, itemname, applicant, namedOwner, registeredOwner, now } = command;
        // One user a ticket can be issued for: "zhang3 wang5" or "a,b" could never read the notification.
        if (namedOwner !== undefined) checkOwner(namedOwner, 'receiver (the owner)');
        if ((namedOwner ?? registeredOwner) === applicant)
          throw new DomainError('invalid', 'the owner of the item cannot apply to it');
        if (state.status === 'none') {
          const owner = namedOwner ?? registeredOwner;
          return [
            {
              type: 'WhitelistApplied',
              data: {
                applicationId,
                appId,
                repname,
                itemname,
                applicant,
                ...(owner !== undefined && { owner }),
                appliedAt: now,
              },
            },
          ];
        }
        // The application stands. It waits for an owner (none of its own, none registered): the one named now
        // is its owner. Once an owner is known, naming another changes nothing: the owner is notified once.
        if (state.owner === undefined && registeredOwner === undefined && namedOwner !== undefined) {
          return [
            {
              type: 'WhitelistOwnerNamed',
              data: { applicationId: state.applicationId, appId: state.appId, owner: namedOwner, namedAt: now },
            },
          ];
        }
        return [];
      }
      default:
        return unreachable(command.type);
    }
  },
};

/**
 * The owner's notification of an application (the process that brings each application to its item's
 * owner, at application time or when the owner is registered later): the owner named with the
 * application, else the item's registered owner. Undefined while no owner is known, or when the owner is
 * the applicant (an owner needs no application to their own item). `notificationId` derives from the
 * application (the caller makes it), so deciding and sending again sends nothing twice.
 */
export function ownerNotification(
  application: WhitelistState,
  itemOwner: ItemOwnerState,
  notificationId: string,
  now: string,
): SendNotification | undefined {
  if (application.status !== 'applied') return undefined;
  const registered =
    itemOwner.status === 'registered' &&
    itemOwner.appId === application.appId &&
    itemOwner.repname === application.repname &&
    itemOwner.itemname === application.itemname
      ? itemOwner.owner
      : undefined;
  const owner = application.owner ?? registered;
  if (owner === undefined || owner === application.applicant) return undefined;
  return {
    type: 'SendNotification',
    notificationId,
    appId: application.appId,
    notificationType: 'apply_whitelist',
    sender: application.applicant,
    senderIsAdmin: false,
    receivers: [owner],
    // The seed's apply_whitelist sample: level 50, the owner has to act on it.
    level: 50,
    forBrowser: true,
    forClient: false,
    data: { repname: application.repname, itemname: application.itemname },
    now,
  };
}
