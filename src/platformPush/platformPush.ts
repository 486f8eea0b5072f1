/**
 * The platform-push port (docs/platform-push.md): how herald reaches a device that has no live connection,
 * through its platform's own push service. APNs (IOS, src/platformPush/apns.ts), FCM HTTP v1 (ANDROID,
 * src/platformPush/fcm.ts) and Web Push (WEB, src/platformPush/webPush.ts) are its adapters, keyed by
 * platform, each with its own per-app credentials.
 */

/** One message for one device, as every platform service takes it. */
export interface PlatformNotification {
  /** herald's message id (the push id, a UUID): APNs' `apns-id`, also in the payload as `messageId`. */
  readonly messageId: string;
  readonly appId: string;
  /** The device's native token (APNs: its device token; FCM: its registration token; Web Push: its browser subscription as JSON). */
  readonly token: string;
  readonly alert: string;
  readonly sound: string | null;
  readonly badge: number | null;
  readonly extra: unknown;
  readonly tenantCode: string;
  /** `CMD` is a data-only (background) message; `MSG` is shown to the user. */
  readonly pushMsgType: 'MSG' | 'CMD';
  readonly needConfirm: boolean;
  /** After this the service should not deliver it (APNs `apns-expiration`). */
  readonly expiresAt: Date;
  /**
   * Web Push: what the service worker gets, when not the ONE-PUSH frame's fields (a Koala message's
   * Message_t: src/platformPush/koalaWebPushes.ts), already within the payload limit.
   */
  readonly payload?: string;
}

/**
 * What one attempt found. A failure says whether trying again may help (429, 5xx, the network) and whether
 * the token is dead (APNs 410 Unregistered): then it is never used again until the device registers anew —
 * unless the service says since when (`deadSince`, ms) and that is before the device's registration.
 */
export type PlatformPushOutcome =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly reason: string;
      readonly retry: boolean;
      readonly tokenDead: boolean;
      /** The service's Retry-After (FCM): the next attempt is not before it. */
      readonly retryAfterMs?: number;
      /** APNs 410's `timestamp`: since when the token is dead (a registration after it keeps the token). */
      readonly deadSince?: number;
    };

export interface PlatformPushService {
  /** Sends one notification; a throw is a failure worth retrying (the network). Stops at `signal`. */
  send(notification: PlatformNotification, signal: AbortSignal): Promise<PlatformPushOutcome>;
  /** Closes its connections. */
  close(): Promise<void>;
}
