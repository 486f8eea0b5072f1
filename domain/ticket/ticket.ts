import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { unreachable, type Decider } from '../decider';
import { characterCount, isStorableText } from '../text';

/**
 * A ticket is a signed, expiring token for (appId, userId, roles): Koala's `ticket`, datahub's
 * `Authorization: Token`, GraphQL's bearer token. The token itself is verified by its signature; the
 * event records the issue for analysts. Stream: `ticket-<ticketId>`.
 */
export const TicketIssued = t.type({
  type: t.literal('TicketIssued'),
  data: t.type({
    ticketId: t.string,
    appId: t.string,
    userId: t.string,
    roles: t.array(t.string),
    issuedAt: t.string,
    expiresAt: t.string,
  }),
});
export const TicketEvent = TicketIssued;
export type TicketEvent = t.TypeOf<typeof TicketEvent>;

/** docs/events.md, ticket: what the codecs cannot say. */
export const ticketCatalogue: CatalogueEntry = {
  title: 'ticket',
  stream: 'ticket-<ticketId>',
  module: 'domain/ticket/ticket.ts',
  union: TicketEvent,
  events: {
    TicketIssued: { when: '`POST /koala/api/mas/tickets` with valid app credentials' },
  },
  notes: ['The ticket string itself is never stored.'],
};

/** A user id's length in characters: a ticket's user, a message's or notification's sender or recipient. */
export const USER_ID_MAX = 128;

/** What a ticket may carry and how long one herald issues can be (Koala's ticket request is refused past them). */
export const TICKET_LIMITS = { roles: 16, roleLength: 32, ticketLength: 2048 } as const;

/**
 * What separates the user ids of a list as people type one (Koala's `users`, datahub's `receiver`, a
 * topic message's `receiver`, GraphQL's `to`): blanks (any Unicode white space, the ideographic space
 * too), commas and semicolons, ASCII and full-width (`，` `；`), and the enumeration comma `、` a Chinese
 * input method types between names. "jiangxiaoyu，zhouyang" is two users, never one no ticket is issued for.
 */
const USER_LIST_SEPARATOR = /[\s,;\uFF0C\uFF1B\u3001]/;
const USER_LIST_SEPARATORS = new RegExp(`${USER_LIST_SEPARATOR.source}+`);

/** The user ids of a list (see USER_LIST_SEPARATOR), in order, empty entries dropped; the one splitter of user lists. */
export function splitUserList(list: string): string[] {
  return list.split(USER_LIST_SEPARATORS).filter((userId) => userId.length > 0);
}

/**
 * A user id tickets are issued for: 1-128 characters of text with no list separator (USER_LIST_SEPARATOR),
 * so every list splits back into the ids it was made of. A message to anything else could never be received.
 */
export function isUserId(userId: string): boolean {
  return (
    userId.length > 0 &&
    characterCount(userId) <= USER_ID_MAX &&
    !USER_LIST_SEPARATOR.test(userId) &&
    isStorableText(userId)
  );
}

export interface IssueTicket {
  readonly type: 'IssueTicket';
  readonly ticketId: string;
  readonly appId: string;
  readonly userId: string;
  readonly roles: readonly string[];
  readonly issuedAt: string;
  readonly expiresAt: string;
}
export type TicketCommand = IssueTicket;
export type TicketState = { readonly issued: boolean };

export const ticketStreamName = (ticketId: string) => `ticket-${ticketId}`;

export const ticketDecider: Decider<TicketCommand, TicketEvent, TicketState> = {
  initialState: () => ({ issued: false }),
  evolve: () => ({ issued: true }),
  decide(command, state) {
    switch (command.type) {
      case 'IssueTicket':
        if (state.issued) return [];
        return [
          {
            type: 'TicketIssued',
            data: {
              ticketId: command.ticketId,
              appId: command.appId,
              userId: command.userId,
              roles: [...command.roles],
              issuedAt: command.issuedAt,
              expiresAt: command.expiresAt,
            },
          },
        ];
      default:
        return unreachable(command.type);
    }
  },
};
