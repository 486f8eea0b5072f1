import { expect } from 'chai';
import { issueTicket, startTestHerald } from '../support/herald';

/**
 * datahub's message formats (shared/seeds/001_e25b4a10524b93b6.txt, "json消息格式"): the seed's own
 * samples, POSTed unchanged to /topics/<topic> by a back-end service with the app's credentials, and
 * site broadcasts. Samples whose JSON the seed mistyped are given corrected (docs/api/datahub.md).
 */
describe('datahub topics and site broadcasts (seed 001) over HTTP', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let admin: string;
  const APP = { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' };

  before(async () => {
    test = await startTestHerald();
    admin = await ticketFor('admin@hub.dataio.com', 'admin');
  });
  after(() => test?.stop());

  const ticketFor = (userId: string, roles = '', app?: string, secret?: string) =>
    issueTicket(test.url, userId, roles, app, secret);

  async function call(method: string, path: string, headers: Record<string, string>, body?: unknown) {
    const response = await fetch(`${test.url}${path}`, {
      method,
      headers: {
        accept: 'application/json',
        ...headers,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  }
  const topic = (name: string, message: unknown, headers: Record<string, string> = {}) =>
    call('POST', `/topics/${name}`, { ...APP, ...headers }, message);
  type Listed = {
    total: number;
    results: Array<{
      messageid: number;
      type: string;
      sender?: string;
      time: string;
      data: Record<string, unknown>;
      level: number;
      status: number;
    }>;
  };
  const list = async (ticket: string, query = '') => {
    const response = await call('GET', `/notifications${query}`, { authorization: `Token ${ticket}` });
    expect(response.status, response.text).to.equal(200);
    return response.json() as unknown as Listed;
  };
  const stats = async (ticket: string) => {
    const response = await call('GET', '/notification_stat', { authorization: `Token ${ticket}` });
    expect(response.status, response.text).to.equal(200);
    return response.json() as Record<string, number>;
  };
  const markRead = async (ticket: string, messageId: number) => {
    const response = await call('PUT', `/notifications/${messageId}`, { authorization: `Token ${ticket}` });
    expect(response.status, response.text).to.equal(200);
  };

  // The seed's samples, one per type (receivers renamed per test so tests stay apart).
  const samples = (receiver: string) => ({
    site_broadcast: {
      type: 'site_broadcast',
      receiver,
      sender: '',
      time: '2015-11-10T15:06:09Z08:00',
      data: { content: 'bla bla ...' },
    },
    admin_message: {
      type: 'admin_message',
      receiver: `${receiver} li4-${receiver} john-${receiver}`,
      sender: 'admin@hub.dataio.com',
      time: '2015-11-10T15:06:09Z08:00',
      data: { content: 'bla bla ...' },
    },
    private_message: {
      type: 'private_message',
      receiver,
      sender: 'li4@example.com',
      time: '2015-11-10T15:06:09Z08:00',
      data: { content: 'bla bla ...' },
    },
    apply_whitelist: {
      type: 'apply_whitelist',
      receiver,
      sender: 'li4@example.com',
      level: 50,
      time: '2015-11-10T15:06:09Z08:00',
      data: { repname: 'repo001', itemname: 'item123' },
    },
    comment_reply: {
      type: 'comment_reply',
      receiver,
      sender: '',
      level: 0,
      time: '2015-11-10T15:06:09Z08:00',
      data: {
        commentid: 1234567,
        username: 'li4@bbb.com',
        nickname: '小李',
        createtime: '2015-11-10T15:04:05Z08:00',
        content: 'agree!',
        replyto: { commentid: 1234560, content: 'cool data! ...' },
      },
    },
    item_event: {
      type: 'item_event',
      receiver,
      sender: '',
      time: '2015-11-10T15:06:09Z08:00',
      data: { event: 'tag_deleted', repname: 'repo1', itemname: 'item2', tag: 'tag3' },
    },
    subs_event: {
      type: 'subs_event',
      receiver,
      sender: '',
      time: '2015-11-10T15:06:09Z08:00',
      data: {
        subscriptionid: 1234567,
        sellername: 'li4@example.com',
        repname: 'NBA',
        itemname: 'bear',
        supply_style: 'batch',
        signtime: '2015-11-10T15:04:05Z08:00',
        expiretime: '2016-01-15T11:28:21Z',
        freezetime: '2015-12-11T10:51:11Z',
        finishtime: '2016-01-10T10:51:11Z',
        phase: 1,
        plan: { money: 5, units: 3, used: 0, limit: 0, subs: 1, expire: 30 },
      },
    },
    subsapply_event: {
      type: 'subsapply_event',
      receiver,
      sender: '',
      time: '2015-11-10T15:06:09Z08:00',
      data: {
        subscriptionid: 1234567,
        sellername: 'li4@example.com',
        repname: 'NBA',
        itemname: 'bear',
        supply_style: 'batch',
        applytime: '2015-11-10T15:04:05Z08:00',
        expiretime: '2016-11-17T15:04:05Z08:00',
        phase: 7,
        plan: { money: 5, units: 3, used: 0, limit: 0, subs: 1, expire: 30 },
      },
    },
    vip_remind: {
      type: 'vip_remind',
      receiver,
      sender: '',
      level: 50,
      time: '2015-11-10T15:06:09Z08:00',
      data: { level: 4, invalide: 7 },
    },
  });

  describe('POST /topics/to_notifications.json', () => {
    it("accepts each of the seed's nine samples unchanged, each listed for its receiver with its data, level and sender", async () => {
      const user = 'zhang3-topics@example.com';
      const ticket = await ticketFor(user);
      const all = samples(user);
      for (const [type, message] of Object.entries(all)) {
        const response = await topic('to_notifications.json', message);
        expect(response.status, `${type}: ${response.text}`).to.equal(200);
        expect(response.text).to.equal('');
      }
      const { total, results } = await list(ticket, '?size=100');
      const mine = results.filter((r) => r.type !== 'site_broadcast' || r.data['content'] === 'bla bla ...');
      expect(total).to.be.at.least(9);
      for (const [type, message] of Object.entries(all)) {
        const listed = mine.find((r) => r.type === type);
        expect(listed, type).to.not.equal(undefined);
        expect(listed!.data, type).to.deep.equal(message.data);
        expect(listed!.level, type).to.equal('level' in message ? message.level : 0);
        // A system notification (sender "") is listed without `sender`, as the seed's list sample shows.
        if (message.sender === '') expect(listed, type).to.not.have.property('sender');
        else expect(listed!.sender, type).to.equal(message.sender);
        // The message's own time, exactly as sent (the seed's `…Z08:00`).
        expect(listed!.time, type).to.equal(message.time);
      }
      const counts = await stats(ticket);
      for (const type of Object.keys(all)) expect(counts[type], type).to.be.at.least(1);
      // The admin message's space-separated receivers each got it.
      expect((await list(await ticketFor(`li4-${user}`))).results.map((r) => r.type)).to.include('admin_message');
    });

    it("puts a message in the browser list, the client list or both by its key (the seed's forclient rule)", async () => {
      const user = 'keys@example.com';
      const ticket = await ticketFor(user);
      const send = (content: string, key?: string) =>
        topic(
          'to_notifications.json',
          { type: 'private_message', receiver: user, sender: 's', data: { content } },
          key === undefined ? {} : { 'x-message-key': key },
        );
      expect((await send('no key')).status).to.equal(200);
      expect((await send('both', 'forclient')).status).to.equal(200);
      expect((await send('client only', 'forclient,notforbrowser')).status).to.equal(200);
      const refused = await send('nowhere', 'notforbrowser');
      expect(refused.status).to.equal(400);
      expect(refused.json()).to.deep.equal({
        code: 'bad_request',
        message: 'X-Message-Key: "notforbrowser" without "forclient" puts the notification in no list',
      });

      const contents = (listed: Listed) => listed.results.map((r) => r.data['content']);
      // (Other tests' site broadcasts reach this user too: filtered out by type.)
      expect(contents(await list(ticket, '?type=private_message'))).to.deep.equal(['both', 'no key']);
      expect(contents(await list(ticket, '?type=private_message&forclient=0'))).to.deep.equal(['both', 'no key']);
      expect(contents(await list(ticket, '?type=private_message&forclient=1'))).to.deep.equal(['client only', 'both']);
      // In two lists, still one notification: reading it in one reads it in both.
      const both = (await list(ticket, '?type=private_message&forclient=1')).results[1]!;
      await markRead(ticket, both.messageid);
      expect(
        (await list(ticket, '?type=private_message&forclient=0&status=1')).results.map((r) => r.messageid),
      ).to.deep.equal([both.messageid]);
      expect((await stats(ticket)).private_message).to.equal(2);
    });

    it('needs the app credentials, and names the malformed field in a 400 that appends nothing', async () => {
      const user = 'malformed@example.com';
      const ticket = await ticketFor(user);
      const good = samples(user);
      const cases: Array<[string, Record<string, string>, unknown, number, RegExp]> = [
        ['no credentials', { 'x-app-id': '', 'x-app-key': '' }, good.private_message, 401, /X-App-Id and X-App-Key/],
        ['a wrong secret', { 'x-app-key': 'wrong' }, good.private_message, 401, /wrong app secret/],
        ['an unknown app', { 'x-app-id': 'nobody' }, good.private_message, 401, /unknown app/],
        ['an unknown type', {}, { ...good.private_message, type: 'spam' }, 400, /^type:/],
        ['no data', {}, { type: 'private_message', receiver: user }, 400, /^data:/],
        [
          'a comment_reply without commentid',
          {},
          { ...good.comment_reply, data: { username: 'u', content: 'c' } },
          400,
          /^data\.commentid:/,
        ],
        [
          'a comment_reply with a replyto of the wrong shape',
          {},
          { ...good.comment_reply, data: { ...good.comment_reply.data, replyto: { commentid: 'x' } } },
          400,
          /^data\.replyto\.commentid:/,
        ],
        [
          'a subs_event without subscriptionid',
          {},
          { ...good.subs_event, data: { phase: 1 } },
          400,
          /^data\.subscriptionid:/,
        ],
        [
          'a subs_event plan of the wrong shape',
          {},
          { ...good.subs_event, data: { ...good.subs_event.data, plan: { money: 'five' } } },
          400,
          /^data\.plan\.money:/,
        ],
        [
          'an item_event with an unknown event',
          {},
          { ...good.item_event, data: { event: 'tag_renamed', repname: 'r' } },
          400,
          /^data\.event:/,
        ],
        [
          'a tag event without its tag',
          {},
          { ...good.item_event, data: { event: 'tag_added', repname: 'r', itemname: 'i' } },
          400,
          /^data\.tag: required for tag_added/,
        ],
        ['a vip_remind without invalide', {}, { ...good.vip_remind, data: { level: 4 } }, 400, /^data\.invalide:/],
        ['a level the seed does not define', {}, { ...good.private_message, level: 7 }, 400, /^level must be 0 or 50/],
        ['a level of the wrong type', {}, { ...good.private_message, level: '50' }, 400, /^level:/],
        ['a sender of the wrong type', {}, { ...good.private_message, sender: 5 }, 400, /^sender:/],
        ['no receiver', {}, { ...good.private_message, receiver: '' }, 400, /^receiver:/],
        [
          '101 admin_message receivers',
          {},
          { ...good.admin_message, receiver: Array.from({ length: 101 }, (_, i) => `u${i}`).join(' ') },
          400,
          /^receiver: at most 100/,
        ],
        // The seed's comment_reply sample as printed: `"nickname", "小李"` is not JSON.
        [
          'the seed sample with its typo',
          {},
          JSON.stringify(good.comment_reply).replace('"nickname":"小李"', '"nickname", "小李"'),
          400,
          /malformed JSON body/,
        ],
        ['a body too large', {}, { ...good.private_message, data: { content: 'x'.repeat(70_000) } }, 413, /too large/],
      ];
      const before = await list(ticket, '?size=100');
      for (const [what, headers, body, status, message] of cases) {
        const response = await topic('to_notifications.json', body, headers);
        expect(response.status, `${what}: ${response.text}`).to.equal(status);
        expect(response.json(), what).to.have.keys('code', 'message');
        expect(response.json().message, what).to.match(message);
      }
      expect((await list(ticket, '?size=100')).total, 'nothing was sent').to.equal(before.total);
    });

    it('sends once per X-Request-Id', async () => {
      const user = 'retried@example.com';
      const ticket = await ticketFor(user);
      const message = { type: 'vip_remind', receiver: user, sender: '', level: 50, data: { level: 4, invalide: 7 } };
      for (let i = 0; i < 3; i++)
        expect((await topic('to_notifications.json', message, { 'x-request-id': 'remind-1' })).status).to.equal(200);
      expect((await list(ticket, '?type=vip_remind')).total).to.equal(1);
    });
  });

  describe('site_broadcast', () => {
    it('reaches every user of the app, also one who appears after it, unread for each until read, with one event', async () => {
      const content = `broadcast ${Date.now()}`;
      const early = await ticketFor('broadcast-early');
      const sent = await call(
        'POST',
        '/notifications',
        { authorization: `Token ${admin}` },
        { type: 'site_broadcast', data: { content } },
      );
      expect(sent.status, sent.text).to.equal(200);
      expect(sent.text).to.equal('');
      const late = await ticketFor('broadcast-late');
      const otherApp = await ticketFor('broadcast-early', '', 'other', 'other-secret');

      for (const ticket of [early, late]) {
        const broadcast = (await list(ticket, '?type=site_broadcast')).results.find(
          (r) => r.data['content'] === content,
        );
        expect(broadcast).to.include({ type: 'site_broadcast', sender: 'admin@hub.dataio.com', status: 0, level: 0 });
      }
      expect((await list(otherApp, '?type=site_broadcast')).results.map((r) => r.data['content'])).to.not.include(
        content,
      );

      const before = (await stats(late)).site_broadcast!;
      expect(before).to.be.at.least(1);
      const mine = (await list(late, '?type=site_broadcast&status=0')).results.find(
        (r) => r.data['content'] === content,
      )!;
      await markRead(late, mine.messageid);
      await markRead(late, mine.messageid); // twice: still one read
      expect((await stats(late)).site_broadcast).to.equal(before - 1);
      expect((await list(late, '?type=site_broadcast&status=1')).results.map((r) => r.messageid)).to.include(
        mine.messageid,
      );
      // Another user's read changes nothing for this one.
      expect((await list(early, '?type=site_broadcast&status=0')).results.map((r) => r.messageid)).to.include(
        mine.messageid,
      );

      // Clearing the stats uncounts it, and a later broadcast counts again.
      expect((await call('DELETE', '/notification_stat', { authorization: `Token ${early}` })).status).to.equal(200);
      expect((await stats(early)).site_broadcast).to.equal(0);
      // "receiver": "" names no receiver: to the whole app.
      expect(
        (
          await topic('to_notifications.json', {
            type: 'site_broadcast',
            receiver: '',
            sender: '',
            data: { content: 'again' },
          })
        ).status,
      ).to.equal(200);
      expect((await stats(early)).site_broadcast).to.equal(1);
    });

    it('is for admins only on POST /notifications', async () => {
      const user = await ticketFor('not-an-admin');
      const refused = await call(
        'POST',
        '/notifications',
        { authorization: `Token ${user}` },
        { type: 'site_broadcast', data: { content: 'x' } },
      );
      expect(refused.status).to.equal(403);
      expect(refused.json()).to.have.keys('code', 'message');
    });
  });

  describe('site_broadcast naming a receiver (issue 22)', () => {
    // The seed's sample, byte for byte as the seed prints it.
    const SEED_BROADCAST = `{
		"type": "site_broadcast",
		"receiver": "zhang3@example.com",
		"sender": "",
		"time": "2015-11-10T15:06:09Z08:00",
		"data": {
			"content": "bla bla ..."
		}
	}`;

    it("the seed's sample reaches its receiver only, and a producer sending one per receiver gives each one copy", async () => {
      const zhang3 = await ticketFor('zhang3@example.com');
      const bystander = await ticketFor('broadcast-bystander');
      const sent = await topic('to_notifications.json', SEED_BROADCAST);
      expect(sent.status, sent.text).to.equal(200);

      const received = (await list(zhang3, '?type=site_broadcast')).results.filter(
        (r) => r.data['content'] === 'bla bla ...',
      );
      expect(received).to.have.length(1);
      expect(received[0]).to.deep.include({
        type: 'site_broadcast',
        time: '2015-11-10T15:06:09Z08:00',
        data: { content: 'bla bla ...' },
        status: 0,
      });
      expect(
        (await list(bystander, '?type=site_broadcast')).results.map((r) => r.data['content']),
        'not for the bystander',
      ).to.not.include('bla bla ...');
      const unread = (await stats(zhang3)).site_broadcast!;
      expect(unread).to.be.at.least(1);
      await markRead(zhang3, received[0]!.messageid);
      expect((await stats(zhang3)).site_broadcast).to.equal(unread - 1);

      // One message per receiver: each receiver one copy, nobody else any.
      const receivers = ['per-receiver-a', 'per-receiver-b', 'per-receiver-c'];
      for (const receiver of receivers) {
        expect(
          (
            await topic('to_notifications.json', {
              type: 'site_broadcast',
              receiver,
              sender: '',
              data: { content: 'one each' },
            })
          ).status,
        ).to.equal(200);
      }
      for (const receiver of receivers) {
        const copies = (await list(await ticketFor(receiver), '?type=site_broadcast')).results.filter(
          (r) => r.data['content'] === 'one each',
        );
        expect(copies, receiver).to.have.length(1);
      }
      expect((await list(bystander, '?type=site_broadcast')).results.map((r) => r.data['content'])).to.not.include(
        'one each',
      );
    });

    it("on POST /notifications too: an admin's site_broadcast with receivers reaches them only", async () => {
      const [a, b, bystander] = (await Promise.all(
        ['narrow-a', 'narrow-b', 'narrow-bystander'].map((u) => ticketFor(u)),
      )) as [string, string, string];
      const sent = await call(
        'POST',
        '/notifications',
        { authorization: `Token ${admin}` },
        { type: 'site_broadcast', receiver: 'narrow-a,narrow-b', data: { content: 'narrowed' } },
      );
      expect(sent.status, sent.text).to.equal(200);
      for (const ticket of [a, b]) {
        expect(
          (await list(ticket, '?type=site_broadcast')).results.filter((r) => r.data['content'] === 'narrowed'),
          'a receiver',
        ).to.have.length(1);
      }
      expect((await list(bystander, '?type=site_broadcast')).results.map((r) => r.data['content'])).to.not.include(
        'narrowed',
      );
    });
  });

  describe("a message's time (issue 22)", () => {
    // The seed's private_message sample, byte for byte as the seed prints it.
    const SEED_PRIVATE_MESSAGE = `{
		"type": "private_message",
		"receiver": "zhang3@example.com",
		"sender": "li4@example.com",
		"time": "2015-11-10T15:06:09Z08:00",
		"data": {
			"content": "bla bla ..."
		}
	}`;

    it('the seed\'s sample is listed with its time exactly as sent, "2015-11-10T15:06:09Z08:00"', async () => {
      const user = 'zhang3@example.com';
      const ticket = await ticketFor(user);
      const sent = await topic('to_notifications.json', SEED_PRIVATE_MESSAGE);
      expect(sent.status, sent.text).to.equal(200);
      const response = await call('GET', '/notifications?type=private_message', { authorization: `Token ${ticket}` });
      expect(response.status, response.text).to.equal(200);
      // On the wire, as the seed's list sample writes its times.
      expect(response.text).to.include('"time":"2015-11-10T15:06:09Z08:00"');
      const [listed] = (response.json() as unknown as Listed).results;
      expect(listed).to.deep.include({
        type: 'private_message',
        sender: 'li4@example.com',
        time: '2015-11-10T15:06:09Z08:00',
        data: { content: 'bla bla ...' },
      });
    });

    it("is listed as given, byte for byte (the seed's Z08:00 and RFC 3339 forms), while the list stays ordered by arrival", async () => {
      const user = 'timed@example.com';
      const ticket = await ticketFor(user);
      const send = (content: string, time?: string) =>
        topic('to_notifications.json', {
          type: 'private_message',
          receiver: user,
          sender: 'li4@example.com',
          ...(time !== undefined && { time }),
          data: { content },
        });
      // Sent in this order, their times in no order: the list is by arrival, newest first.
      const given: Array<[string, string]> = [
        ['list sample form', '2015-11-10T15:05:09Z08:00'],
        ['older', '2014-01-01T00:00:00.250-05:00'],
        ['none', ''],
        ['standard', '2015-11-10T15:06:09+08:00'],
        ['lower case, nanoseconds', '2015-11-10t15:06:09.123456789z'],
        ['space, odd offset', '2015-11-10 15:06:09-05:30'],
        ['leap second', '2016-12-31T23:59:60Z'],
        ['signed seed form', '2015-11-10T15:06:09Z-05:00'],
      ];
      for (const [content, time] of given) {
        const response = await send(content, time);
        expect(response.status, `${content}: ${response.text}`).to.equal(200);
      }
      const { results } = await list(ticket, '?type=private_message');
      const newestFirst = [...given].reverse();
      expect(results.map((r) => r.data['content'])).to.deep.equal(newestFirst.map(([content]) => content));
      for (const [content, time] of newestFirst.filter(([, time]) => time !== '')) {
        expect(results.find((r) => r.data['content'] === content)!.time, content).to.equal(time);
      }
      // No time given: the time herald accepted it, RFC 3339 in UTC.
      const none = results.find((r) => r.data['content'] === 'none')!.time;
      expect(none).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect(Date.now() - Date.parse(none)).to.be.within(-5_000, 60_000);

      // POST /notifications takes the same fields (time, level) as the topic's messages.
      const posted = await call(
        'POST',
        '/notifications',
        { authorization: `Token ${admin}` },
        {
          type: 'admin_message',
          receiver: user,
          level: 50,
          time: '2015-11-10T15:06:09Z08:00',
          data: { content: 'posted' },
        },
      );
      expect(posted.status, posted.text).to.equal(200);
      expect((await list(ticket, '?type=admin_message')).results[0]).to.include({
        time: '2015-11-10T15:06:09Z08:00',
        level: 50,
      });

      // A site broadcast to the whole app keeps its time too (its own table).
      const everyone = await topic('to_notifications.json', {
        type: 'site_broadcast',
        sender: '',
        time: '2015-11-10T15:03:09Z08:00',
        data: { content: 'timed broadcast' },
      });
      expect(everyone.status, everyone.text).to.equal(200);
      const broadcast = (await list(ticket, '?type=site_broadcast')).results.find(
        (r) => r.data['content'] === 'timed broadcast',
      );
      expect(broadcast, 'the broadcast').to.not.equal(undefined);
      expect(broadcast!.time).to.equal('2015-11-10T15:03:09Z08:00');

      for (const bad of [
        'yesterday',
        '2015-02-30T00:00:00Z',
        '2015-11-10T15:06:09',
        '2015-11-10T15:06:09Z08',
        ' 2015-11-10T15:06:09Z',
        5,
      ]) {
        const response = await topic('to_notifications.json', {
          type: 'private_message',
          receiver: user,
          sender: 's',
          time: bad,
          data: { content: 'bad time' },
        });
        expect(response.status, String(bad)).to.equal(400);
        expect(response.json().message, String(bad)).to.match(/^time:/);
      }
      expect((await list(ticket, '?type=private_message')).total, 'a bad time sends nothing').to.equal(given.length);
    });
  });

  describe('empty optional fields are absent (issue 22)', () => {
    it('in topic messages, their data, POST /notifications, emails and item events', async () => {
      const user = 'empties@example.com';
      const ticket = await ticketFor(user);
      const vip = await topic(
        'to_notifications.json',
        { type: 'vip_remind', receiver: user, sender: '', level: '', time: '', data: { level: 4, invalide: 7 } },
        { 'x-request-id': '', 'x-message-key': '' },
      );
      expect(vip.status, vip.text).to.equal(200);
      const [listed] = (await list(ticket, '?type=vip_remind')).results;
      expect(listed).to.include({ level: 0 });
      expect(listed).to.not.have.property('sender');

      const reply = await topic('to_notifications.json', {
        type: 'comment_reply',
        receiver: user,
        sender: '',
        level: 0,
        time: '',
        data: { commentid: 1, username: 'li4@bbb.com', nickname: '', createtime: '', content: 'agree!', replyto: '' },
      });
      expect(reply.status, reply.text).to.equal(200);
      const subs = await topic('to_notifications.json', {
        type: 'subs_event',
        receiver: user,
        sender: '',
        data: { subscriptionid: 7, phase: '', plan: '', sellername: '' },
      });
      expect(subs.status, subs.text).to.equal(200);
      const plan = await topic('to_notifications.json', {
        type: 'subsapply_event',
        receiver: user,
        sender: '',
        data: { subscriptionid: 8, plan: { money: '', units: 3 } },
      });
      expect(plan.status, plan.text).to.equal(200);

      const posted = await call(
        'POST',
        '/notifications',
        { authorization: `Token ${admin}` },
        {
          type: 'admin_message',
          receiver: user,
          sender: '',
          level: '',
          time: '',
          request_id: '',
          data: { content: 'empties' },
        },
      );
      expect(posted.status, posted.text).to.equal(200);
      expect((await list(ticket, '?type=admin_message')).results[0]).to.include({
        level: 0,
        sender: 'admin@hub.dataio.com',
      });

      const email = await topic('to_emails.json', { to: 'zhang3@example.com', subject: 's', content: 'c', ishtml: '' });
      expect(email.status, email.text).to.equal(202);
      const repo = await topic('to_subscriptions.json', {
        type: '0x00020003',
        repname: 'empties-repo',
        itemname: '',
        tag: '',
        time: '',
      });
      expect(repo.status, repo.text).to.equal(200);
    });

    it('in the query of GET /notifications', async () => {
      const ticket = await ticketFor('empties@example.com');
      const plain = await list(ticket);
      const empty = await list(ticket, '?forclient=&type=&sender=&status=&level=&page=&size=');
      expect(empty).to.deep.equal(plain);
    });
  });

  describe('POST /topics/to_subscriptions.json', () => {
    it("turns the seed's tag and item events into item_event notifications for the item's subscribers herald knows", async () => {
      const [sub1, sub2, ended, other] = ['sub1', 'sub2', 'sub-ended', 'sub-other-item'];
      const subsEvent = (receiver: string, itemname: string, phase: number) => ({
        type: 'subs_event',
        receiver,
        sender: '',
        data: { subscriptionid: 1, sellername: 'seller', repname: 'repo001', itemname, phase },
      });
      for (const message of [
        subsEvent(sub1, 'item002', 1),
        subsEvent(sub2, 'item002', 1),
        subsEvent(ended, 'item002', 1),
        subsEvent(ended, 'item002', 5),
        subsEvent(other, 'item009', 1),
      ]) {
        expect((await topic('to_notifications.json', message)).status).to.equal(200);
      }
      const tagAdded = await topic('to_subscriptions.json', {
        type: '0x00020000',
        repname: 'repo001',
        itemname: 'item002',
        tag: 'tag003',
        time: '2015-11-10T15:06:09Z08:00',
      });
      expect(tagAdded.status, tagAdded.text).to.equal(200);
      expect(tagAdded.json()).to.deep.equal({ notified: 2 });
      for (const user of [sub1, sub2]) {
        const events = (await list(await ticketFor(user), '?type=item_event')).results;
        expect(events.map((r) => r.data)).to.deep.equal([
          {
            event: 'tag_added',
            repname: 'repo001',
            itemname: 'item002',
            tag: 'tag003',
            eventtime: '2015-11-10T15:06:09Z08:00',
          },
        ]);
        expect(events[0]).to.not.have.property('sender');
        expect(events[0]!.time, "the event's time, as sent").to.equal('2015-11-10T15:06:09Z08:00');
      }
      for (const user of [ended, other])
        expect((await list(await ticketFor(user), '?type=item_event')).total, user).to.equal(0);

      const time = '2015-11-10T15:06:09Z08:00';
      expect(
        (
          await topic('to_subscriptions.json', {
            type: '0x00020001',
            repname: 'repo001',
            itemname: 'item002',
            tag: 'tag003',
            time,
          })
        ).json(),
      ).to.deep.equal({ notified: 2 });
      expect(
        (
          await topic('to_subscriptions.json', { type: '0x00020002', repname: 'repo001', itemname: 'item002', time })
        ).json(),
      ).to.deep.equal({ notified: 2 });
      // The retired repository deletion reaches the subscribers of every item of the repository.
      expect(
        (await topic('to_subscriptions.json', { type: '0x00020003', repname: 'repo001', time })).json(),
      ).to.deep.equal({ notified: 3 });
      expect(
        (await list(await ticketFor(other), '?type=item_event')).results.map((r) => r.data['event']),
      ).to.deep.equal(['repo_deleted']);
      expect((await list(await ticketFor(sub1), '?type=item_event')).results.map((r) => r.data['event'])).to.deep.equal(
        ['repo_deleted', 'item_deleted', 'tag_deleted', 'tag_added'],
      );
    });

    it('refuses malformed events naming the field, and notifies nobody for an item without subscribers', async () => {
      for (const [body, message] of [
        [{ type: '0x00020009', repname: 'r' }, /^type:/],
        [{ type: '0x00020000', repname: 'r', itemname: 'i' }, /^tag: required for tag_added/],
        [{ type: '0x00020002', repname: 'r' }, /^itemname: required for item_deleted/],
        [{ type: '0x00020002', itemname: 'i' }, /^repname:/],
        [{ type: '0x00020002', repname: 'a\u0000b', itemname: 'i' }, /^repname:/],
        [{ type: '0x00020000', repname: 'r', itemname: 'i', tag: 'x'.repeat(129) }, /^tag:/],
        [{ type: '0x00020000', repname: 'r', itemname: 'i', tag: '' }, /^tag: required for tag_added/],
        [{ type: '0x00020002', repname: 'r', itemname: 'i', time: 'yesterday' }, /^time: must be an RFC 3339 time/],
      ] as const) {
        const response = await topic('to_subscriptions.json', body);
        expect(response.status, response.text).to.equal(400);
        expect(response.json().message).to.match(message);
      }
      expect(
        (
          await topic('to_subscriptions.json', { type: '0x00020002', repname: 'nobody-subscribes', itemname: 'i' })
        ).json(),
      ).to.deep.equal({ notified: 0 });
    });
  });
});
