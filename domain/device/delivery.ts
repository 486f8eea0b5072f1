import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { DomainError, unreachable, type Decider } from '../decider';
import { streamNameOf } from '../streamName';
import { TOPVDN_RETRY_OFFSETS_SECONDS, type PushRequestedData, type Retry } from './push';

/**
 * One push's delivery to one device, from request to its end. Stream: `delivery-<pushId>.<deviceId>`
 * (its own stream, so a thousand devices confirming one push never contend).
 *
 * Open until it ends: confirmed by the device; written once when the push needs no confirmation; or
 * closed at the push's `expiresAt` — DeliveryDropped for topvdn ("discarded"), DeliveryExpired for
 * ONE-PUSH. Each write to the device is an attempt: the first MessageDelivered, the later ones
 * DeliveryRetried, each with the time of the next attempt if one is left (`retry`):
 *   - `topvdn` (flag 2): attempts at 0, 1, 3, 6 and 11 s after the request, 5 at most;
 *   - `backoff` (ONE-PUSH needConfirm): 10 s after an attempt, doubling to 5 minutes, until `expiresAt`;
 *   - `none`: one attempt.
 * A device that is not connected gets no attempt; it gets the open deliveries, in order, when it
 * connects. A confirmation is taken while the delivery is open, also before its first attempt is
 * recorded (the device may answer faster than herald records the write).
 */

export const BACKOFF_FIRST_SECONDS = 10;
export const BACKOFF_MAX_SECONDS = 300;

const Target = { pushId: t.string, deviceId: t.string, appId: t.string };
const NextAttempt = t.union([t.string, t.null]);

export const MessageDelivered = t.type({
  type: t.literal('MessageDelivered'),
  data: t.type({ ...Target, attempt: t.number, deliveredAt: t.string, nextAttemptAt: NextAttempt }),
});
export const DeliveryRetried = t.type({
  type: t.literal('DeliveryRetried'),
  data: t.type({ ...Target, attempt: t.number, retriedAt: t.string, nextAttemptAt: NextAttempt }),
});
export const DeliveryConfirmed = t.type({
  type: t.literal('DeliveryConfirmed'),
  data: t.type({ ...Target, confirmedAt: t.string }),
});
export const DeliveryDropped = t.type({
  type: t.literal('DeliveryDropped'),
  data: t.type({
    ...Target,
    attempts: t.number,
    reason: t.keyof({ not_connected: null, not_confirmed: null, no_callback_url: null }),
    droppedAt: t.string,
  }),
});
export const DeliveryExpired = t.type({
  type: t.literal('DeliveryExpired'),
  data: t.type({ ...Target, attempts: t.number, expiredAt: t.string }),
});
export const DeliveryEvent = t.union([
  MessageDelivered,
  DeliveryRetried,
  DeliveryConfirmed,
  DeliveryDropped,
  DeliveryExpired,
]);
export type DeliveryEvent = t.TypeOf<typeof DeliveryEvent>;

/** docs/events.md, delivery: what the codecs cannot say. */
export const deliveryCatalogue: CatalogueEntry = {
  title: 'delivery',
  stream: 'delivery-<pushId>.<deviceId>',
  module: 'domain/device/delivery.ts',
  union: DeliveryEvent,
  description: [
    "One push's delivery to one device (or, as `delivery-<pushId>.app-callback`, to the app's callback URL). " +
      'The life of every message can be replayed from these (docs/delivery.md).',
  ],
  events: {
    MessageDelivered: {
      when: "the first attempt: the message was written to the device's connections (for a callback: POSTed)",
      fields: { attempt: '1', nextAttemptAt: 'null when no attempt is left or none is needed' },
    },
    DeliveryRetried: {
      when: 'a later attempt: a scheduled retry, or the device reconnected with the delivery still unconfirmed',
      fields: { attempt: '2, 3, …', nextAttemptAt: 'null when no attempt is left or none is needed' },
    },
    DeliveryConfirmed: {
      when: 'the device confirmed (`{"confirm": id}` on its socket, GraphQL `confirmDelivery`), or the app\'s callback answered 2xx',
    },
    DeliveryDropped: {
      when:
        'a topvdn delivery still open when its push expired (flag 2: 16 s; flag 3: 5 s), or a delivery to the ' +
        "app's callback URL when the app has none",
      fields: {
        reason:
          '`not_connected`: never reached; `not_confirmed`: reached, not confirmed; `no_callback_url`: the app has no callback URL',
      },
    },
    DeliveryExpired: {
      when: 'a ONE-PUSH delivery still open when its push expired (`duration` with needConfirm, otherwise 7 days)',
    },
  },
};

