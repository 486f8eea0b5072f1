import { isLeft } from 'fp-ts/lib/Either';
import * as t from 'io-ts';
import { HeraldError } from '../../domain/heraldError';
import { NotificationTypeCodec, type NotificationType } from '../../domain/notification/notification';
import { characterCount, isStorableText } from '../../domain/text';
import { isItemName } from '../../domain/whitelist/itemOwner';

/**
 * The JSON message formats of datahub's seed (shared/seeds/001_e25b4a10524b93b6.txt, "json消息格式"):
 * the topics `to_notifications.json`, `to_emails.json` and `to_subscriptions.json`, and the `data` of
 * each notification type, which POST /notifications shares. One codec per format; a field the seed's
 * samples show is checked for its type where given, extra fields are kept as sent (`data` is stored
 * as given). Bounds on size and text are the domain's (domain/notification/notification.ts).
 */

/**
 * An optional field: `""` is read as the field left out (clients that fill every field of a struct write
 * `""` for "none"; the seed's own samples write `"sender": ""`). Use inside `t.partial`.
 */
export function optional<C extends t.Mixed>(codec: C): t.Type<t.TypeOf<C> | undefined, unknown, unknown> {
  return new t.Type<t.TypeOf<C> | undefined, unknown, unknown>(
    `optional(${codec.name})`,
    (value): value is t.TypeOf<C> | undefined => value === undefined || codec.is(value),
    (value, context) => (value === '' || value === undefined ? t.success(undefined) : codec.validate(value, context)),
    (value) => value,
  );
}

/**
 * An optional field of a notification's `data`: `""` is accepted as "none" and, as all of `data`, kept as
 * given (a field that is text anyway needs no wrapper).
 */
const orEmpty = <C extends t.Mixed>(codec: C) => t.union([codec, t.literal('')]);

const Content = t.type({ content: t.string });
const Plan = t.partial({
  money: orEmpty(t.number),
  units: orEmpty(t.number),
  used: orEmpty(t.number),
  limit: orEmpty(t.number),
  subs: orEmpty(t.number),
  expire: orEmpty(t.number),
});
const SubscriptionFields = {
  sellername: t.string,
  repname: t.string,
  itemname: t.string,
  supply_style: t.string,
  expiretime: t.string,
  eventtime: t.string,
  phase: orEmpty(t.number),
  // The seed's list example shows the phase as a name ("freezed"), its topic notes as a number.
  newphase: t.union([t.string, t.number]),
  plan: orEmpty(Plan),
};

export const ITEM_EVENTS = ['tag_added', 'tag_deleted', 'item_deleted', 'repo_deleted'] as const;
export type ItemEvent = (typeof ITEM_EVENTS)[number];
const ItemEventName = t.keyof(Object.fromEntries(ITEM_EVENTS.map((e) => [e, null])) as Record<ItemEvent, null>);

/** What an item event names besides the repository. */
const ITEM_EVENT_NEEDS: Record<ItemEvent, ReadonlyArray<'itemname' | 'tag'>> = {
  tag_added: ['itemname', 'tag'],
  tag_deleted: ['itemname', 'tag'],
  item_deleted: ['itemname'],
  repo_deleted: [],
};

const ItemEventData = t.intersection([
  t.type({ event: ItemEventName, repname: t.string }),
  t.partial({ itemname: t.string, tag: t.string, eventtime: t.string }),
]);

/** Each notification type's `data`. */
const DATA: Record<NotificationType, t.Decoder<unknown, Record<string, unknown>>> = {
  site_broadcast: Content,
  admin_message: Content,
  private_message: Content,
  apply_whitelist: t.type({ repname: t.string, itemname: t.string }),
  comment_reply: t.intersection([
    t.type({ commentid: t.number, username: t.string, content: t.string }),
    t.partial({
      nickname: t.string,
      createtime: t.string,
      replyto: orEmpty(t.type({ commentid: t.number, content: t.string })),
    }),
  ]),
  item_event: ItemEventData,
  subs_event: t.intersection([
    t.type({ subscriptionid: t.number }),
    t.partial({ ...SubscriptionFields, signtime: t.string, freezetime: t.string, finishtime: t.string }),
  ]),
  subsapply_event: t.intersection([
    t.type({ subscriptionid: t.number }),
    t.partial({ ...SubscriptionFields, applytime: t.string }),
  ]),
  vip_remind: t.type({ level: t.number, invalide: t.number }),
};

