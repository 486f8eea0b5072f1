import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { DomainError, unreachable, type Decider } from '../decider';
import type { Upcaster } from '../eventVersions';
import { adding, EMPTY, has, type GrowingSet } from '../growingSet';
import { parseRfc3339 } from '../rfc3339';
import { characterCount, isStorableText } from '../text';
import { USER_ID_MAX } from '../ticket/ticket';

/**
 * A typed notification of datahub (shared/seeds/001_e25b4a10524b93b6.txt): one sender, its receivers in
 * one app, a type, a level (0 general, 50 asks the user to act) and the lists it is in (the browser's,
 * the client's, or both); its `data` is the type's own JSON object, kept as given. Stream:
 * `notification-<id>`. Each receiver reads it once (NotificationRead); unread notifications make up the
 * per-type stats.
 *
 * A `site_broadcast` without receivers is addressed to the whole app: every user, also those who appear
 * after it was sent. Its `receivers` is empty, and who has read it is kept on each reader's inbox
 * (domain/inbox/inbox.ts). One that names receivers (the seed's own MQ sample does, and producers
 * send one per receiver) reaches those receivers only, like any other type.
 */

export const NOTIFICATION_TYPES = [
  'site_broadcast',
  'admin_message',
  'private_message',
  'apply_whitelist',
  'comment_reply',
  'item_event',
  'subs_event',
  'subsapply_event',
  'vip_remind',
] as const;
export type NotificationType = (typeof NOTIFICATION_TYPES)[number];
export const NotificationTypeCodec = t.keyof(
  Object.fromEntries(NOTIFICATION_TYPES.map((type) => [type, null])) as Record<NotificationType, null>,
);

/** The type that, sent without receivers, is addressed to every user of the app. */
export const BROADCAST_TYPE = 'site_broadcast' satisfies NotificationType;
/** Types only an admin may send. */
export const ADMIN_TYPES: ReadonlySet<NotificationType> = new Set(['admin_message', 'site_broadcast']);
/** Levels the seed defines: 0 general, 50 needs the user's further action. */
export const LEVELS = [0, 50] as const;

/**
 * Whether a `subs_event` tells its receiver that their subscription of the item ended: the seed's phases
 * cancelled (5) and removed (6), given as `phase` or `newphase`, as a number or a name. Until then, the
 * receiver of a subs_event for an item is one of its subscribers (it gets the item's item_events).
 */
export function subscriptionEnded(data: Readonly<Record<string, unknown>>): boolean {
  // The new phase, when given, is the one that holds (a resubscription may carry the old phase too).
  const phase = data['newphase'] ?? data['phase'];
  return phase === 5 || phase === 6 || phase === 'cancelled' || phase === 'removed';
}

export const NOTIFICATION_LIMITS = {
  /** The seed: an admin message reaches at most 100 users at once. */
  adminReceivers: 100,
  /** Notifications other services send (comment replies, item events, …) to several users. */
  receivers: 1000,
  /** The `data` object as JSON. */
  dataBytes: 16_384,
  dataDepth: 8,
} as const;

export const NotificationSent = t.type({
  type: t.literal('NotificationSent'),
  data: t.intersection([
    t.type({
      notificationId: t.string,
      appId: t.string,
      notificationType: NotificationTypeCodec,
      sender: t.string,
      receivers: t.array(t.string),
      level: t.number,
      forClient: t.boolean,
      data: t.UnknownRecord,
      sentAt: t.string,
      forBrowser: t.boolean,
    }),
    // `time`: the time its producer gave (the seed's `time`), exactly as written; absent when none was given.
    t.partial({ time: t.string }),
  ]),
});
export type NotificationSent = t.TypeOf<typeof NotificationSent>;

/**
 * Version 2 of NotificationSent always records `forBrowser`. The first release had no such field, since a
 * notification was then in exactly one list: the browser's unless the client's. A notification may now be
 * in both, so events of version 1 (those stored before versioning) that lack it get the one list they
 * were in; those recorded with it keep it.
 */