/** What a delivery's decisions depend on: its push's terms, for one device. */
export interface DeliveryTerms {
  readonly pushId: string;
  readonly deviceId: string;
  readonly appId: string;
  readonly source: 'onepush' | 'topvdn';
  readonly needsConfirm: boolean;
  readonly retry: Retry;
  readonly requestedAt: string;
  readonly expiresAt: string;
}

export const deliveryTerms = (
  push: Omit<PushRequestedData, 'audience' | 'platform'>,
  deviceId: string,
): DeliveryTerms => ({
  pushId: push.pushId,
  deviceId,
  appId: push.appId,
  source: push.message.kind,
  needsConfirm: push.needsConfirm,
  retry: push.retry,
  requestedAt: push.requestedAt,
  expiresAt: push.expiresAt,
});

/** An attempt was made: the message was written to the device's connections. */
export interface RecordAttempt {
  readonly type: 'RecordAttempt';
  readonly terms: DeliveryTerms;
  /**
   * A scheduled retry: made only when the next attempt is due. Without it (the push arriving live, a
   * device connecting) an attempt is made whenever the delivery is open and has attempts left.
   */
  readonly dueOnly?: boolean;
  readonly now: string;
}
export interface ConfirmDelivery {
  readonly type: 'ConfirmDelivery';
  readonly terms: DeliveryTerms;
  readonly now: string;
}
/** Ends the delivery if it is still open at its push's expiry. */
export interface CloseDelivery {
  readonly type: 'CloseDelivery';
  readonly terms: DeliveryTerms;
  readonly now: string;
}
/** Ends an open delivery that cannot be made: its app has no callback URL. */
export interface DropDelivery {
  readonly type: 'DropDelivery';
  readonly terms: DeliveryTerms;
  readonly reason: 'no_callback_url';
  readonly now: string;
}
export type DeliveryCommand = RecordAttempt | ConfirmDelivery | CloseDelivery | DropDelivery;

export type DeliveryStatus = 'pending' | 'delivered' | 'confirmed' | 'dropped' | 'expired';
export interface DeliveryState {
  readonly status: DeliveryStatus;
  /** Attempts recorded. */
  readonly attempts: number;
  /** When the next attempt is due, if one is left. */
  readonly nextAttemptAt: string | null;
}

/** `delivery-<pushId>.<deviceId>` (streamNameOf; a push id is a UUID, so nothing in it is encoded). */
export const deliveryStreamName = (pushId: string, deviceId: string) => streamNameOf('delivery', pushId, deviceId);

/**
 * The target of a topvdn push's delivery to its app's callback URL (`callback: 1`), in place of a
 * device id: an attempt is a POST, and the app's 2xx answer confirms it.
 */
export const APP_CALLBACK_TARGET = 'app-callback';

/** Whether the delivery still waits for an attempt or a confirmation. */
export const isOpen = (status: DeliveryStatus, needsConfirm: boolean): boolean =>
  status === 'pending' || (status === 'delivered' && needsConfirm);

