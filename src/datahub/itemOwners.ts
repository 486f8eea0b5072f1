import { checkItemNames, itemOwnerStreamName, type ItemOwnerCommand } from '../../domain/whitelist/itemOwner';
import { itemOwnerAggregate } from '../command/aggregates';
import { handleCommand, loadState } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';

/**
 * The owners of an app's data items, as the app registers them (`PUT /items/{repname}/{itemname}`):
 * herald keeps no catalogue of datahub's items, and an `apply_whitelist` that names no owner goes to
 * the item's registered owner. Registering wakes the notifier of the applications waiting for it.
 */
export class ItemOwners {
  constructor(
    private readonly deps: {
      readonly store: EventStore;
      /** Resolves once the whitelist read model shows the registration (the notifier looks there). */
      readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
      /** Tells the notifier (on this node) that applications may be waiting for a new owner. */
      readonly ownerRegistered: () => void;
    },
  ) {}

  /** `actor`: who registers (the app's service, an admin), for the event's metadata. */
  async register(
    appId: string,
    actor: string,
    item: { readonly repname: string; readonly itemname: string; readonly owner: string },
    now: Date,
  ): Promise<void> {
    await this.decide(actor, { type: 'RegisterItemOwner', appId, ...item, now: now.toISOString() });
    this.deps.ownerRegistered();
  }

  async remove(
    appId: string,
    actor: string,
    item: { readonly repname: string; readonly itemname: string },
    now: Date,
  ): Promise<void> {
    await this.decide(actor, { type: 'RemoveItemOwner', appId, ...item, now: now.toISOString() });
  }

  /** One command on the item's stream, answered once the whitelist read model shows it. */
  private async decide(actor: string, command: ItemOwnerCommand): Promise<void> {
    const result = await handleCommand(
      this.deps.store,
      itemOwnerAggregate,
      itemOwnerStreamName(command.appId, command.repname, command.itemname),
      command,
      { appId: command.appId, actor },
    );
    await this.deps.readYourWrites(result.position);
  }

  /** The item's owner, from its own stream (so it is never behind a registration just answered). */
  async ownerOf(
    appId: string,
    item: { readonly repname: string; readonly itemname: string },
  ): Promise<string | undefined> {
    checkItemNames(item.repname, item.itemname);
    const { state } = await loadState(
      this.deps.store,
      itemOwnerAggregate,
      itemOwnerStreamName(appId, item.repname, item.itemname),
    );
    return state.status === 'registered' ? state.owner : undefined;
  }
}
