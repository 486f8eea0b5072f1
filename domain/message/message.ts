import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { DomainError, unreachable, type Decider } from '../decider';
import { adding, EMPTY, has, type GrowingSet } from '../growingSet';
import { characterCount, isStorableText } from '../text';
import { isUserId, USER_ID_MAX } from '../ticket/ticket';

/**
 * A message sent by a user of an app to other users of the same app (Koala web push,
 * shared/seeds/000_83e3b79cc88886e5.txt, and GraphQL's sendMessage). Stream: `message-<messageId>`.
 *
 * Expiry is computed from `expiresAt` (no timer per message): a message past it is neither delivered
 * nor listed. A scheduled message whose release time comes after its expiry is recorded as expired.
 */

export const MESSAGE_LIMITS = {
  recipients: 1000,
  titleLength: 256,
  contentLength: 16_384,
  propsKeys: 32,
  propValueLength: 1024,
  expireSeconds: 365 * 24 * 3600,
  scheduleAheadSeconds: 365 * 24 * 3600,
} as const;

const Props = t.union([t.record(t.string, t.string), t.null]);

const Content = {
  messageId: t.string,
  appId: t.string,
  sender: t.string,
  recipients: t.array(t.string),
  title: t.string,
  content: t.string,
  props: Props,
  expiresAt: t.union([t.string, t.null]),
};

export const MessageSent = t.type({ type: t.literal('MessageSent'), data: t.type({ ...Content, sentAt: t.string }) });
export const MessageScheduled = t.type({
  type: t.literal('MessageScheduled'),
  data: t.type({ ...Content, scheduledAt: t.string, releaseAt: t.string }),
});
export const MessageReleased = t.type({
  type: t.literal('MessageReleased'),
  data: t.type({ messageId: t.string, appId: t.string, releasedAt: t.string }),
});
export const MessageExpired = t.type({
  type: t.literal('MessageExpired'),
  data: t.type({ messageId: t.string, appId: t.string, expiredAt: t.string }),
});
export const MessageAcknowledged = t.type({
  type: t.literal('MessageAcknowledged'),
  data: t.type({ messageId: t.string, appId: t.string, userId: t.string, acknowledgedAt: t.string }),
});
export const MessageEvent = t.union([
  MessageSent,
  MessageScheduled,
  MessageReleased,
  MessageExpired,
  MessageAcknowledged,
]);
export type MessageEvent = t.TypeOf<typeof MessageEvent>;
export type MessageContent = t.TypeOf<typeof MessageSent>['data'];

/** docs/events.md, message: what the codecs cannot say. */
export const messageCatalogue: CatalogueEntry = {
  title: 'message',
  stream: 'message-<messageId>',
  module: 'domain/message/message.ts',
  union: MessageEvent,
  events: {
    MessageSent: {
      when: 'a send without `execute`, or with one not ahead',
      fields: { expiresAt: 'null: the message never expires (`expire` 0)' },
    },
    MessageScheduled: {
      when: 'a send with `execute` ahead',
      fields: { expiresAt: 'null: the message never expires (`expire` 0)', releaseAt: 'the `execute` time' },
    },
    MessageReleased: { when: 'the scheduler delivers a scheduled message' },
    MessageExpired: { when: 'a scheduled message came due after its expiry (herald was down): never delivered' },
    MessageAcknowledged: { when: 'a recipient acknowledges (Koala ack, GraphQL `acknowledge`)' },
  },
  notes: [
    'Expiry is computed, not timed: `expiresAt` = delivery time + `expire` seconds. Reads leave out messages ' +
      'past it and acknowledging one is done already (no event); no event is written at the moment a delivered message expires ' +
      "(an analyst derives it from `expiresAt`). The delivering event's position is the message's `seq`.",
  ],
};

export interface SendMessage {
  readonly type: 'SendMessage';
  readonly messageId: string;
  readonly appId: string;
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly title: string;
  readonly content: string;
  readonly props: Readonly<Record<string, string>> | null;
  /** Seconds the message stays valid after it is delivered; 0 = forever (Koala `expire`). */
  readonly expireSeconds: number;
  /** When to deliver; null or not after `now` = at once (Koala `execute`). */
  readonly executeAt: string | null;
  readonly now: string;
}
/** Sent by the scheduler when a scheduled message is due. */
export interface ReleaseMessage {
  readonly type: 'ReleaseMessage';
  readonly now: string;
}
export interface AcknowledgeMessage {
  readonly type: 'AcknowledgeMessage';
  readonly appId: string;
  readonly userId: string;
  readonly now: string;
}
export type MessageCommand = SendMessage | ReleaseMessage | AcknowledgeMessage;

export type MessageState =
  | { readonly status: 'none' }
  | {
      readonly status: 'scheduled' | 'delivered' | 'expired';
      readonly messageId: string;
      readonly appId: string;
      readonly recipients: ReadonlySet<string>;
      readonly expiresAt: string | null;
      readonly acknowledgedBy: GrowingSet;
    };

export const messageStreamName = (messageId: string) => `message-${messageId}`;

