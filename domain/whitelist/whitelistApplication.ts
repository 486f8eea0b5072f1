import * as t from 'io-ts';
import { DomainError, unreachable, type Decider } from '../decider';
import type { CatalogueEntry } from '../eventCatalogue';
import { isStorableText } from '../text';

/**
 * A user's application to be whitelisted for a data item (datahub's `apply_whitelist`): one stream per
 * (app, repository, item, applicant), `whitelist-<applicationId>`. Applying again while the application
 * stands changes nothing, so the item's owner is notified once.
 */

export const WHITELIST_LIMITS = { nameLength: 128 } as const;

export const WhitelistApplied = t.type({
  type: t.literal('WhitelistApplied'),
  data: t.type({ applicationId: t.string, appId: t.string, repname: t.string, itemname: t.string, applicant: t.string, owner: t.string, appliedAt: t.string }),
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
        '`POST /notifications` with `type: apply_whitelist`; followed by a `NotificationSent` (`apply_whitelist`, ' +
        'level 50) to the owner, whose id derives from the application',
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
  readonly owner: string;
  readonly now: string;
}
export type WhitelistCommand = ApplyWhitelist;
export type WhitelistState = { readonly status: 'none' } | { readonly status: 'applied' };

export const whitelistStreamName = (applicationId: string) => `whitelist-${applicationId}`;

export const whitelistDecider: Decider<WhitelistCommand, WhitelistEvent, WhitelistState> = {
  initialState: () => ({ status: 'none' }),
  evolve: () => ({ status: 'applied' }),
  decide(command, state) {
    switch (command.type) {
      case 'ApplyWhitelist': {
        if (state.status === 'applied') return [];
        const names = { repname: command.repname, itemname: command.itemname, owner: command.owner };
        for (const [field, value] of Object.entries(names)) {
          if (value.trim().length === 0 || value.length > WHITELIST_LIMITS.nameLength || !isStorableText(value)) {
            throw new DomainError('invalid', `${field === 'owner' ? 'receiver' : `data.${field}`} must be 1-${WHITELIST_LIMITS.nameLength} characters of text`);
          }
        }
        if (command.owner === command.applicant) throw new DomainError('invalid', 'receiver: the owner of the item cannot apply to it');
        const { applicationId, appId, repname, itemname, applicant, owner, now } = command;
        return [{ type: 'WhitelistApplied', data: { applicationId, appId, repname, itemname, applicant, owner, appliedAt: now } }];
      }
      default:
        return unreachable(command.type);
    }
  },
};
