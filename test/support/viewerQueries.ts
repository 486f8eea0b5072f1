import { expect } from 'chai';
import { graphql } from './graphqlClient';

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
export interface InboxMessage {
  id: string;
  seq: string;
  title: string;
  content: string;
  sender: string;
  sentAt: string;
  expiresAt: string | null;
  props: Record<string, string> | null;
  acknowledged: boolean;
  meta: { realm: string; seq: string; sender: string; stime: string };
}

/** The user's Koala messages, newest first, up to 50 (GraphQL `notifications`, type "koala"). */
export async function koalaInboxOf(baseUrl: string, ticket: string): Promise<{ total: number; nodes: InboxMessage[] }> {
  const { data, errors } = await graphql<{ notifications: { total: number; nodes: InboxMessage[] } }>(
    baseUrl,
    ticket,
    `
      {
        notifications(first: 50, type: "koala") {
          total
          nodes {
            id
            seq
            title
            content
            sender
            sentAt
            expiresAt
            props
            acknowledged
            meta {
              realm
              seq
              sender
              stime
            }
          }
        }
      }
    `,
  );
  expect(errors, 'the notifications query').to.equal(undefined);
  return data!.notifications;
}
