import { expect } from 'chai';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { publication } from '../../src/bus/bus';
import { notificationStatsTopic } from '../../src/bus/topics';
import { appendedEvents, appendedSince, TEST_METRICS_TOKEN } from '../support/appendedEvents';
import { Changes } from '../support/changes';
import { eventually } from '../support/eventually';
import { graphql } from '../support/graphqlClient';
import { postForm, startTestHerald } from '../support/herald';

/**
 * datahub's notifications over GraphQL (shared/seeds/001_e25b4a10524b93b6.txt, issue 8): one
 * `notifications` list with Koala's messages, its filters, `notificationStats`, `markRead`,
 * `clearNotificationStats`, `applyWhitelist`, and the live `notificationStats` subscription.
 */

const NOTIFICATIONS = `query Inbox($first: Int, $after: String, $unreadOnly: Boolean, $type: String, $sender: String, $level: Int, $forClient: Boolean) {
  notifications(first: $first, after: $after, unreadOnly: $unreadOnly, type: $type, sender: $sender, level: $level, forClient: $forClient) {
    total
    nodes { id seq type title content sender sentAt expiresAt props read acknowledged level data meta { realm seq sender stime } }
    pageInfo { endCursor hasNextPage }
  }
}`;
const STATS_FIELDS =
  'site_broadcast admin_message private_message apply_whitelist comment_reply item_event subs_event subsapply_event vip_remind';
const TYPES = STATS_FIELDS.split(' ');
const ZERO: Stats = Object.fromEntries(TYPES.map((type) => [type, 0]));

type Stats = Record<string, number>;
interface Node {
  id: string;
  seq: string;
  type: string;
  title: string;
  content: string;
  sender: string;
  sentAt: string;
  expiresAt: string | null;
  props: unknown;
  read: boolean;
  acknowledged: boolean;
  level: number;
  data: Record<string, unknown> | null;
  meta: { realm: string; seq: string; sender: string; stime: string };
}
type Inbox = {
  notifications: { total: number; nodes: Node[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } };
};
type Filter = {
  first?: number;
  after?: string | null;
  unreadOnly?: boolean;
  type?: string;
  sender?: string;
  level?: number;
  forClient?: boolean;
};

/** A graphql-ws client subscribed to `notificationStats`; it records each push. */
class StatsWatcher {
  readonly pushes: Stats[] = [];
  readonly errors: unknown[] = [];
  private readonly changes = new Changes();

  private constructor(private readonly client: Client) {}

