import { randomUUID } from 'node:crypto';
import { v5 as uuidv5 } from 'uuid';
import { DomainError } from '../../domain/decider';
import { broadcastReadStreamName, inboxStreamName } from '../../domain/inbox/inbox';
import {
  NOTIFICATION_LIMITS,
  NOTIFICATION_TYPES,
  notificationStreamName,
  type NotificationType,
} from '../../domain/notification/notification';
import { checkItemNames, itemOwnerStreamName } from '../../domain/whitelist/itemOwner';
import { ownerNotification, whitelistStreamName } from '../../domain/whitelist/whitelistApplication';
import {
  broadcastReadAggregate,
  inboxAggregate,
  itemOwnerAggregate,
  notificationAggregate,
  whitelistAggregate,
} from '../command/aggregates';
import { handleCommand, loadState, newStream } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import { userSender } from '../identity/sender';
import type { Viewer } from '../identity/tickets';
import type { SendAllowance } from '../messaging/messaging';

/**
 * datahub's notifications (shared/seeds/001_e25b4a10524b93b6.txt): sending typed notifications, the
 * user's list with its filters, per-type unread stats, clearing them and marking read. The REST shim
 * (api/rest/datahubShim.ts) parses the wire format and calls these.
 */

/** One notification as a receiver sees it. `messageId` is its number in the app (datahub's `messageid`). */
export interface ReceivedNotification {
  readonly messageId: number;
  readonly notificationId: string;
  readonly type: NotificationType;
  readonly sender: string;
  readonly level: number;
  readonly data: Record<string, unknown>;
  /** When herald accepted it. */
  readonly sentAt: Date;
  /** The time its sender gave (the seed's `time`), exactly as written; undefined when none (then `sentAt` is listed). */
  readonly givenTime: string | undefined;
  readonly read: boolean;
}

export interface NotificationFilter {
  readonly forClient: boolean;
  readonly type?: NotificationType;
  readonly sender?: string;
  readonly status: 'unread' | 'read' | 'either';
  readonly level?: number;
  /** 1-based. */
  readonly page: number;
  readonly size: number;
  /** Keyset paging: only notifications before this message id (the total still counts them all). */
  readonly beforeMessageId?: number;
}

/** The datahub read model, as this feature reads it (implemented in projections/datahubNotifications.ts). */
export interface DatahubQueries {
  list(owner: Owner, filter: NotificationFilter): Promise<{ total: number; results: ReceivedNotification[] }>;
  /** Unread counts per type since the user last cleared them; types without any are absent. */
  unreadStats(owner: Owner): Promise<Map<string, number>>;
  /** The notification the user received as this message, whether it is a broadcast to the app, and whether the user read it. */
  findReceived(
    owner: Owner,
    messageId: number,
  ): Promise<{ notificationId: string; broadcast: boolean; read: boolean } | undefined>;
}

export interface Owner {
  readonly appId: string;
  readonly userId: string;
}

export interface SendNotificationInput {
  readonly type: NotificationType;
  readonly receivers: readonly string[];
  readonly data: Record<string, unknown>;
  readonly level: number;
  readonly forBrowser: boolean;
  readonly forClient: boolean;
  /** The time the sender gave, as written (RFC 3339, or the seed's `…Z08:00`). */
  readonly time?: string;
  /** A client's idempotency key: the same key sends the notification once. */
  readonly requestId?: string;
}

/**
 * Who sends: a user (by ticket), or a back-end service of the app (by the app's credentials), which is
 * trusted to name any sender, "" for the system, as datahub's services did on its message queue.
 */
interface Author {
  readonly appId: string;
  readonly sender: string;
  readonly admin: boolean;
  /** Recorded in the events' metadata. */
  readonly actor: string;
  /** Whose request ids these are: a user's, or the app's services' (user ids never contain ':'). */
  readonly requestScope: string;
}

const userAuthor = (viewer: Viewer): Author => ({
  appId: viewer.appId,
  sender: viewer.userId,
  admin: viewer.roles.includes('admin'),
  actor: `user:${viewer.userId}`,
  requestScope: viewer.userId,
});
const serviceAuthor = (appId: string, sender: string): Author => ({
  appId,
  sender,
  admin: true,
  actor: `service:${appId}`,
  requestScope: 'service:',
});

/** The subscribers of an item (or of every item of a repository) known to herald, as the read model has them. */
export interface ItemSubscribers {
  /** At most `limit` user ids after `after` (in user id order). */
  page(
    appId: string,
    item: { readonly repname: string; readonly itemname?: string },
    after: string,
    limit: number,
  ): Promise<string[]>;
}

const NOTIFICATION_ID_NAMESPACE = '9c3e0f0a-2d7b-4c51-8d7e-5b1f3c2a6e41';

