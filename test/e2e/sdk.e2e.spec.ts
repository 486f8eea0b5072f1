import { expect } from 'chai';
import WebSocket from 'ws';
import {
  message_client,
  MessageClientError,
  open,
  type ConnectionState,
  type Disconnection,
  type Message_t,
  type MessageClient,
  type MessageContext,
  type OpenOptions,
  type RecoveryImpossible,
} from '../../sdk/src/index';
import { Changes } from '../support/changes';
import { eventually } from '../support/eventually';
import { graphql } from '../support/graphqlClient';
import { issueTicket, postForm, startTestHerald } from '../support/herald';
import { sendMessages } from '../support/sendMessage';
import { TcpProxy } from '../support/tcpProxy';

// The front-end SDK (sdk/, docs/sdk.md) against a real herald over real sockets: Koala's
// message_client.open() and onMessage(message, ctx) (shared/seeds/000_83e3b79cc88886e5.txt, section 4).

/** An SDK client that records what it is given and what it reports. */
class RecordingTerminal {
  readonly received: Array<{ message: Message_t; ctx: MessageContext }> = [];
  readonly states: ConnectionState[] = [];
  readonly disconnections: Disconnection[] = [];
  readonly recoveries: RecoveryImpossible[] = [];
  readonly errors: Error[] = [];
  readonly client: MessageClient;
  private readonly changes = new Changes();

  constructor(options: Omit<OpenOptions, 'onMessage'>) {
    this.client = open({
      webSocketImpl: WebSocket,
      reconnect: { initialMs: 50, maxMs: 400 },
      ...options,
      onMessage: (message, ctx) => this.record(() => this.received.push({ message, ctx })),
    });
    this.client.on('state', (state) => this.record(() => this.states.push(state)));
    this.client.on('disconnected', (info) => this.record(() => this.disconnections.push(info)));
    this.client.on('recoveryimpossible', (info) => this.record(() => this.recoveries.push(info)));
    this.client.on('error', (error) => this.record(() => this.errors.push(error)));
  }

  get titles(): string[] {
    return this.received.map((r) => r.message.title);
  }

  async until(condition: (t: RecordingTerminal) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    await this.changes.until(
      () => condition(this),
      () =>
        `sdk: timed out waiting for ${what}; state ${this.client.state}, received ${JSON.stringify(this.titles)}, disconnections ${JSON.stringify(this.disconnections)}, errors ${this.errors.map((e) => e.message)}`,
      timeoutMs,
    );
  }

  private record(change: () => void): void {
    change();
    this.changes.notify();
  }
}

interface Inbox {
  notifications: { total: number; nodes: Array<{ id: string; seq: string; title: string; acknowledged: boolean }> };
}
const INBOX =
  'query($first: Int) { notifications(first: $first, type: "koala") { total nodes { id seq title acknowledged } } }';