/** A malformed message is bad input; the message names the field (`data.repname: missing or malformed`). */
const malformed = (message: string) => new HeraldError('invalid', message);

export function decodeFormat<A>(codec: t.Decoder<unknown, A>, input: unknown, prefix = ''): A {
  const result = codec.decode(input);
  if (isLeft(result)) {
    const path = result.left[0]?.context.map((c) => c.key).filter((key) => key !== '' && !/^\d+$/.test(key)) ?? [];
    const field = [prefix, ...path].filter((part) => part !== '').join('.');
    throw malformed(field ? `${field}: missing or malformed` : 'the body must be a JSON object');
  }
  return result.right;
}

/** A notification's `data` checked against its type's format. */
export function decodeNotificationData(type: NotificationType, data: unknown): Record<string, unknown> {
  const decoded = decodeFormat(DATA[type], data, 'data');
  if (type === 'item_event') checkItemEvent(decoded as t.TypeOf<typeof ItemEventData>, 'data.');
  return decoded;
}

function checkItemEvent(
  item: { readonly event: ItemEvent; readonly itemname?: string; readonly tag?: string },
  prefix: string,
): void {
  // "" names nothing: as good as missing.
  const missing = ITEM_EVENT_NEEDS[item.event].find((field) => item[field] === undefined || item[field] === '');
  if (missing) throw malformed(`${prefix}${missing}: required for ${item.event}`);
}

/**
 * The optional fields of a notification message, shared by the topic and POST /notifications. `time` is
 * checked by the domain (domain/rfc3339.ts); "" in any of them is the field left out.
 */
export const MessageOptions = t.partial({
  receiver: optional(t.string),
  sender: optional(t.string),
  time: optional(t.string),
  level: optional(t.number),
});

/** A message of the `to_notifications.json` topic. `receiver` lists users by spaces or commas. */
export const TopicNotification = t.intersection([
  t.type({ type: NotificationTypeCodec, data: t.unknown }),
  MessageOptions,
]);

/** A message of the `to_emails.json` topic. */
export const TopicEmail = t.intersection([
  t.type({ to: t.string, subject: t.string, content: t.string }),
  t.partial({ ishtml: optional(t.boolean) }),
]);

/** The `to_subscriptions.json` event codes, and the item event each becomes. */
export const SUBSCRIPTION_EVENTS = {
  '0x00020000': 'tag_added',
  '0x00020001': 'tag_deleted',
  '0x00020002': 'item_deleted',
  // Retired by the seed in favour of item_deleted for each item; still accepted, for the whole repository.
  '0x00020003': 'repo_deleted',
} as const satisfies Record<string, ItemEvent>;

/** A repository, item or tag name: 1-128 characters of text (as the whitelist's and the item owners' names). */
const Name = t.refinement(t.string, isItemName, 'Name');

/** A message of the `to_subscriptions.json` topic. */
export const TopicSubscriptionEvent = t.intersection([
  t.type({
    type: t.keyof(
      Object.fromEntries(Object.keys(SUBSCRIPTION_EVENTS).map((code) => [code, null])) as Record<
        keyof typeof SUBSCRIPTION_EVENTS,
        null
      >,
    ),
    repname: Name,
  }),
  t.partial({
    itemname: optional(Name),
    tag: optional(Name),
    time: optional(t.refinement(t.string, (time) => characterCount(time) <= 64 && isStorableText(time), 'Time')),
  }),
]);

/** The item event a `to_subscriptions.json` message announces, as an `item_event` notification's data. */
export function itemEventOf(message: t.TypeOf<typeof TopicSubscriptionEvent>): Record<string, unknown> {
  const event = SUBSCRIPTION_EVENTS[message.type];
  checkItemEvent({ ...message, event }, '');
  const data = {
    event,
    repname: message.repname,
    ...(message.itemname !== undefined && { itemname: message.itemname }),
    ...(message.tag !== undefined && { tag: message.tag }),
    ...(message.time !== undefined && { eventtime: message.time }),
  };
  return decodeNotificationData('item_event', data);
}