  static connect(baseUrl: string, ticket: string): StatsWatcher {
    const client = createClient({
      url: `${baseUrl.replace(/^http/, 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { ticket },
      retryAttempts: 0,
      lazy: false,
      onNonLazyError: () => undefined,
    });
    const watcher = new StatsWatcher(client);
    client.subscribe<{ notificationStats: Stats }>(
      { query: `subscription { notificationStats { ${STATS_FIELDS} } }` },
      {
        next: (result) => {
          if (result.data?.notificationStats) watcher.pushes.push(result.data.notificationStats);
          if (result.errors) watcher.errors.push(...result.errors);
          watcher.notify();
        },
        error: (error) => {
          watcher.errors.push(error);
          watcher.notify();
        },
        complete: () => watcher.notify(),
      },
    );
    return watcher;
  }

  get latest(): Stats | undefined {
    return this.pushes[this.pushes.length - 1];
  }

  /** How many pushes so far: take it before an action, and wait for what came `since` it. */
  mark(): number {
    return this.pushes.length;
  }

  /** Waits until a push (from index `since` on) satisfies `condition`, or fails after the deadline. */
  async until(condition: (stats: Stats) => boolean, what: string, since = 0, timeoutMs = 10_000): Promise<Stats> {
    const found = () => this.pushes.slice(since).find(condition);
    await this.changes.until(
      () => found() !== undefined,
      () =>
        `notificationStats: timed out waiting for ${what}; pushes ${JSON.stringify(this.pushes)}, errors ${JSON.stringify(this.errors)}`,
      timeoutMs,
    );
    return found()!;
  }

  async close(): Promise<void> {
    await this.client.dispose();
  }

  private notify(): void {
    this.changes.notify();
  }
}

/** herald over HTTP as the tests below drive it: tickets, Koala and datahub REST, GraphQL. */
function harness(test: () => Awaited<ReturnType<typeof startTestHerald>>) {
  const APP = { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' };
  const h = {
    async ticketFor(userId: string, roles = '', app = 'camel', secret = 'EERWERRRRE'): Promise<string> {
      const { body } = await postForm(`${test().url}/koala/api/mas/tickets`, {
        app_key: app,
        secret_key: secret,
        user_id: userId,
        ...(roles && { user_roles: roles }),
      });
      expect(body.status, JSON.stringify(body)).to.equal(0);
      return body.result as string;
    },
    async rest(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<void> {
      const response = await fetch(`${test().url}${path}`, {
        method,
        headers: {
          accept: 'application/json',
          ...headers,
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      expect(response.status, `${method} ${path}: ${await response.text()}`).to.equal(200);
    },
    /** A datahub notification from a user (POST /notifications); answers once the receivers' lists show it. */
    notify: (ticket: string, body: Record<string, unknown>) =>
      h.rest('POST', '/notifications', { authorization: `Token ${ticket}` }, body),
    /** A notification from a back-end service of the app (the seed's to_notifications.json topic). */
    topic: (message: Record<string, unknown>, key?: string) =>
      h.rest('POST', '/topics/to_notifications.json', { ...APP, ...(key && { 'x-message-key': key }) }, message),
    /** A Koala message; answers once the receivers' inboxes show it. */
    async koala(senderTicket: string, to: string, title: string): Promise<void> {
      const sent = await postForm(`${test().url}/koala/api/mas/messages`, {
        ticket: senderTicket,
        users: to,
        title,
        content: `${title} content`,
      });
      expect(sent.body.status, JSON.stringify(sent.body)).to.equal(0);
    },
    async inbox(ticket: string, filter: Filter = {}): Promise<Inbox['notifications']> {
      const answer = await graphql<Inbox>(test().url, ticket, NOTIFICATIONS, filter);
      expect(answer.errors, JSON.stringify(answer.errors)).to.equal(undefined);
      return answer.data!.notifications;
    },
    async errorCode(
      ticket: string,
      query: string,
      variables?: Record<string, unknown>,
    ): Promise<{ code: string | undefined; message: string | undefined }> {
      const answer = await graphql(test().url, ticket, query, variables);
      expect(answer.status, 'never a 500').to.be.below(500);
      expect(answer.errors, 'an error').to.be.an('array').that.is.not.empty;
      return { code: answer.errors![0]!.extensions?.code, message: answer.errors![0]!.message };
    },
    async stats(ticket: string): Promise<Stats> {
      const answer = await graphql<{ notificationStats: Stats }>(
        test().url,
        ticket,
        `{ notificationStats { ${STATS_FIELDS} } }`,
      );
      expect(answer.errors, JSON.stringify(answer.errors)).to.equal(undefined);
      return answer.data!.notificationStats;
    },
    async mutate<T>(ticket: string, query: string, variables?: Record<string, unknown>): Promise<T> {
      const answer = await graphql<T>(test().url, ticket, query, variables);
      expect(answer.errors, JSON.stringify(answer.errors)).to.equal(undefined);
      return answer.data!;
    },
  };
  return h;
}

const MARK_READ = 'mutation($seq: ID!) { markRead(seq: $seq) }';
const CLEAR = `mutation { clearNotificationStats { ${STATS_FIELDS} } }`;
const APPLY =
  'mutation($repname: String!, $itemname: String!, $owner: String) { applyWhitelist(repname: $repname, itemname: $itemname, owner: $owner) }';
const titles = (nodes: Node[]) => nodes.map((n) => (n.type === 'koala' ? n.title : `${n.type}:${n.content}`));

describe('GraphQL: datahub notifications, stats and their live counts (seed 001, issue 8)', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  const h = harness(() => test);
  const watchers: StatsWatcher[] = [];
  let admin: string;
  let zhangbin: string;

  before(async () => {
    test = await startTestHerald({ metricsToken: TEST_METRICS_TOKEN });
    admin = await h.ticketFor('admin@hub.dataio.com', 'admin');
    zhangbin = await h.ticketFor('zhangbin');
  });
  afterEach(async () => {
    await Promise.all(watchers.splice(0).map((w) => w.close()));
  });
  after(() => test?.stop());

  function watch(ticket: string): StatsWatcher {
    const watcher = StatsWatcher.connect(test.url, ticket);
    watchers.push(watcher);
    return watcher;
  }

  it('lists Koala messages and datahub notifications in one list by position, newest first, paging across both with one total', async () => {
    const user = 'merge@example.com';
    const ticket = await h.ticketFor(user);
    await h.koala(zhangbin, user, 'k1');
    await h.notify(admin, { type: 'admin_message', receiver: user, data: { content: 'd1' } });
    await h.koala(zhangbin, user, 'k2');
    await h.topic({
      type: 'comment_reply',
      receiver: user,
      sender: '',
      data: { commentid: 7, username: 'li4@bbb.com', content: 'd2', replyto: { commentid: 6, content: 'first!' } },
    });
    await h.koala(zhangbin, user, 'k3');

    const all = await h.inbox(ticket, { first: 10 });
    expect(all.total).to.equal(5);
    expect(titles(all.nodes)).to.deep.equal(['k3', 'comment_reply:d2', 'k2', 'admin_message:d1', 'k1']);
    const seqs = all.nodes.map((n) => BigInt(n.seq));
    expect(seqs, 'strictly decreasing positions').to.deep.equal([...seqs].sort((a, b) => (a > b ? -1 : 1)));
    expect(new Set(seqs).size).to.equal(5);

    const [k3, d2] = all.nodes;
    expect(k3).to.include({ type: 'koala', level: 0, data: null, sender: 'zhangbin', read: false });
    expect(d2).to.deep.include({
      type: 'comment_reply',
      title: '',
      content: 'd2',
      sender: '',
      level: 0,
      read: false,
      acknowledged: false,
      expiresAt: null,
      props: null,
      data: { commentid: 7, username: 'li4@bbb.com', content: 'd2', replyto: { commentid: 6, content: 'first!' } },
    });
    expect(d2!.meta).to.deep.equal({ realm: 'camel', seq: d2!.seq, sender: '', stime: d2!.sentAt });
    expect(Date.parse(d2!.sentAt)).to.be.closeTo(Date.now(), 60_000);

    // Pages of 2 across both lists: the same order, each total the whole list's.
    const pages: string[][] = [];
    let after: string | null = null;
    for (;;) {
      const page: Inbox['notifications'] = await h.inbox(ticket, { first: 2, after });
      expect(page.total).to.equal(5);
      pages.push(titles(page.nodes));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(pages).to.deep.equal([['k3', 'comment_reply:d2'], ['k2', 'admin_message:d1'], ['k1']]);

    // A page that ends exactly at the end of one list, with the other list's last item after it.
    const firstThree = await h.inbox(ticket, { first: 3 });
    expect(firstThree.pageInfo.hasNextPage).to.equal(true);
    const rest = await h.inbox(ticket, { first: 2, after: firstThree.pageInfo.endCursor });
    expect([titles(rest.nodes), rest.pageInfo.hasNextPage]).to.deep.equal([['admin_message:d1', 'k1'], false]);
  });

  it('filters by type, sender, level, forClient and unreadOnly across both lists', async () => {
    const user = 'filters@example.com';
    const ticket = await h.ticketFor(user);
    const friend = await h.ticketFor('friend@example.com');
    await h.koala(zhangbin, user, 'koala from zhangbin');
    await h.notify(admin, { type: 'admin_message', receiver: user, data: { content: 'from admin' } });
    await h.notify(friend, { type: 'private_message', receiver: user, data: { content: 'from friend' } });
    await h.topic({ type: 'vip_remind', receiver: user, sender: '', level: 50, data: { level: 4, invalide: 7 } });
    await h.topic(
      { type: 'private_message', receiver: user, sender: 'zhangbin', data: { content: 'client only' } },
      'forclient,notforbrowser',
    );
    await h.topic(
      { type: 'private_message', receiver: user, sender: 'zhangbin', data: { content: 'both lists' } },
      'forclient',
    );

    const listed = async (filter: Filter) => {
      const page = await h.inbox(ticket, { first: 100, ...filter });
      expect(page.total, JSON.stringify(filter)).to.equal(page.nodes.length);
      return titles(page.nodes);
    };
    expect(await listed({})).to.deep.equal([
      'private_message:both lists',
      'vip_remind:',
      'private_message:from friend',
      'admin_message:from admin',
      'koala from zhangbin',
    ]);
    expect(await listed({ type: 'koala' })).to.deep.equal(['koala from zhangbin']);
    expect(await listed({ type: 'private_message' })).to.deep.equal([
      'private_message:both lists',
      'private_message:from friend',
    ]);
    expect(await listed({ sender: 'zhangbin' }), 'both lists by sender').to.deep.equal([
      'private_message:both lists',
      'koala from zhangbin',
    ]);
    expect(await listed({ sender: 'admin@hub.dataio.com' })).to.deep.equal(['admin_message:from admin']);
    expect(await listed({ sender: '' }), '"" is the system').to.deep.equal(['vip_remind:']);
    expect(await listed({ sender: 'nobody' })).to.deep.equal([]);
    expect(await listed({ level: 50 }), 'Koala has no level 50').to.deep.equal(['vip_remind:']);
    expect(await listed({ level: 0 })).to.deep.equal([
      'private_message:both lists',
      'private_message:from friend',
      'admin_message:from admin',
      'koala from zhangbin',
    ]);
    expect(await listed({ forClient: true }), 'Koala has no client list').to.deep.equal([
      'private_message:both lists',
      'private_message:client only',
    ]);
    expect(await listed({ forClient: true, type: 'koala' })).to.deep.equal([]);
    expect(await listed({ type: 'koala', level: 50 })).to.deep.equal([]);

    // unreadOnly: a Koala message acknowledged, a datahub notification marked read.
    const all = (await h.inbox(ticket, { first: 100 })).nodes;
    const koala = all.find((n) => n.type === 'koala')!;
    const fromAdmin = all.find((n) => n.type === 'admin_message')!;
    await h.mutate(ticket, 'mutation($ids: [ID!]!) { acknowledge(ids: $ids) }', { ids: [koala.id] });
    await h.mutate(ticket, MARK_READ, { seq: fromAdmin.seq });
    expect(await listed({ unreadOnly: true })).to.deep.equal([
      'private_message:both lists',
      'vip_remind:',
      'private_message:from friend',
    ]);
    expect(await listed({ unreadOnly: true, level: 0 })).to.deep.equal([
      'private_message:both lists',
      'private_message:from friend',
    ]);
  });

  it('refuses bad filters and arguments with typed errors, never a 500, appending nothing', async () => {
    const ticket = await h.ticketFor('bad-input@example.com');
    const before = await appendedEvents(test.url);
    const badType = await h.errorCode(ticket, NOTIFICATIONS, { type: 'sms' });
    expect(badType.code).to.equal('BAD_USER_INPUT');
    for (const type of ['koala', ...TYPES]) expect(badType.message, 'lists the valid types').to.include(type);
    expect((await h.errorCode(ticket, NOTIFICATIONS, { level: 7 })).code).to.equal('BAD_USER_INPUT');
    expect((await h.errorCode(ticket, NOTIFICATIONS, { level: -1 })).code).to.equal('BAD_USER_INPUT');
    expect((await h.errorCode(ticket, NOTIFICATIONS, { sender: 'x'.repeat(129) })).code).to.equal('BAD_USER_INPUT');
    expect((await h.errorCode(ticket, NOTIFICATIONS, { sender: 'nul \u0000' })).code).to.equal('BAD_USER_INPUT');
    expect((await h.errorCode(ticket, NOTIFICATIONS, { first: 0, type: 'admin_message' })).code).to.equal(
      'BAD_USER_INPUT',
    );
    expect((await h.errorCode(ticket, NOTIFICATIONS, { level: 'high' })).code, 'a variable of the wrong type').to.equal(
      'BAD_USER_INPUT',
    );

    expect((await h.errorCode(ticket, MARK_READ, { seq: 'abc' })).code).to.equal('BAD_USER_INPUT');
    expect((await h.errorCode(ticket, MARK_READ, { seq: '99999999999999999999' })).code, 'past int64').to.equal(
      'BAD_USER_INPUT',
    );
    expect((await h.errorCode(ticket, MARK_READ, { seq: '9007199254740993' })).code).to.equal('NOT_FOUND');
    expect((await h.errorCode(ticket, MARK_READ, { seq: '1' })).code).to.equal('NOT_FOUND');

    const apply = (repname: string, itemname: string, owner: string) =>
      h.errorCode(ticket, APPLY, { repname, itemname, owner });
    expect((await apply('', 'item', 'owner@example.com')).code).to.equal('BAD_USER_INPUT');
    expect((await apply('   ', 'item', 'owner@example.com')).code).to.equal('BAD_USER_INPUT');
    expect((await apply('repo', 'i'.repeat(129), 'owner@example.com')).code).to.equal('BAD_USER_INPUT');
    expect((await apply('repo', 'item', 'o\u001b[31m')).code).to.equal('BAD_USER_INPUT');
    expect((await apply('repo', 'item', 'bad-input@example.com')).message, 'not your own item').to.include('owner');
    // Issue 22 (review): an owner no ticket can be issued for (blanks, commas: datahub's separators) is refused, as on REST.
    for (const owner of ['zhang3 wang5', 'a,b', ' ', 'x'.repeat(129)])
      expect((await apply('repo', 'item', owner)).code, owner).to.equal('BAD_USER_INPUT');
    expect((await apply('repo', '😀'.repeat(129), 'owner@example.com')).code, '129 characters').to.equal(
      'BAD_USER_INPUT',
    );
    expect(
      (await h.errorCode(ticket, 'mutation { applyWhitelist(repname: "r", owner: "o") }')).code,
      'a missing argument',
    ).to.equal('BAD_REQUEST');
    expect(await appendedSince(test.url, before), 'nothing appended').to.deep.equal({});
    // Names are counted in characters (code points): 128 emoji are a name (256 UTF-16 units).
    expect(
      await h.mutate(ticket, APPLY, { repname: 'repo', itemname: '😀'.repeat(128), owner: 'emoji-owner@example.com' }),
    ).to.deep.equal({ applyWhitelist: true });
    // The counts see an append when one happens (the owner's notice may follow on its own schedule).
    expect(await appendedSince(test.url, before)).to.include({ WhitelistApplied: 1 });
  });

  it('markRead, clearNotificationStats and applyWhitelist: each visible to the very next query', async () => {
    const user = 'effects@example.com';
    const ticket = await h.ticketFor(user);
    expect(await h.stats(ticket)).to.deep.equal(ZERO);
    await h.notify(admin, {
      type: 'admin_message',
      receiver: `${user},other-effects@example.com`,
      data: { content: 'a1' },
    });
    await h.notify(admin, { type: 'admin_message', receiver: user, data: { content: 'a2' } });
    await h.topic({
      type: 'item_event',
      receiver: user,
      sender: '',
      data: { event: 'tag_deleted', repname: 'r', itemname: 'i', tag: 't' },
    });
    expect(await h.stats(ticket)).to.deep.equal({ ...ZERO, admin_message: 2, item_event: 1 });

    // markRead, by seq: read (and acknowledged) in the list, uncounted at once.
    const a2 = (await h.inbox(ticket, { type: 'admin_message' })).nodes.find((n) => n.content === 'a2')!;
    expect(await h.mutate(ticket, MARK_READ, { seq: a2.seq })).to.deep.equal({ markRead: true });
    expect(await h.mutate(ticket, MARK_READ, { seq: Number(a2.seq) }), 'again, and as an Int ID').to.deep.equal({
      markRead: true,
    });
    const readStates = (await h.inbox(ticket, { type: 'admin_message' })).nodes.map((n) => [
      n.content,
      n.read,
      n.acknowledged,
    ]);
    expect(readStates).to.deep.equal([
      ['a2', true, true],
      ['a1', false, false],
    ]);
    expect(await h.stats(ticket)).to.deep.equal({ ...ZERO, admin_message: 1, item_event: 1 });

    // Not the caller's: another receiver's copy is theirs; a Koala seq is not a datahub notification.
    const other = await h.ticketFor('other-effects@example.com');
    expect((await h.errorCode(other, MARK_READ, { seq: a2.seq })).code).to.equal('NOT_FOUND');
    await h.koala(zhangbin, user, 'a koala message');
    const koala = (await h.inbox(ticket, { type: 'koala' })).nodes[0]!;
    expect((await h.errorCode(ticket, MARK_READ, { seq: koala.seq })).code).to.equal('NOT_FOUND');
    expect(
      (await h.errorCode(await h.ticketFor(user, '', 'other', 'other-secret'), MARK_READ, { seq: a2.seq })).code,
      'another app',
    ).to.equal('NOT_FOUND');

    // clearNotificationStats answers the cleared counts; the list keeps its read states; later ones count.
    expect(await h.mutate(ticket, CLEAR)).to.deep.equal({ clearNotificationStats: ZERO });
    expect(await h.stats(ticket)).to.deep.equal(ZERO);
    expect((await h.inbox(ticket, { unreadOnly: true, type: 'admin_message' })).total).to.equal(1);
    await h.notify(admin, { type: 'admin_message', receiver: user, data: { content: 'a3' } });
    expect(await h.stats(ticket)).to.deep.equal({ ...ZERO, admin_message: 1 });

    // applyWhitelist: the owner is notified (level 50, the item in data, the applicant as sender).
    const owner = await h.ticketFor('owner@example.com');
    const applied = await h.mutate(ticket, APPLY, { repname: 'NBA', itemname: 'bear', owner: 'owner@example.com' });
    expect(applied).to.deep.equal({ applyWhitelist: true });
    const request = (await h.inbox(owner, { type: 'apply_whitelist' })).nodes;
    expect(request).to.have.length(1);
    expect(request[0]).to.deep.include({
      type: 'apply_whitelist',
      sender: user,
      level: 50,
      read: false,
      data: { repname: 'NBA', itemname: 'bear' },
      content: '',
    });
    expect((await h.inbox(owner, { level: 50 })).total).to.equal(1);
    expect(await h.stats(owner)).to.deep.equal({ ...ZERO, apply_whitelist: 1 });
    expect(
      await h.mutate(ticket, APPLY, { repname: 'NBA', itemname: 'bear', owner: 'owner@example.com' }),
      'again: nothing new',
    ).to.deep.equal({ applyWhitelist: true });
    expect((await h.inbox(owner, { type: 'apply_whitelist' })).total).to.equal(1);

    // Without an owner: the one the app registered for the item (issue 22), listed at once.
    const registered = await fetch(`${test.url}/items/NBA/lion`, {
      method: 'PUT',
      headers: { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
      body: JSON.stringify({ owner: 'owner@example.com' }),
    });
    expect(registered.status, await registered.text()).to.equal(200);
    expect(await h.mutate(ticket, 'mutation { applyWhitelist(repname: "NBA", itemname: "lion") }')).to.deep.equal({
      applyWhitelist: true,
    });
    expect((await h.inbox(owner, { type: 'apply_whitelist' })).nodes.map((n) => n.data)).to.deep.equal([
      { repname: 'NBA', itemname: 'lion' },
      { repname: 'NBA', itemname: 'bear' },
    ]);
  });

  it('subscription notificationStats: the current counts at once, then new counts after a send, a read and a clear', async () => {
    const user = 'live@example.com';
    const ticket = await h.ticketFor(user);
    await h.notify(admin, { type: 'admin_message', receiver: user, data: { content: 'before subscribing' } });
    const watcher = watch(ticket);
    expect(await watcher.until(() => true, 'the current counts')).to.deep.equal({ ...ZERO, admin_message: 1 });

    let mark = watcher.mark();
    await h.topic({ type: 'private_message', receiver: user, sender: 'friend@example.com', data: { content: 'hi' } });
    expect(await watcher.until((s) => s.private_message === 1, 'the counts after a send', mark)).to.deep.equal({
      ...ZERO,
      admin_message: 1,
      private_message: 1,
    });

    const pm = (await h.inbox(ticket, { type: 'private_message' })).nodes[0]!;
    mark = watcher.mark();
    await h.mutate(ticket, MARK_READ, { seq: pm.seq });
    expect(await watcher.until((s) => s.private_message === 0, 'the counts after a read', mark)).to.deep.equal({
      ...ZERO,
      admin_message: 1,
    });

    mark = watcher.mark();
    await h.mutate(ticket, CLEAR);
    expect(await watcher.until((s) => s.admin_message === 0, 'the counts after a clear', mark)).to.deep.equal(ZERO);

    // Only the caller's counts: another user's notification pushes nothing here; the next one to the caller does.
    mark = watcher.mark();
    await h.topic({
      type: 'private_message',
      receiver: 'someone-else@example.com',
      sender: 'x',
      data: { content: 'not yours' },
    });
    await h.topic({ type: 'vip_remind', receiver: user, sender: '', level: 50, data: { level: 4, invalide: 7 } });
    await watcher.until((s) => s.vip_remind === 1, 'the counts after the next send', mark);
    expect(watcher.pushes.slice(mark)).to.deep.equal([{ ...ZERO, vip_remind: 1 }]);
    expect(watcher.errors).to.deep.equal([]);
  });

  it('coalesces a burst of changes into a few reads of the counts, ending at the latest counts', async () => {
    const user = 'burst@example.com';
    const ticket = await h.ticketFor(user);
    const watcher = watch(ticket);
    await watcher.until(() => true, 'the current counts');
    // 2,000 change signals at once (as a busy projection could publish them): a handful of pushes, not 2,000.
    const topic = notificationStatsTopic('camel', user);
    let mark = watcher.mark();
    await test.herald.bus.publish(
      Array.from({ length: 2000 }, () => publication(topic, { appId: 'camel', userId: user })),
    );
    await h.topic({
      type: 'subs_event',
      receiver: user,
      sender: '',
      data: { subscriptionid: 1, repname: 'r', itemname: 'i', phase: 1 },
    });
    await watcher.until((s) => s.subs_event === 1, 'the counts after the burst', mark);
    expect(watcher.pushes.length - mark).to.be.within(1, 4);
    expect(watcher.latest).to.deep.equal({ ...ZERO, subs_event: 1 });

    // Many real sends side by side: the pushes end at all of them counted.
    mark = watcher.mark();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        h.topic({
          type: 'comment_reply',
          receiver: user,
          sender: '',
          data: { commentid: i, username: 'li4@bbb.com', content: `c${i}` },
        }),
      ),
    );
    await watcher.until((s) => s.comment_reply === 20, 'all 20', mark);
    expect(watcher.latest).to.deep.equal({ ...ZERO, subs_event: 1, comment_reply: 20 });
    expect(watcher.pushes.length - mark).to.be.within(1, 20);
  });

  it("a closed subscription lets go of its bus listeners at once, not at the user's next change", async () => {
    const user = 'leaves@example.com';
    const ticket = await h.ticketFor(user);
    // Count the listeners of this user's topics and of the app's broadcast topic, as the resolvers add and remove them.
    const bus = test.herald.bus;
    const subscribe = bus.subscribe;
    const active = new Map<string, number>();
    const count = (topic: string, by: number) => active.set(topic, (active.get(topic) ?? 0) + by);
    bus.subscribe = (topic, listener) => {
      const off = subscribe.bind(bus)(topic, listener);
      if (!topic.endsWith(`:${user}`)) return off;
      count(topic, 1);
      return () => {
        count(topic, -1);
        off();
      };
    };
    try {
      const watcher = watch(ticket);
      await watcher.until(() => true, 'the current counts');
      const client = createClient({
        url: `${test.url.replace(/^http/, 'ws')}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: { ticket },
        retryAttempts: 0,
        lazy: false,
      });
      const stop = client.subscribe(
        { query: 'subscription { messages { id } }' },
        { next: () => undefined, error: () => undefined, complete: () => undefined },
      );
      await eventually(() =>
        expect(Object.fromEntries(active)).to.deep.equal({
          [`datahub-stats:camel:${user}`]: 1,
          [`inbox:camel:${user}`]: 1,
        }),
      );
      stop();
      await watcher.close();
      await client.dispose();
      await eventually(() =>
        expect(Object.fromEntries(active)).to.deep.equal({
          [`datahub-stats:camel:${user}`]: 0,
          [`inbox:camel:${user}`]: 0,
        }),
      );
    } finally {
      bus.subscribe = subscribe;
    }
  });

  it('the subscription needs a valid ticket', async () => {
    const watcher = watch('forged.ticket');
    await eventually(() => expect(watcher.errors.length + watcher.pushes.length).to.be.greaterThan(0));
    expect(watcher.pushes).to.deep.equal([]);
  });
});

