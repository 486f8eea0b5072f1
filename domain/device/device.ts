import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { DomainError, unreachable, type Decider } from '../decider';
import { characterCount, isStorableText } from '../text';
import { sameSubscription, WebPushSubscription } from './webPushSubscription';

/**
 * A terminal of an app that herald pushes to (ONE-PUSH, shared/seeds/003_834cb051d61fc48e.txt; topvdn,
 * shared/seeds/002_66d9dfe67c8bed29.txt). Stream: `device-<deviceId>`.
 *
 * A device is known by its app and native token: registering the same pair again is the same device,
 * updated (alias, platform, mobile, tags). Besides its id (ONE-PUSH's `deviceId`, long and unguessable)
 * it has a number (topvdn's client id: `clients`, `from`, `to`), fixed at its first registration.
 * `registration` counts registrations after an unregister: device tokens carry it, so a token issued
 * before an unregister stays dead when the device registers again.
 */

export const PLATFORMS = ['ANDROID', 'IOS', 'PC', 'WEB'] as const;
export type Platform = (typeof PLATFORMS)[number];
export const PlatformCodec = t.keyof({ ANDROID: null, IOS: null, PC: null, WEB: null });

export const DEVICE_LIMITS = {
  aliasLength: 128,
  /** APNs tokens are 64 hex digits, FCM tokens about 160 characters. */
  nativeTokenLength: 512,
  mobileLength: 32,
  tags: 32,
  tagLength: 64,
} as const;

const Registration = {
  deviceId: t.string,
  appId: t.string,
  clientId: t.number,
  alias: t.string,
  platform: PlatformCodec,
  nativeToken: t.string,
  mobile: t.union([t.string, t.null]),
  tags: t.array(t.string),
  registration: t.number,
};

export const DeviceRegistered = t.type({
  type: t.literal('DeviceRegistered'),
  data: t.intersection([
    t.type({ ...Registration, registeredAt: t.string }),
    // A WEB device's browser subscription (docs/platform-push.md, Web Push): part of the registration, as
    // the native token is, so a registration event alone still holds the device's state. Absent: none.
    t.partial({ webPush: t.union([WebPushSubscription, t.null]) }),
  ]),
});
export const DeviceUnregistered = t.type({
  type: t.literal('DeviceUnregistered'),
  data: t.type({ deviceId: t.string, appId: t.string, registration: t.number, unregisteredAt: t.string }),
});
/** The device's registrations: what the devices read model folds. */
export const DeviceEvent = t.union([DeviceRegistered, DeviceUnregistered]);
export type DeviceEvent = t.TypeOf<typeof DeviceEvent>;
/**
 * Its platform's push service said the device's native token is dead (APNs 410 Unregistered or 400
 * BadDeviceToken; FCM 404 UNREGISTERED or 400 INVALID_ARGUMENT on the token): herald sends nothing more to that token until the device registers again (any
 * RegisterDevice with it clears the revocation). Read by the platform-push read model, not by the devices one.
 */
export const NativeTokenRevoked = t.type({
  type: t.literal('NativeTokenRevoked'),
  data: t.type({
    deviceId: t.string,
    appId: t.string,
    registration: t.number,
    service: t.keyof({ apns: null, fcm: null, webpush: null }),
    reason: t.string,
    revokedAt: t.string,
  }),
});
/** Every event of a device's stream. */
export const DeviceStreamEvent = t.union([DeviceRegistered, DeviceUnregistered, NativeTokenRevoked]);
export type DeviceStreamEvent = t.TypeOf<typeof DeviceStreamEvent>;
export type DeviceRegistration = t.TypeOf<typeof DeviceRegistered>['data'];