export const messageDecider: Decider<MessageCommand, MessageEvent, MessageState> = {
  initialState: () => ({ status: 'none' }),

  evolve(state, event) {
    switch (event.type) {
      case 'MessageSent':
      case 'MessageScheduled':
        return {
          status: event.type === 'MessageSent' ? 'delivered' : 'scheduled',
          messageId: event.data.messageId,
          appId: event.data.appId,
          recipients: new Set(event.data.recipients),
          expiresAt: event.data.expiresAt,
          acknowledgedBy: EMPTY,
        };
      case 'MessageReleased':
        return state.status === 'none' ? state : { ...state, status: 'delivered' };
      case 'MessageExpired':
        return state.status === 'none' ? state : { ...state, status: 'expired' };
      case 'MessageAcknowledged':
        return state.status === 'none'
          ? state
          : { ...state, acknowledgedBy: adding(state.acknowledgedBy, event.data.userId) };
      default:
        return unreachable(event);
    }
  },

  decide(command, state) {
    switch (command.type) {
      case 'SendMessage':
        // A resend of the same message id (a client retry) changes nothing.
        if (state.status !== 'none') return [];
        return decideSend(command);
      case 'ReleaseMessage':
        if (state.status !== 'scheduled') return [];
        if (isExpired(state.expiresAt, command.now)) {
          return [
            {
              type: 'MessageExpired',
              data: { messageId: state.messageId, appId: state.appId, expiredAt: command.now },
            },
          ];
        }
        return [
          {
            type: 'MessageReleased',
            data: { messageId: state.messageId, appId: state.appId, releasedAt: command.now },
          },
        ];
      case 'AcknowledgeMessage': {
        // Nothing of one app is visible to another: a foreign message is "not found", not "forbidden".
        if (state.status === 'none' || state.appId !== command.appId)
          throw new DomainError('not_found', 'no such message');
        if (!state.recipients.has(command.userId))
          throw new DomainError('forbidden', 'the message was not sent to this user');
        if (state.status === 'scheduled') throw new DomainError('not_found', 'the message is not delivered yet');
        // Expired (past `expire`, or never delivered because it came due past it): nothing is left to
        // acknowledge, so it counts as done rather than refusing the acknowledgements sent with it.
        if (state.status === 'expired' || isExpired(state.expiresAt, command.now)) return [];
        if (has(state.acknowledgedBy, command.userId)) return [];
        return [
          {
            type: 'MessageAcknowledged',
            data: {
              messageId: state.messageId,
              appId: state.appId,
              userId: command.userId,
              acknowledgedAt: command.now,
            },
          },
        ];
      }
      default:
        return unreachable(command);
    }
  },
};

function decideSend(command: SendMessage): MessageEvent[] {
  const L = MESSAGE_LIMITS;
  const recipients = [...new Set(command.recipients.map((r) => r.trim()).filter((r) => r.length > 0))];
  if (recipients.length === 0) throw new DomainError('invalid', 'at least one recipient is required');
  if (recipients.length > L.recipients) throw new DomainError('invalid', `at most ${L.recipients} recipients`);
  const texts = [...recipients, command.title, command.content, ...Object.entries(command.props ?? {}).flat()];
  if (!texts.every(isStorableText))
    throw new DomainError(
      'invalid',
      'text may not contain control characters (other than tab, line feed, carriage return) or lone surrogates',
    );
  // Only a user id can hold a ticket: a recipient "a b" would be accepted and never received.
  const notUser = recipients.find((r) => !isUserId(r));
  if (notUser !== undefined)
    throw new DomainError(
      'invalid',
      `recipient ${JSON.stringify(notUser.slice(0, 64))} is not a user id (1-${USER_ID_MAX} characters, no blanks or commas)`,
    );
  // Title and content are delivered exactly as sent (no trimming); only empty or blank ones are refused.
  for (const [name, text, max] of [
    ['title', command.title, L.titleLength],
    ['content', command.content, L.contentLength],
  ] as const) {
    if (text.trim().length === 0) throw new DomainError('invalid', `${name} is required (not empty or blank)`);
    if (characterCount(text) > max)
      throw new DomainError('invalid', `${name} is at most ${max} characters (this one has ${characterCount(text)})`);
  }
  if (command.props && Object.keys(command.props).length > L.propsKeys)
    throw new DomainError('invalid', `at most ${L.propsKeys} props`);
  if (command.props && Object.values(command.props).some((v) => characterCount(v) > L.propValueLength))
    throw new DomainError('invalid', `prop values are at most ${L.propValueLength} characters`);
  if (
    !Number.isInteger(command.expireSeconds) ||
    command.expireSeconds < 0 ||
    command.expireSeconds > L.expireSeconds
  ) {
    throw new DomainError('invalid', `expire must be 0 (forever) or 1-${L.expireSeconds} seconds`);
  }
  const now = Date.parse(command.now);
  const executeAt = command.executeAt === null ? now : Date.parse(command.executeAt);
  if (Number.isNaN(executeAt)) throw new DomainError('invalid', 'execute is not a valid time');
  if (executeAt - now > L.scheduleAheadSeconds * 1000)
    throw new DomainError('invalid', `execute is at most ${L.scheduleAheadSeconds} seconds ahead`);
  const deliverAt = Math.max(now, executeAt);
  const expiresAt =
    command.expireSeconds === 0 ? null : new Date(deliverAt + command.expireSeconds * 1000).toISOString();
  const content = {
    messageId: command.messageId,
    appId: command.appId,
    sender: command.sender,
    recipients,
    title: command.title,
    content: command.content,
    props: command.props ? { ...command.props } : null,
    expiresAt,
  };
  if (executeAt > now) {
    return [
      {
        type: 'MessageScheduled',
        data: { ...content, scheduledAt: command.now, releaseAt: new Date(executeAt).toISOString() },
      },
    ];
  }
  return [{ type: 'MessageSent', data: { ...content, sentAt: command.now } }];
}

export function isExpired(expiresAt: string | null, now: string): boolean {
  return expiresAt !== null && Date.parse(expiresAt) <= Date.parse(now);
}
