import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { DomainError, unreachable, type Decider } from '../decider';
import {
  decideAttempt,
  evolveItem,
  failedAttemptFields,
  firstAttemptAt,
  type AttemptState,
  type RetrySchedule,
} from '../outbox';
import { streamNameOf } from '../streamName';
import { UUID } from '../text';

/**
 * A message sent to a device through its platform's push service (docs/platform-push.md): APNs for IOS
 * (the seed, shared/seeds/003_834cb051d61fc48e.txt: "ios要使用ios token,用于apns发送离线消息"), FCM HTTP v1
 * for ANDROID, Web Push for WEB (the browser's subscription). Stream: `platformpush-<pushId>.<deviceId>`, beside the delivery's own
 * (`delivery-<pushId>.<deviceId>`), whose revision the devices read model counts for the gateway's appends.
 *
 * Requested once per message and device — when the device had no live connection, or had not confirmed
 * a needConfirm message by its first re-send — never again for that message (the stream is the record,
 * so a restart or a second leader requests nothing twice). Then an outbox item (domain/outbox.ts): sent,
 * or failed with the service's reason, retried with back-off while the message lives (429, 5xx, the
 * network), final at once when retrying cannot help (a dead token, a payload over the limit, credentials
 * refused).
 */

/** `apns` for IOS devices, `fcm` (HTTP v1) for ANDROID, `webpush` (RFC 8030) for WEB. */
export const PlatformPushServiceCodec = t.keyof({ apns: null, fcm: null, webpush: null });
export type PlatformPushServiceName = t.TypeOf<typeof PlatformPushServiceCodec>;

/** Waits after failed attempt n; an attempt whose wait would end after the message expires is final. */
export const PLATFORM_PUSH_RETRY_DELAYS_MS = [5_000, 30_000, 2 * 60_000, 10 * 60_000, 30 * 60_000, 3600_000] as const;
export const PLATFORM_PUSH_SCHEDULE: RetrySchedule = { retryDelaysMs: PLATFORM_PUSH_RETRY_DELAYS_MS };

const Item = { pushId: t.string, deviceId: t.string, appId: t.string, service: PlatformPushServiceCodec };

export const PlatformPushRequested = t.type({
  type: t.literal('PlatformPushRequested'),
  data: t.intersection([
    t.type({
      ...Item,
      /** The device's token on its platform (its registration's `nativeToken`). */
      nativeToken: t.string,
      /** The device's registration it was requested for (a revocation names it). */
      registration: t.number,
      why: t.keyof({ offline: null, unconfirmed: null }),
      expiresAt: t.string,
      requestedAt: t.string,
    }),
    // A Koala message to this user's browser (src/platformPush/koalaWebPushes.ts): `pushId` is the message's
    // id (its stream `message-<id>`), not a ONE-PUSH push. Absent for ONE-PUSH (every event of before).
    t.partial({ userId: t.string }),
  ]),
});
export const PlatformPushSent = t.type({
  type: t.literal('PlatformPushSent'),
  data: t.type({ ...Item, attempt: t.number, sentAt: t.string }),
});
export const PlatformPushFailed = t.type({
  type: t.literal('PlatformPushFailed'),
  data: t.type({ ...Item, ...failedAttemptFields }),
});
export const PlatformPushEvent = t.union([PlatformPushRequested, PlatformPushSent, PlatformPushFailed]);
export type PlatformPushEvent = t.TypeOf<typeof PlatformPushEvent>;

/** docs/events.md, platform push. */
export const platformPushCatalogue: CatalogueEntry = {
  title: 'platform push',
  stream: 'platformpush-<pushId>.<deviceId>',
  module: 'domain/device/platformPush.ts',
  union: PlatformPushEvent,
  description: [
    "A message sent to a device through its platform's push service (APNs for IOS, FCM for ANDROID, Web Push for WEB), once per message and " +
      'device: docs/platform-push.md.',
  ],
  events: {
    PlatformPushRequested: {
      when:
        'the leader found the delivery open and the device with no live connection (`why: offline`), or a ' +
        'needConfirm message unconfirmed after its first re-send (`why: unconfirmed`); or a Koala message delivered to a ' +
        'user with no live `messages` subscription, for each of the browsers the user subscribed (`why: offline`, `userId`)',
      fields: {
        service: '`apns`, `fcm` or `webpush`',
        nativeToken: "the device's token; for `webpush` its browser subscription (endpoint and keys) as JSON",
        expiresAt: "the message's expiry: no attempt after it",
        userId:
          "only for a Koala message to a user's browser (`why: offline`: the user had no live `messages` subscription): " +
          "the recipient; `pushId` is then the Koala message's id (its stream `message-<id>`)",
      },
    },
    PlatformPushSent: { when: 'the service accepted it (APNs, FCM: 200; Web Push: 201, 202)' },
    PlatformPushFailed: {
      when:
        'an attempt failed; retried after 5 s, 30 s, 2 min, 10 min, 30 min, 1 h while the message lives (429, ' +
        '5xx, no answer); final at once for an answer retrying cannot change',
      fields: {
        error:
          "the service's status and reason (`410 Unregistered`, `400 BadDeviceToken`, `404 UNREGISTERED`, `PayloadTooLarge: …`)",
        final: 'no attempt is left',
        retryAt: "null when `final`; not before the service's Retry-After",
      },
    },
  },
};

