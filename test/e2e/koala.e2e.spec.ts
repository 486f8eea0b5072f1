import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import WebSocket from 'ws';
import { open, type Message_t } from '../../sdk/src/index';
import { appendedEvents, appendedSince, TEST_METRICS_TOKEN } from '../support/appendedEvents';
import { eventually } from '../support/eventually';
import { postForm, startHeraldOn, startTestHerald, TestClock } from '../support/herald';
import { koalaInboxOf, viewerOf } from '../support/viewerQueries';

// Koala web push, shared/seeds/000_83e3b79cc88886e5.txt: the seed's own requests, over HTTP.
describe('Koala REST (seed 000) over HTTP', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  const url = (path: string) => `${test.url}${path}`;

  before(async () => {
    test = await startTestHerald({ metricsToken: TEST_METRICS_TOKEN });
  });
  after(() => test?.stop());

  async function ticketFor(userId: string, app = 'camel', secret = 'EERWERRRRE'): Promise<string> {
    const { body } = await postForm(url('/koala/api/mas/tickets'), {
      app_key: app,
      secret_key: secret,
      user_id: userId,
    });
    expect(body.status, JSON.stringify(body)).to.equal(0);
    return body.result as string;
  }

  const inboxOf = (ticket: string) => koalaInboxOf(test.url, ticket);

  describe('POST /koala/api/mas/tickets', () => {
    it("issues a ticket for the seed's example (app_key=camel&secret_key=EERWERRRRE&user_id=zhangbin)", async () => {
      const { status, body } = await postForm(
        url('/koala/api/mas/tickets'),
        'app_key=camel&secret_key=EERWERRRRE&user_id=zhangbin',
      );
      expect(status).to.equal(200);
      expect(body).to.include({ status: 0, errcode: 0, errmsg: '' });
      expect(body.result).to.be.a('string').with.length.greaterThan(20);
      const viewer = await viewerOf(test.url, body.result as string);
      expect(viewer).to.include({ appId: 'camel', userId: 'zhangbin' });
    });

    it("takes the secret as `app_secret`, the name getTickets' signature gives it", async () => {
      const { status, body } = await postForm(
        url('/koala/api/mas/tickets'),
        'app_key=camel&app_secret=EERWERRRRE&user_id=zhangbin',
      );
      expect([status, body.status], JSON.stringify(body)).to.deep.equal([200, 0]);
      const wrong = await postForm(url('/koala/api/mas/tickets'), 'app_key=camel&app_secret=WRONG&user_id=zhangbin');
      expect(wrong.body.status).to.equal(1006);
    });

    it("takes the app as `app_id`, as Koala's own demo page logs in (jQuery $.ajax data: {app_id, secret_key, user_id})", async () => {
      const { status, body } = await postForm(
        url('/koala/api/mas/tickets'),
        'app_id=camel&secret_key=EERWERRRRE&user_id=zhangbin',
      );
      expect([status, body.status], JSON.stringify(body)).to.deep.equal([200, 0]);
      const viewer = await viewerOf(test.url, body.result as string);
      expect(viewer).to.include({ appId: 'camel', userId: 'zhangbin' });
    });

    it('carries user_roles into the ticket', async () => {
      const { body } = await postForm(
        url('/koala/api/mas/tickets'),
        'app_key=camel&secret_key=EERWERRRRE&user_id=boss&user_roles=admin,editor',
      );
      const viewer = await viewerOf(test.url, body.result as string);
      expect(viewer.roles).to.deep.equal(['admin', 'editor']);
    });

    // Every error is HTTP 200 with the envelope: Koala's own client reads errors in jQuery's `success`.
    const refusals: Array<[string, string, number]> = [
      ['a wrong secret_key', 'app_key=camel&secret_key=WRONG&user_id=zhangbin', 1006],
      ['an unknown app_key', 'app_key=nosuchapp&secret_key=EERWERRRRE&user_id=zhangbin', 1007],
      ['a missing user_id', 'app_key=camel&secret_key=EERWERRRRE', 1001],
      ['a user_id with a comma', 'app_key=camel&secret_key=EERWERRRRE&user_id=a,b', 1001],
    ];
    for (const [what, form, code] of refusals) {
      it(`answers ${code} for ${what}, as HTTP 200`, async () => {
        const { status, body } = await postForm(url('/koala/api/mas/tickets'), form);
        expect(status).to.equal(200);
        expect(body).to.deep.include({ status: code, errcode: code, result: null });
        expect(body.errmsg).to.be.a('string').and.not.equal('');
      });
    }
  });

  describe('POST /koala/api/mas/messages and /messages/ack', () => {
    it("sends the seed's example (tickets= spelling, quoted title), lists it, and acks it by sid (multipart)", async () => {
      const sender = await ticketFor('zhangbin');
      const receiver = await ticketFor('jiangxiaoyu');
      const sent = await postForm(
        url('/koala/api/mas/messages'),
        `tickets=${encodeURIComponent(sender)}&users=jiangxiaoyu,zhouyang&title="system upgrade"&content="system patching 20:21"`,
      );
      expect(sent.status).to.equal(200);
      expect(sent.body).to.include({ status: 0, errcode: 0 });

      const inbox = await eventually(async () => {
        const page = await inboxOf(receiver);
        expect(page.nodes).to.have.length(1);
        return page;
      });
      const [message] = inbox.nodes;
      expect(message).to.include({
        title: 'system upgrade',
        content: 'system patching 20:21',
        sender: 'zhangbin',
        acknowledged: false,
      });
      expect(message!.meta.realm).to.equal('camel');
      expect(message!.seq).to.match(/^\d+$/);

      const form = new FormData();
      form.set('tickets', receiver);
      form.set('sids', message!.seq);
      const acked = await postForm(url('/koala/api/mas/messages/ack'), form);
      expect(acked.body).to.include({ status: 0, errcode: 0 });
      await eventually(async () => expect((await inboxOf(receiver)).nodes[0]!.acknowledged).to.equal(true));
      // zhouyang's copy is untouched
      expect((await inboxOf(await ticketFor('zhouyang'))).nodes[0]!.acknowledged).to.equal(false);
    });

    it("acks every sid delivered to the user though others are unknown (1002 naming them) or another user's (1003), as HTTP 200", async () => {
      const sender = await ticketFor('zhangbin');
      const stranger = await ticketFor('stranger');
      await postForm(url('/koala/api/mas/messages'), {
        ticket: sender,
        users: 'li4',
        title: 'private',
        content: 'for li4 only',
      });
      const li4 = await ticketFor('li4');
      const [message] = (
        await eventually(async () => {
          const page = await inboxOf(li4);
          expect(page.nodes).to.have.length(1);
          return page;
        })
      ).nodes;
      const foreignTicket = await ticketFor('li4', 'other', 'other-secret');
      const notForLi4 = (
        await postForm(url('/koala/api/mas/messages'), {
          ticket: sender,
          users: 'wang5',
          title: 'not for li4',
          content: 'c',
        })
      ).body.result as string;
      await eventually(async () => expect((await inboxOf(await ticketFor('wang5'))).nodes).to.have.length(1));
      const before = await appendedEvents(test.url);

      const forbidden = await postForm(url('/koala/api/mas/messages/ack'), { ticket: stranger, sids: message!.seq });
      expect(forbidden.status).to.equal(200);
      expect(forbidden.body).to.include({ status: 1003, errcode: 1003, result: null });
      expect(forbidden.body.errmsg).to.equal(
        `0 acknowledged; refused messages sent to other users: sids ${message!.seq}`,
      );

      // another app's user cannot even see that the message exists
      const foreign = await postForm(url('/koala/api/mas/messages/ack'), { ticket: foreignTicket, sids: message!.seq });
      expect(foreign.body).to.include({ status: 1002 });
      expect(await appendedSince(test.url, before), 'nothing appended').to.deep.equal({});

      // The seed's form (tickets=…&sids=a,b): li4's own message is acknowledged, the unknown seq and
      // wang5's message are named; one wrong sid no longer keeps the right one unacknowledged.
      const mixed = await postForm(
        url('/koala/api/mas/messages/ack'),
        `tickets=${encodeURIComponent(li4)}&sids=${message!.seq},999999999,${notForLi4}`,
      );
      expect(mixed.status).to.equal(200);
      expect(mixed.body).to.include({ status: 1002, errcode: 1002, result: null });
      expect(mixed.body.errmsg).to.equal(
        `1 acknowledged; refused no message delivered to this user: sids 999999999; messages sent to other users: sids ${notForLi4}`,
      );
      expect((await inboxOf(li4)).nodes[0]!.acknowledged).to.equal(true);
      expect((await inboxOf(await ticketFor('wang5'))).nodes[0]!.acknowledged, "wang5's message is untouched").to.equal(
        false,
      );
      // Sent again (a client retrying the whole batch): nothing new, the same sids named.
      const again = await postForm(
        url('/koala/api/mas/messages/ack'),
        `tickets=${encodeURIComponent(li4)}&sids=${message!.seq},999999999`,
      );
      expect(again.body).to.include({
        status: 1002,
        errmsg: '0 acknowledged; refused no message delivered to this user: sids 999999999',
      });
    });

    it('answers 1001 for missing or corrupt parameters, and 1004 for a bad ticket', async () => {
      const ticket = await ticketFor('zhangbin');
      const cases: Array<[Record<string, string>, number]> = [
        [{ ticket, title: 't', content: 'c' }, 1001], // no users
        [{ ticket, users: 'a', content: 'c' }, 1001], // no title
        [{ ticket, users: 'a', title: 't', content: 'c', expire: 'soon' }, 1001],
        [{ ticket, users: 'a', title: 't', content: 'c', execute: '-5' }, 1001],
        [{ users: 'a', title: 't', content: 'c' }, 1001], // no ticket
        [{ ticket: 'not-a-ticket', users: 'a', title: 't', content: 'c' }, 1004],
        [{ ticket: `${ticket.slice(0, -2)}xx`, users: 'a', title: 't', content: 'c' }, 1004], // signature altered
      ];
      for (const [form, code] of cases) {
        const { body } = await postForm(url('/koala/api/mas/messages'), form);
        expect(body, JSON.stringify(form)).to.include({ status: code, errcode: code });
      }
      const ack = await postForm(url('/koala/api/mas/messages/ack'), { ticket, sids: 'abc' });
      expect(ack.body).to.include({ status: 1001 });
    });

    it('holds a scheduled message until `execute` (unix seconds), then delivers it', async () => {
      const sender = await ticketFor('zhangbin');
      const receiver = await ticketFor('scheduled-user');
      const executeAt = Math.floor(Date.now() / 1000) + 2;
      const sent = await postForm(url('/koala/api/mas/messages'), {
        ticket: sender,
        users: 'scheduled-user',
        title: 'later',
        content: 'c',
        execute: String(executeAt),
      });
      expect(sent.body).to.include({ status: 0 });
      expect((await inboxOf(receiver)).nodes).to.have.length(0);
      const [message] = (
        await eventually(
          async () => {
            const page = await inboxOf(receiver);
            expect(page.nodes).to.have.length(1);
            return page;
          },
          { timeoutMs: 15_000 },
        )
      ).nodes;
      expect(Date.parse(message!.sentAt)).to.be.at.least(executeAt * 1000);
    });

    it('takes `execute` in milliseconds too (Date.now(), currentTimeMillis): held until then, not refused', async () => {
      const sender = await ticketFor('zhangbin');
      const receiver = await ticketFor('scheduled-ms-user');
      const executeAtMs = Date.now() + 2000;
      const sent = await postForm(
        url('/koala/api/mas/messages'),
        `tickets=${sender}&users=scheduled-ms-user&title=later&content=c&execute=${executeAtMs}`,
      );
      expect(sent.body, JSON.stringify(sent.body)).to.include({ status: 0 });
      expect((await inboxOf(receiver)).nodes).to.have.length(0);
      const [message] = (
        await eventually(
          async () => {
            const page = await inboxOf(receiver);
            expect(page.nodes).to.have.length(1);
            return page;
          },
          { timeoutMs: 15_000 },
        )
      ).nodes;
      expect(Date.parse(message!.sentAt)).to.be.at.least(executeAtMs);
    });

    it('stops listing a message once `expire` seconds have passed', async () => {
      const sender = await ticketFor('zhangbin');
      const receiver = await ticketFor('short-lived');
      await postForm(url('/koala/api/mas/messages'), {
        ticket: sender,
        users: 'short-lived',
        title: 'flash',
        content: 'c',
        expire: '1',
      });
      const [message] = (
        await eventually(async () => {
          const page = await inboxOf(receiver);
          expect(page.nodes).to.have.length(1);
          return page;
        })
      ).nodes;
      expect(Date.parse(message!.expiresAt!) - Date.parse(message!.sentAt)).to.equal(1000);
      await eventually(async () => expect((await inboxOf(receiver)).nodes).to.have.length(0), { timeoutMs: 10_000 });
      // Acked with one still valid (the seed's sids=a,b): the expired one has nothing left to
      // acknowledge and counts as done; the valid one is acknowledged; the answer is success.
      await postForm(url('/koala/api/mas/messages'), {
        ticket: sender,
        users: 'short-lived',
        title: 'lasting',
        content: 'c',
      });
      const [lasting] = (
        await eventually(async () => {
          const page = await inboxOf(receiver);
          expect(page.nodes).to.have.length(1);
          return page;
        })
      ).nodes;
      const ack = await postForm(
        url('/koala/api/mas/messages/ack'),
        `tickets=${encodeURIComponent(receiver)}&sids=${message!.seq},${lasting!.seq}`,
      );
      expect([ack.status, ack.body], JSON.stringify(ack.body)).to.deep.equal([
        200,
        { status: 0, errcode: 0, errmsg: '', result: 1 },
      ]);
      expect((await inboxOf(receiver)).nodes[0]!.acknowledged).to.equal(true);
      const alone = await postForm(url('/koala/api/mas/messages/ack'), { ticket: receiver, sids: message!.seq });
      expect(alone.body).to.deep.equal({ status: 0, errcode: 0, errmsg: '', result: 0 });
    });

    it('answers 1005 once the app secret changed after the ticket was issued; a secret rotated back works again', async () => {
      const ticket = await ticketFor('rotating', 'other', 'other-secret');
      // An operator rotates the secret: a herald started on the same store with the new HERALD_APPS.
      const rotating = await startHeraldOn(test.testDatabase.connectionString, {
        apps: [{ appId: 'other', secret: 'rotated-secret' }],
      });
      await rotating.close();
      await eventually(async () => {
        const { body } = await postForm(url('/koala/api/mas/messages'), {
          ticket,
          users: 'x',
          title: 't',
          content: 'c',
        });
        expect(body).to.include({ status: 1005, errcode: 1005 });
      });
      await ticketFor('rotating', 'other', 'rotated-secret');
      // And back: a secret used before is a change like any other, not a retry of its first registration.
      const back = await startHeraldOn(test.testDatabase.connectionString, {
        apps: [{ appId: 'other', secret: 'other-secret' }],
      });
      await back.close();
      await eventually(async () => {
        const { body } = await postForm(url('/koala/api/mas/tickets'), {
          app_key: 'other',
          secret_key: 'rotated-secret',
          user_id: 'rotating',
        });
        expect(body).to.include({ errcode: 1006 });
      });
      await ticketFor('rotating', 'other', 'other-secret');
    });
  });

  describe('requests as the seed writes them (issue 22)', () => {
    /** A POST with exactly these headers: a Uint8Array body gets no content type of fetch's own. */
    async function postRaw(path: string, body: string, headers: Record<string, string>) {
      const response = await fetch(url(path), { method: 'POST', headers, body: new TextEncoder().encode(body) });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    }
    const SEED_HEADER = { 'Content-Type': 'x-www-form-urlencoded' };

    /** What the user's terminal is handed over Koala's SDK (message_client, from seq 0: nothing can be missed). */
    async function receivedBy(ticket: string, count: number): Promise<Message_t[]> {
      const received: Message_t[] = [];
      const client = open({
        url: `${test.url}/graphql`,
        ticket,
        since: '0',
        webSocketImpl: WebSocket,
        onMessage: (message) => void received.push(message),
      });
      try {
        await eventually(() => expect(received).to.have.length(count));
        return received;
      } finally {
        await client.close();
      }
    }

    it("reads the seed's literal `Content-Type: x-www-form-urlencoded` on all three URLs, with the seed's example bodies byte for byte", async () => {
      const issued = await postRaw(
        '/koala/api/mas/tickets',
        'app_key=camel&secret_key=EERWERRRRE&user_id=zhangbin',
        SEED_HEADER,
      );
      expect(issued.body, JSON.stringify(issued.body)).to.include({ status: 0, errcode: 0 });
      const receiver = await ticketFor('seedheader-user');
      const sent = await postRaw(
        '/koala/api/mas/messages',
        `tickets=${issued.body.result as string}&users=seedheader-user,zhouyang&title="system upgrade"&content="system patching 20:21"`,
        SEED_HEADER,
      );
      expect([sent.status, sent.body.status], JSON.stringify(sent.body)).to.deep.equal([200, 0]);
      const [message] = await receivedBy(receiver, 1);
      expect(message).to.include({ title: 'system upgrade', content: 'system patching 20:21' });
      const acked = await postRaw(
        '/koala/api/mas/messages/ack',
        `tickets=${receiver}&sids=${message!.meta.seq}`,
        SEED_HEADER,
      );
      expect(acked.body, JSON.stringify(acked.body)).to.include({ status: 0, result: 1 });
    });

    it("reads the seed's ack as written, `Content-Type: multipart/form-data` (no boundary) over `tickets=…&sids=…`, and a urlencoded body sent with a boundary; real multipart still works", async () => {
      const sender = await ticketFor('zhangbin');
      const receiver = await ticketFor('multipart-header-user');
      for (const title of ['one', 'two', 'three', 'four']) {
        // §3.2's send with §3.3's header: also a form.
        const sent = await postRaw(
          '/koala/api/mas/messages',
          `tickets=${sender}&users=multipart-header-user&title="${title}"&content="c"`,
          { 'Content-Type': 'multipart/form-data' },
        );
        expect(sent.body, JSON.stringify(sent.body)).to.include({ status: 0 });
      }
      const [first, second, third, fourth] = await receivedBy(receiver, 4);
      const seed = await postRaw('/koala/api/mas/messages/ack', `tickets=${receiver}&sids=${first!.meta.seq}`, {
        'Content-Type': 'multipart/form-data',
      });
      expect(seed.body, JSON.stringify(seed.body)).to.include({ status: 0, result: 1 });
      const bounded = await postRaw('/koala/api/mas/messages/ack', `tickets=${receiver}&sids=${second!.meta.seq}`, {
        'Content-Type': 'multipart/form-data; boundary=XYZ',
      });
      expect(bounded.body, JSON.stringify(bounded.body)).to.include({ status: 0, result: 1 });
      // curl -F / a browser's FormData: a real multipart body (boundary in the header, the body opens with it).
      const form = new FormData();
      form.set('tickets', receiver);
      form.set('sids', String(third!.meta.seq));
      const real = await postForm(url('/koala/api/mas/messages/ack'), form);
      expect(real.body, JSON.stringify(real.body)).to.include({ status: 0, result: 1 });
      const quoted = await postRaw(
        '/koala/api/mas/messages/ack',
        `--a b\r\nContent-Disposition: form-data; name="tickets"\r\n\r\n${receiver}\r\n--a b\r\nContent-Disposition: form-data; name="sids"\r\n\r\n${fourth!.meta.seq}\r\n--a b--\r\n`,
        {
          'Content-Type': 'multipart/form-data; boundary="a b"',
        },
      );
      expect(quoted.body, JSON.stringify(quoted.body)).to.include({ status: 0, result: 1 });
    });

    it('reads a form body with no content type, or text/plain (fetch with a string body), or a JSON object', async () => {
      const issued = await postRaw(
        '/koala/api/mas/tickets',
        'app_key=camel&secret_key=EERWERRRRE&user_id=zhangbin',
        {},
      );
      expect(issued.body, JSON.stringify(issued.body)).to.include({ status: 0 });
      const sender = issued.body.result as string;
      const receiver = await ticketFor('untyped-user');
      const plain = await postRaw(
        '/koala/api/mas/messages',
        `ticket=${sender}&users=untyped-user&title=plain&content=c`,
        { 'content-type': 'text/plain;charset=UTF-8' },
      );
      expect(plain.body, JSON.stringify(plain.body)).to.include({ status: 0 });
      const json = await postRaw(
        '/koala/api/mas/messages',
        JSON.stringify({ ticket: sender, users: 'untyped-user', title: 'json', content: 'c', expire: 60 }),
        { 'content-type': 'application/json' },
      );
      expect(json.body, JSON.stringify(json.body)).to.include({ status: 0 });
      const received = await receivedBy(receiver, 2);
      expect(received.map((m) => m.title)).to.deep.equal(['plain', 'json']);
      expect(received[1]!.expiresAt).to.be.a('string');
      const acked = await postRaw(
        '/koala/api/mas/messages/ack',
        `ticket=${receiver}&sids=${received[0]!.meta.seq}`,
        {},
      );
      expect(acked.body, JSON.stringify(acked.body)).to.include({ status: 0, result: 1 });
      // Koala's own page: jQuery's $.ajax({ data: { ticket, sids: [seq] } }) posts the array as sids[]
      const jquery = await postRaw(
        '/koala/api/mas/messages/ack',
        `ticket=${receiver}&sids%5B%5D=${received[0]!.meta.seq}&sids%5B%5D=${received[1]!.meta.seq}`,
        {
          'content-type': 'application/x-www-form-urlencoded; charset=UTF-8',
        },
      );
      expect(jquery.body, JSON.stringify(jquery.body)).to.include({ status: 0, result: 1 });
    });

    it('reads a UTF-8 body with a byte order mark, a GBK one and a gzipped one as the same form', async () => {
      const sender = await ticketFor('zhangbin');
      const receiver = await ticketFor('charset-user');
      const form = (title: string) => `ticket=${sender}&users=charset-user&title=${title}&content=系统升级`;
      const send = async (body: Uint8Array, headers: Record<string, string>) => {
        const response = await fetch(url('/koala/api/mas/messages'), { method: 'POST', headers, body });
        return (await response.json()) as Record<string, unknown>;
      };
      const bom = await send(new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(form('bom'))]), {
        'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      });
      expect(bom, JSON.stringify(bom)).to.include({ status: 0 });
      // 系统升级 in GBK
      const gbk = Buffer.concat([
        Buffer.from(`ticket=${sender}&users=charset-user&title=gbk&content=`),
        Buffer.from([0xcf, 0xb5, 0xcd, 0xb3, 0xc9, 0xfd, 0xbc, 0xb6]),
      ]);
      expect(await send(gbk, { 'content-type': 'application/x-www-form-urlencoded; charset=GBK' })).to.include({
        status: 0,
      });
      const gzipped = gzipSync(Buffer.from(form('gzip')));
      expect(
        await send(gzipped, { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' }),
      ).to.include({ status: 0 });
      const received = await receivedBy(receiver, 3);
      expect(received.map((m) => [m.title, m.content])).to.deep.equal([
        ['bom', '系统升级'],
        ['gbk', '系统升级'],
        ['gzip', '系统升级'],
      ]);
    });

    it('refuses a JSON body holding text that is not Unicode (a lone surrogate) with 1001, appending nothing', async () => {
      const sender = await ticketFor('zhangbin');
      const before = await appendedEvents(test.url);
      const refused = await postRaw(
        '/koala/api/mas/messages',
        `{"ticket":"${sender}","users":"u1","title":"\\ud800","content":"c"}`,
        { 'content-type': 'application/json' },
      );
      expect([refused.status, refused.body.status]).to.deep.equal([200, 1001]);
      expect(refused.body.errmsg).to.match(/title: must be Unicode/);
      const malformed = await postRaw('/koala/api/mas/messages', '{"ticket":', { 'content-type': 'application/json' });
      expect([malformed.status, malformed.body.status]).to.deep.equal([200, 1001]);
      expect(await appendedSince(test.url, before)).to.deep.equal({});
    });

    it('takes blanks in `users` as separators, as no ticket is ever issued for a user id with a blank', async () => {
      const sender = await ticketFor('zhangbin');
      const spaced = await ticketFor('spaced-a');
      const other = await ticketFor('spaced-b');
      const plus = await ticketFor('spaced-c');
      // a literal blank, a `+`, an escaped blank and a blank after a comma
      const sent = await postForm(
        url('/koala/api/mas/messages'),
        `tickets=${sender}&users=spaced-a spaced-b+spaced-c&title="system upgrade"&content="system patching 20:21"`,
      );
      expect(sent.body, JSON.stringify(sent.body)).to.include({ status: 0 });
      const again = await postForm(
        url('/koala/api/mas/messages'),
        `tickets=${sender}&users=spaced-a,%20spaced-b&title=second&content=c`,
      );
      expect(again.body, JSON.stringify(again.body)).to.include({ status: 0 });
      expect((await receivedBy(spaced, 2)).map((m) => m.title)).to.deep.equal(['system upgrade', 'second']);
      expect((await receivedBy(other, 2)).map((m) => m.title)).to.deep.equal(['system upgrade', 'second']);
      expect((await receivedBy(plus, 1)).map((m) => m.title)).to.deep.equal(['system upgrade']);
      // a list as jQuery posts an array, and as a repeated field
      const jquery = await postForm(
        url('/koala/api/mas/messages'),
        `tickets=${sender}&users%5B%5D=spaced-a&users%5B%5D=spaced-c&title=third&content=c`,
      );
      expect(jquery.body, JSON.stringify(jquery.body)).to.include({ status: 0 });
      const repeated = await postForm(
        url('/koala/api/mas/messages'),
        `tickets=${sender}&users=spaced-b&users=spaced-c&title=fourth&content=c`,
      );
      expect(repeated.body, JSON.stringify(repeated.body)).to.include({ status: 0 });
      expect((await receivedBy(plus, 3)).map((m) => m.title)).to.deep.equal(['system upgrade', 'third', 'fourth']);
      const blankUser = await postForm(
        url('/koala/api/mas/tickets'),
        'app_key=camel&secret_key=EERWERRRRE&user_id=spaced-a spaced-b',
      );
      expect(blankUser.body).to.include({ status: 1001 });
    });

    it("takes full-width commas, semicolons (; ；) and 、 in `users` as separators: the seed's example typed with a Chinese input method", async () => {
      const sender = await ticketFor('zhangbin');
      const receivers = await Promise.all(['sep-a', 'sep-b', 'sep-c', 'sep-d', 'sep-e'].map((u) => ticketFor(u)));
      const sent = await postForm(
        url('/koala/api/mas/messages'),
        `tickets=${sender}&users=sep-a，sep-b;sep-c；sep-d、sep-e&title="system upgrade"&content="system patching 20:21"`,
      );
      expect(sent.body, JSON.stringify(sent.body)).to.include({ status: 0 });
      for (const receiver of receivers)
        expect((await receivedBy(receiver, 1)).map((m) => m.title)).to.deep.equal(['system upgrade']);
      // No ticket is issued for a user id holding one of them, so every list splits back into its ids.
      for (const userId of ['jiangxiaoyu，zhouyang', 'a;b', 'a；b', 'a、b', 'a\u3000b']) {
        const refused = await postForm(url('/koala/api/mas/tickets'), {
          app_key: 'camel',
          secret_key: 'EERWERRRRE',
          user_id: userId,
        });
        expect(refused.body, userId).to.include({ status: 1001 });
      }
    });

    it('delivers title and content exactly as sent (blanks and line breaks kept) and refuses only blank ones', async () => {
      const sender = await ticketFor('zhangbin');
      const receiver = await ticketFor('exact-user');
      const form = new URLSearchParams({
        ticket: sender,
        users: 'exact-user',
        title: ' padded title ',
        content: 'line one\nline two\n',
      });
      const sent = await postForm(url('/koala/api/mas/messages'), form.toString());
      expect(sent.body, JSON.stringify(sent.body)).to.include({ status: 0 });
      const [message] = await receivedBy(receiver, 1);
      expect(message).to.include({ title: ' padded title ', content: 'line one\nline two\n' });
      expect((await inboxOf(receiver)).nodes[0]).to.include({
        title: ' padded title ',
        content: 'line one\nline two\n',
      });
      for (const blank of [
        { title: '   ', content: 'c' },
        { title: 't', content: '\n\t ' },
        { title: '" "', content: 'c' },
      ]) {
        const before = await appendedEvents(test.url);
        const refused = await postForm(url('/koala/api/mas/messages'), {
          ticket: sender,
          users: 'exact-user',
          ...blank,
        });
        expect([refused.status, refused.body.status], JSON.stringify(blank)).to.deep.equal([200, 1001]);
        expect(await appendedSince(test.url, before)).to.deep.equal({});
      }
    });

    it('counts limits in characters (code points): 256 emoji are a title, 257 are not; a 128-emoji user id is one', async () => {
      const sender = await ticketFor('zhangbin');
      const emojiUser = '😀'.repeat(128);
      const receiver = await ticketFor(emojiUser);
      const title = '😀'.repeat(256);
      const sent = await postForm(url('/koala/api/mas/messages'), {
        ticket: sender,
        users: emojiUser,
        title,
        content: '😀'.repeat(16_384),
      });
      expect(sent.body, JSON.stringify(sent.body).slice(0, 200)).to.include({ status: 0 });
      expect((await receivedBy(receiver, 1))[0]!.title).to.equal(title);
      const tooLong = await postForm(url('/koala/api/mas/messages'), {
        ticket: sender,
        users: emojiUser,
        title: `${title}😀`,
        content: 'c',
      });
      expect(tooLong.body).to.include({ status: 1001 });
      expect(tooLong.body.errmsg).to.match(/title/);
    });

    it('takes empty optional fields (expire, execute, request_id, user_roles) as absent: their defaults', async () => {
      const issued = await postForm(
        url('/koala/api/mas/tickets'),
        'app_key=camel&secret_key=EERWERRRRE&user_id=zhangbin&user_roles=',
      );
      expect(issued.body).to.include({ status: 0 });
      const receiver = await ticketFor('defaults-user');
      const bodies = [
        `tickets=${issued.body.result as string}&users=defaults-user&title=bare&content=c&expire=&execute=&request_id=`,
        `tickets=${issued.body.result as string}&users=defaults-user&title=quoted&content=c&expire=""&execute=""&request_id=""`,
        `tickets=${issued.body.result as string}&users=defaults-user&title=blank&content=c&expire=%20&execute=%20&request_id=%20`,
      ];
      for (const body of bodies) {
        const sent = await postForm(url('/koala/api/mas/messages'), body);
        expect(sent.body, body).to.include({ status: 0 });
      }
      const received = await receivedBy(receiver, 3);
      expect(received.map((m) => [m.title, m.expiresAt])).to.deep.equal([
        ['bare', null],
        ['quoted', null],
        ['blank', null],
      ]);
      // `expire` 0 = forever and `execute` 0 = now, written out
      const zeros = await postForm(
        url('/koala/api/mas/messages'),
        `tickets=${issued.body.result as string}&users=defaults-user&title=zeros&content=c&expire=0&execute=0`,
      );
      expect(zeros.body).to.include({ status: 0 });
      expect((await receivedBy(receiver, 4))[3]).to.include({ title: 'zeros', expiresAt: null });
    });
  });

  describe("request_id (herald's idempotency key for retried sends)", () => {
    it('a send retried with the same request_id sends nothing twice and answers the first message id', async () => {
      const ticket = await ticketFor('retrier');
      const receiver = await ticketFor('retry-receiver');
      const send = (title: string) =>
        postForm(url('/koala/api/mas/messages'), {
          ticket,
          users: 'retry-receiver',
          title,
          content: 'c',
          request_id: 'order-42',
        });
      const first = await send('original');
      const retried = await send('changed on retry');
      expect(first.body.status).to.equal(0);
      expect(retried.body).to.deep.equal(first.body);
      const inbox = await inboxOf(receiver);
      expect(inbox.nodes.map((n) => [n.id, n.title])).to.deep.equal([[first.body.result, 'original']]);
      // Another sender's identical request id is another message.
      const other = await postForm(url('/koala/api/mas/messages'), {
        ticket: await ticketFor('another'),
        users: 'retry-receiver',
        title: 't',
        content: 'c',
        request_id: 'order-42',
      });
      expect(other.body.result).not.to.equal(first.body.result);
      const tooLong = await postForm(url('/koala/api/mas/messages'), {
        ticket,
        users: 'retry-receiver',
        title: 't',
        content: 'c',
        request_id: 'x'.repeat(129),
      });
      expect(tooLong.body).to.include({ status: 1001 });
    });
  });

  describe('bad input: 1001 in the envelope, nothing appended', () => {
    let ticket: string;
    before(async () => {
      ticket = await ticketFor('hardened');
    });

    async function refused(path: string, body: string | FormData | Record<string, string>, message: RegExp) {
      const before = await appendedEvents(test.url);
      const answer = await postForm(url(path), body);
      expect(answer.status, JSON.stringify(answer.body)).to.equal(200);
      expect(answer.body).to.include({ status: 1001, errcode: 1001, result: null });
      expect(answer.body.errmsg).to.match(message);
      expect(await appendedSince(test.url, before), 'nothing appended').to.deep.equal({});
    }

    it('refuses NUL and other control characters in every text field', async () => {
      const controlText = /control characters/;
      await refused('/koala/api/mas/messages', { ticket, users: 'u1', title: 'a\u0000b', content: 'c' }, controlText);
      await refused(
        '/koala/api/mas/messages',
        { ticket, users: 'u1', title: 't', content: 'ding \u0007' },
        controlText,
      );
      await refused('/koala/api/mas/messages', { ticket, users: 'u\u0001', title: 't', content: 'c' }, controlText);
      await refused(
        '/koala/api/mas/tickets',
        { app_key: 'camel', secret_key: 'EERWERRRRE', user_id: 'nul\u0000' },
        /user_id/,
      );
      // TAB, LF and CR are text; and the counts see the append when one happens.
      const before = await appendedEvents(test.url);
      expect(
        (
          await postForm(url('/koala/api/mas/messages'), {
            ticket,
            users: 'u1',
            title: 'a\tb',
            content: 'line\r\nline',
          })
        ).body.status,
      ).to.equal(0);
      expect(await appendedSince(test.url, before)).to.include({ MessageSent: 1 });
    });

    it('answers an app_key that cannot be an app id (NUL, spaces) as an unknown app, 1007', async () => {
      for (const appKey of ['\u0000', 'camel\u0000', 'ca mel', '-camel']) {
        const before = await appendedEvents(test.url);
        const answer = await postForm(url('/koala/api/mas/tickets'), {
          app_key: appKey,
          secret_key: 'EERWERRRRE',
          user_id: 'u',
        });
        expect([answer.status, answer.body.status]).to.deep.equal([200, 1007]);
        expect(await appendedSince(test.url, before)).to.deep.equal({});
      }
    });

    it('refuses empty content, also when written as a pair of quotes', async () => {
      await refused(
        '/koala/api/mas/messages',
        `ticket=${ticket}&users=u1&title=t&content=""`,
        /content is required \(not empty or blank\)/,
      );
      await refused('/koala/api/mas/messages', `ticket=${ticket}&users=u1&title=t&content=`, /content is required/);
    });

    it('says a title, content, user or ticket over its limit is at most N characters, not that it is required', async () => {
      await refused(
        '/koala/api/mas/messages',
        { ticket, users: 'u1', title: 't', content: 'x'.repeat(16_385) },
        /^content is at most 16384 characters \(this one has 16385\)$/,
      );
      await refused(
        '/koala/api/mas/messages',
        { ticket, users: 'u1', title: '😀'.repeat(257), content: 'c' },
        /^title is at most 256 characters \(this one has 257\)$/,
      );
      await refused(
        '/koala/api/mas/messages',
        { ticket, users: `u1,${'x'.repeat(129)}`, title: 't', content: 'c' },
        /^users: each value is at most 128 characters/,
      );
      await refused(
        '/koala/api/mas/tickets',
        { app_key: 'camel', secret_key: 'EERWERRRRE', user_id: 'x'.repeat(129) },
        /^user_id is at most 128 characters/,
      );
      await refused(
        '/koala/api/mas/messages',
        { ticket: 'x'.repeat(2049), users: 'u1', title: 't', content: 'c' },
        /^ticket is at most 2048 characters/,
      );
    });

    it('refuses sids past a 64-bit seq', async () => {
      await refused('/koala/api/mas/messages/ack', { ticket, sids: '9223372036854775808' }, /sids/);
      await refused('/koala/api/mas/messages/ack', { ticket, sids: `1,${'9'.repeat(25)}` }, /sids/);
    });

    it('refuses malformed multipart bodies, file parts, too many fields and huge fields on all three routes', async () => {
      const garbage = async (path: string) => {
        const before = await appendedEvents(test.url);
        const response = await fetch(url(path), {
          method: 'POST',
          headers: { 'content-type': 'multipart/form-data; boundary=xyz' },
          body: '--xyz\r\ngarbage',
        });
        expect(response.status).to.equal(200);
        expect(await response.json())
          .to.include({ status: 1001, errcode: 1001 })
          .and.to.have.property('errmsg')
          .that.matches(/malformed/);
        expect(await appendedSince(test.url, before)).to.deep.equal({});
      };
      for (const path of ['/koala/api/mas/tickets', '/koala/api/mas/messages', '/koala/api/mas/messages/ack']) {
        await garbage(path);
        const withFile = new FormData();
        withFile.set('ticket', ticket);
        withFile.set('sids', '1');
        withFile.set('upload', new Blob(['x']), 'x.txt');
        await refused(path, withFile, /malformed form/);
        const tooMany = new FormData();
        for (let i = 0; i < 20; i++) tooMany.set(`f${i}`, 'x');
        await refused(path, tooMany, /malformed form/);
        const huge = new FormData();
        huge.set('ticket', ticket);
        huge.set('content', 'x'.repeat(300 * 1024));
        // Over the body's 256 KB before any field is read.
        await refused(path, huge, /too large/);
      }
    });

    it('answers unknown routes and unreadable bodies in JSON, never an HTML page', async () => {
      const notFound = await fetch(url('/nowhere'));
      expect(notFound.status).to.equal(404);
      expect(await notFound.json()).to.deep.equal({ error: { code: 'NOT_FOUND', message: 'no such route' } });
      const tooBig = await fetch(url('/koala/api/mas/messages'), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `ticket=${ticket}&content=${'x'.repeat(300 * 1024)}`,
      });
      expect(tooBig.status).to.equal(200);
      const text = await tooBig.text();
      expect(JSON.parse(text)).to.include({ status: 1001 });
      expect(text).not.to.match(/<html|node_modules|\/work\//i);
    });
  });

  describe('limits and failures', () => {
    let limited: Awaited<ReturnType<typeof startTestHerald>>;
    const clock = new TestClock();
    before(async () => {
      limited = await startTestHerald({ sendRatePerMinute: 2, ticketTtlSeconds: 60 }, clock.now);
    });
    after(() => limited?.stop());

    it('answers 4001 when a sender goes over its rate, and 4002 once the ticket expired', async () => {
      const { body } = await postForm(`${limited.url}/koala/api/mas/tickets`, {
        app_key: 'camel',
        secret_key: 'EERWERRRRE',
        user_id: 'chatty',
      });
      const ticket = body.result as string;
      const send = () =>
        postForm(`${limited.url}/koala/api/mas/messages`, { ticket, users: 'x', title: 't', content: 'c' });
      const results = [await send(), await send(), await send()];
      expect(results.map((r) => r.body.status)).to.deep.equal([0, 0, 4001]);
      expect(results[2]!.status).to.equal(200);
      expect(Number(results[2]!.headers.get('retry-after'))).to.be.within(1, 60);
      clock.advance(61_000); // past the ticket's 60 s (and the rate window)
      const expired = await send();
      expect([expired.status, expired.body.status]).to.deep.equal([200, 4002]);
    });

    it('answers 2001 when the store fails, without leaking details', async () => {
      const { body } = await postForm(`${limited.url}/koala/api/mas/tickets`, {
        app_key: 'camel',
        secret_key: 'EERWERRRRE',
        user_id: 'late',
      });
      // A store fault has no public switch: the test closes herald's connections under it.
      await limited.herald.infrastructure.database.pool.end();
      await limited.herald.infrastructure.store.close();
      const failed = await postForm(`${limited.url}/koala/api/mas/messages/ack`, {
        ticket: body.result as string,
        sids: '1',
      });
      expect(failed.status).to.equal(200);
      expect(failed.body).to.deep.equal({ status: 2001, errcode: 2001, errmsg: 'internal error', result: null });
    });
  });
});
