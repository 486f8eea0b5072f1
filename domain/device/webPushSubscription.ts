import { isLeft } from 'fp-ts/lib/Either';
import * as t from 'io-ts';
import { DomainError } from '../decider';
import { isStorableText } from '../text';

/**
 * A browser's Web Push subscription (the Push API's `PushSubscription.toJSON()`: `{endpoint,
 * expirationTime, keys: {p256dh, auth}}`), the WEB device's "native token" (docs/platform-push.md, Web
 * Push): where its push service takes messages for it (RFC 8030) and the keys they are encrypted to
 * (RFC 8291). Checked here for its shape; where herald may POST (the SSRF rules: https, no private
 * addresses) is the deployment's policy, checked before the command (src/platformPush/webPushEndpoint.ts).
 */

export const WEB_PUSH_SUBSCRIPTION_LIMITS = {
  /** Push services' endpoints are 100-500 characters (FCM's, Mozilla's, Apple's): room, not a megabyte. */
  endpointLength: 1024,
  /** An uncompressed P-256 point: 0x04, x, y. */
  p256dhBytes: 65,
  /** RFC 8291's authentication secret. */
  authBytes: 16,
} as const;

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Base64url (RFC 4648 §5, no padding, as the Push API gives it) of exactly `bytes` bytes: ⌈4n/3⌉ characters,
 * the last one's unused bits zero (so one text per value).
 */
const base64urlBytes = (name: string, bytes: number, check: (text: string) => boolean = () => true) => {
  const is = (u: unknown): u is string =>
    typeof u === 'string' &&
    u.length === Math.ceil((bytes * 4) / 3) &&
    BASE64URL.test(u) &&
    unusedBitsZero(u, bytes) &&
    check(u);
  return new t.Type<string, string, unknown>(name, is, (u, c) => (is(u) ? t.success(u) : t.failure(u, c)), t.identity);
};
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
function unusedBitsZero(text: string, bytes: number): boolean {
  const unused = text.length * 6 - bytes * 8;
  return (ALPHABET.indexOf(text[text.length - 1]!) & ((1 << unused) - 1)) === 0;
}
/** 0x04 (an uncompressed point) is the first character `B` and a second one of `A`-`P` (its top bits 00). */
const uncompressedPoint = (text: string) => text[0] === 'B' && ALPHABET.indexOf(text[1]!) < 16;

const endpointUrl = new t.Type<string, string, unknown>(
  `an https:// URL without user or password (at most ${WEB_PUSH_SUBSCRIPTION_LIMITS.endpointLength} characters)`,
  (u): u is string => typeof u === 'string' && isEndpoint(u),
  (u, c) => (typeof u === 'string' && isEndpoint(u) ? t.success(u) : t.failure(u, c)),
  t.identity,
);
function isEndpoint(u: string): boolean {
  if (u.length > WEB_PUSH_SUBSCRIPTION_LIMITS.endpointLength || !isStorableText(u) || /\s/.test(u)) return false;
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    return false;
  }
  // http: only for an origin the deployment allows (checked by the endpoint policy, not here).
  return (url.protocol === 'https:' || url.protocol === 'http:') && url.username === '' && url.password === '';
}

/** What a browser gives (`PushSubscription.toJSON()`); other fields are ignored. */
export const WebPushSubscriptionInput = t.type({
  endpoint: endpointUrl,
  expirationTime: t.union([
    t.null,
    t.undefined,
    t.refinement(t.number, (n) => Number.isSafeInteger(n) && n >= 0, 'milliseconds since 1970 (or null)'),
  ]),
  keys: t.type({
    p256dh: base64urlBytes(
      'an uncompressed P-256 public key: 65 bytes starting 0x04, base64url',
      WEB_PUSH_SUBSCRIPTION_LIMITS.p256dhBytes,
      uncompressedPoint,
    ),
    auth: base64urlBytes('16 bytes, base64url', WEB_PUSH_SUBSCRIPTION_LIMITS.authBytes),
  }),
});

/** A subscription as a device's registration holds it. */
export const WebPushSubscription = t.intersection([
  t.type({
    endpoint: t.string,
    p256dh: t.string,
    auth: t.string,
    /** When the browser says the subscription ends (ms since 1970), or null. */
    expirationTime: t.union([t.number, t.null]),
    /** When the device gave it: a push service's 404/410 answered after it drops it. */
    subscribedAt: t.string,
  }),
  t.partial({
    /**
     * The user who gave it with their own ticket on their own device (alias = userId): only such a browser
     * gets that user's Koala messages (docs/platform-push.md). Absent (a device token, an admin, every event
     * of before): ONE-PUSH pushes to the device only. Dropped when the alias changes or the device registers
     * again without that user's ticket (the REST register is open: an alias is only a claim).
     */
    userId: t.string,
  }),
]);
export type WebPushSubscription = t.TypeOf<typeof WebPushSubscription>;

/**
 * The browser's subscription checked: its fields as herald keeps them, or a DomainError naming the field
 * (`subscription.keys.p256dh: expected …`).
 */
export function checkWebPushSubscription(input: unknown): Omit<WebPushSubscription, 'subscribedAt' | 'userId'> {
  const decoded = WebPushSubscriptionInput.decode(input);
  if (isLeft(decoded)) {
    const error = decoded.left[0]!;
    const path = error.context
      .slice(1)
      .map((c) => c.key)
      .filter((key) => key !== '' && !/^\d+$/.test(key));
    const expected = error.context[error.context.length - 1]?.type.name ?? 'a value';
    throw new DomainError('invalid', `${['subscription', ...path.slice(0, 2)].join('.')}: expected ${expected}`);
  }
  const { endpoint, expirationTime, keys } = decoded.right;
  return { endpoint, p256dh: keys.p256dh, auth: keys.auth, expirationTime: expirationTime ?? null };
}

export const sameSubscription = (a: WebPushSubscription | null, b: WebPushSubscription | null): boolean =>
  a === b ||
  (a !== null &&
    b !== null &&
    a.endpoint === b.endpoint &&
    a.p256dh === b.p256dh &&
    a.auth === b.auth &&
    a.expirationTime === b.expirationTime &&
    a.userId === b.userId);

/**
 * The endpoint of the subscription a push was requested to (PlatformPushRequested's `nativeToken` for
 * `webpush`: `{endpoint, keys}` as JSON), or undefined when the token is not one.
 */
export function requestedEndpoint(nativeToken: string): string | undefined {
  try {
    const endpoint = (JSON.parse(nativeToken) as { endpoint?: unknown } | null)?.endpoint;
    return typeof endpoint === 'string' ? endpoint : undefined;
  } catch {
    return undefined;
  }
}