export interface RequestPlatformPush {
  readonly type: 'RequestPlatformPush';
  readonly pushId: string;
  readonly deviceId: string;
  readonly appId: string;
  readonly service: PlatformPushServiceName;
  readonly nativeToken: string;
  readonly registration: number;
  readonly why: 'offline' | 'unconfirmed';
  readonly expiresAt: string;
  /** A Koala message's recipient (its browser is the device): see PlatformPushRequested. */
  readonly userId?: string;
  readonly now: string;
}
/** What an attempt found: sent, or failed — worth retrying or not (the adapter knows its service's answers). */
export interface RecordPlatformPushAttempt {
  readonly type: 'RecordPlatformPushAttempt';
  readonly attempt: number;
  readonly outcome:
    | { readonly ok: true }
    | { readonly ok: false; readonly error: string; readonly retry: boolean; readonly retryAfterMs?: number };
  readonly now: string;
}
export type PlatformPushCommand = RequestPlatformPush | RecordPlatformPushAttempt;

export type PlatformPushItem = Omit<t.TypeOf<typeof PlatformPushRequested>['data'], 'requestedAt'>;
export type PlatformPushState = { readonly status: 'none' } | (PlatformPushItem & AttemptState);

export const platformPushStreamName = (pushId: string, deviceId: string) =>
  streamNameOf('platformpush', pushId, deviceId);

export const platformPushDecider: Decider<PlatformPushCommand, PlatformPushEvent, PlatformPushState> = {
  initialState: () => ({ status: 'none' }),

  evolve(state, event) {
    switch (event.type) {
      case 'PlatformPushRequested': {
        const { requestedAt, ...item } = event.data;
        return { ...item, ...firstAttemptAt(requestedAt) };
      }
      case 'PlatformPushSent':
        return evolveItem(state, { succeeded: true, attempt: event.data.attempt });
      case 'PlatformPushFailed':
        return evolveItem(state, { succeeded: false, ...event.data });
      default:
        return unreachable(event);
    }
  },

  decide(command, state) {
    switch (command.type) {
      case 'RequestPlatformPush': {
        // Once per message and device: a re-send, a restart, a second leader request nothing more.
        if (state.status !== 'none') return [];
        if (!UUID.test(command.pushId)) throw new DomainError('invalid', 'pushId: must be a UUID');
        if (command.nativeToken.length === 0) throw new DomainError('invalid', 'nativeToken: required');
        const { type: _, now, ...data } = command;
        // Expired already: nothing to send.
        if (Date.parse(command.expiresAt) <= Date.parse(now)) return [];
        return [{ type: 'PlatformPushRequested', data: { ...data, requestedAt: now } }];
      }
      case 'RecordPlatformPushAttempt': {
        if (state.status === 'none') throw new DomainError('not_found', 'no such platform push');
        const recorded = decideAttempt(PLATFORM_PUSH_SCHEDULE, state, command.attempt, command.outcome, command.now);
        if (!recorded) return [];
        const { pushId, deviceId, appId, service } = state;
        const item = { pushId, deviceId, appId, service };
        if (recorded.succeeded)
          return [{ type: 'PlatformPushSent', data: { ...item, attempt: recorded.attempt, sentAt: command.now } }];
        // The service's Retry-After (FCM) puts the next try later than the schedule's, never sooner.
        const retryAfterMs = command.outcome.ok ? undefined : command.outcome.retryAfterMs;
        const retryAt =
          recorded.retryAt !== null && retryAfterMs !== undefined && Number.isFinite(retryAfterMs)
            ? new Date(Math.max(Date.parse(recorded.retryAt), Date.parse(command.now) + retryAfterMs)).toISOString()
            : recorded.retryAt;
        // Final when retrying cannot help, or when the next try would come after the message expired.
        const final =
          recorded.final ||
          (!command.outcome.ok && !command.outcome.retry) ||
          retryAt === null ||
          Date.parse(retryAt) >= Date.parse(state.expiresAt);
        return [
          {
            type: 'PlatformPushFailed',
            data: {
              ...item,
              attempt: recorded.attempt,
              error: recorded.error,
              final,
              failedAt: command.now,
              retryAt: final ? null : retryAt,
            },
          },
        ];
      }
      default:
        return unreachable(command);
    }
  },
};
