import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { DomainError, unreachable, type Decider } from '../decider';
import { streamNameOf } from '../streamName';
import { characterCount, isStorableText } from '../text';
import { isUserId, USER_ID_MAX } from '../ticket/ticket';

/**
 * Who owns a data item of an app: herald keeps no catalogue of datahub's items, so the app tells it
 * (`PUT /items/{repname}/{itemname}`, docs/api/datahub.md). The owner receives the `apply_whitelist`
 * applications for the item that name no owner (the seed's own request). One stream per item:
 * `item-<appId>.<repname>.<itemname>` (domain/streamName.ts: no two items share one).
 */

/** datahub's repository, item and tag names (and a whitelist application's), as its shim has always bounded them. */
export const ITEM_LIMITS = { nameLength: 128 } as const;

/** A repository, item or tag name: 1-128 characters (code points) of text, not blank. */
export const isItemName = (name: string): boolean =>
  name.trim().length > 0 && characterCount(name) <= ITEM_LIMITS.nameLength && isStorableText(name);

export const ItemOwnerRegistered = t.type({
  type: t.literal('ItemOwnerRegistered'),
  data: t.type({ appId: t.string, repname: t.string, itemname: t.string, owner: t.string, registeredAt: t.string }),
});
export const ItemOwnerRemoved = t.type({
  type: t.literal('ItemOwnerRemoved'),
  data: t.type({ appId: t.string, repname: t.string, itemname: t.string, removedAt: t.string }),
});
export const ItemOwnerEvent = t.union([ItemOwnerRegistered, ItemOwnerRemoved]);
export type ItemOwnerEvent = t.TypeOf<typeof ItemOwnerEvent>;

/** docs/events.md, item: what the codecs cannot say. */
export const itemOwnerCatalogue: CatalogueEntry = {
  title: 'item',
  stream: 'item-<appId>.<repname>.<itemname>',
  module: 'domain/whitelist/itemOwner.ts',
  union: ItemOwnerEvent,
  description: ["A data item's owner, as the app registers it: herald keeps no catalogue of datahub's items."],
  events: {
    ItemOwnerRegistered: {
      when:
        "`PUT /items/{repname}/{itemname}` with the app's credentials (or an admin's ticket); registering the same owner " +
        'again appends nothing. Each `WhitelistApplied` of the item that named no owner and is not yet notified then gets ' +
        "its owner's `NotificationSent`, once",
      fields: { owner: 'one user id, 1-128 characters, no blanks or commas' },
    },
    ItemOwnerRemoved: {
      when: '`DELETE /items/{repname}/{itemname}`; applications made afterwards wait for the next owner',
    },
  },
};

export interface RegisterItemOwner {
  readonly type: 'RegisterItemOwner';
  readonly appId: string;
  readonly repname: string;
  readonly itemname: string;
  readonly owner: string;
  readonly now: string;
}
export interface RemoveItemOwner {
  readonly type: 'RemoveItemOwner';
  readonly appId: string;
  readonly repname: string;
  readonly itemname: string;
  readonly now: string;
}
export type ItemOwnerCommand = RegisterItemOwner | RemoveItemOwner;
export type ItemOwnerState =
  | { readonly status: 'none' }
  | {
      readonly status: 'registered';
      readonly appId: string;
      readonly repname: string;
      readonly itemname: string;
      readonly owner: string;
    };

export const itemOwnerStreamName = (appId: string, repname: string, itemname: string) =>
  streamNameOf('item', appId, repname, itemname);

/**
 * An item's owner, or the owner a whitelist application names: one user id a ticket can be issued for
 * (isUserId: no blanks, commas, semicolons or 、: the separators of user lists), so the owner's notification can be read.
 */
export function checkOwner(owner: string, field = 'owner'): void {
  if (!isUserId(owner))
    throw new DomainError(
      'invalid',
      `${field} must be one user id: 1-${USER_ID_MAX} characters, no blanks, commas, semicolons or 、`,
    );
}

/** An item's names, as datahub's shim bounds them: 1-128 characters of text each, not blank. */
export function checkItemNames(repname: string, itemname: string, prefix = ''): void {
  for (const [field, value] of [
    ['repname', repname],
    ['itemname', itemname],
  ] as const) {
    if (!isItemName(value)) {
      throw new DomainError('invalid', `${prefix}${field} must be 1-${ITEM_LIMITS.nameLength} characters of text`);
    }
  }
}

export const itemOwnerDecider: Decider<ItemOwnerCommand, ItemOwnerEvent, ItemOwnerState> = {
  initialState: () => ({ status: 'none' }),
  evolve(_state, event) {
    switch (event.type) {
      case 'ItemOwnerRegistered': {
        const { appId, repname, itemname, owner } = event.data;
        return { status: 'registered', appId, repname, itemname, owner };
      }
      case 'ItemOwnerRemoved':
        return { status: 'none' };
      default:
        return unreachable(event);
    }
  },
  decide(command, state) {
    checkItemNames(command.repname, command.itemname);
    const { appId, repname, itemname, now } = command;
    switch (command.type) {
      case 'RegisterItemOwner': {
        checkOwner(command.owner);
        if (state.status === 'registered' && state.owner === command.owner) return [];
        return [
          { type: 'ItemOwnerRegistered', data: { appId, repname, itemname, owner: command.owner, registeredAt: now } },
        ];
      }
      case 'RemoveItemOwner':
        return state.status === 'registered'
          ? [{ type: 'ItemOwnerRemoved', data: { appId, repname, itemname, removedAt: now } }]
          : [];
      default:
        return unreachable(command);
    }
  },
};