// Site broadcasts reach every user of the app: a herald of their own, so the other tests' lists stay theirs.
describe('GraphQL: site broadcasts in notifications and notificationStats (seed 001)', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  const h = harness(() => test);
  let watcher: StatsWatcher | undefined;

  before(async () => {
    test = await startTestHerald();
  });
  after(async () => {
    await watcher?.close();
    await test?.stop();
  });

  it('a site_broadcast is listed for every user of the app, counted and pushed live; read and clear per user', async () => {
    const admin = await h.ticketFor('admin@hub.dataio.com', 'admin');
    const early = await h.ticketFor('early@example.com');
    await h.koala(await h.ticketFor('zhangbin'), 'early@example.com', 'koala first');
    watcher = StatsWatcher.connect(test.url, early);
    expect(await watcher.until(() => true, 'the current counts')).to.deep.equal(ZERO);

    const mark0 = watcher.mark();
    await h.notify(admin, { type: 'site_broadcast', data: { content: 'maintenance at 20:00' } });
    await watcher.until((s) => s.site_broadcast === 1, 'the counts after a broadcast', mark0);

    const late = await h.ticketFor('late@example.com');
    for (const ticket of [early, late]) {
      const list = await h.inbox(ticket, { type: 'site_broadcast' });
      expect(list.total).to.equal(1);
      expect(list.nodes[0]).to.deep.include({
        type: 'site_broadcast',
        content: 'maintenance at 20:00',
        sender: 'admin@hub.dataio.com',
        read: false,
        data: { content: 'maintenance at 20:00' },
      });
    }
    const merged = await h.inbox(early);
    expect([merged.total, titles(merged.nodes)]).to.deep.equal([
      2,
      ['site_broadcast:maintenance at 20:00', 'koala first'],
    ]);
    expect(
      (await h.inbox(await h.ticketFor('early@example.com', '', 'other', 'other-secret'))).total,
      'another app sees nothing',
    ).to.equal(0);

    // Read by one user: read for them only.
    await h.mutate(late, MARK_READ, { seq: merged.nodes[0]!.seq });
    expect((await h.inbox(late, { unreadOnly: true })).total).to.equal(0);
    expect(await h.stats(late)).to.deep.equal(ZERO);
    expect((await h.inbox(early, { unreadOnly: true })).total).to.equal(2);

    let mark = watcher.mark();
    await h.mutate(early, CLEAR);
    expect(await watcher.until((s) => s.site_broadcast === 0, 'the counts after a clear', mark)).to.deep.equal(ZERO);
    mark = watcher.mark();
    await h.notify(admin, { type: 'site_broadcast', data: { content: 'done' } });
    expect(
      await watcher.until((s) => s.site_broadcast === 1, 'the counts after a second broadcast', mark),
    ).to.deep.equal({ ...ZERO, site_broadcast: 1 });
    expect(await h.stats(late)).to.deep.equal({ ...ZERO, site_broadcast: 1 });
  });
});