describe('front-end SDK (message_client) against herald, in Node', function () {
  this.timeout(90_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let proxy: TcpProxy;
  const terminals: RecordingTerminal[] = [];

  before(async () => {
    test = await startTestHerald();
    proxy = await TcpProxy.start(test.url);
  });
  afterEach(async () => {
    await Promise.all(terminals.splice(0).map((t) => t.client.close()));
    proxy.cut(); // frozen connections too
    proxy.restore();
  });
  after(async () => {
    await proxy?.close();
    await test?.stop();
  });

  function terminal(options: Omit<OpenOptions, 'onMessage' | 'url'> & { url?: string }): RecordingTerminal {
    const recording = new RecordingTerminal({ url: `${proxy.url}/graphql`, ...options });
    terminals.push(recording);
    return recording;
  }

  /** Sends over Koala's REST route, as the app's back end does. */
  async function send(to: string, title: string, content = 'c'): Promise<void> {
    const sender = await issueTicket(test.url, 'zhangbin');
    const { body } = await postForm(`${test.url}/koala/api/mas/messages`, {
      ticket: sender,
      users: to,
      title,
      content,
    });
    expect(body.status, JSON.stringify(body)).to.equal(0);
  }

  async function inboxTitles(ticket: string): Promise<string[]> {
    const page = await graphql<Inbox>(test.url, ticket, INBOX, { first: 100 });
    return page.data!.notifications.nodes.map((n) => n.title);
  }

  it('hands a pushed message to onMessage as Koala’s Message_t, and ctx.ack() acknowledges it', async () => {
    const ticket = await issueTicket(test.url, 'sdk-ack');
    const t = terminal({ ticket });
    await t.until((x) => x.client.state === 'connected', 'connected');
    await send('sdk-ack', 'system upgrade', 'system patching 20:21');
    await t.until((x) => x.received.length === 1, 'the push');

    const { message, ctx } = t.received[0]!;
    expect(message).to.deep.include({
      title: 'system upgrade',
      content: 'system patching 20:21',
      props: {},
      expiresAt: null,
    });
    expect(message.meta).to.include({ realm: 'camel', sender: 'zhangbin' });
    expect(message.meta.seq).to.match(/^\d+$/);
    expect(Date.parse(message.meta.stime)).to.be.closeTo(Date.now(), 60_000);
    expect(t.client.lastSeq).to.equal(message.meta.seq);

    expect(await ctx.ack()).to.equal(1);
    expect(await ctx.ack(), 'a repeat counts 0').to.equal(0);
    const inbox = await graphql<Inbox>(test.url, ticket, INBOX, { first: 10 });
    expect(inbox.data!.notifications.nodes).to.deep.equal([
      { id: message.id, seq: message.meta.seq, title: 'system upgrade', acknowledged: true },
    ]);
  });

  it('reconnects after the socket is cut, and hands over what was sent meanwhile once, in order', async () => {
    const ticket = await issueTicket(test.url, 'sdk-cut');
    const t = terminal({ ticket });
    await t.until((x) => x.client.state === 'connected', 'connected');
    await send('sdk-cut', 'before');
    await t.until((x) => x.received.length === 1, 'the first push');

    proxy.cut();
    await t.until((x) => x.disconnections.length > 0, 'the disconnection');
    for (const title of ['while away 1', 'while away 2', 'while away 3']) await send('sdk-cut', title);
    await eventually(async () => expect(await inboxTitles(ticket)).to.include('while away 3'));
    // Acknowledging while away: sent once a socket is open again.
    const ackedWhileAway = t.received[0]!.ctx.ack();
    proxy.restore();

    await t.until((x) => x.received.length >= 4, 'the missed messages');
    expect(await ackedWhileAway).to.equal(1);
    await send('sdk-cut', 'live');
    await t.until((x) => x.received.length >= 5, 'the live message');
    expect(t.titles).to.deep.equal(['before', 'while away 1', 'while away 2', 'while away 3', 'live']);
    const seqs = t.received.map((r) => BigInt(r.message.meta.seq));
    expect(seqs, 'in seq order').to.deep.equal([...seqs].sort((a, b) => (a < b ? -1 : 1)));
    expect(t.states).to.include.members(['disconnected', 'connecting', 'connected']);
  });

  it('notices a dead socket by its heartbeat, reconnects, and loses nothing pushed into it', async () => {
    const ticket = await issueTicket(test.url, 'sdk-frozen');
    const t = terminal({ ticket, heartbeatMs: 300 });
    await t.until((x) => x.client.state === 'connected', 'connected');
    await send('sdk-frozen', 'before');
    await t.until((x) => x.received.length === 1, 'the first push');

    proxy.freeze();
    await send('sdk-frozen', 'into the dead socket');
    await t.until((x) => x.disconnections.some((d) => /no pong/.test(d.reason)), 'the heartbeat to give up');
    await t.until((x) => x.received.length >= 2, 'the message sent into the dead socket');
    expect(t.titles).to.deep.equal(['before', 'into the dead socket']);
  });

  it('asks the ticket function for a fresh ticket when herald closes the socket at ticket expiry (4403)', async () => {
    const shortLived = await startTestHerald({ ticketTtlSeconds: 3 });
    try {
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let asked = 0;
      const t = terminal({
        url: `${shortLived.url}/graphql`,
        // The first ticket at once; the next one only when the test lets it, so it can send meanwhile.
        ticket: async () => {
          asked += 1;
          if (asked > 1) await released;
          return issueTicket(shortLived.url, 'sdk-expiry');
        },
      });
      await t.until((x) => x.client.state === 'connected', 'connected');
      const sendHere = async (title: string) => {
        const { body } = await postForm(`${shortLived.url}/koala/api/mas/messages`, {
          ticket: await issueTicket(shortLived.url, 'zhangbin'),
          users: 'sdk-expiry',
          title,
          content: 'c',
        });
        expect(body.status).to.equal(0);
      };
      await sendHere('before expiry');
      await t.until((x) => x.received.length === 1, 'the first push');

      await t.until((x) => x.disconnections.some((d) => d.code === 4403), 'herald to close the socket at expiry');
      await eventually(() => expect(asked, 'a fresh ticket asked for').to.equal(2));
      await sendHere('while the ticket was renewed');
      await eventually(async () =>
        expect(
          await graphql<Inbox>(shortLived.url, await issueTicket(shortLived.url, 'sdk-expiry'), INBOX, {}),
        ).to.have.nested.property('data.notifications.total', 2),
      );
      release();

      await t.until((x) => x.received.length >= 2, 'the message sent meanwhile');
      expect(t.titles.slice(0, 2)).to.deep.equal(['before expiry', 'while the ticket was renewed']);
      expect(t.errors, 'a refused ticket is not an error when a fresh one can be had').to.deep.equal([]);
    } finally {
      await Promise.all(terminals.splice(0).map((x) => x.client.close()));
      await shortLived.stop();
    }
  });

  it('a fixed ticket that herald refuses ends the client with UNAUTHENTICATED', async () => {
    const t = terminal({ ticket: 'not-a-ticket' });
    await t.until((x) => x.client.state === 'closed', 'the client to close');
    expect(t.errors.map((e) => (e as { code?: string }).code)).to.deep.equal(['UNAUTHENTICATED']);
    expect(t.disconnections, 'it does not retry what cannot work').to.deep.equal([]);
  });

  it('when more were missed than herald replays, says so and goes on from the inbox’s newest message', async () => {
    const ticket = await issueTicket(test.url, 'sdk-gap');
    const t = terminal({ ticket });
    await t.until((x) => x.client.state === 'connected', 'connected');
    await send('sdk-gap', 'before the gap');
    await t.until((x) => x.received.length === 1, 'the first push');
    const since = t.client.lastSeq!;

    proxy.cut();
    await t.until((x) => x.disconnections.length > 0, 'the disconnection');
    const sender = await issueTicket(test.url, 'bulk-sender');
    await sendMessages(
      test.url,
      sender,
      Array.from({ length: 501 }, (_, i) => ({ to: ['sdk-gap'], title: `backlog ${i}`, content: 'c' })),
    );
    await eventually(
      async () =>
        expect((await graphql<Inbox>(test.url, ticket, INBOX, { first: 1 })).data!.notifications.total).to.equal(502),
      { timeoutMs: 30_000 },
    );
    const newest = (await graphql<Inbox>(test.url, ticket, INBOX, { first: 1 })).data!.notifications.nodes[0]!.seq;
    const connections = () => t.states.filter((s) => s === 'connected').length;
    const connectedBefore = connections();
    proxy.restore();

    await t.until((x) => x.recoveries.length === 1, 'recoveryimpossible');
    expect(t.recoveries[0]).to.deep.equal({ since, resumedFrom: newest });
    // One socket was told REPLAY_LIMIT_EXCEEDED; the next one goes on from `newest`.
    await t.until(() => connections() === connectedBefore + 2, 'connected again');
    // Gone on from `newest`, not live only: a message sent while the next socket is down still arrives.
    const disconnectionsBefore = t.disconnections.length;
    proxy.cut();
    await t.until((x) => x.disconnections.length > disconnectionsBefore, 'the second disconnection');
    await send('sdk-gap', 'after the gap');
    await eventually(async () => expect(await inboxTitles(ticket)).to.include('after the gap'));
    proxy.restore();
    await t.until((x) => x.received.length >= 2, 'the message after the gap');
    expect(t.titles).to.deep.equal(['before the gap', 'after the gap']);
    expect(t.recoveries).to.have.length(1);
  });

  it('close() stops it for good: no reconnect, and ack refuses', async () => {
    const ticket = await issueTicket(test.url, 'sdk-close');
    const t = terminal({ ticket });
    await t.until((x) => x.client.state === 'connected', 'connected');
    await send('sdk-close', 'one');
    await t.until((x) => x.received.length === 1, 'the push');
    await t.client.close();
    expect(t.client.state).to.equal('closed');
    await eventually(() => expect(proxy.connections).to.equal(0));
    await send('sdk-close', 'after close');
    await eventually(async () => expect(await inboxTitles(ticket)).to.include('after close'));
    expect(t.titles).to.deep.equal(['one']);
    expect(proxy.connections, 'it did not reconnect').to.equal(0);
    const refused = await t.received[0]!.ctx.ack().then(
      () => undefined,
      (error: { code?: string }) => error.code,
    );
    expect(refused).to.equal('CLOSED');
  });
  it("takes Koala's own open({ mas_url, token, ping, onMessage, onError }) and its module's sendMessage, acknowledge(seq) and close()", async () => {
    // Koala's demo page: message_client.open({ onMessage, ping: 5, mas_url, token }), client.sendMessage(target, title, content),
    // and client.acknowledge(message.meta.seq) in onMessage.
    const ticket = await issueTicket(test.url, 'sdk-koala');
    const received: Message_t[] = [];
    const errors: Array<[string, string]> = [];
    const client = message_client.open({
      mas_url: `${test.url}/`,
      token: ticket,
      ping: 5,
      webSocketImpl: WebSocket,
      onMessage: (message) => void received.push(message),
      onError: (errcode, errmsg) => void errors.push([errcode, errmsg]),
    });
    await eventually(() => expect(client.state).to.equal('connected'));
    const id = await message_client.sendMessage('sdk-koala sdk-koala-peer', 'from the page', 'hello');
    await eventually(() => expect(received.map((m) => m.title)).to.deep.equal(['from the page']));
    expect(received[0]!.id).to.equal(id);
    // One seq this client was never handed beside a good one: the good one is acknowledged all the same.
    const mixed = await message_client
      .acknowledge([received[0]!.meta.seq, '999999998'])
      .catch((error: unknown) => error);
    expect(mixed).to.be.instanceOf(MessageClientError).with.property('code', 'NOT_FOUND');
    expect((mixed as Error).message).to.equal('1 acknowledged; no message of seq 999999998 was handed to this client');
    expect(await message_client.acknowledge(received[0]!.meta.seq)).to.equal(0);
    const inbox = await graphql<Inbox>(test.url, ticket, INBOX, { first: 10 });
    expect(inbox.data!.notifications.nodes).to.deep.equal([
      { id, seq: received[0]!.meta.seq, title: 'from the page', acknowledged: true },
    ]);
    const peer = await graphql<Inbox>(test.url, await issueTicket(test.url, 'sdk-koala-peer'), INBOX, { first: 10 });
    expect(peer.data!.notifications.nodes.map((n) => [n.title, n.acknowledged])).to.deep.equal([
      ['from the page', false],
    ]);
    const unknown = await message_client.acknowledge('999999999').catch((error: unknown) => error);
    expect(unknown).to.be.instanceOf(MessageClientError).with.property('code', 'NOT_FOUND');
    await message_client.close();
    expect(client.state).to.equal('closed');
    expect(errors).to.deep.equal([]);

    // onError(errcode, errmsg): a token herald refuses
    const refused = message_client.open({
      mas_url: test.url,
      token: 'not-a-ticket',
      webSocketImpl: WebSocket,
      onMessage: () => undefined,
      onError: (errcode, errmsg) => void errors.push([errcode, errmsg]),
    });
    await eventually(() => expect(errors.map(([code]) => code)).to.deep.equal(['UNAUTHENTICATED']));
    await refused.close();
  });

  // Issue 22: a Koala page opens without `since`; what was sent while it was closed must still reach onMessage.
  describe('a page opened after messages were sent to its user (no since)', () => {
    /** The seed's send (3.2), as its example writes it: `tickets=…&users=…&title=…&content=…`. */
    async function sendAsTheSeed(user: string, title: string, extra = ''): Promise<void> {
      const sender = await issueTicket(test.url, 'zhangbin');
      const { body } = await postForm(
        `${test.url}/koala/api/mas/messages`,
        `tickets=${sender}&users=${user}&title=${title}&content="system patching 20:21"${extra}`,
      );
      expect(body.status, JSON.stringify(body)).to.equal(0);
    }

    it('hands over the unacknowledged, unexpired ones oldest first, then live ones, each once; a reconnect resumes after them', async () => {
      const user = 'offline_sdk';
      const ticket = await issueTicket(test.url, user);
      await sendAsTheSeed(user, '"system upgrade"');
      await sendAsTheSeed(user, 'acknowledged');
      await sendAsTheSeed(user, 'expiring', '&expire=1');
      await sendAsTheSeed(user, 'second');
      await eventually(async () => expect(await inboxTitles(ticket)).to.have.length(4));
      const acknowledgedSeq = (
        await graphql<Inbox>(test.url, ticket, INBOX, { first: 10 })
      ).data!.notifications.nodes.find((n) => n.title === 'acknowledged')!.seq;
      const ack = await postForm(`${test.url}/koala/api/mas/messages/ack`, `tickets=${ticket}&sids=${acknowledgedSeq}`);
      expect(ack.body.status, JSON.stringify(ack.body)).to.equal(0);
      // The inbox leaves expired messages out: wait until `expiring` is (expire=1 s).
      await eventually(async () => expect(await inboxTitles(ticket)).to.not.include('expiring'), { timeoutMs: 10_000 });

      // The seed's quoted values arrive as the Koala shim reads them (docs/api/koala.md): as the inbox lists them.
      const [upgrade] = (await inboxTitles(ticket)).slice(-1);
      expect(upgrade).to.include('system upgrade');

      const t = terminal({ ticket });
      await t.until((x) => x.received.length >= 2, 'the pending messages');
      expect(t.titles).to.deep.equal([upgrade, 'second']);
      expect(t.received[0]!.message.content).to.include('system patching 20:21');
      expect(t.client.lastSeq).to.equal(t.received[1]!.message.meta.seq);

      await send(user, 'live');
      await t.until((x) => x.titles.includes('live'), 'the live push');
      // A reconnect resumes with since: the pending ones are not handed over again, a message sent meanwhile is.
      const disconnectionsBefore = t.disconnections.length;
      proxy.cut();
      await t.until((x) => x.disconnections.length > disconnectionsBefore, 'the disconnection');
      await send(user, 'while cut');
      await eventually(async () => expect(await inboxTitles(ticket)).to.include('while cut'));
      proxy.restore();
      await t.until((x) => x.titles.includes('while cut'), 'the message sent while cut');
      await send(user, 'after');
      await t.until((x) => x.titles.includes('after'), 'the last push');
      expect(t.titles).to.deep.equal([upgrade, 'second', 'live', 'while cut', 'after']);
    });

    it("Koala's own open({ mas_url, token }) gets them too", async () => {
      const user = 'offline_koala';
      const token = await issueTicket(test.url, user);
      await sendAsTheSeed(user, 'sent while closed');
      await eventually(async () => expect(await inboxTitles(token)).to.deep.equal(['sent while closed']));
      const received: Message_t[] = [];
      const client = message_client.open({
        mas_url: test.url,
        token,
        webSocketImpl: WebSocket,
        onMessage: (message) => void received.push(message),
      });
      try {
        await eventually(() => expect(received.map((m) => m.title)).to.deep.equal(['sent while closed']));
      } finally {
        await client.close();
      }
    });
  });
});