/** docs/events.md, device: what the codecs cannot say. */
export const deviceCatalogue: CatalogueEntry = {
  title: 'device',
  stream: 'device-<deviceId>',
  module: 'domain/device/device.ts',
  union: DeviceStreamEvent,
  description: [
    "A terminal of an app: ONE-PUSH's registration, topvdn's device number. The id is 32 hex digits derived " +
      'from the app and native token with a key only herald holds (docs/delivery.md).',
  ],
  events: {
    DeviceRegistered: {
      when:
        '`POST /msgpush/register` or GraphQL `registerDevice`: the first time, after an unregister, or with changed ' +
        'fields (registering unchanged appends nothing); also GraphQL `subscribeWebPush`/`unsubscribeWebPush` on a ' +
        'WEB device — a browser subscription change, not a new registration: `registration` is unchanged and only ' +
        '`webPush` differs from the previous DeviceRegistered (count registrations by a changed `registration`, or ' +
        'by fields other than `webPush` and `registeredAt`)',
      fields: {
        clientId: "topvdn's device number, fixed at the first registration",
        registration: '1, then +1 after each unregister',
        webPush:
          "a WEB device's browser push subscription (endpoint, keys, expirationTime, subscribedAt), set by GraphQL " +
          '`subscribeWebPush` (which appends this event) and kept by later registrations of the same registration; ' +
          'absent or null: none. `userId`: the user who gave it with their own ticket on their own device — only then ' +
          "it gets that user's Koala messages (docs/platform-push.md); dropped when the alias changes or the device " +
          "registers again without that user's ticket",
      },
    },
    DeviceUnregistered: {
      when:
        '`POST /msgpush/unregister/{deviceId}` or GraphQL `unregisterDevice`; its tokens stop working and its ' +
        'connections are closed (4410)',
    },
    NativeTokenRevoked: {
      when:
        "the platform's push service answered that the token is dead (APNs `410 Unregistered`; " +
        'FCM `404 UNREGISTERED`, `400 INVALID_ARGUMENT` on `message.token`; a Web Push service `404`/`410`: the ' +
        'browser subscription is dropped); no platform push goes to it again until the device registers or ' +
        'subscribes again (docs/platform-push.md)',
      fields: { reason: "the service's answer", registration: 'the registration whose token it was' },
    },
  },
};

/** Registers the device, or updates it; registering it again unchanged appends nothing. */
export interface RegisterDevice {
  readonly type: 'RegisterDevice';
  readonly deviceId: string;
  readonly appId: string;
  /** The number a new device gets; a known device keeps its own. */
  readonly clientId: number;
  readonly alias: string;
  readonly platform: string;
  readonly nativeToken: string;
  readonly mobile?: string | null;
  readonly tags?: readonly string[];
  /**
   * The user whose own ticket registers it (GraphQL `registerDevice` by a user; absent: the open REST
   * register, `appKey`, an admin). A browser subscription given by a user keeps counting as that user's
   * only while they register it themselves with the same alias.
   */
  readonly byUser?: string;
  readonly now: string;
}
export interface UnregisterDevice {
  readonly type: 'UnregisterDevice';
  readonly now: string;
}
/**
 * Records that the token of registration `registration` is dead; nothing for another registration or twice,
 * nor when the service says it was dead (`deadSince`, ms: APNs' 410 `timestamp`) before the device last
 * registered (it may have registered a live token since). For `webpush`, only the subscription the push
 * went to (`endpoint`) is dropped, and only if the browser gave it before `deadSince`: a subscription given
 * since (another endpoint, or the same one given anew) is live.
 */
export interface RevokeNativeToken {
  readonly type: 'RevokeNativeToken';
  readonly registration: number;
  readonly service: 'apns' | 'fcm' | 'webpush';
  readonly reason: string;
  readonly deadSince?: number;
  /** `webpush`: the endpoint of the subscription the push service answered for. */
  readonly endpoint?: string;
  readonly now: string;
}
/**
 * Sets a WEB device's browser push subscription (null: drops it). Recorded as a registration of the same
 * registration (DeviceRegistered with `webPush`), which also clears a revoked one.
 */
export interface SubscribeWebPush {
  readonly type: 'SubscribeWebPush';
  readonly subscription: Omit<WebPushSubscription, 'subscribedAt' | 'userId'> | null;
  /**
   * What the caller's permission was checked on (the read model, before the command): the registration,
   * and the alias when it rested on it (a user's own device, with their ticket: the subscription is then
   * that user's browser for Koala, `userId`). Either changed since: refused as not found.
   */
  readonly registration: number;
  readonly alias?: string;
  readonly now: string;
}
export type DeviceCommand = RegisterDevice | UnregisterDevice | RevokeNativeToken | SubscribeWebPush;

export type DeviceState =
  | { readonly status: 'none' }
  | (Omit<DeviceRegistration, 'registeredAt' | 'webPush'> & {
      readonly status: 'registered' | 'unregistered';
      /** Its platform's push service called the token (a WEB device: its subscription) dead since it last registered. */
      readonly tokenRevoked?: boolean;
      /** When it last registered (a revocation dated before it does not count). */
      readonly registeredAt?: string;
      /** A WEB device's browser subscription, if it gave one. */
      readonly webPush?: WebPushSubscription | null;
    });

export const deviceStreamName = (deviceId: string) => `device-${deviceId}`;

/** Device ids are herald's: 32 lowercase hex digits. */
export const DEVICE_ID = /^[0-9a-f]{32}$/;

