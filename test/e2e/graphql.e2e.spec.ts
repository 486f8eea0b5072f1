import { expect } from 'chai';
import { appendedEvents, appendedSince, TEST_METRICS_TOKEN } from '../support/appendedEvents';
import { eventually } from '../support/eventually';
import { graphql, GraphqlSocket, Terminal } from '../support/graphqlClient';
import { postForm, startTestHerald } from '../support/herald';
import { sendMessages } from '../support/sendMessage';

const NOTIFICATIONS = `query Inbox($first: Int, $after: String, $unreadOnly: Boolean) {
  notifications(first: $first, after: $after, unreadOnly: $unreadOnly) {
    total
    nodes { id seq type title content sender sentAt read acknowledged meta { realm seq sender stime } }
    pageInfo { endCursor hasNextPage }
  }
}`;

type Inbox = {
  notifications: {
    total: number;
    nodes: Array<{
      id: string;
      seq: string;
      title: string;
      sender: string;
      read: boolean;
      acknowledged: boolean;
      meta: { realm: string; seq: string };
    }>;
    pageInfo: { endCursor: string | null; hasNextPage: boolean };
  };
};

describe('GraphQL API over HTTP and graphql-ws', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  const terminals: Terminal[] = [];

  before(async () => {
    test = await startTestHerald({ metricsToken: TEST_METRICS_TOKEN });
  });
  afterEach(async () => {
    await Promise.all(terminals.splice(0).map((t) => t.close()));
  });
  after(() => test?.stop());

  async function ticketFor(userId: string, app = 'camel', secret = 'EERWERRRRE'): Promise<string> {
    const { body } = await postForm(`${test.url}/koala/api/mas/tickets`, {
      app_key: app,
      secret_key: secret,
      user_id: userId,
    });
    return body.result as string;
  }

  function connect(params: Record<string, unknown>): Terminal {
    const terminal = Terminal.connect(test.url, params);
    terminals.push(terminal);
    return terminal;
  }

  /** Subscribed means: a message sent now reaches it. Probe with a message from a helper sender. */
  async function subscribed(terminal: Terminal, userId: string): Promise<void> {
    const probe = await ticketFor('probe-sender');
    const count = terminal.received.length;
    await eventually(async () => {
      await graphql(
        test.url,
        probe,
        'mutation($to: [String!]!) { sendMessage(input: { to: $to, title: "probe", content: "p" }) { id } }',
        { to: [userId] },
      );
      await terminal.until((t) => t.received.length > count, 'probe', 1000);
    });
  }

  it('refuses requests without a valid ticket: HTTP 401 UNAUTHENTICATED, graphql-ws closed with 4403', async () => {
    const anonymous = await graphql(test.url, undefined, '{ me { userId } }');
    expect(anonymous.status).to.equal(401);
    expect(anonymous.errors?.[0]?.extensions?.code).to.equal('UNAUTHENTICATED');
    const forged = await graphql(test.url, 'forged.ticket', '{ me { userId } }');
    expect(forged.status).to.equal(401);

    const terminal = connect({ ticket: 'forged.ticket' });
    await terminal.until((t) => t.closedWith !== undefined, 'the socket to close');
    expect(terminal.closedWith).to.equal(4403);
  });

  it('send via REST → the subscriber gets it (Koala meta) → notifications lists it → ack via REST → acknowledged', async () => {
    const receiver = await ticketFor('jiangxiaoyu');
    const sender = await ticketFor('zhangbin');
    const terminal = connect({ ticket: receiver });
    await subscribed(terminal, 'jiangxiaoyu');
    const before = terminal.received.length;

    const sent = await postForm(
      `${test.url}/koala/api/mas/messages`,
      `ticket=${encodeURIComponent(sender)}&users=jiangxiaoyu,zhouyang&title="system upgrade"&content="system patching 20:21"`,
    );
    expect(sent.body.status).to.equal(0);
    await terminal.until((t) => t.received.length > before, 'the push');
    const pushed = terminal.received[before]!;
    expect(pushed).to.include({
      id: sent.body.result,
      title: 'system upgrade',
      content: 'system patching 20:21',
      sender: 'zhangbin',
    });
    expect(pushed.meta).to.deep.equal({ realm: 'camel', seq: pushed.seq, sender: 'zhangbin', stime: pushed.sentAt });

    // Pushed after the projection commit: a query right after the push already lists it.
    const inbox = await graphql<Inbox>(test.url, receiver, NOTIFICATIONS, { first: 5 });
    const listed = inbox.data!.notifications.nodes.find((n) => n.id === pushed.id);
    expect(listed).to.include({ seq: pushed.seq, title: 'system upgrade', read: false, acknowledged: false });

    const acked = await postForm(`${test.url}/koala/api/mas/messages/ack`, { ticket: receiver, sids: pushed.seq });
    expect(acked.body).to.include({ status: 0, result: 1 });
    await eventually(async () => {
      const after = await graphql<Inbox>(test.url, receiver, NOTIFICATIONS, { first: 5 });
      expect(after.data!.notifications.nodes.find((n) => n.id === pushed.id)).to.include({
        read: true,
        acknowledged: true,
      });
    });
  });

  it('sendMessage and acknowledge mutations; a requestId sends once; other users and apps are refused', async () => {
    const sender = await ticketFor('zhangbin');
    const receiver = await ticketFor('li4');
    const send = (requestId: string) =>
      graphql<{ sendMessage: { id: string; sender: string; sentAt: string; props: unknown; meta: null } }>(
        test.url,
        sender,
        `
          mutation ($input: SendMessageInput!) {
            sendMessage(input: $input) {
              id
              sender
              sentAt
              props
              meta {
                seq
              }
            }
          }
        `,
        { input: { to: ['li4'], title: 'hello', content: 'from GraphQL', props: { kind: 'greeting' }, requestId } },
      );
    const first = await send('req-1');
    const again = await send('req-1');
    expect(first.errors).to.equal(undefined);
    expect(first.data!.sendMessage).to.include({ sender: 'zhangbin' });
    expect(first.data!.sendMessage.props).to.deep.equal({ kind: 'greeting' });
    expect(again.data!.sendMessage.id).to.equal(first.data!.sendMessage.id);

    const inbox = await eventually(async () => {
      const page = await graphql<Inbox>(test.url, receiver, NOTIFICATIONS, {});
      expect(page.data!.notifications.total).to.equal(1);
      return page;
    });
    const id = inbox.data!.notifications.nodes[0]!.id;

    const stranger = await graphql(
      test.url,
      await ticketFor('stranger'),
      'mutation($ids: [ID!]!) { acknowledge(ids: $ids) }',
      { ids: [id] },
    );
    expect(stranger.errors?.[0]?.extensions?.code).to.equal('FORBIDDEN');
    const otherApp = await graphql(
      test.url,
      await ticketFor('li4', 'other', 'other-secret'),
      'mutation($ids: [ID!]!) { acknowledge(ids: $ids) }',
      { ids: [id] },
    );
    expect(otherApp.errors?.[0]?.extensions?.code).to.equal('NOT_FOUND');
    const otherInbox = await graphql<Inbox>(
      test.url,
      await ticketFor('li4', 'other', 'other-secret'),
      NOTIFICATIONS,
      {},
    );
    expect(otherInbox.data!.notifications.total, 'another app sees nothing').to.equal(0);

    const ack = (ids: string[]) =>
      graphql<{ acknowledge: number }>(test.url, receiver, 'mutation($ids: [ID!]!) { acknowledge(ids: $ids) }', {
        ids,
      });
    // An unknown id beside it: the message is acknowledged all the same, the unknown one named.
    const unknownId = '00000000-0000-4000-8000-000000000000';
    const mixed = await ack([id, unknownId, 'not-an-id']);
    expect(mixed.errors?.[0]?.extensions).to.deep.equal({
      code: 'NOT_FOUND',
      acknowledged: 1,
      refused: ['not-an-id', unknownId],
    });
    expect(mixed.errors?.[0]?.message).to.equal(
      `1 acknowledged; refused no message delivered to you: "not-an-id", "${unknownId}"`,
    );
    expect((await ack([id])).data!.acknowledge).to.equal(0);

    const invalid = await graphql(
      test.url,
      sender,
      'mutation { sendMessage(input: { to: [], title: "t", content: "c" }) { id } }',
    );
    expect(invalid.errors?.[0]?.extensions?.code).to.equal('BAD_USER_INPUT');
  });

  it('a reconnecting terminal with connectionParams.since gets what it missed, in order, then live ones', async () => {
    const receiver = await ticketFor('wang5');
    const sender = await ticketFor('zhangbin');
    const first = connect({ ticket: receiver });
    await subscribed(first, 'wang5');
    const lastSeen = first.received[first.received.length - 1]!.seq;
    await first.close();

    const sendTo = (title: string, extra: Record<string, string> = {}) =>
      postForm(`${test.url}/koala/api/mas/messages`, { ticket: sender, users: 'wang5', title, content: 'c', ...extra });
    for (const title of ['missed 1', 'missed 2', 'missed 3']) await sendTo(title);
    await sendTo('expired before reconnect', { expire: '2' });
    const titles = async () =>
      (await graphql<Inbox>(test.url, receiver, NOTIFICATIONS, { first: 10 })).data!.notifications.nodes.map(
        (n) => n.title,
      );
    await eventually(async () =>
      expect(await titles())
        .to.include('missed 3')
        .and.include('expired before reconnect'),
    );
    await eventually(async () => expect(await titles()).not.to.include('expired before reconnect'), {
      timeoutMs: 10_000,
    });

    const second = connect({ ticket: receiver, since: lastSeen });
    await second.until((t) => t.received.length >= 3, 'the missed messages');
    expect(second.received.map((m) => m.title)).to.deep.equal(['missed 1', 'missed 2', 'missed 3']);
    await sendTo('live');
    await second.until((t) => t.received.length >= 4, 'the live message');
    expect(second.received.map((m) => m.title)).to.deep.equal(['missed 1', 'missed 2', 'missed 3', 'live']);

    const bad = connect({ ticket: receiver, since: 'yesterday' });
    await bad.until((t) => t.errors.length > 0, 'an error');
    expect(JSON.stringify(bad.errors)).to.include('BAD_USER_INPUT');
  });

  // Issue 22: Koala's pages know no seq; a first connect asks for what is pending with connectionParams.pending.
  it('a first connect with connectionParams.pending gets the unacknowledged, unexpired messages, oldest first, then live ones; without it only live ones', async () => {
    const receiver = await ticketFor('offline_gql');
    const sender = await ticketFor('zhangbin');
    // The seed's send (3.2) as its example writes it: tickets=…&users=…&title=…&content=…
    const sendTo = async (title: string, extra = '') => {
      const { body } = await postForm(
        `${test.url}/koala/api/mas/messages`,
        `tickets=${sender}&users=offline_gql&title=${title}&content=system patching 20:21${extra}`,
      );
      expect(body.status, JSON.stringify(body)).to.equal(0);
    };
    await sendTo('pending 1');
    await sendTo('acknowledged');
    await sendTo('expired', '&expire=1');
    await sendTo('pending 2');
    const inbox = async () =>
      (await graphql<Inbox>(test.url, receiver, NOTIFICATIONS, { first: 10 })).data!.notifications.nodes;
    await eventually(async () => expect((await inbox()).map((n) => n.title)).to.include('pending 2'));
    const acknowledged = (await inbox()).find((n) => n.title === 'acknowledged')!;
    expect(
      (
        await graphql<{ acknowledge: number }>(
          test.url,
          receiver,
          'mutation($ids: [ID!]!) { acknowledge(ids: $ids) }',
          { ids: [acknowledged.id] },
        )
      ).data!.acknowledge,
    ).to.equal(1);
    await eventually(async () => expect((await inbox()).map((n) => n.title)).not.to.include('expired'), {
      timeoutMs: 10_000,
    });

    const pending = connect({ ticket: receiver, pending: true });
    await pending.until((t) => t.received.length >= 2, 'the pending messages');
    expect(pending.received.map((m) => m.title)).to.deep.equal(['pending 1', 'pending 2']);
    const liveOnly = connect({ ticket: receiver });
    await subscribed(liveOnly, 'offline_gql'); // its probes reach both
    await sendTo('live');
    await pending.until((t) => t.received.some((m) => m.title === 'live'), 'the live message');
    await liveOnly.until((t) => t.received.some((m) => m.title === 'live'), 'the live message');
    const titles = (terminal: Terminal) => terminal.received.map((m) => m.title).filter((title) => title !== 'probe');
    expect(titles(pending)).to.deep.equal(['pending 1', 'pending 2', 'live']);
    expect(titles(liveOnly), 'no pending without the flag').to.deep.equal(['live']);

    const bad = connect({ ticket: receiver, pending: 'yes' });
    await bad.until((t) => t.errors.length > 0, 'an error');
    expect(JSON.stringify(bad.errors)).to.include('BAD_USER_INPUT');
  });

  it('answers REPLAY_LIMIT_EXCEEDED when more than 500 messages were missed; a first connect with pending gets the newest 500 of them', async () => {
    const receiver = await ticketFor('backlog');
    const sender = await ticketFor('bulk-sender');
    await sendMessages(
      test.url,
      sender,
      Array.from({ length: 501 }, (_, i) => ({ to: ['backlog'], title: `b${i}`, content: 'c' })),
    );
    await eventually(
      async () =>
        expect(
          (await graphql<Inbox>(test.url, receiver, NOTIFICATIONS, { first: 1 })).data!.notifications.total,
        ).to.equal(501),
      {
        timeoutMs: 30_000,
      },
    );
    const terminal = connect({ ticket: receiver, since: '0' });
    await terminal.until((t) => t.errors.length > 0, 'the error');
    expect(JSON.stringify(terminal.errors)).to.include('REPLAY_LIMIT_EXCEEDED');
    expect(terminal.received).to.have.length(0);

    const first = connect({ ticket: receiver, pending: true });
    await first.until((t) => t.received.length >= 500, 'the newest 500 pending', 30_000);
    expect(first.received.map((m) => m.title)).to.deep.equal(Array.from({ length: 500 }, (_, i) => `b${i + 1}`));
    expect(first.errors).to.deep.equal([]);
  });

  it('a scheduled message reaches the terminal not before `execute`', async () => {
    const receiver = await ticketFor('zhao6');
    const terminal = connect({ ticket: receiver });
    await subscribed(terminal, 'zhao6');
    const before = terminal.received.length;
    const execute = Math.floor(Date.now() / 1000) + 2;
    const sent = await graphql<{ sendMessage: { scheduledFor: string; sentAt: null } }>(
      test.url,
      await ticketFor('zhangbin'),
      'mutation($execute: Int) { sendMessage(input: { to: ["zhao6"], title: "at execute", content: "c", execute: $execute }) { scheduledFor sentAt } }',
      { execute },
    );
    expect(sent.data!.sendMessage).to.deep.equal({
      scheduledFor: new Date(execute * 1000).toISOString(),
      sentAt: null,
    });
    await terminal.until((t) => t.received.length > before, 'the scheduled message', 15_000);
    const arrived = terminal.received[before]!;
    expect(arrived.title).to.equal('at execute');
    expect(arrived.receivedAt).to.be.at.least(execute * 1000);
    expect(Date.parse(arrived.sentAt)).to.be.at.least(execute * 1000);
  });

  it('pages the inbox with a cursor and filters unread; bounds `first` and query complexity', async () => {
    const sender = await ticketFor('zhangbin');
    const receiver = await ticketFor('pager');
    for (let i = 1; i <= 5; i++)
      await postForm(`${test.url}/koala/api/mas/messages`, {
        ticket: sender,
        users: 'pager',
        title: `m${i}`,
        content: 'c',
      });
    await eventually(async () =>
      expect((await graphql<Inbox>(test.url, receiver, NOTIFICATIONS, {})).data!.notifications.total).to.equal(5),
    );

    const page1 = await graphql<Inbox>(test.url, receiver, NOTIFICATIONS, { first: 2 });
    expect(page1.data!.notifications.nodes.map((n) => n.title)).to.deep.equal(['m5', 'm4']);
    expect(page1.data!.notifications.pageInfo.hasNextPage).to.equal(true);
    const page2 = await graphql<Inbox>(test.url, receiver, NOTIFICATIONS, {
      first: 10,
      after: page1.data!.notifications.pageInfo.endCursor,
    });
    expect(page2.data!.notifications.nodes.map((n) => n.title)).to.deep.equal(['m3', 'm2', 'm1']);
    expect(page2.data!.notifications.pageInfo.hasNextPage).to.equal(false);

    await graphql(test.url, receiver, 'mutation($ids: [ID!]!) { acknowledge(ids: $ids) }', {
      ids: [page1.data!.notifications.nodes[0]!.id],
    });
    await eventually(async () => {
      const unread = await graphql<Inbox>(test.url, receiver, NOTIFICATIONS, { unreadOnly: true });
      expect(unread.data!.notifications.nodes.map((n) => n.title)).to.deep.equal(['m4', 'm3', 'm2', 'm1']);
    });

    const tooMany = await graphql(test.url, receiver, NOTIFICATIONS, { first: 101 });
    expect(tooMany.errors?.[0]?.extensions?.code).to.equal('BAD_USER_INPUT');
    const badCursor = await graphql(test.url, receiver, NOTIFICATIONS, { after: 'bm9wZQ' });
    expect(badCursor.errors?.[0]?.extensions?.code).to.equal('BAD_USER_INPUT');
    const fullPage = `notifications(first: 100) { total nodes { id seq type title content sender sentAt expiresAt props read acknowledged meta { realm seq sender stime } } pageInfo { endCursor hasNextPage } }`;
    expect((await graphql(test.url, receiver, `{ ${fullPage} }`)).errors).to.equal(undefined);
    const heavy = await graphql(test.url, receiver, `{ a: ${fullPage} b: ${fullPage} c: ${fullPage} }`);
    expect(heavy.errors?.[0]?.extensions?.code).to.equal('QUERY_TOO_COMPLEX');
  });

  it('two concurrent sends with one requestId answer the same, stored message (20 of 20 pairs)', async () => {
    const ticket = await ticketFor('twice');
    const receiver = await ticketFor('twice-receiver');
    const SEND = 'mutation($i: SendMessageInput!) { sendMessage(input: $i) { id title content } }';
    type Sent = { sendMessage: { id: string; title: string; content: string } };
    for (let pair = 0; pair < 20; pair++) {
      const requestId = `pair-${pair}`;
      const [a, b] = await Promise.all(
        ['first', 'second'].map((title) =>
          graphql<Sent>(test.url, ticket, SEND, { i: { to: ['twice-receiver'], title, content: title, requestId } }),
        ),
      );
      expect(a!.errors ?? b!.errors).to.equal(undefined);
      expect(a!.data).to.deep.equal(b!.data);
      const inbox = await graphql<Inbox>(test.url, receiver, NOTIFICATIONS, { first: 1 });
      expect(inbox.data!.notifications.total).to.equal(pair + 1);
      expect(inbox.data!.notifications.nodes[0]).to.include({
        id: a!.data!.sendMessage.id,
        title: a!.data!.sendMessage.title,
      });
    }
  });

  it('refuses fragment cycles and huge operations with a 400 and a clear error, never a 500', async () => {
    const ticket = await ticketFor('limits');
    const cycle = await graphql(test.url, ticket, '{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }');
    expect(cycle.status).to.equal(400);
    expect(cycle.errors?.[0]?.message).to.match(/Cannot spread fragment "A" within itself/);

    // More tokens than herald parses (MAX_TOKENS): refused before the parser builds the document.
    const huge = await graphql(
      test.url,
      ticket,
      `{ ${Array.from({ length: 12_000 }, (_, i) => `a${i}: me { userId }`).join(' ')} }`,
    );
    expect(huge.status).to.be.within(400, 499);
    expect(huge.errors?.[0]?.extensions?.code).to.equal('QUERY_TOO_COMPLEX');

    // The same operation twice: parsed and statically validated once, answered the same.
    const again = await graphql(test.url, ticket, '{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }');
    expect(again).to.deep.equal(cycle);
  });

  it('answers bad requests as BAD_REQUEST / BAD_USER_INPUT in its envelope, appending nothing', async () => {
    const ticket = await ticketFor('hardened');
    const before = await appendedEvents(test.url);
    const post = async (body: string) => {
      const response = await fetch(`${test.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ticket}` },
        body,
      });
      const text = await response.text();
      expect(text).not.to.match(/<html|node_modules|\/work\//i);
      return {
        status: response.status,
        body: JSON.parse(text) as { errors?: Array<{ message: string; extensions: { code: string } }> },
      };
    };
    const codeOf = (answer: { body: { errors?: Array<{ extensions: { code: string } }> } }) =>
      answer.body.errors?.[0]?.extensions.code;

    const malformed = await post('{bad');
    expect([malformed.status, codeOf(malformed)]).to.deep.equal([400, 'BAD_REQUEST']);
    const huge = await post(JSON.stringify({ query: `{ me { userId } } # ${'x'.repeat(300 * 1024)}` }));
    expect([huge.status, codeOf(huge)]).to.deep.equal([413, 'BAD_REQUEST']);
    expect(codeOf(await post('{"query": null}'))).to.equal('BAD_REQUEST');
    expect(codeOf(await post('[{"query": "{ me { userId } }"}]'))).to.equal('BAD_REQUEST');
    const wrongType = await post(
      JSON.stringify({ query: 'query($f: Int) { notifications(first: $f) { total } }', variables: { f: 'many' } }),
    );
    expect(codeOf(wrongType)).to.equal('BAD_USER_INPUT');
    const unknownField = await post(
      JSON.stringify({
        query: 'mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }',
        variables: { i: { to: ['x'], title: 't', content: 'c', colour: 'red' } },
      }),
    );
    expect(codeOf(unknownField)).to.equal('BAD_USER_INPUT');

    const send = (title: string, content = 'c') =>
      graphql(test.url, ticket, 'mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }', {
        i: { to: ['x'], title, content },
      });
    for (const bad of [
      send('nul \u0000'),
      send('t', 'escape \u001b[31m'),
      send('t', 'half \ud800 a pair'),
      send('t', ''),
    ]) {
      expect((await bad).errors?.[0]?.extensions?.code).to.equal('BAD_USER_INPUT');
    }
    const pastInt64 = Buffer.from('seq:9223372036854775808').toString('base64url');
    const cursor = await graphql(test.url, ticket, NOTIFICATIONS, { after: pastInt64 });
    expect(cursor.errors?.[0]?.extensions?.code).to.equal('BAD_USER_INPUT');
    expect(await appendedSince(test.url, before), 'nothing appended').to.deep.equal({});
    // The counts see an append when one happens: the same send, well-formed.
    expect((await send('t')).errors).to.equal(undefined);
    expect(await appendedSince(test.url, before)).to.include({ MessageSent: 1 });
  });
});

