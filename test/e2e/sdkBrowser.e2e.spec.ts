import { mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { chromiumPathOrSkip, launchChromium } from '../support/chromium';
import { eventually } from '../support/eventually';
import { graphql } from '../support/graphqlClient';
import { issueTicket, postForm, startTestHerald } from '../support/herald';
import { ensureSdkBuilt } from '../support/sdkBundle';

// The demo page (/demo/terminal.html) in headless Chromium, used as a person would: it loads the SDK
// from the URL herald serves, shows a message sent over Koala's REST route (shared/seeds/
// 000_83e3b79cc88886e5.txt, 3.2) as it arrives, and acknowledges it on a click.

const SCREENSHOT = path.join(__dirname, '../../test-output/sdk-demo-terminal.png');

interface Inbox {
  notifications: { nodes: Array<{ id: string; title: string; acknowledged: boolean }> };
}

describe('front-end SDK in headless Chromium: the demo web terminal', function () {
  this.timeout(120_000);
  let test: Awaited<ReturnType<typeof startTestHerald>> | undefined;
  let browser: Browser | undefined;

  before(async function () {
    const executablePath = chromiumPathOrSkip(this);
    await ensureSdkBuilt();
    test = await startTestHerald();
    browser = await launchChromium(executablePath);
  });
  after(async () => {
    await browser?.close();
    await test?.stop();
  });

  async function sendOverKoala(to: string, title: string, content: string): Promise<void> {
    const sender = await issueTicket(test!.url, 'zhangbin');
    const { body } = await postForm(`${test!.url}/koala/api/mas/messages`, {
      ticket: sender,
      users: to,
      title,
      content,
    });
    expect(body.status, JSON.stringify(body)).to.equal(0);
  }

  function watch(page: Page): { urls: string[]; problems: string[] } {
    const seen = { urls: [] as string[], problems: [] as string[] };
    page.on('request', (request) => seen.urls.push(request.url()));
    page.on('websocket', (socket) => seen.urls.push(socket.url()));
    page.on('pageerror', (error) => seen.problems.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') seen.problems.push(`${message.text()} (${message.location().url})`);
    });
    return seen;
  }

  it('shows a message sent over Koala REST as it arrives, acks it on a click, and GraphQL sees the ack', async () => {
    const ticket = await issueTicket(test!.url, 'browser-user');
    const page = await browser!.newPage({ viewport: { width: 860, height: 640 } });
    const seen = watch(page);

    await page.goto(`${test!.url}/demo/terminal.html#ticket=${encodeURIComponent(ticket)}`);
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: 15_000 });
    expect(page.url(), 'the ticket is cleared from the address bar').to.equal(`${test!.url}/demo/terminal.html`);

    await sendOverKoala('browser-user', 'system upgrade', 'system patching 20:21');
    const upgrade = page.locator('li.message', { hasText: 'system upgrade' });
    await upgrade.waitFor({ timeout: 15_000 });
    expect(await upgrade.locator('.content').textContent()).to.equal('system patching 20:21');
    expect(await upgrade.locator('.meta').textContent()).to.match(/^from zhangbin · .+ · seq \d+ · camel$/);

    await upgrade.getByRole('button', { name: 'Acknowledge' }).click();
    await page.locator('li.message.acknowledged', { hasText: 'system upgrade' }).waitFor({ timeout: 15_000 });
    // The ack answers once herald's inbox shows it (read your writes): no waiting needed here.
    const inbox = await graphql<Inbox>(
      test!.url,
      ticket,
      'query { notifications(first: 10, type: "koala") { nodes { id title acknowledged } } }',
    );
    expect(inbox.data!.notifications.nodes).to.deep.equal([
      { id: await upgrade.getAttribute('data-id'), title: 'system upgrade', acknowledged: true },
    ]);

    // A second one stays unacknowledged in the screenshot, beside the acknowledged one.
    await sendOverKoala('browser-user', 'maintenance window', 'the database restarts at 22:00 for about five minutes');
    await page.locator('li.message', { hasText: 'maintenance window' }).waitFor({ timeout: 15_000 });
    expect(await page.locator('#count').textContent()).to.equal('(2)');
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    expect(
      seen.urls.filter((url) => url.includes(ticket)),
      'no request carries the ticket in its URL',
    ).to.deep.equal([]);
    expect(seen.urls).to.include(`${test!.url.replace(/^http/, 'ws')}/graphql`);
    expect(seen.problems, 'no script errors').to.deep.equal([]);
    await page.close();
  });

  // Koala's seed (section 4): a front end includes require.js, tce.js, koala.js and message_client.js;
  // Koala's own demo page asks `requirejs(['message_client'], function (client) { … client.open({ mas_url,
  // token, ping, onMessage }) … client.acknowledge(message.meta.seq) })`. The page below is that page,
  // served by the legacy site (an origin of its own) with the real require.js (npm `requirejs`), loading
  // herald's /sdk scripts from herald.
  const legacyPage = (heraldUrl: string, ticket: string, loading: 'require' | 'script-tags') => `<!doctype html>
<html><head><meta charset="utf-8"><title>legacy Koala page</title><link rel="icon" href="data:,">
<script src="/scripts/require.js"></script>
${loading === 'script-tags' ? `<script src="${heraldUrl}/sdk/tce.js"></script><script src="${heraldUrl}/sdk/message_client.js"></script><script src="${heraldUrl}/sdk/koala.js"></script>` : ''}
</head><body><div id="message"></div><script>
window.received = [];
window.acks = [];
window.errors = [];
requirejs.config({ paths: { tce: '${heraldUrl}/sdk/tce', koala: '${heraldUrl}/sdk/koala', message_client: '${heraldUrl}/sdk/message_client' } });
requirejs(['tce', 'koala', 'message_client'], function (tce, koala, client) {
  window.modules = { tce: typeof tce, iTerminal: typeof koala.ITerminal, sameClient: koala.message_client === client, open: typeof client.open };
  window.connection = client.open({
    onMessage: function (message, ctx) {
      window.received.push({ seq: message.meta.seq, title: message.title, content: message.content, sender: message.meta.sender });
      document.getElementById('message').textContent = 'seq:' + message.meta.seq + ' title:' + message.title;
      client.acknowledge(message.meta.seq).then(function (n) { window.acks.push(n); });
    },
    onError: function (errcode, errmsg) { window.errors.push(errcode + ': ' + errmsg); },
    ping: 5,
    mas_url: '${heraldUrl}/',
    token: '${ticket}'
  });
  window.opened = true;
});
</script></body></html>`;

  for (const loading of ['require', 'script-tags'] as const) {
    it(`a legacy page with require.js gets message_client as an AMD module (${loading === 'require' ? 'loaded by require.js' : 'by script tags'}), receives a message and acks it`, async () => {
      const ticket = await issueTicket(test!.url, `amd-${loading}`);
      // The legacy site: its page and its copy of require.js, on an origin of its own; herald's scripts from herald.
      const site = http.createServer((req, res) => {
        if (req.url === '/scripts/require.js')
          return void res
            .writeHead(200, { 'content-type': 'text/javascript' })
            .end(readFileSync(require.resolve('requirejs/require.js')));
        if (req.url === '/')
          return void res
            .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
            .end(legacyPage(test!.url, ticket, loading));
        res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
      const page = await browser!.newPage();
      const seen = watch(page);
      await page.goto(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`);
      type PageGlobals = {
        errors: string[];
        opened?: boolean;
        modules: unknown;
        connection: { state: string };
        received: Array<{ seq: string; title: string; content: string; sender: string }>;
        acks: number[];
      };
      await page.waitForFunction(() => (globalThis as unknown as { opened?: boolean }).opened === true, undefined, {
        timeout: 15_000,
      });
      expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).modules)).to.deep.equal({
        tce: 'object',
        iTerminal: 'function',
        sameClient: true,
        open: 'function',
      });
      await eventually(
        async () => {
          const { state, errors } = await page.evaluate(() => ({
            state: (globalThis as unknown as PageGlobals).connection.state,
            errors: (globalThis as unknown as PageGlobals).errors,
          }));
          expect(state, `${errors.join('; ')} ${seen.problems.join('; ')}`).to.equal('connected');
        },
        { timeoutMs: 15_000 },
      );

      await sendOverKoala(`amd-${loading}`, 'system upgrade', 'system patching 20:21');
      const received = await eventually(
        async () => {
          const got = await page.evaluate(() => (globalThis as unknown as PageGlobals).received);
          expect(got).to.have.length(1);
          return got;
        },
        { timeoutMs: 15_000 },
      );
      expect(received[0]).to.include({ title: 'system upgrade', content: 'system patching 20:21', sender: 'zhangbin' });
      await eventually(async () =>
        expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).acks)).to.deep.equal([1]),
      );
      const inbox = await graphql<Inbox>(
        test!.url,
        ticket,
        'query { notifications(first: 10, type: "koala") { nodes { id title acknowledged } } }',
      );
      expect(inbox.data!.notifications.nodes.map((n) => [n.title, n.acknowledged])).to.deep.equal([
        ['system upgrade', true],
      ]);
      expect(seen.problems, 'no script errors').to.deep.equal([]);
      await page.close();
      await new Promise<void>((resolve) => site.close(() => resolve()));
    });
  }
});
