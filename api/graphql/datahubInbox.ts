import type { NotificationType } from '../../domain/notification/notification';
import type { NotificationFilter, ReceivedNotification } from '../../src/datahub/datahub';
import type { Viewer } from '../../src/identity/tickets';

/**
 * What GraphQL uses of datahub's notifications (src/datahub/datahub.ts): the `Datahub` service
 * satisfies it as it is; declared here, narrow, so the resolvers depend on these five calls only.
 *
 * `list` is read with keyset paging for GraphQL's cursor: `page: 1`, `size: n`, `beforeMessageId: m`
 * answers the newest `n` notifications whose `messageId` is below `m` (all of them when `m` is absent),
 * newest first, and a `total` counting every notification the filter matches, `beforeMessageId` aside.
 * A `messageId` is the global event-store position of the NotificationSent event — the number space
 * and order of a Koala message's `seq` — which is what lets `notifications` merge the two lists.
 */
export interface DatahubInbox {
  list(
    viewer: Viewer,
    filter: NotificationFilter,
  ): Promise<{ readonly total: number; readonly results: readonly ReceivedNotification[] }>;
  /** Unread counts of every type (0 when none), since the user last cleared them. */
  stats(viewer: Viewer): Promise<Record<NotificationType, number>>;
  /** Answers once the caller's next `stats` shows the clear (read your writes). */
  clearStats(viewer: Viewer, now: Date): Promise<void>;
  /** Throws DomainError `not_found` when the caller did not receive `messageId`; answers once the read shows. */
  markRead(viewer: Viewer, messageId: number, now: Date): Promise<void>;
  /** The caller applies to the owner of an item (named, else the registered one); the owner gets an `apply_whitelist` notification. */
  applyWhitelist(
    viewer: Viewer,
    input: { readonly repname: string; readonly itemname: string; readonly owner?: string | undefined },
    now: Date,
  ): Promise<void>;
}
