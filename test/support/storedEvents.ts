import { expect } from 'chai';
import { graphql } from './graphqlClient';

/** An event as the public `events` query shows it (docs/analysts.md, "Over GraphQL"). */
export interface StoredEvent {
  position: string;
  stream: string;
  revision: string;
  type: string;
  time: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

export interface StoredEventsFilter {
  /** A stream name prefix, as the query takes it. */
  readonly stream?: string;
  readonly types?: readonly string[];
  /** A position: only the events after it. */
  readonly after?: string;
}

const EVENTS = `query($after: String, $types: [String!], $stream: String) {
  events(after: $after, first: 100, types: $types, stream: $stream) {
    nodes { position stream revision type time data metadata }
    pageInfo { endCursor hasNextPage }
  }
}`;
type Page = { events: { nodes: StoredEvent[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } } };

/**
 * Every event of the admin's app that passes `filter`, oldest first, read page by page through GraphQL
 * `events`: how an e2e test sees what herald recorded (`adminTicket` is a ticket with role admin).
 */
export async function storedEvents(
  baseUrl: string,
  adminTicket: string,
  filter: StoredEventsFilter = {},
): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  for (let after = filter.after; ;) {
    const { data, errors } = await graphql<Page>(baseUrl, adminTicket, EVENTS, {
      ...(filter.stream !== undefined && { stream: filter.stream }),
      ...(filter.types !== undefined && { types: filter.types }),
      ...(after !== undefined && { after }),
    });
    expect(errors, 'the events query').to.equal(undefined);
    events.push(...data!.events.nodes);
    const { endCursor, hasNextPage } = data!.events.pageInfo;
    if (!hasNextPage || endCursor === null) return events;
    after = endCursor;
  }
}

/** One stream's events, in order (`stream` is the exact name; the query's filter is a prefix). */
export async function streamEvents(baseUrl: string, adminTicket: string, stream: string): Promise<StoredEvent[]> {
  return (await storedEvents(baseUrl, adminTicket, { stream })).filter((event) => event.stream === stream);
}

/** The types of one stream's events, in order. */
export async function streamEventTypes(baseUrl: string, adminTicket: string, stream: string): Promise<string[]> {
  return (await streamEvents(baseUrl, adminTicket, stream)).map((event) => event.type);
}
