import { expect } from 'chai';
import { graphql, MESSAGE_FIELDS, type PushedMessage } from './graphqlClient';

/** Whom a ticket speaks for, as GraphQL `me` answers it. */
export interface TicketViewer {
  appId: string;
  userId: string;
  roles: string[];
  ticketExpiresAt: string;
}

/** The viewer of `ticket` (GraphQL `me`); fails the test if herald refuses the ticket. */
export async function viewerOf(baseUrl: string, ticket: string): Promise<TicketViewer> {
  const { data, errors } = await graphql<{ me: TicketViewer }>(
    baseUrl,
    ticket,
    '{ me { appId userId roles ticketExpiresAt } }',
  );
  expect(errors, 'the me query').to.equal(undefined);
  return data!.me;
}

/** A Koala message in a user's inbox, as GraphQL `notifications` lists it. */
export interface InboxMessage extends PushedMessage {
  acknowledged: boolean;
}

/** The user's Koala messages, newest first, up to 50 (GraphQL `notifications`, type "koala"). */
export async function koalaInboxOf(baseUrl: string, ticket: string): Promise<{ total: number; nodes: InboxMessage[] }> {
  const query = `{ notifications(first: 50, type: "koala") { total nodes { ${MESSAGE_FIELDS} acknowledged } } }`;
  const { data, errors } = await graphql<{ notifications: { total: number; nodes: InboxMessage[] } }>(
    baseUrl,
    ticket,
    query,
  );
  expect(errors, 'the notifications query').to.equal(undefined);
  return data!.notifications;
}
