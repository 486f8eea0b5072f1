import * as t from 'io-ts';
import { DomainError, unreachable, type Decider } from '../decider';
import type { CatalogueEntry } from '../eventCatalogue';
import type { SendNotification } from '../notification/notification';
import { isUserId, USER_ID_MAX } from '../ticket/ticket';
import { checkItemNames, ITEM_LIMITS, type ItemOwnerState } from './itemOwner';

/**
 * A user's application to be whitelisted for a data item (datahub's `apply_whitelist`): one stream per
 * (app, repository, item, applicant), `whitelist-<applicationId>`. Applying again while the application
 * stands changes nothing, so the item's owner is notified once.
 *
 * The seed's own request names no owner (herald keeps no catalogue of items): such an application waits
 * for its owner, who is known once the app registers the item's owner (domain/whitelist/itemOwner.ts).
 * Either way the owner gets one `apply_whitelist` notification per application, decided here
 * (ownerNotification) and sent with an id derived from the application, so sending it again is a no-op.
 */

export const WHITELIST_LIMITS = { nameLength: ITEM_LIMITS.nameLength } as const;

export const WhitelistApplied = t.type({
  type: t.literal('WhitelistApplied'),
  data: t.intersection([
    t.type({ applicationId: t.string, appId: t.string, repname: t.string, itemname: t.string, applicant: t.string, appliedAt: t.string }),
    // Absent: the owner was not known when the user applied (the seed's request names none).
    t.partial({ owner: t.string }),
  ]),
});
export const WhitelistEvent = WhitelistApplied;
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
        '`POST /notifications` with `type: apply_whitelist`. Once the owner is known (here, or later from ' +
        '`ItemOwnerRegistered`) the owner gets one `NotificationSent` (`apply_whitelist`, level 50, sender the applicant), ' +
        'whose id derives from the application',
      fields: {
        owner:
          'the owner known when the user applied: the `receiver` named, else the item\'s registered owner; absent when neither ' +
          'was known (the application then waits for `ItemOwnerRegistered` of its item)',
      },
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
  /** The owner named with the application, else the item's registered owner; undefined when unknown yet. */
  readonly owner: string | undefined;
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
      readonly owner: string | undefined;
    };

export const whitelistStreamName = (applicationId: string) => `whitelist-${applicationId}`;

export const whitelistDecider: Decider<WhitelistCommand, WhitelistEvent, WhitelistState> = {
  initialState: () => ({ status: 'none' }),
  evolve: (_state, event) => {
    const { applicationId, appId, repname, itemname, applicant, owner } = event.data;
    return { status: 'applied', applicationId, appId, repname, itemname, applicant, owner };
  },
  decide(command, state) {
    switch (command.type) {
      case 'ApplyWhitelist': {
        if (state.status === 'applied') return [];
        checkItemNames(command.repname, command.itemname, 'data.');
        const { owner } = command;
        // The owner is one user (a receiver list is split before it gets here; GraphQL's owner is not).
        if (owner !== undefined && !isUserId(owner)) {
          throw new DomainError('invalid', `receiver must be one user id: 1-${USER_ID_MAX} characters, no blanks, commas, semicolons or 、`);
        }
        if (command.owner === command.applicant) throw new DomainError('invalid', 'the owner of the item cannot apply to it');
        const { applicationId, appId, repname, itemname, applicant, now } = command;
        return [{ type: 'WhitelistApplied', data: { applicationId, appId, repname, itemname, applicant, ...(owner !== undefined && { owner }), appliedAt: now } }];
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
export function ownerNotification(application: WhitelistState, itemOwner: ItemOwnerState, notificationId: string, now: string): SendNotification | undefined {
  if (application.status !== 'applied') return undefined;
  const registered =
    itemOwner.status === 'registered' && itemOwner.appId === application.appId && itemOwner.repname === application.repname && itemOwner.itemname === application.itemname
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
