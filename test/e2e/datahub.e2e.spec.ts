import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { broadcastReadStreamName, inboxStreamName } from '../../domain/inbox/inbox';
import { issueTicket, postForm, startTestHerald, TestClock } from '../support/herald';
import { countStreamReads } from '../support/streamReads';

// datahub notifications, shared/seeds/001_e25b4a10524b93b6.txt: the seed's own requests, over HTTP.
describe('datahub REST (seed 001) over HTTP', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let admin: string;

  before(async () => {
    test = await startTestHerald();
    admin = await ticketFor('admin@hub.dataio.com', 'admin');
  });
  after(() => test?.stop());

  const ticketFor = (userId: string, roles = '', app?: string, secret?: string) =>
    issueTicket(test.url, userId, roles, app, secret);

  /** A request as the seed writes it: `Accept: application/json`, `Authorization: Token <ticket>`. */
  async function call(
    method: string,
    path: string,
    ticket: string | undefined,
    body?: unknown,
  ): Promise<{ status: number; text: string; json: () => Record<string, unknown> }> {
    const response = await fetch(`${test.url}${path}`, {
      method,
      headers: {
        accept: 'application/json',
        ...(ticket && { authorization: `Token ${ticket}` }),
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  }

  type Listed = {
    total: number;
    results: Array<{
      messageid: number;
      type: string;
      sender: string;
      time: string;
      data: Record<string, unknown>;
      level: number;
      status: number;
    }>;
  };
  const list = async (ticket: string, query = '') => {
    const response = await call('GET', `/notifications${query}`, ticket);
    expect(response.status, response.text).to.equal(200);
    return response.json() as unknown as Listed;
  };
  const stats = async (ticket: string) => {
    const response = await call('GET', '/notification_stat', ticket);
    expect(response.status, response.text).to.equal(200);
    return response.json() as Record<string, number>;
  };

  describe('POST /notifications', () => {
    it("sends the seed's admin_message to each receiver (empty body), listed at once with the documented fields", async () => {
      const [zhang3, li4, john] = await Promise.all(
        ['zhang3@example.com', 'li4@example.com', 'john@example.com'].map((u) => ticketFor(u)),
      );
      const sent = await call('POST', '/notifications', admin, {
        type: 'admin_message',
        receiver: 'zhang3@example.com,li4@example.com,john@example.com',
        data: { content: 'bla bla ...' },
      });
      expect(sent.status, sent.text).to.equal(200);
      expect(sent.text).to.equal('');
      for (const ticket of [zhang3!, li4!, john!]) {
        const { total, results } = await list(ticket);
        expect(total).to.equal(1);
        expect(results[0]).to.include({ type: 'admin_message', sender: 'admin@hub.dataio.com', level: 0, status: 0 });
        expect(results[0]!.data).to.deep.equal({ content: 'bla bla ...' });
        expect(results[0]!.messageid).to.be.a('number');
        expect(results[0]!.time).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      }
    });

    it('takes full-width commas, semicolons (; ；) and 、 in `receiver` as separators, on POST /notifications and the topic', async () => {
      const users = ['sep1@example.com', 'sep2@example.com', 'sep3@example.com', 'sep4@example.com'];
      const tickets = await Promise.all(users.map((u) => ticketFor(u)));
      const sent = await call('POST', '/notifications', admin, {
        type: 'admin_message',
        receiver: 'sep1@example.com，sep2@example.com；sep3@example.com、sep4@example.com',
        data: { content: 'bla bla ...' },
      });
      expect(sent.status, sent.text).to.equal(200);
      const topic = await fetch(`${test.url}/topics/to_notifications.json`, {
        method: 'POST',
        headers: { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
        body: JSON.stringify({
          type: 'admin_message',
          receiver: 'sep1@example.com;sep4@example.com',
          sender: 'admin@hub.dataio.com',
          data: { content: 'via the topic' },
        }),
      });
      expect(topic.status, await topic.text()).to.equal(200);
      for (const [i, ticket] of tickets.entries()) {
        const { results } = await list(ticket!);
        expect(
          results.map((r) => r.data.content),
          users[i],
        ).to.deep.equal(i === 0 || i === 3 ? ['via the topic', 'bla bla ...'] : ['bla bla ...']);
      }
    });

    it('reads the body in the charset its Content-Type names (utf8 as PHP and Java write it, GBK); an unknown one is a 415 naming it, on every datahub route', async () => {
      const receiver = await ticketFor('charset@example.com');
      const types = ['application/json;charset=utf8', 'application/json; charset=GBK'];
      for (const type of types) {
        const sent = await fetch(`${test.url}/notifications`, {
          method: 'POST',
          headers: { authorization: `Token ${admin}`, 'content-type': type },
          body: JSON.stringify({ type: 'admin_message', receiver: 'charset@example.com', data: { content: type } }),
        });
        expect(sent.status, `${type}: ${await sent.text()}`).to.equal(200);
      }
      expect((await list(receiver!)).results.map((r) => (r.data as { content: string }).content).sort()).to.deep.equal(
        [...types].sort(),
      );
      // Not "malformed JSON": the body may be fine; the charset is what herald cannot read.
      for (const [method, path] of [
        ['POST', '/notifications'],
        ['POST', '/topics/to_notifications.json'],
        ['POST', '/topics/to_emails.json'],
        ['PUT', '/items/rep1/item1'],
      ]) {
        const unknown = await fetch(`${test.url}${path}`, {
          method,
          headers: { authorization: `Token ${admin}`, 'content-type': 'application/json; charset=klingon' },
          body: '{}',
        });
        expect(unknown.status, path).to.equal(415);
        const body = (await unknown.json()) as Record<string, unknown>;
        expect(Object.keys(body).sort()).to.deep.equal(['code', 'message']);
        expect(body.code).to.equal('unsupported_media_type');
        expect(body.message).to.match(/^unsupported charset "klingon"/);
      }
      const notJson = await fetch(`${test.url}/items/rep1/item1`, {
        method: 'PUT',
        headers: { authorization: `Token ${admin}`, 'content-type': 'application/json' },
        body: '{"owner": ',
      });
      expect([notJson.status, await notJson.json()]).to.deep.equal([
        400,
        { code: 'bad_request', message: 'malformed JSON body' },
      ]);
      const badPath = await fetch(`${test.url}/items/%E0%A4%A/item1`, {
        method: 'PUT',
        headers: { authorization: `Token ${admin}`, 'content-type': 'application/json' },
        body: '{}',
      });
      expect([badPath.status, await badPath.json()]).to.deep.equal([
        400,
        { code: 'bad_request', message: 'malformed request path (not percent-encoded UTF-8)' },
      ]);
    });

    it('refuses 101 receivers, and an admin_message from a non-admin, appending nothing', async () => {
      const receivers = Array.from({ length: 101 }, (_, i) => `u${i}@example.com`).join(',');
      const tooMany = await call('POST', '/notifications', admin, {
        type: 'admin_message',
        receiver: receivers,
        data: { content: 'x' },
      });
      expect(tooMany.status).to.equal(400);
      expect(tooMany.json()).to.deep.include({ code: 'bad_request' });
      expect(String(tooMany.json().message)).to.include('at most 100');
      const exactly100 = await call('POST', '/notifications', admin, {
        type: 'admin_message',
        receiver: receivers.split(',').slice(0, 100).join(','),
        data: { content: 'x' },
      });
      expect(exactly100.status, exactly100.text).to.equal(200);

      const user = await ticketFor('not-an-admin');
      const refused = await call('POST', '/notifications', user, {
        type: 'admin_message',
        receiver: 'u100@example.com',
        data: { content: 'x' },
      });
      expect(refused.status).to.equal(403);
      expect((await list(await ticketFor('u100@example.com'))).total, 'the 101st receiver got nothing').to.equal(0);
    });

    it('sends a private_message from the caller to one user', async () => {
      const sender = await ticketFor('pm-sender');
      const receiver = await ticketFor('pm-receiver');
      expect(
        (
          await call('POST', '/notifications', sender, {
            type: 'private_message',
            receiver: 'pm-receiver',
            data: { content: 'hi' },
          })
        ).status,
      ).to.equal(200);
      const { results } = await list(receiver);
      expect(results.map((r) => [r.type, r.sender])).to.deep.equal([['private_message', 'pm-sender']]);
      const two = await call('POST', '/notifications', sender, {
        type: 'private_message',
        receiver: 'a,b',
        data: { content: 'hi' },
      });
      expect(two.status).to.equal(400);
    });

    it("applies for the seed's whitelist (repo001/item123): the owner named in receiver is notified once, at level 50", async () => {
      const applicant = await ticketFor('applicant@example.com');
      const owner = await ticketFor('owner@example.com');
      const apply = {
        type: 'apply_whitelist',
        receiver: 'owner@example.com',
        data: { repname: 'repo001', itemname: 'item123' },
      };
      for (let i = 0; i < 2; i++) {
        const applied = await call('POST', '/notifications', applicant, apply);
        expect(applied.status, applied.text).to.equal(200);
        expect(applied.text).to.equal('');
      }
      const { total, results } = await list(owner);
      expect(total, 'applying again notifies once').to.equal(1);
      expect(results[0]).to.include({ type: 'apply_whitelist', sender: 'applicant@example.com', level: 50, status: 0 });
      expect(results[0]!.data).to.deep.equal({ repname: 'repo001', itemname: 'item123' });
      expect((await list(owner, '?level=50')).total).to.equal(1);
      expect((await stats(owner)).apply_whitelist).to.equal(1);

      for (const [what, body] of [
        ['two owners', { ...apply, receiver: 'a,b' }],
        ['no itemname', { ...apply, data: { repname: 'repo001' } }],
        ['an empty repname', { ...apply, data: { repname: ' ', itemname: 'item123' } }],
        [
          'the applicant owning the item',
          { ...apply, receiver: 'applicant@example.com', data: { repname: 'r', itemname: 'i' } },
        ],
      ] as const) {
        const refused = await call('POST', '/notifications', applicant, body);
        expect(refused.status, what).to.equal(400);
      }
      expect((await list(owner)).total, 'nothing more for the owner').to.equal(1);
    });

    it('answers bad requests with 400/401 in its envelope', async () => {
      const cases: Array<[string, string | undefined, unknown, number, RegExp?]> = [
        ['no ticket', undefined, { type: 'private_message', receiver: 'x', data: { content: 'x' } }, 401],
        ['a bad ticket', 'nonsense', { type: 'private_message', receiver: 'x', data: { content: 'x' } }, 401],
        ['malformed JSON', admin, '{bad', 400],
        ['no data', admin, { type: 'private_message', receiver: 'x' }, 400, /^data:/],
        [
          'no data.content',
          admin,
          { type: 'admin_message', receiver: 'x', data: { text: 'x' } },
          400,
          /^data\.content:/,
        ],
        ['an unknown type', admin, { type: 'spam', receiver: 'x', data: {} }, 400, /^type must be one of/],
        [
          "a back-end service's type",
          admin,
          { type: 'comment_reply', receiver: 'x', data: {} },
          400,
          /to_notifications\.json/,
        ],
        ['no receiver', admin, { type: 'private_message', data: { content: 'x' } }, 400, /^receiver:/],
        [
          'NUL in data',
          admin,
          { type: 'private_message', receiver: 'x', data: { content: 'a\u0000b' } },
          400,
          /^data:/,
        ],
      ];
      for (const [what, ticket, body, status, message] of cases) {
        const response = await call('POST', '/notifications', ticket, body);
        expect(response.status, what).to.equal(status);
        expect(response.json(), what).to.have.keys('code', 'message');
        if (message) expect(response.json().message, what).to.match(message);
      }
    });
  });

  describe('GET /notifications', () => {
    it('filters by type, sender, status and level, pages newest first, and does not mark as read', async () => {
      const user = 'filtered@example.com';
      const ticket = await ticketFor(user);
      const alice = await ticketFor('alice');
      for (let i = 0; i < 3; i++)
        await call('POST', '/notifications', alice, {
          type: 'private_message',
          receiver: user,
          data: { content: `m${i}` },
        });
      await call('POST', '/notifications', admin, {
        type: 'admin_message',
        receiver: user,
        data: { content: 'admin' },
      });

      const all = await list(ticket);
      expect(all.total).to.equal(4);
      expect(all.results.map((r) => r.type)).to.deep.equal([
        'admin_message',
        'private_message',
        'private_message',
        'private_message',
      ]);
      expect(all.results.map((r) => r.messageid)).to.deep.equal(
        [...all.results.map((r) => r.messageid)].sort((a, b) => b - a),
      );

      expect((await list(ticket, '?type=private_message')).total).to.equal(3);
      expect((await list(ticket, '?sender=admin@hub.dataio.com')).results.map((r) => r.type)).to.deep.equal([
        'admin_message',
      ]);
      expect((await list(ticket, '?level=50')).total).to.equal(0);
      expect((await list(ticket, '?level=0')).total).to.equal(4);
      expect((await list(ticket, '?forclient=1')).total).to.equal(0);
      const page2 = await list(ticket, '?page=2&size=3');
      expect(page2.total).to.equal(4);
      expect(page2.results.map((r) => r.data)).to.deep.equal([{ content: 'm0' }]);
      expect((await list(ticket, '?page=9&size=3')).results).to.deep.equal([]);
      // The seed's own spelling of the query string (`&&`) works too.
      expect((await list(ticket, '?forclient=0&&type=admin_message')).total).to.equal(1);

      // Listing did not read anything; marking one read moves it from status 0 to 1.
      expect((await list(ticket, '?status=0')).total).to.equal(4);
      const marked = await call('PUT', `/notifications/${all.results[0]!.messageid}`, ticket);
      expect(marked.status, marked.text).to.equal(200);
      expect((await list(ticket, '?status=0')).total).to.equal(3);
      expect((await list(ticket, '?status=1')).results.map((r) => r.messageid)).to.deep.equal([
        all.results[0]!.messageid,
      ]);
    });

    it("refuses bad filters with 400, and another user's notification is not found", async () => {
      const ticket = await ticketFor('bad-filters');
      for (const query of [
        '?sender=%00',
        '?status=3',
        '?level=7',
        '?page=0',
        '?page=-1',
        '?page=1.5',
        '?size=0',
        '?size=-5',
        '?size=x',
        '?type=spam',
        '?forclient=2',
        '?page=1&page=2',
      ]) {
        const response = await call('GET', `/notifications${query}`, ticket);
        expect(response.status, query).to.equal(400);
        expect(response.json(), query).to.have.keys('code', 'message');
      }
      const owner = await ticketFor('owner-of-one');
      await call('POST', '/notifications', admin, {
        type: 'admin_message',
        receiver: 'owner-of-one',
        data: { content: 'mine' },
      });
      const [mine] = (await list(owner)).results;
      expect((await call('PUT', `/notifications/${mine!.messageid}`, ticket)).status).to.equal(404);
      expect((await call('PUT', '/notifications/not-a-number', ticket)).status).to.equal(400);
      expect((await list(owner, '?status=0')).total, 'still unread for its owner').to.equal(1);
    });
  });

  describe('GET /notifications: what the seed allows (issue 22)', () => {
    const APP = { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE', 'content-type': 'application/json' };

    it('reads a size above 100 as 100 (the seed sets no maximum), and any page from 1 on', async () => {
      const user = 'many@example.com';
      const ticket = await ticketFor(user);
      // 101 notifications, from a back-end service (not rate-limited).
      for (let i = 0; i < 101; i++) {
        const response = await fetch(`${test.url}/topics/to_notifications.json`, {
          method: 'POST',
          headers: APP,
          body: JSON.stringify({
            type: 'item_event',
            receiver: user,
            data: { event: 'repo_deleted', repname: `r${i}` },
          }),
        });
        expect(response.status).to.equal(200);
      }
      for (const size of ['101', '1000', '99999999999999999999']) {
        const { total, results } = await list(ticket, `?size=${size}`);
        expect(total, size).to.equal(101);
        expect(results, size).to.have.length(100);
      }
      expect((await list(ticket, '?size=100&page=2')).results.map((r) => r.data['repname'])).to.deep.equal(['r0']);
      expect(await list(ticket, '?page=99999999999999999999')).to.deep.equal({ total: 101, results: [] });
    });

    it('counts the limits in characters (code points): 128 emoji are 128 characters', async () => {
      const emoji = '😀'.repeat(128);
      const sent = await call('POST', '/notifications', admin, {
        type: 'admin_message',
        receiver: `${emoji},emoji-reader`,
        request_id: emoji,
        data: { content: 'emoji' },
      });
      expect(sent.status, sent.text).to.equal(200);
      const tooLong = await call('POST', '/notifications', admin, {
        type: 'admin_message',
        receiver: `${emoji}x`,
        data: { content: 'emoji' },
      });
      expect(tooLong.status, tooLong.text).to.equal(400);
      const reader = await ticketFor('emoji-reader');
      expect((await list(reader)).results.map((r) => r.data['content'])).to.deep.equal(['emoji']);
      expect((await list(reader, `?sender=${encodeURIComponent(emoji)}`)).total).to.equal(0);
      expect((await call('GET', `/notifications?sender=${encodeURIComponent(`${emoji}x`)}`, reader)).status).to.equal(
        400,
      );
    });

    it("reads the list sample's type apply_subs as subsapply_event, and the Token scheme in any case", async () => {
      const user = 'subsapply@example.com';
      const ticket = await ticketFor(user);
      const response = await fetch(`${test.url}/topics/to_notifications.json`, {
        method: 'POST',
        headers: APP,
        body: JSON.stringify({ type: 'subsapply_event', receiver: user, data: { subscriptionid: 1 } }),
      });
      expect(response.status).to.equal(200);
      expect((await list(ticket, '?type=apply_subs')).results.map((r) => r.type)).to.deep.equal(['subsapply_event']);
      const lower = await fetch(`${test.url}/notifications`, { headers: { authorization: `token ${ticket}` } });
      expect(lower.status).to.equal(200);
    });
  });

  describe('GET and DELETE /notification_stat', () => {
    it('counts unread per type with every documented key present, and clearing resets them (an event)', async () => {
      const user = 'stats@example.com';
      const ticket = await ticketFor(user);
      const empty = await stats(ticket);
      for (const key of [
        'subsapply_event',
        'item_event',
        'subs_event',
        'vip_remind',
        'apply_whitelist',
        'admin_message',
        'comment_reply',
      ])
        expect(empty[key], key).to.equal(0);

      const bob = await ticketFor('bob');
      await call('POST', '/notifications', admin, { type: 'admin_message', receiver: user, data: { content: '1' } });
      await call('POST', '/notifications', admin, { type: 'admin_message', receiver: user, data: { content: '2' } });
      await call('POST', '/notifications', bob, { type: 'private_message', receiver: user, data: { content: '3' } });
      expect(await stats(ticket)).to.include({ admin_message: 2, private_message: 1 });

      const [newest] = (await list(ticket)).results;
      await call('PUT', `/notifications/${newest!.messageid}`, ticket);
      expect(await stats(ticket)).to.include({ admin_message: 2, private_message: 0 });

      const cleared = await call('DELETE', '/notification_stat', ticket);
      expect(cleared.status).to.equal(200);
      expect(cleared.text).to.equal('');
      expect(await stats(ticket)).to.include({ admin_message: 0, private_message: 0 });
      // The notifications stay unread; only what arrives after the clear counts.
      expect((await list(ticket, '?status=0')).total).to.equal(2);
      await call('POST', '/notifications', admin, { type: 'admin_message', receiver: user, data: { content: '4' } });
      expect(await stats(ticket)).to.include({ admin_message: 1 });
      // Reading one from before the clear does not count twice.
      const before = (await list(ticket, '?status=0')).results.at(-1)!;
      await call('PUT', `/notifications/${before.messageid}`, ticket);
      expect(await stats(ticket)).to.include({ admin_message: 1 });
    });

    it('a user whose inbox holds 5,000 reads and clears (written before issue 26): reads and clears answer as before, each reading a few events', async () => {
      const user = 'long-history';
      const ticket = await ticketFor(user);
      const { store } = test.herald.infrastructure;
      const inbox = inboxStreamName('camel', user);
      // What herald appended to an inbox before issue 26: a NotificationRead per broadcast read, and clears.
      const history = Array.from({ length: 5_000 }, (_, i) => ({
        id: randomUUID(),
        ...(i % 10 === 9
          ? {
              type: 'NotificationStatsCleared',
              data: { appId: 'camel', userId: user, clearedAt: '2026-01-01T00:00:00.000Z' },
            }
          : {
              type: 'NotificationRead',
              data: { notificationId: randomUUID(), appId: 'camel', userId: user, readAt: '2026-01-01T00:00:00.000Z' },
            }),
        metadata: { correlationId: 'before-issue-26', causationId: 'before-issue-26', appId: 'camel' },
      }));
      for (let i = 0; i < history.length; i += 1_000) await store.append(inbox, history.slice(i, i + 1_000));

      await call('POST', '/notifications', admin, { type: 'site_broadcast', data: { content: 'to all' } });
      await call('POST', '/notifications', admin, { type: 'admin_message', receiver: user, data: { content: 'one' } });
      const [message, broadcast] = (await list(ticket)).results;
      expect([message!.type, broadcast!.type, broadcast!.status]).to.deep.equal(['admin_message', 'site_broadcast', 0]);

      // The events each request reads from the store (herald's own, watched in place).
      const reads = countStreamReads(store);
      try {
        // Read three times at once: one read, on the broadcast's stream for this user.
        const three = await reads.during(() =>
          Promise.all([1, 2, 3].map(() => call('PUT', `/notifications/${broadcast!.messageid}`, ticket))),
        );
        expect(three.result.map((r) => r.status)).to.deep.equal([200, 200, 200]);
        expect(three.eventsRead, 'events read by three reads').to.be.at.most(3);
        expect((await list(ticket)).results.find((n) => n.messageid === broadcast!.messageid)?.status).to.equal(1);
        const { notificationId } = (
          await test.herald.datahub.list(
            { ticketId: 'test', appId: 'camel', userId: user, roles: [], expiresAt: '2099-01-01T00:00:00.000Z' },
            { forClient: false, status: 'either', page: 1, size: 10 },
          )
        ).results.find((n) => n.messageId === broadcast!.messageid)!;
        expect(await store.readStream(broadcastReadStreamName('camel', notificationId, user))).to.have.length(1);

        expect(await stats(ticket)).to.include({ admin_message: 1 });
        const cleared = await reads.during(() => call('DELETE', '/notification_stat', ticket));
        expect(cleared.result.status).to.equal(200);
        expect(cleared.eventsRead, 'events read by a clear').to.equal(1);
        expect(await stats(ticket)).to.include({ admin_message: 0 });
        expect((await store.readStream(inbox, { direction: 'backwards', maxCount: 1 }))[0]).to.deep.include({
          type: 'NotificationStatsCleared',
          revision: 5_000n,
        });
      } finally {
        reads.restore();
      }
    });

    it('keeps apps apart: the same user id in another app sees nothing of this one', async () => {
      await call('POST', '/notifications', admin, {
        type: 'admin_message',
        receiver: 'shared-id',
        data: { content: 'camel only' },
      });
      const elsewhere = await ticketFor('shared-id', '', 'other', 'other-secret');
      expect((await list(elsewhere)).total).to.equal(0);
      expect((await stats(elsewhere)).admin_message).to.equal(0);
    });
  });
});

describe('datahub REST: the sending rate', function () {
  this.timeout(60_000);
  const clock = new TestClock();
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  before(async () => {
    test = await startTestHerald({ sendRatePerMinute: 2 }, clock.now);
  });
  after(() => test?.stop());

  it('refuses a user over HERALD_SEND_RATE_PER_MINUTE with 429 and Retry-After, appending nothing, until the minute is over', async () => {
    const { body } = await postForm(`${test.url}/koala/api/mas/tickets`, {
      app_key: 'camel',
      secret_key: 'EERWERRRRE',
      user_id: 'chatty',
    });
    const send = (content: string) =>
      fetch(`${test.url}/notifications`, {
        method: 'POST',
        headers: { authorization: `Token ${body.result as string}`, 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'private_message', receiver: 'listener', data: { content } }),
      });
    expect((await send('1')).status).to.equal(200);
    expect((await send('2')).status).to.equal(200);
    const refused = await send('3');
    expect(refused.status).to.equal(429);
    expect(Number(refused.headers.get('retry-after'))).to.be.within(1, 60);
    expect(await refused.json()).to.include({ code: 'too_many_requests' });

    // A back-end service of the app is not limited.
    const service = await fetch(`${test.url}/topics/to_notifications.json`, {
      method: 'POST',
      headers: { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE', 'content-type': 'application/json' },
      body: JSON.stringify({
        type: 'private_message',
        receiver: 'listener',
        sender: 'chatty',
        data: { content: 'via a service' },
      }),
    });
    expect(service.status).to.equal(200);

    clock.advance(60_000);
    expect((await send('4')).status).to.equal(200);
    const { body: listener } = await postForm(`${test.url}/koala/api/mas/tickets`, {
      app_key: 'camel',
      secret_key: 'EERWERRRRE',
      user_id: 'listener',
    });
    const listed = (await (
      await fetch(`${test.url}/notifications`, { headers: { authorization: `Token ${listener.result as string}` } })
    ).json()) as { results: Array<{ data: { content: string } }> };
    expect(listed.results.map((r) => r.data.content)).to.deep.equal(['4', 'via a service', '2', '1']);
  });
});
