import { expect } from 'chai';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { eventually } from '../support/eventually';
import { graphql, GraphqlSocket, type GraphqlResponse } from '../support/graphqlClient';
import { issueTicket, startTestHerald } from '../support/herald';
import { sendMessage } from '../support/sendMessage';
import type { StoredEvent } from '../support/storedEvents';

// The analysts' GraphQL (docs/analysts.md, "Over GraphQL"): an admin pages through and tails the app's
// events as the store holds them; nobody else gets anything.

const FIELDS = 'position stream revision type time data metadata';
const EVENTS = `query($after: String, $first: Int, $types: [String!], $stream: String, $appId: String) {
  events(after: $after, first: $first, types: $types, stream: $stream, appId: $appId) { nodes { ${FIELDS} } pageInfo { endCursor hasNextPage } }
}`;
const TAIL = `subscription($after: String, $types: [String!], $stream: String, $appId: String) {
  events(after: $after, types: $types, stream: $stream, appId: $appId) { ${FIELDS} }
}`;

type EventNode = StoredEvent;
type Page = { events: { nodes: EventNode[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } } };
type Tailed = { events: EventNode };

describe('GraphQL: the events query and subscription (analysts)', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let admin: string;
  const sockets: GraphqlSocket[] = [];

  before(async () => {
    test = await startTestHerald();
    admin = await issueTicket(test.url, 'analyst', 'admin');
  });
  afterEach(async () => {
    await Promise.all(sockets.splice(0).map((s) => s.close()));
  });
  after(() => test?.stop());

  const APP_SECRETS: Record<string, string> = { camel: 'EERWERRRRE', other: 'other-secret' };
  const tickets = new Map<string, Promise<string>>();
  const ticketOf = (userId: string, appId: string) => {
    const key = `${appId}/${userId}`;
    if (!tickets.has(key)) tickets.set(key, issueTicket(test.url, userId, '', appId, APP_SECRETS[appId]));
    return tickets.get(key)!;
  };
  let sent = 0;
  const send = async (from: string, appId = 'camel') => ({
    id: await sendMessage(test.url, await ticketOf(from, appId), {
      to: ['reader'],
      title: `t${++sent}`,
      content: 'analysts',
    }),
  });

  /**
   * What the store holds for the app (the expected answer), in position order. The events query is
   * what is under test here, so the store itself is the oracle, as the replay CLI's test reads the table.
   */
  async function storedEventsOf(appId: string, after = -1n): Promise<RecordedEvent[]> {
    const all: RecordedEvent[] = [];
    for (let cursor = -1n; ;) {
      const page = await test.herald.infrastructure.store.readAll({
        ...(cursor >= 0n && { after: cursor }),
        maxCount: 1000,
      });
      all.push(...page);
      if (page.length < 1000) break;
      cursor = page[page.length - 1]!.position;
    }
    return all.filter((e) => e.metadata.appId === appId && e.position > after);
  }

  const codeOf = (response: { errors?: Array<{ extensions?: { code?: string } }> }) =>
    response.errors?.[0]?.extensions?.code;
  const open = () => {
    const socket = GraphqlSocket.connect(test.url, { ticket: admin });
    sockets.push(socket);
    return socket;
  };

  it("pages through exactly the app's events, oldest first, with the fields of a replay line", async () => {
    for (let i = 0; i < 4; i++) {
      await send('pager');
      await send('pager', 'other');
    }
    const expected = await storedEventsOf('camel');
    expect(expected.length).to.be.at.least(5);

    const seen: EventNode[] = [];
    let after: string | null = null;
    for (let pages = 0; ; pages++) {
      expect(pages, 'pages').to.be.below(100);
      const response: GraphqlResponse<Page> = await graphql<Page>(test.url, admin, EVENTS, {
        first: 3,
        ...(after !== null && { after }),
      });
      expect(response.errors).to.equal(undefined);
      const { nodes, pageInfo } = response.data!.events;
      expect(nodes.length).to.be.at.most(3);
      seen.push(...nodes);
      if (!pageInfo.hasNextPage) break;
      after = pageInfo.endCursor;
    }
    expect(seen.map((e) => e.position)).to.deep.equal(expected.map((e) => e.position.toString()));
    const last = expected[expected.length - 1]!;
    expect(seen[seen.length - 1]).to.deep.equal({
      position: last.position.toString(),
      stream: last.streamName,
      revision: last.revision.toString(),
      type: last.type,
      time: last.createdAt.toISOString(),
      data: last.data,
      metadata: last.metadata,
    });
    expect(seen.every((e) => e.metadata.appId === 'camel')).to.equal(true);
  });

  it('filters by exact types and by stream prefix', async () => {
    const { id: messageId } = await send('filterer');
    const byType = await graphql<Page>(test.url, admin, EVENTS, { first: 100, types: ['MessageSent'] });
    const expectedSent = (await storedEventsOf('camel')).filter((e) => e.type === 'MessageSent');
    expect(byType.data!.events.nodes.map((e) => e.position)).to.deep.equal(
      expectedSent.map((e) => e.position.toString()),
    );
    // A prefix of a type is not a type.
    expect((await graphql<Page>(test.url, admin, EVENTS, { types: ['MessageSen'] })).data!.events.nodes).to.deep.equal(
      [],
    );

    const byStream = await graphql<Page>(test.url, admin, EVENTS, { first: 100, stream: `message-${messageId}` });
    expect(byStream.data!.events.nodes.map((e) => e.stream)).to.deep.equal([`message-${messageId}`]);
  });

  it('refuses anyone but an admin of the app: FORBIDDEN and nothing else', async () => {
    const user = await issueTicket(test.url, 'not-an-analyst');
    for (const variables of [{}, { after: 'not a position' }, { appId: 'camel' }]) {
      const refused = await graphql<Page>(test.url, user, EVENTS, variables);
      expect(codeOf(refused), JSON.stringify(variables)).to.equal('FORBIDDEN');
      expect(refused.data ?? null).to.equal(null);
    }
    expect(codeOf(await graphql(test.url, admin, EVENTS, { appId: 'other' }))).to.equal('FORBIDDEN');
    expect(codeOf(await graphql(test.url, undefined, EVENTS, {}))).to.equal('UNAUTHENTICATED');

    const socket = GraphqlSocket.connect(test.url, { ticket: user });
    sockets.push(socket);
    const tail = socket.subscribe<Tailed>(TAIL, {});
    await socket.until(() => tail.completed, 'the refusal');
    expect(tail.errors.map((e) => e.extensions?.code)).to.deep.equal(['FORBIDDEN']);
    expect(tail.results).to.deep.equal([]);
    const otherApp = open().subscribe<Tailed>(TAIL, { appId: 'other' });
    await eventually(() => expect(otherApp.errors.map((e) => e.extensions?.code)).to.deep.equal(['FORBIDDEN']));
  });

  it('answers bad arguments with BAD_USER_INPUT', async () => {
    const cases: Array<Record<string, unknown>> = [
      { after: 'abc' },
      { after: '-1' },
      { after: '99999999999999999999' },
      { after: '987654321' }, // no event's position
      { first: 0 },
      { first: 101 },
      { types: Array.from({ length: 33 }, (_, i) => `Type${i}`) },
      { types: [''] },
      { stream: '' },
      { stream: 'x'.repeat(257) },
      { stream: 'a\u0000b' },
    ];
    for (const variables of cases)
      expect(codeOf(await graphql(test.url, admin, EVENTS, variables)), JSON.stringify(variables)).to.equal(
        'BAD_USER_INPUT',
      );
    const tail = open().subscribe<Tailed>(TAIL, { after: '987654321' });
    await eventually(() => expect(tail.errors.map((e) => e.extensions?.code)).to.deep.equal(['BAD_USER_INPUT']));
  });

  it('tails from a cursor while writers append: every event of the app once, in order', async () => {
    // A history to catch up on: the cursor is in the middle of it.
    for (let i = 0; i < 10; i++) await send('early');
    const history = await storedEventsOf('camel');
    const cursor = history[history.length - 5]!.position;
    const tail = open().subscribe<Tailed>(TAIL, { after: cursor.toString() });
    // Writers of both apps, side by side, while the tail catches up and goes live.
    await Promise.all(
      ['w1', 'w2', 'w3', 'w4'].map(async (writer, index) => {
        for (let i = 0; i < 15; i++) await send(writer, index % 2 === 0 ? 'camel' : 'other');
      }),
    );
    const expected = (await storedEventsOf('camel', cursor)).map((e) => e.position.toString());
    expect(expected.length).to.be.at.least(34);
    await eventually(() => expect(tail.results.length).to.be.at.least(expected.length), { timeoutMs: 20_000 });
    expect(tail.errors).to.deep.equal([]);
    expect(tail.results.map((r) => r.events.position)).to.deep.equal(expected);
  });

  it('without a cursor starts at the newest event', async () => {
    await send('before-tail');
    const head = await test.herald.infrastructure.store.headPosition();
    const tail = open().subscribe<Tailed>(TAIL, { types: ['MessageSent'] });
    // The tail takes the head when it starts; keep sending until one arrives.
    await eventually(
      async () => {
        await send('after-tail');
        expect(tail.results.length).to.be.at.least(1);
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    expect(tail.results.every((r) => BigInt(r.events.position) > head && r.events.type === 'MessageSent')).to.equal(
      true,
    );
  });

  it('holds at most 8 tails per app at once, and frees a slot when one stops', async () => {
    const socket = open();
    const tails = Array.from({ length: 8 }, () => socket.subscribe<Tailed>(TAIL, { types: ['MessageSent'] }));
    await eventually(
      async () => {
        await send('slots');
        expect(tails.every((t) => t.results.length > 0)).to.equal(true);
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    const ninth = socket.subscribe<Tailed>(TAIL, {});
    await socket.until(() => ninth.completed, 'the ninth tail refused');
    expect(ninth.errors.map((e) => e.extensions?.code)).to.deep.equal(['TOO_MANY_SUBSCRIPTIONS']);

    tails[0]!.stop();
    await eventually(
      async () => {
        // From a cursor, so the message sent next reaches it however soon the tail starts.
        const head = await test.herald.infrastructure.store.headPosition();
        const again = socket.subscribe<Tailed>(TAIL, { types: ['MessageSent'], after: head.toString() });
        await send('slots');
        await socket.until(() => again.results.length > 0 || again.completed, 'a tail in the freed slot');
        expect(again.errors).to.deep.equal([]);
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    );
  });
});