export const deliveryDecider: Decider<DeliveryCommand, DeliveryEvent, DeliveryState> = {
  initialState: () => ({ status: 'pending', attempts: 0, nextAttemptAt: null }),

  evolve(state, event) {
    switch (event.type) {
      case 'MessageDelivered':
      case 'DeliveryRetried':
        return state.status === 'pending' || state.status === 'delivered'
          ? {
              status: 'delivered',
              attempts: Math.max(state.attempts, event.data.attempt),
              nextAttemptAt: event.data.nextAttemptAt,
            }
          : state;
      case 'DeliveryConfirmed':
        return { ...state, status: 'confirmed', nextAttemptAt: null };
      case 'DeliveryDropped':
        return { ...state, status: 'dropped', nextAttemptAt: null };
      case 'DeliveryExpired':
        return { ...state, status: 'expired', nextAttemptAt: null };
      default:
        return unreachable(event);
    }
  },

  decide(command, state) {
    const { terms } = command;
    const target = { pushId: terms.pushId, deviceId: terms.deviceId, appId: terms.appId };
    const now = timeOf(command.now, 'now');
    const open = isOpen(state.status, terms.needsConfirm) && now < timeOf(terms.expiresAt, 'expiresAt');
    switch (command.type) {
      case 'RecordAttempt': {
        if (!open || !attemptLeft(terms, state.attempts)) return [];
        if (
          command.dueOnly &&
          state.attempts > 0 &&
          (state.nextAttemptAt === null || now < timeOf(state.nextAttemptAt, 'nextAttemptAt'))
        )
          return [];
        const attempt = state.attempts + 1;
        const nextAttemptAt = nextAttempt(terms, attempt, now);
        return attempt === 1
          ? [{ type: 'MessageDelivered', data: { ...target, attempt, deliveredAt: command.now, nextAttemptAt } }]
          : [{ type: 'DeliveryRetried', data: { ...target, attempt, retriedAt: command.now, nextAttemptAt } }];
      }
      case 'ConfirmDelivery':
        if (state.status === 'confirmed') return [];
        // A delivery written once that needed no confirmation may still be confirmed (the device does it anyway).
        if (!open && !(state.status === 'delivered' && !terms.needsConfirm))
          throw new DomainError('expired', 'the delivery has ended: the message was dropped or has expired');
        return [{ type: 'DeliveryConfirmed', data: { ...target, confirmedAt: command.now } }];
      case 'CloseDelivery': {
        if (!isOpen(state.status, terms.needsConfirm) || now < timeOf(terms.expiresAt, 'expiresAt')) return [];
        const { attempts } = state;
        return terms.source === 'topvdn'
          ? [
              {
                type: 'DeliveryDropped',
                data: {
                  ...target,
                  attempts,
                  reason: attempts === 0 ? 'not_connected' : 'not_confirmed',
                  droppedAt: command.now,
                },
              },
            ]
          : [{ type: 'DeliveryExpired', data: { ...target, attempts, expiredAt: command.now } }];
      }
      case 'DropDelivery':
        if (!isOpen(state.status, terms.needsConfirm)) return [];
        return [
          {
            type: 'DeliveryDropped',
            data: { ...target, attempts: state.attempts, reason: command.reason, droppedAt: command.now },
          },
        ];
      default:
        return unreachable(command);
    }
  },
};

function attemptLeft(terms: DeliveryTerms, attempts: number): boolean {
  if (!terms.needsConfirm || terms.retry === 'none') return attempts === 0;
  if (terms.retry === 'topvdn') return attempts < TOPVDN_RETRY_OFFSETS_SECONDS.length;
  return true;
}

/** When the attempt after attempt `attempt` (made at `now`) is due; null when none is left. */
export function nextAttempt(terms: DeliveryTerms, attempt: number, now: number): string | null {
  if (!terms.needsConfirm || !attemptLeft(terms, attempt)) return null;
  const expiresAt = timeOf(terms.expiresAt, 'expiresAt');
  let next: number | undefined;
  if (terms.retry === 'topvdn') {
    const requestedAt = timeOf(terms.requestedAt, 'requestedAt');
    // The schedule is the request's: a device that connected late gets the tries left in it.
    next = TOPVDN_RETRY_OFFSETS_SECONDS.map((s) => requestedAt + s * 1000).find((at) => at > now);
  } else if (terms.retry === 'backoff') {
    next = now + Math.min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (attempt - 1)) * 1000;
  }
  return next !== undefined && next < expiresAt ? new Date(next).toISOString() : null;
}

function timeOf(iso: string, field: string): number {
  const time = Date.parse(iso);
  if (Number.isNaN(time)) throw new DomainError('invalid', `${field}: not a valid time`);
  return time;
}
