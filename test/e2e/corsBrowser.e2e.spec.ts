import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { chromiumPathOrSkip, launchChromium } from '../support/chromium';
import { graphql } from '../support/graphqlClient';
import { issueTicket, startTestHerald } from '../support/herald';

// Issue 22, "Browsers on other origins": Koala's and datahub's callers are web front ends ("前端",
// shared/seeds/000_83e3b79cc88886e5.txt, 001_e25b4a10524b93b6.txt) served from their own origin. A page
// in headless Chromium, served by a small server on another port (another origin), calls herald with
// fetch(): the seed's Koala send (a form), its ack (multipart, as the seed names it) and datahub's
// GET /notifications. From a listed origin the page reads every answer; from any other, fetch rejects.

/** The front end's own calls, as a page would write them; each answers what the page could read, or the error fetch threw. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>a front end on its own origin</title>
<script>
  async function read(response) {
    return { status: response.status, correlationId: response.headers.get('x-correlation-id'), body: await response.text() };
  }
  async function attempt(call) {
    try {
      return await call();
    } catch (error) {
      return { error: error.name + ': ' + error.message };
    }
  }
  window.front = {
    koalaSend: (herald, ticket, users, title, content) => attempt(async () => read(await fetch(herald + '/koala/api/mas/messages', {
      method: 'POST', body: new URLSearchParams({ ticket, users, title, content }),
    }))),
    koalaAck: (herald, ticket, sids) => attempt(async () => {
      const form = new FormData();
      form.set('ticket', ticket);
      form.set('sids', sids);
      return read(await fetch(herald + '/koala/api/mas/messages/ack', { method: 'POST', body: form }));
    }),
    inbox: (herald, ticket) => attempt(async () => read(await fetch(herald + '/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer ' + ticket },
      body: JSON.stringify({ query: '{ notifications(first: 10, type: "koala") { nodes { seq title acknowledged } } }' }),
    }))),
    datahubList: (herald, ticket) => attempt(async () => read(await fetch(herald + '/notifications', {
      headers: { accept: 'application/json', authorization: 'Token ' + ticket },
    }))),
  };
</script>
<p>front end</p>
`;

interface Answer {
  readonly status?: number;
  readonly correlationId?: string | null;
  readonly body?: string;
  readonly error?: string;
}
interface Front {
  koalaSend(herald: string, ticket: string, users: string, title: string, content: string): Promise<Answer>;
  koalaAck(herald: string, ticket: string, sids: string): Promise<Answer>;
  inbox(herald: string, ticket: string): Promise<Answer>;
  datahubList(herald: string, ticket: string): Promise<Answer>;
}

/** A server of the front end's page, on a port of its own: an origin other than herald's. */
async function servePage(): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer(
    (_req, res) => void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('CORS in headless Chromium: a front end on another origin calls Koala and datahub (issue 22)', function () {
  this.timeout(120_000);
  let test: Awaited<ReturnType<typeof startTestHerald>> | undefined;
  let browser: Browser | undefined;
  let listed: Awaited<ReturnType<typeof servePage>> | undefined;
  let unlisted: Awaited<ReturnType<typeof servePage>> | undefined;

  before(async function () {
    const executablePath = chromiumPathOrSkip(this);
    listed = await servePage();
    unlisted = await servePage();
    test = await startTestHerald({ corsOrigins: [listed.origin] });
    browser = await launchChromium(executablePath);
  });
  after(async () => {
    await browser?.close();
    await test?.stop();
    await listed?.close();
    await unlisted?.close();
  });

  async function open(origin: string): Promise<Page> {
    const page = await browser!.newPage();
    await page.goto(`${origin}/`);
    return page;
  }
  const call = <K extends keyof Front>(page: Page, name: K, ...args: Parameters<Front[K]>): Promise<Answer> =>
    page.evaluate(
      ([name, args]) =>
        (globalThis as unknown as { front: Record<string, (...a: string[]) => Promise<Answer>> }).front[name]!(...args),
      [name, args as string[]] as const,
    );
  const json = (answer: Answer) => {
    expect(answer.error, 'fetch rejected').to.equal(undefined);
    return JSON.parse(answer.body!) as Record<string, unknown>;
  };

  async function adminMessage(receiver: string, content: string): Promise<void> {
    const admin = await issueTicket(test!.url, 'admin@hub.dataio.com', 'admin');
    const sent = await fetch(`${test!.url}/notifications`, {
      method: 'POST',
      headers: { accept: 'application/json', authorization: `Token ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'admin_message', receiver, data: { content } }),
    });
    expect(sent.status).to.equal(200);
  }

  it('from a listed origin: sends over Koala, acks it, lists datahub notifications, and reads each JSON answer', async () => {
    // The app's server issues the tickets and hands them to its front end (seed 000, 3.1).
    const sender = await issueTicket(test!.url, 'zhangbin');
    const receiver = await issueTicket(test!.url, 'jiangxiaoyu');
    await adminMessage('jiangxiaoyu', 'bla bla ...');
    const page = await open(listed!.origin);

    const sent = await call(
      page,
      'koalaSend',
      test!.url,
      sender,
      'jiangxiaoyu',
      'system upgrade',
      'system patching 20:21',
    );
    expect(sent.status).to.equal(200);
    expect(json(sent)).to.include({ status: 0, errcode: 0 });
    expect(sent.correlationId, 'an exposed header').to.match(/^[0-9a-f-]{36}$/);

    const inbox = await call(page, 'inbox', test!.url, receiver);
    const [message] = (
      json(inbox) as {
        data: { notifications: { nodes: Array<{ seq: string; title: string; acknowledged: boolean }> } };
      }
    ).data.notifications.nodes;
    expect(message).to.include({ title: 'system upgrade', acknowledged: false });

    const acked = await call(page, 'koalaAck', test!.url, receiver, message!.seq);
    expect(json(acked)).to.include({ status: 0, errcode: 0 });
    const after = await graphql<{ notifications: { nodes: Array<{ acknowledged: boolean }> } }>(
      test!.url,
      receiver,
      '{ notifications(first: 10, type: "koala") { nodes { acknowledged } } }',
    );
    expect(after.data!.notifications.nodes).to.deep.equal([{ acknowledged: true }]);

    const listedNotifications = json(await call(page, 'datahubList', test!.url, receiver)) as {
      total: number;
      results: Array<{ type: string; data: unknown }>;
    };
    expect(listedNotifications.total).to.equal(1);
    expect(listedNotifications.results[0]).to.deep.include({ type: 'admin_message', data: { content: 'bla bla ...' } });

    // An error answer is the page's to read too: a ticket that is not one is Koala's 1004, as HTTP 200
    // (Koala's own client reads errors in jQuery's success callback).
    const refused = await call(page, 'koalaSend', test!.url, 'not-a-ticket', 'jiangxiaoyu', 't', 'c');
    expect(refused.status).to.equal(200);
    expect(json(refused)).to.include({ status: 1004 });
    await page.close();
  });

  it('from an origin not listed: every call rejects in the page, which reads nothing', async () => {
    const sender = await issueTicket(test!.url, 'zhangbin');
    const receiver = await issueTicket(test!.url, 'zhouyang');
    const page = await open(unlisted!.origin);
    for (const answer of [
      await call(page, 'koalaSend', test!.url, sender, 'zhouyang', 'from elsewhere', 'x'),
      await call(page, 'koalaAck', test!.url, receiver, '1'),
      await call(page, 'inbox', test!.url, receiver),
      await call(page, 'datahubList', test!.url, receiver),
    ]) {
      expect(answer).to.deep.equal({ error: 'TypeError: Failed to fetch' });
    }
    await page.close();
  });
});
