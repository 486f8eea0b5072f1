import type { RequestPlatformPush } from '../device/platformPush';
import { isExpired } from './message';

/**
 * Koala's messages to users' browsers whose page is closed (docs/platform-push.md, "Koala's web
 * terminals"): which (message, browser subscription) pairs are pushed through Web Push, until when, and
 * what the service worker gets. Pure: the leader's trigger (src/platformPush/koalaWebPushes.ts) reads
 * the candidates and presence and appends what `koalaWebPushRequests` answers.
 */

/**
 * How long a message without `expire` (0: valid forever, seed 000) is offered to push services: their
 * maximum, about 4 weeks (FCM's and Mozilla's; src/platformPush/webPush.ts WEB_PUSH_LIMITS.ttlSeconds);
 * a longer TTL is cut to it by them anyway. Also when a push's retries end and its row may be pruned.
 */
export const KOALA_WEB_PUSH_MAX_SECONDS = 28 * 86_400;
/** Browsers pushed per user and message: the newest subscriptions (a user with hundreds of devices costs no more). */
export const KOALA_WEB_PUSH_BROWSERS_PER_USER = 16;

/** A delivered Koala message, one recipient and one of that user's browser subscriptions (read models). */
export interface KoalaWebPushCandidate {
  readonly messageId: string;
  readonly appId: string;
  readonly userId: string;
  /** When the message was delivered (MessageSent, or its release). */
  readonly sentAt: string;
  /** The message's expiry (`expire`); null: never. */
  readonly expiresAt: string | null;
  /** The user's WEB device whose browser subscribed, and its registration. */
  readonly deviceId: string;
  readonly registration: number;
  /** The subscription as the Web Push adapter takes it (`{endpoint, keys}` as JSON). */
  readonly subscription: string;
  /** When the browser's subscription expires (its `expirationTime`); null: not said. */
  readonly subscriptionExpiresAt: string | null;
}

/** Until when a message is pushed, retried and kept: its expiry, at most the push services' maximum after it was sent. */
export function koalaWebPushExpiry(sentAt: string, expiresAt: string | null): string {
  const longest = Date.parse(sentAt) + KOALA_WEB_PUSH_MAX_SECONDS * 1000;
  return new Date(expiresAt === null ? longest : Math.min(Date.parse(expiresAt), longest)).toISOString();
}

/**
 * The pushes to request: one per message and subscription of a user who has no live `messages`
 * subscription on any node (`online`: `<appId>/<userId>` keys of users with one), while the message (and
 * its push, koalaWebPushExpiry) and the browser's subscription have not expired. Users online are
 * reached over their socket; nothing is requested for them.
 */
export function koalaWebPushRequests(
  candidates: readonly KoalaWebPushCandidate[],
  online: ReadonlySet<string>,
  now: string,
): RequestPlatformPush[] {
  const requests = new Map<string, RequestPlatformPush>();
  for (const c of candidates) {
    if (online.has(terminalKey(c.appId, c.userId))) continue;
    const expiresAt = koalaWebPushExpiry(c.sentAt, c.expiresAt);
    if (isExpired(expiresAt, now)) continue;
    if (c.subscriptionExpiresAt !== null && isExpired(c.subscriptionExpiresAt, now)) continue;
    const key = `${c.messageId}/${c.deviceId}`;
    // A device is one user's (its alias): a message reaches it once.
    if (requests.has(key)) continue;
    requests.set(key, {
      type: 'RequestPlatformPush',
      pushId: c.messageId,
      deviceId: c.deviceId,
      appId: c.appId,
      service: 'webpush',
      nativeToken: c.subscription,
      registration: c.registration,
      why: 'offline',
      expiresAt,
      userId: c.userId,
      now,
    });
  }
  return [...requests.values()];
}

/** A user of an app, as presence and the decision key it (an app id and a user id hold no `/`-free guarantee: JSON). */
export const terminalKey = (appId: string, userId: string) => JSON.stringify([appId, userId]);

/** The message as the terminal's socket gives it (the SDK's Message_t: seed 000, "2.2 通知消息规格"), plus the push's own field. */
export interface KoalaPushedMessage {
  readonly id: string;
  readonly meta: { readonly realm: string; readonly seq: string; readonly sender: string; readonly stime: string };
  readonly title: string;
  readonly content: string;
  readonly props: Readonly<Record<string, string>>;
  readonly expiresAt: string | null;
}

/**
 * What the service worker gets: the Message_t the page's socket would hand over (same `id`, same
 * `meta.seq`), as JSON within `limitBytes` (Web Push: 3,993). A larger one loses its `props` first, then
 * the end of its `content` (whole code points), and says so with `truncated: true`; `id`, `meta`,
 * `title` (at most 256 characters: always room) and `expiresAt` are never cut. The page that opens gets
 * the whole message over its socket.
 */
export function koalaWebPushPayload(message: KoalaPushedMessage, limitBytes: number): string {
  const whole = JSON.stringify(message);
  if (Buffer.byteLength(whole) <= limitBytes) return whole;
  const withContent = (content: string) => JSON.stringify({ ...message, content, props: {}, truncated: true });
  let room = limitBytes - Buffer.byteLength(withContent(''));
  let kept = '';
  for (const character of message.content) {
    // Its size as JSON writes it (an escaped control character or quote is longer).
    const size = Buffer.byteLength(JSON.stringify(character)) - 2;
    if (size > room) break;
    room -= size;
    kept += character;
  }
  return withContent(kept);
}
