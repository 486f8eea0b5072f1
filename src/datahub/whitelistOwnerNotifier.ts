import { notificationStreamName } from '../../domain/notification/notification';
import { itemOwnerStreamName } from '../../domain/whitelist/itemOwner';
import { ownerNotification, whitelistStreamName } from '../../domain/whitelist/whitelistApplication';
import { itemOwnerAggregate, notificationAggregate, whitelistAggregate } from '../command/aggregates';
import { handleCommand, loadState, newStream } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import type { Clock } from '../runtime/clock';
import { DueWork } from '../runtime/dueWork';
import type { Logger } from '../runtime/logger';
import { whitelistNotificationId } from './datahub';

/**
 * Whitelist applications whose owner is known (their own, or their item's registered one), is not the
 * applicant, and is not yet notified (implemented by projections/whitelist.ts, as an indexed read of only those).
 */
export interface WaitingApplications {
  /** At most `limit`, oldest first. */
  ownerKnown(limit: number): Promise<ReadonlyArray<{ readonly applicationId: string; readonly appId: string }>>;
}

/**
 * Brings each whitelist application to its item's owner once the owner is known: an application that
 * named no owner (the seed's own `apply_whitelist` request) waits until the app registers the item's
 * owner (`ItemOwnerRegistered`) or the applicant names one (`WhitelistOwnerNamed`), and an application
 * whose notification was not sent (herald stopped between the two writes) is completed. Durable: what waits is in the whitelist read model, built from
 * the events, so a restart loses nothing. Exactly once: the notification's id derives from the
 * application, and the decision (ownerNotification, domain/whitelist/whitelistApplication.ts) is made on
 * the application's and the item's own streams, so a second attempt, a lagging read model or a second
 * node sends nothing twice. Runs on the node that leads.
 */
export class WhitelistOwnerNotifier extends DueWork<{ readonly applicationId: string; readonly appId: string }> {
  override readonly name = 'whitelist owner notifier';

  constructor(deps: {
    readonly store: EventStore;
    readonly waiting: WaitingApplications;
    readonly clock: Clock;
    readonly log: Logger;
    /** Resolves once the read model shows a notification at this position (so it no longer waits). */
    readonly readYourWrites?: (position: bigint | undefined) => Promise<void>;
  }) {
    const { store } = deps;
    super({
      clock: deps.clock,
      log: deps.log,
      doing: "notifying an item's owner of a whitelist application",
      // Woken on this node when an owner is registered (an owner named with an application is notified by
      // the request itself): this safety look only catches another node's registration, or a crash's leftovers.
      // A look reads only the applications due (a partial index of the whitelist read model), however many wait.
      maxWaitMs: 5000,
      // Two writes to the store, no peer.
      attemptTimeoutMs: 10_000,
      due: (_now, limit) => deps.waiting.ownerKnown(limit),
      // Waiting applications are due as soon as their owner is known: nothing falls due later.
      nextDueAt: async () => undefined,
      idOf: (application) => application.applicationId,
      keyOf: (application) => application.appId,
      async perform({ applicationId, appId }, now) {
        const application = await loadState(store, whitelistAggregate, whitelistStreamName(applicationId));
        if (application.state.status !== 'applied' || application.state.appId !== appId) return undefined;
        const { repname, itemname } = application.state;
        const item = await loadState(store, itemOwnerAggregate, itemOwnerStreamName(appId, repname, itemname));
        const notification = ownerNotification(
          application.state,
          item.state,
          whitelistNotificationId(applicationId),
          now.toISOString(),
        );
        if (!notification) return undefined;
        return handleCommand(
          store,
          notificationAggregate,
          notificationStreamName(notification.notificationId),
          notification,
          // The command id the application's own request uses for this notification: either may send it.
          { appId, actor: 'herald:whitelist', commandId: `apply-whitelist:${applicationId}` },
          newStream(notificationAggregate),
        );
      },
      readYourWrites: deps.readYourWrites,
    });
  }

  /** Notifies every owner known now; returns how many notifications were sent. */
  notifyDue(): Promise<number> {
    return this.doDue();
  }
}
