/**
 * What messaging reads from the inbox read model. Declared here, where it is used; the notifications
 * projection (projections/koalaInbox.ts) implements it and the composition root wires the two.
 *
 * A message's `seq` is the global position of the event that delivered it (MessageSent, or
 * MessageReleased for a scheduled one): increasing, so it doubles as Koala's `Message_t.meta.seq`, as the
 * acknowledgement id (`sids`), as the paging cursor and as the resume point of a reconnecting subscriber.
 */

/** What a recipient is pushed when a message reaches their inbox, on `inboxTopic(appId, userId)` (src/bus/topics.ts). */
export interface DeliveredMessage {
  readonly messageId: string;
  readonly appId: string;
  readonly seq: string;
  readonly sender: string;
  readonly title: string;
  readonly content: string;
  readonly props: Record<string, string> | null;
  readonly sentAt: string;
  readonly expiresAt: string | null;
}

export interface Notification extends DeliveredMessage {
  readonly type: string;
  readonly readAt: string | null;
  readonly acknowledgedAt: string | null;
}

export interface NotificationPage {
  /** Every notification the filter matches, not only this page's. */
  readonly total: number;
  readonly nodes: readonly Notification[];
  readonly hasNextPage: boolean;
}

export interface InboxOwner {
  readonly appId: string;
  readonly userId: string;
}

export interface MissedRequest {
  readonly owner: InboxOwner;
  readonly sinceSeq: bigint;
  readonly limit: number;
  readonly now: Date;
}

export interface InboxQueries {
  /** A user's inbox, newest first, without expired messages; `beforeSeq` continues a previous page. */
  page(
    owner: InboxOwner,
    options: { first: number; beforeSeq?: bigint; unreadOnly: boolean; sender?: string; now: Date },
  ): Promise<NotificationPage>;
  /**
   * For each request, the messages delivered to its owner after `sinceSeq`, oldest first, unexpired at
   * `now`; at most `limit`. One query for all; a message delivered to several of them is one object.
   */
  deliveredSince(requests: readonly MissedRequest[]): Promise<DeliveredMessage[][]>;
  /**
   * For each request, its owner's pending messages — unacknowledged, unexpired at `now` — after
   * `sinceSeq`: the newest `limit` of them, oldest first. One query for all, as deliveredSince.
   */
  pendingSince(requests: readonly MissedRequest[]): Promise<DeliveredMessage[][]>;
  /** Message ids of an app's delivered messages by seq (Koala `sids`); unknown seqs are left out. */
  messageIdsBySeq(appId: string, seqs: readonly bigint[]): Promise<Map<bigint, string>>;
}

const MAX_SEQ = 2n ** 63n - 1n;

/** A seq as a client writes it (Koala `sids`, a cursor, `since`): decimal digits within int64, else undefined. */
export function parseSeq(text: string): bigint | undefined {
  if (!/^\d{1,19}$/.test(text)) return undefined;
  const seq = BigInt(text);
  return seq <= MAX_SEQ ? seq : undefined;
}