export const deviceDecider: Decider<DeviceCommand, DeviceStreamEvent, DeviceState> = {
  initialState: () => ({ status: 'none' }),

  evolve(state, event) {
    switch (event.type) {
      case 'DeviceRegistered': {
        const { registeredAt, webPush, ...registration } = event.data;
        return { status: 'registered', ...registration, registeredAt, webPush: webPush ?? null };
      }
      case 'DeviceUnregistered':
        return state.status === 'none' ? state : { ...state, status: 'unregistered' };
      case 'NativeTokenRevoked':
        if (state.status === 'none') return state;
        // A dropped browser subscription is gone: only a new one (subscribeWebPush) is used again.
        return event.data.service === 'webpush'
          ? { ...state, tokenRevoked: true, webPush: null }
          : { ...state, tokenRevoked: true };
      default:
        return unreachable(event);
    }
  },

  decide(command, state) {
    switch (command.type) {
      case 'RegisterDevice': {
        const fields = checkRegistration(command);
        if (state.status === 'none') {
          if (!DEVICE_ID.test(command.deviceId)) throw new DomainError('invalid', 'deviceId: must be 32 hex digits');
          if (!Number.isSafeInteger(command.clientId) || command.clientId <= 0)
            throw new DomainError('invalid', 'clientId: must be a positive integer');
          return [
            registered(
              {
                deviceId: command.deviceId,
                appId: command.appId,
                clientId: command.clientId,
                registration: 1,
                ...fields,
              },
              command.now,
            ),
          ];
        }
        if (state.appId !== command.appId) throw new DomainError('forbidden', 'the device belongs to another app');
        const { status: _, ...known } = state;
        if (state.status === 'unregistered') {
          // A new registration: the browser subscribes anew (its subscription was for the one that ended).
          const { tokenRevoked: _revoked, registeredAt: _at, webPush: _webPush, ...current } = known;
          return [registered({ ...current, ...fields, registration: state.registration + 1 }, command.now)];
        }
        // A registration clears a revoked token (the device has a live token again): recorded even unchanged.
        // A WEB device keeps its browser subscription (not a field of ONE-PUSH's register), but it stays a
        // user's browser for Koala only while that user registers it, with the same alias (finding: the open
        // REST register lets anyone claim an alias).
        const { tokenRevoked, registeredAt: _at, webPush, ...current } = known;
        const kept = webPush && keptSubscription(webPush, current.alias, fields.alias, command.byUser);
        return sameRegistration(current, fields) && !tokenRevoked && kept === webPush
          ? []
          : [
              registered(
                { ...current, ...fields, ...(fields.platform === 'WEB' && kept && { webPush: kept }) },
                command.now,
              ),
            ];
      }
      case 'SubscribeWebPush': {
        if (state.status !== 'registered') throw new DomainError('not_found', 'no such device');
        if (
          state.registration !== command.registration ||
          (command.alias !== undefined && state.alias !== command.alias)
        )
          throw new DomainError('not_found', 'no such device');
        if (state.platform !== 'WEB')
          throw new DomainError('invalid', 'subscription: only a WEB device takes a browser push subscription');
        const { status: _, tokenRevoked, registeredAt: _at, webPush, ...current } = state;
        const given = command.subscription && {
          ...command.subscription,
          subscribedAt: command.now,
          // Given with the user's own ticket on their own device: that user's browser for Koala.
          ...(command.alias !== undefined && { userId: command.alias }),
        };
        // Unchanged is nothing, unless a push service dropped it: given again, it is live again.
        if (sameSubscription(webPush ?? null, given) && !tokenRevoked) return [];
        if (given === null && !webPush) return [];
        return [registered({ ...current, ...(given ? { webPush: given } : { webPush: null }) }, command.now)];
      }
      case 'UnregisterDevice':
        if (state.status === 'none') throw new DomainError('not_found', 'no such device');
        if (state.status === 'unregistered') return [];
        return [
          {
            type: 'DeviceUnregistered',
            data: {
              deviceId: state.deviceId,
              appId: state.appId,
              registration: state.registration,
              unregisteredAt: command.now,
            },
          },
        ];
      case 'RevokeNativeToken': {
        if (state.status !== 'registered' || state.registration !== command.registration || state.tokenRevoked)
          return [];
        // A Web Push 404/410 is for the subscription it was sent to: one given since is not dropped with it
        // (a retry to an old subscription answered 410 after the browser subscribed anew).
        if (command.service === 'webpush' && (!state.webPush || state.webPush.endpoint !== command.endpoint)) return [];
        // Dead before the token was given: a subscription's own date, as a re-registration (ONE-PUSH's register
        // at each login) does not renew it.
        const givenAt = command.service === 'webpush' ? state.webPush?.subscribedAt : state.registeredAt;
        if (command.deadSince !== undefined && givenAt !== undefined && command.deadSince < Date.parse(givenAt))
          return [];
        return [
          {
            type: 'NativeTokenRevoked',
            data: {
              deviceId: state.deviceId,
              appId: state.appId,
              registration: state.registration,
              service: command.service,
              reason: command.reason,
              revokedAt: command.now,
            },
          },
        ];
      }
      default:
        return unreachable(command);
    }
  },
};