describe('graphql-ws and ticket expiry', function () {
  this.timeout(30_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  before(async () => {
    test = await startTestHerald({ ticketTtlSeconds: 2 });
  });
  after(() => test?.stop());

  it('closes a socket (4403) when its ticket expires', async () => {
    const { body } = await postForm(`${test.url}/koala/api/mas/tickets`, {
      app_key: 'camel',
      secret_key: 'EERWERRRRE',
      user_id: 'short-ticket',
    });
    const terminal = Terminal.connect(test.url, { ticket: body.result as string });
    try {
      await terminal.until((t) => t.closedWith !== undefined, 'the socket to close', 10_000);
      expect(terminal.closedWith).to.equal(4403);
    } finally {
      await terminal.close();
    }
  });
});

describe('graphql-ws when herald fails', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  before(async () => {
    test = await startTestHerald();
  });
  after(() => test?.stop());

  it('answers a syntax error as that operation’s BAD_REQUEST, and the socket’s other operations go on', async () => {
    const { body } = await postForm(`${test.url}/koala/api/mas/tickets`, {
      app_key: 'camel',
      secret_key: 'EERWERRRRE',
      user_id: 'typist',
    });
    const socket = GraphqlSocket.connect(test.url, { ticket: body.result as string });
    try {
      const live = socket.subscribe('subscription { messages { title } }');
      const broken = await socket.request('{ notifications(first: 1 { total } }');
      expect(broken.errors?.map((e) => e.extensions?.code)).to.deep.equal(['BAD_REQUEST']);
      expect(socket.closedWith).to.equal(undefined);
      expect((await socket.request<{ me: { userId: string } }>('{ me { userId } }')).data?.me.userId).to.equal(
        'typist',
      );
      expect(live.completed).to.equal(false);
    } finally {
      await socket.close();
    }
  });

  it('answers INTERNAL_SERVER_ERROR over the socket, as over HTTP, without the details: a query, and a subscription whose source fails', async () => {
    const { body } = await postForm(`${test.url}/koala/api/mas/tickets`, {
      app_key: 'camel',
      secret_key: 'EERWERRRRE',
      user_id: 'unlucky',
    });
    const socket = GraphqlSocket.connect(test.url, { ticket: body.result as string, since: '0' });
    try {
      await socket.until(() => socket.isConnected, 'the connection');
      // A database fault has no public switch: the test closes herald's pool under it.
      await test.herald.infrastructure.database.pool.end();
      const answer = await socket.request('{ notifications(first: 1) { total } }');
      expect(answer.errors?.map((e) => [e.message, e.extensions?.code])).to.deep.equal([
        ['internal error', 'INTERNAL_SERVER_ERROR'],
      ]);
      expect(JSON.stringify(answer)).not.to.match(/pool|Cannot use|Error:/i);
      const live = socket.subscribe('subscription { messages { title } }'); // replays since 0: reads the database
      await socket.until(() => live.completed, 'the subscription to fail');
      expect(live.errors.map((e) => [e.message, e.extensions?.code])).to.deep.equal([
        ['internal error', 'INTERNAL_SERVER_ERROR'],
      ]);
    } finally {
      await socket.close();
    }
  });
});

describe('GraphiQL on GET /graphql', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  before(async () => {
    test = await startTestHerald();
  });
  after(() => test?.stop());

  it('serves the IDE to a browser, with its scripts from this installation', async () => {
    const page = await fetch(`${test.url}/graphql`, {
      headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
    });
    expect(page.status).to.equal(200);
    expect(page.headers.get('content-type')).to.match(/text\/html/);
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets).to.have.length(5);
    for (const asset of assets) {
      const response = await fetch(`${test.url}${asset}`);
      expect(response.status, asset).to.equal(200);
      expect((await response.arrayBuffer()).byteLength, asset).to.be.greaterThan(1000);
    }
    expect((await fetch(`${test.url}/graphql/assets/nope.js`)).status).to.equal(404);
  });

  it('leaves GraphQL-over-HTTP GETs to the GraphQL handler', async () => {
    const response = await fetch(`${test.url}/graphql?query=${encodeURIComponent('{ me { userId } }')}`, {
      headers: { accept: 'application/json' },
    });
    expect(response.status).to.equal(401);
  });
});