export const notificationSentV2: Upcaster = {
  type: 'NotificationSent',
  from: 1,
  to: 2,
  change:
    "`forBrowser` is always recorded; version 1 could leave it out, and then the notification is in the browser's " +
    'list exactly when `forClient` is false',
  upcast: (data) =>
    t.UnknownRecord.is(data) && data['forBrowser'] === undefined && typeof data['forClient'] === 'boolean'
      ? { ...data, forBrowser: !data['forClient'] }
      : data,
};

/** Whether the notification is to every user of the app: a site broadcast that names no receiver. */
export const isSiteWide = (sent: NotificationSent['data']): boolean =>
  sent.notificationType === BROADCAST_TYPE && sent.receivers.length === 0;

export const NotificationRead = t.type({
  type: t.literal('NotificationRead'),
  data: t.type({ notificationId: t.string, appId: t.string, userId: t.string, readAt: t.string }),
});
export const NotificationEvent = t.union([NotificationSent, NotificationRead]);
export type NotificationEvent = t.TypeOf<typeof NotificationEvent>;

/** docs/events.md, notification: what the codecs cannot say. */
export const notificationCatalogue: CatalogueEntry = {
  title: 'notification',
  stream: 'notification-<notificationId>',
  module: 'domain/notification/notification.ts',
  union: NotificationEvent,
  description: ["datahub's typed notifications (shared/seeds/001_e25b4a10524b93b6.txt)."],
  events: {
    NotificationSent: {
      when:
        '`POST /notifications`, `POST /topics/to_notifications.json`, `POST /topics/to_subscriptions.json` ' +
        '(an `item_event` per ≤ 1,000 subscribers)',
      fields: {
        notificationType: 'one of the nine datahub types',
        sender: 'a user id, or `""` for the system',
        receivers: 'empty only for a `site_broadcast` to every user of the app (one naming receivers is to them only)',
        level: '0 or 50',
        forClient: "in the client's list; with `forBrowser`, the lists it is in (at least one)",
        data: "the type's JSON object, as given",
        forBrowser: "in the browser's list",
        time:
          "the time the sender gave (the seed's `time`), exactly as written once checked to be a time (RFC 3339, or the seed's " +
          "`…Z08:00`: domain/rfc3339.ts); listed unchanged as the notification's `time`. Absent when none was given (then `sentAt` is listed)",
      },
    },
    NotificationRead: { when: 'a receiver marks it read (`PUT /notifications/{messageid}`); once per receiver' },
  },
  notes: ["The `NotificationSent` event's position is the notification's `messageid` in every receiver's list."],
  upcasters: [notificationSentV2],
};

export interface SendNotification {
  readonly type: 'SendNotification';
  readonly notificationId: string;
  readonly appId: string;
  readonly notificationType: NotificationType;
  readonly sender: string;
  /** Whether the sender holds the admin role (admin_message, site_broadcast). */
  readonly senderIsAdmin: boolean;
  readonly receivers: readonly string[];
  readonly level: number;
  readonly forBrowser: boolean;
  readonly forClient: boolean;
  readonly data: Readonly<Record<string, unknown>>;
  /** The time the sender gave, as written (RFC 3339, or the seed's `…Z08:00`); undefined when none. */
  readonly time?: string;
  readonly now: string;
}
export interface MarkNotificationRead {
  readonly type: 'MarkNotificationRead';
  readonly appId: string;
  readonly userId: string;
  readonly now: string;
}
export type NotificationCommand = SendNotification | MarkNotificationRead;

export type NotificationState =
  | { readonly status: 'none' }
  | {
      readonly status: 'sent';
      readonly notificationId: string;
      readonly appId: string;
      readonly receivers: ReadonlySet<string>;
      readonly readBy: GrowingSet;
    };

export const notificationStreamName = (notificationId: string) => `notification-${notificationId}`;