type Fields = Pick<DeviceRegistration, 'alias' | 'platform' | 'nativeToken' | 'mobile' | 'tags'>;

/** The subscription a re-registration keeps: without its Koala user unless that user registers it, alias unchanged. */
function keptSubscription(
  webPush: WebPushSubscription,
  alias: string,
  newAlias: string,
  byUser: string | undefined,
): WebPushSubscription {
  if (webPush.userId === undefined || (alias === newAlias && byUser === webPush.userId)) return webPush;
  const { userId: _, ...onlyTheDevice } = webPush;
  return onlyTheDevice;
}

/** Whether the device is `userId`'s browser for Koala: its alias, and a subscription that user gave. */
export const isKoalaBrowserOf = (state: DeviceState, userId: string): boolean =>
  state.status === 'registered' && state.alias === userId && state.webPush?.userId === userId;

function registered(registration: Omit<DeviceRegistration, 'registeredAt'>, now: string): DeviceStreamEvent {
  // No `webPush` key for a device without one: its events read as they did before browsers subscribed.
  if (registration.webPush === undefined) {
    const { webPush: _, ...rest } = registration;
    return { type: 'DeviceRegistered', data: { ...rest, registeredAt: now } };
  }
  return { type: 'DeviceRegistered', data: { ...registration, registeredAt: now } };
}

function sameRegistration(known: Fields, fields: Fields): boolean {
  return (
    known.alias === fields.alias &&
    known.platform === fields.platform &&
    known.nativeToken === fields.nativeToken &&
    known.mobile === fields.mobile &&
    known.tags.length === fields.tags.length &&
    known.tags.every((tag, i) => tag === fields.tags[i])
  );
}

/**
 * ONE-PUSH's audience `ALL` (the seed: "ALL-所有用户"), matched as the original service matched it: in any
 * case, trimmed. So no alias or tag may be spelled so: a push to it would reach every device of the app.
 */
export const namesEveryone = (audience: string): boolean => audience.trim().toUpperCase() === 'ALL';

/** The registration's fields, checked and normalised (tags trimmed, repeats dropped, in the order given). */
function checkRegistration(command: RegisterDevice): Fields {
  const L = DEVICE_LIMITS;
  if (!isText(command.alias, L.aliasLength) || /\s/.test(command.alias))
    throw new DomainError('invalid', `alias: must be 1-${L.aliasLength} characters without spaces`);
  if (namesEveryone(command.alias))
    throw new DomainError(
      'invalid',
      'alias: ALL (in any case) is reserved: a push to audiences ["ALL"] reaches every device of the app',
    );
  if (!PlatformCodec.is(command.platform))
    throw new DomainError('invalid', `platform: must be one of ${PLATFORMS.join(', ')}`);
  if (!isText(command.nativeToken, L.nativeTokenLength))
    throw new DomainError('invalid', `nativeToken: must be 1-${L.nativeTokenLength} characters`);
  // Empty is not given (the seed's clients send `"mobile": ""`).
  const mobile = command.mobile === '' ? null : (command.mobile ?? null);
  if (
    mobile !== null &&
    !(typeof mobile === 'string' && /^\+?[0-9][0-9 -]*$/.test(mobile) && characterCount(mobile) <= L.mobileLength)
  ) {
    throw new DomainError(
      'invalid',
      `mobile: digits, optionally with a leading + and spaces or dashes, at most ${L.mobileLength} characters`,
    );
  }
  // A blank tag names no tag: dropped, like the empty optional fields.
  const tags = [...new Set((command.tags ?? []).map((tag) => (typeof tag === 'string' ? tag.trim() : tag)))].filter(
    (tag) => tag !== '',
  );
  if (tags.length > L.tags) throw new DomainError('invalid', `tag: at most ${L.tags} tags`);
  for (const tag of tags)
    if (!isText(tag, L.tagLength)) throw new DomainError('invalid', `tag: each tag is 1-${L.tagLength} characters`);
  if (tags.some((tag) => namesEveryone(tag as string)))
    throw new DomainError(
      'invalid',
      'tag: ALL (in any case) is reserved: a push to audiences ["ALL"] reaches every device of the app',
    );
  return {
    alias: command.alias,
    platform: command.platform,
    nativeToken: command.nativeToken,
    mobile,
    tags: tags as string[],
  };
}

function isText(value: unknown, maxLength: number): value is string {
  return (
    typeof value === 'string' &&
    value.trim().length > 0 &&
    characterCount(value) <= maxLength &&
    isStorableText(value) &&
    !/[\r\n\t]/.test(value)
  );
}
