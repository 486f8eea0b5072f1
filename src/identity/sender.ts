/**
 * Who sends, where senders must be told apart: each has its own sending rate (SendAllowance) and its
 * own idempotency keys (src/devices/pushes.ts). Tagged by kind, not by a prefix of an id: user ids may
 * hold ':', so a user named `device:<id>` must not pass for that device.
 */
export type Sender =
  | { readonly kind: 'user'; readonly appId: string; readonly userId: string }
  /** A ONE-PUSH / topvdn device (src/devices). */
  | { readonly kind: 'device'; readonly appId: string; readonly deviceId: string }
  /** An RTIO device: a registry of its own, whose ids may be any text (domain/rtio/rtio.ts). */
  | { readonly kind: 'rtio-device'; readonly appId: string; readonly deviceId: string };

/** A ticket's user as a sender. */
export const userSender = (user: { readonly appId: string; readonly userId: string }): Sender => ({
  kind: 'user',
  appId: user.appId,
  userId: user.userId,
});

/**
 * The sender as events' metadata `actor` names it: `user:<userId>`, `device:<deviceId>`,
 * `rtio-device:<deviceId>`. The kind comes first and holds no ':', so two senders never share one.
 */
export const actorOf = (sender: Sender): string =>
  sender.kind === 'user' ? `user:${sender.userId}` : `${sender.kind}:${sender.deviceId}`;