export const notificationDecider: Decider<NotificationCommand, NotificationEvent, NotificationState> = {
  initialState: () => ({ status: 'none' }),

  evolve(state, event) {
    switch (event.type) {
      case 'NotificationSent':
        return {
          status: 'sent',
          notificationId: event.data.notificationId,
          appId: event.data.appId,
          receivers: new Set(event.data.receivers),
          readBy: EMPTY,
        };
      case 'NotificationRead':
        return state.status === 'sent' ? { ...state, readBy: adding(state.readBy, event.data.userId) } : state;
      default:
        return unreachable(event);
    }
  },

  decide(command, state) {
    switch (command.type) {
      case 'SendNotification':
        // Sent already (a retried request): nothing new.
        return state.status === 'sent' ? [] : decideSend(command);
      case 'MarkNotificationRead': {
        // Another app's notification, or one the user did not receive, does not exist for this user. (A
        // broadcast has no receivers: its readers' inboxes record its reads.)
        if (state.status !== 'sent' || state.appId !== command.appId || !state.receivers.has(command.userId)) {
          throw new DomainError('not_found', 'no such notification');
        }
        if (has(state.readBy, command.userId)) return [];
        return [
          {
            type: 'NotificationRead',
            data: {
              notificationId: state.notificationId,
              appId: command.appId,
              userId: command.userId,
              readAt: command.now,
            },
          },
        ];
      }
      default:
        return unreachable(command);
    }
  },
};

function decideSend(command: SendNotification): NotificationEvent[] {
  const L = NOTIFICATION_LIMITS;
  if (ADMIN_TYPES.has(command.notificationType) && !command.senderIsAdmin) {
    throw new DomainError('forbidden', `only an admin may send ${command.notificationType}`);
  }
  if (!command.forBrowser && !command.forClient)
    throw new DomainError('invalid', 'the notification must be for the browser, the client or both');
  const receivers = [...new Set(command.receivers.map((r) => r.trim()).filter((r) => r.length > 0))];
  // A site broadcast that names no receiver is to the whole app; one that names receivers is to them.
  if (receivers.length === 0 && command.notificationType !== BROADCAST_TYPE)
    throw new DomainError('invalid', 'receiver: at least one user is required');
  const most =
    command.notificationType === 'admin_message'
      ? L.adminReceivers
      : command.notificationType === 'private_message'
        ? 1
        : L.receivers;
  if (receivers.length > most)
    throw new DomainError(
      'invalid',
      `receiver: at most ${most} user${most === 1 ? '' : 's'} for ${command.notificationType}`,
    );
  if (receivers.some((r) => characterCount(r) > USER_ID_MAX || !isStorableText(r)))
    throw new DomainError('invalid', `receiver: user ids are 1-${USER_ID_MAX} characters of text`);
  // "" is the system (the seed's services send so); otherwise a user id.
  if (characterCount(command.sender) > USER_ID_MAX || !isStorableText(command.sender))
    throw new DomainError('invalid', `sender: at most ${USER_ID_MAX} characters of text`);
  if (!(LEVELS as readonly number[]).includes(command.level))
    throw new DomainError('invalid', `level must be ${LEVELS.join(' or ')}`);
  checkData(command.data);
  // Checked to be a time, then kept as written: the list gives the producer back what it sent.
  const time = command.time;
  if (time !== undefined && parseRfc3339(time) === undefined)
    throw new DomainError('invalid', 'time: must be an RFC 3339 time, e.g. 2015-11-10T15:06:09+08:00');
  return [
    {
      type: 'NotificationSent',
      data: {
        notificationId: command.notificationId,
        appId: command.appId,
        notificationType: command.notificationType,
        sender: command.sender,
        receivers,
        level: command.level,
        forBrowser: command.forBrowser,
        forClient: command.forClient,
        data: { ...command.data },
        sentAt: command.now,
        ...(time !== undefined && { time }),
      },
    },
  ];
}

/** `data` is stored as jsonb: bounded, and every key and string storable text (PostgreSQL refuses NUL in jsonb). */
function checkData(data: Readonly<Record<string, unknown>>): void {
  const L = NOTIFICATION_LIMITS;
  if (Buffer.byteLength(JSON.stringify(data)) > L.dataBytes)
    throw new DomainError('invalid', `data: at most ${L.dataBytes} bytes of JSON`);
  const visit = (value: unknown, depth: number): void => {
    if (depth > L.dataDepth) throw new DomainError('invalid', `data: nested at most ${L.dataDepth} levels`);
    if (typeof value === 'string' && !isStorableText(value))
      throw new DomainError('invalid', 'data: text may not contain control characters or lone surrogates');
    if (Array.isArray(value)) value.forEach((item) => visit(item, depth + 1));
    else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        visit(key, depth);
        visit(item, depth + 1);
      }
    }
  };
  visit(data, 0);
}