/** A whitelist application's id: one per (app, repname, itemname, applicant). */
export const whitelistApplicationId = (appId: string, repname: string, itemname: string, applicant: string) =>
  uuidv5(JSON.stringify([appId, repname, itemname, applicant]), NOTIFICATION_ID_NAMESPACE);
/** The id of the owner's notification of a whitelist application: one per application, whoever sends it. */
export const whitelistNotificationId = (applicationId: string) =>
  uuidv5(`${applicationId}/owner`, NOTIFICATION_ID_NAMESPACE);

export class Datahub {
  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly queries: DatahubQueries;
      readonly subscribers: ItemSubscribers;
      /** Users' sends and stats clears count against their sending rate (back-end services are the app's own, and are not limited). */
      readonly sendAllowance: SendAllowance;
      /** Resolves once the caller's next query would show the effect of a command at this position. */
      readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
    },
  ) {}

  async send(viewer: Viewer, input: SendNotificationInput, now: Date): Promise<void> {
    this.deps.sendAllowance.take(userSender(viewer), now);
    await this.sendFrom(userAuthor(viewer), input, now);
  }

  /** A notification of the `to_notifications.json` topic, from a back-end service of the app. */
  async sendFromService(
    appId: string,
    input: SendNotificationInput & { readonly sender: string },
    now: Date,
  ): Promise<void> {
    await this.sendFrom(serviceAuthor(appId, input.sender), input, now);
  }

  /**
   * An item event of the `to_subscriptions.json` topic becomes an `item_event` notification for each
   * subscriber of the item (of any item of the repository, for repo_deleted) known to herald: see
   * ItemSubscribers. Sent in notifications of at most NOTIFICATION_LIMITS.receivers receivers each,
   * with ids derived from `requestId` when given, so a retried request sends each once, listed at the
   * event's `time` when given. Answers how many users it reached.
   */
  async announceItemEvent(
    appId: string,
    item: { readonly repname: string; readonly itemname?: string },
    data: Record<string, unknown>,
    time: string | undefined,
    requestId: string | undefined,
    now: Date,
  ): Promise<number> {
    const author = serviceAuthor(appId, '');
    const batchId = requestId ?? randomUUID();
    let reached = 0;
    let position: bigint | undefined;
    for (let after = '', chunk = 0; ; chunk++) {
      const receivers = await this.deps.subscribers.page(appId, item, after, NOTIFICATION_LIMITS.receivers);
      if (receivers.length === 0) break;
      const input = {
        type: 'item_event' as const,
        receivers,
        data,
        level: 0,
        forBrowser: true,
        forClient: false,
        ...(time !== undefined && { time }),
      };
      const notificationId = uuidv5(`${appId}/service/${batchId}/${chunk}`, NOTIFICATION_ID_NAMESPACE);
      position =
        (await this.sendAs(author, notificationId, input, `item-event:${batchId}/${chunk}`, now)).position ?? position;
      reached += receivers.length;
      after = receivers[receivers.length - 1]!;
    }
    await this.deps.readYourWrites(position);
    return reached;
  }

  private async sendFrom(author: Author, input: SendNotificationInput, now: Date): Promise<void> {
    const notificationId = input.requestId
      ? uuidv5(`${author.appId}/${author.requestScope}/${input.requestId}`, NOTIFICATION_ID_NAMESPACE)
      : randomUUID();
    const result = await this.sendAs(author, notificationId, input, input.requestId, now);
    await this.deps.readYourWrites(result.position);
  }

  /** Sends a notification; `commandId` makes a retry append nothing twice. */
  private sendAs(
    author: Author,
    notificationId: string,
    input: Omit<SendNotificationInput, 'requestId'>,
    commandId: string | undefined,
    now: Date,
  ) {
    return handleCommand(
      this.deps.store,
      notificationAggregate,
      notificationStreamName(notificationId),
      {
        type: 'SendNotification',
        notificationId,
        appId: author.appId,
        notificationType: input.type,
        sender: author.sender,
        senderIsAdmin: author.admin,
        receivers: input.receivers,
        level: input.level,
        forBrowser: input.forBrowser,
        forClient: input.forClient,
        data: input.data,
        ...(input.time !== undefined && { time: input.time }),
        now: now.toISOString(),
      },
      { appId: author.appId, actor: author.actor, ...(commandId && { commandId }) },
      newStream(notificationAggregate),
    );
  }

  /**
   * The caller applies to be whitelisted for an item; its owner gets an `apply_whitelist` notification
   * (level 50, data {repname, itemname}, from the caller). herald keeps no catalogue of items: the owner
   * is the one the caller names (datahub's `receiver`), else the one the app registered for the item
   * (src/datahub/itemOwners.ts). When neither is known the application is recorded and waits: the
   * owner is notified once registered (WhitelistOwnerNotifier), or once the caller applies again naming
   * one. Every step has an id derived from the application, so a retried request completes what a
   * failed one began and notifies once.
   */
  async applyWhitelist(
    viewer: Viewer,
    input: { readonly repname: string; readonly itemname: string; readonly owner?: string | undefined },
    now: Date,
  ): Promise<void> {
    this.deps.sendAllowance.take(userSender(viewer), now);
    // Checked before the item's stream is read: a name that could not be a stream's is refused first.
    checkItemNames(input.repname, input.itemname, 'data.');
    const applicationId = whitelistApplicationId(viewer.appId, input.repname, input.itemname, viewer.userId);
    const context = {
      appId: viewer.appId,
      actor: `user:${viewer.userId}`,
      commandId: `apply-whitelist:${applicationId}`,
    };
    const item = await loadState(
      this.deps.store,
      itemOwnerAggregate,
      itemOwnerStreamName(viewer.appId, input.repname, input.itemname),
    );
    const registered = item.state.status === 'registered' ? item.state.owner : undefined;
    const applied = await handleCommand(
      this.deps.store,
      whitelistAggregate,
      whitelistStreamName(applicationId),
      {
        type: 'ApplyWhitelist',
        applicationId,
        appId: viewer.appId,
        repname: input.repname,
        itemname: input.itemname,
        applicant: viewer.userId,
        namedOwner: input.owner,
        registeredOwner: registered,
        now: now.toISOString(),
      },
      // A request naming an owner is another command than one naming none (it may name the owner of an
      // application that waits), so a retry of either is recognised without hiding the other.
      { ...context, ...(input.owner !== undefined && { commandId: `${context.commandId}/owner:${input.owner}` }) },
      newStream(whitelistAggregate),
    );
    const notification = ownerNotification(
      applied.state,
      item.state,
      whitelistNotificationId(applicationId),
      now.toISOString(),
    );
    const notified =
      notification &&
      (await handleCommand(
        this.deps.store,
        notificationAggregate,
        notificationStreamName(notification.notificationId),
        notification,
        context,
        newStream(notificationAggregate),
      ));
    await this.deps.readYourWrites(notified?.position ?? applied.position);
  }

  list(viewer: Viewer, filter: NotificationFilter): Promise<{ total: number; results: ReceivedNotification[] }> {
    return this.deps.queries.list(viewer, filter);
  }

  /** Every type, 0 when none is unread. */
  async stats(viewer: Viewer): Promise<Record<NotificationType, number>> {
    const unread = await this.deps.queries.unreadStats(viewer);
    return Object.fromEntries(NOTIFICATION_TYPES.map((type) => [type, unread.get(type) ?? 0])) as Record<
      NotificationType,
      number
    >;
  }

  /** Each clear is a write: it counts against the user's sending rate (SendRateExceededError). */
  async clearStats(viewer: Viewer, now: Date): Promise<void> {
    this.deps.sendAllowance.take(userSender(viewer), now);
    // Read first: the inbox's revision now tells a concurrent clear (appended later) from an old one. Only
    // its last event is read (inboxAggregate's window), however many clears and old reads it holds.
    const streamName = inboxStreamName(viewer.appId, viewer.userId);
    const loaded = await loadState(this.deps.store, inboxAggregate, streamName);
    const result = await handleCommand(
      this.deps.store,
      inboxAggregate,
      streamName,
      {
        type: 'ClearNotificationStats',
        appId: viewer.appId,
        userId: viewer.userId,
        clearsSeen: loaded.state.statsClears,
        now: now.toISOString(),
      },
      { appId: viewer.appId, actor: `user:${viewer.userId}` },
      loaded,
    );
    await this.deps.readYourWrites(result.position);
  }

  async markRead(viewer: Viewer, messageId: number, now: Date): Promise<void> {
    const received = await this.deps.queries.findReceived(viewer, messageId);
    if (!received) throw new DomainError('not_found', `no notification ${messageId}`);
    const context = { appId: viewer.appId, actor: `user:${viewer.userId}` };
    if (received.broadcast && received.read) return; // once per user; also a read kept by an inbox before issue 26
    const result = received.broadcast
      ? await handleCommand(
          this.deps.store,
          broadcastReadAggregate,
          broadcastReadStreamName(viewer.appId, received.notificationId, viewer.userId),
          {
            type: 'MarkBroadcastRead',
            appId: viewer.appId,
            userId: viewer.userId,
            notificationId: received.notificationId,
            now: now.toISOString(),
          },
          context,
          newStream(broadcastReadAggregate),
        )
      : await handleCommand(
          this.deps.store,
          notificationAggregate,
          notificationStreamName(received.notificationId),
          { type: 'MarkNotificationRead', appId: viewer.appId, userId: viewer.userId, now: now.toISOString() },
          context,
        );
    await this.deps.readYourWrites(result.position);
  }
}
