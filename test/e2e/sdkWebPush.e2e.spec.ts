import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import { chromiumPathOrSkip, launchChromium } from '../support/chromium';
import { eventually } from '../support/eventually';
import { graphql } from '../support/graphqlClient';
import { issueTicket, startTestHerald } from '../support/herald';
import { ensureSdkBuilt } from '../support/sdkBundle';
import { storedEvents } from '../support/storedEvents';

/**
 * The demo page's Web Push button in headless Chromium (docs/platform-push.md, "Web Push"), as far as
 * Chromium goes offline: the permission (granted by the test, as a person would), the service worker
 * registered, the browser registered as a WEB device of the ticket's user, the app's public key read.
 * `pushManager.subscribe` itself needs the browser's push service (Google's FCM for Chromium): headless
 * Chromium refuses it here ("Registration failed - permission denied", also with the Push API's permission
 * granted through the DevTools protocol); the page reports it (PUSH_SERVICE) and nothing half-made is
 * recorded. A browser that reaches its push service takes the other branch. What a push
 * would then do — the service worker showing it — is proven by handing the worker a push message
 * through the DevTools protocol (ServiceWorker.deliverPushMessage), with herald's payload.
 */
/** The page's globals this test reads (the test compiles without the DOM library). */
interface PageGlobals {
  Notification: { permission: string };
  navigator: {
    serviceWorker: {
      ready: Promise<{
        scope: string;
        active: { scriptURL: string } | null;
        getNotifications(): Promise<Array<{ title: string; body: string; tag: string }>>;
      }>;
    };
  };
}

describe('front-end SDK in headless Chromium: Web Push from the demo page', function () {
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

  it('registers the service worker and the WEB device with permission granted; the worker shows a pushed message', async () => {
    const url = test!.url;
    const admin = await issueTicket(url, 'boss', 'admin');
    const set = await graphql<{ setWebPushCredentials: { publicKey: string } }>(
      url,
      admin,
      'mutation { setWebPushCredentials(input: { subject: "mailto:ops@example.com" }) { publicKey } }',
    );
    expect(set.errors).to.equal(undefined);
    const ticket = await issueTicket(url, 'web-user');
    const context = await browser!.newContext();
    await context.grantPermissions(['notifications'], { origin: url });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    const cdp = await context.newCDPSession(page);
    const registrations: Array<{ registrationId: string; scopeURL: string }> = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (event) => registrations.push(...event.registrations));
    await cdp.send('ServiceWorker.enable');

    await page.goto(`${url}/demo/terminal.html#ticket=${encodeURIComponent(ticket)}`);
    await page.getByRole('button', { name: 'Notify me while this page is closed' }).click();
    const status = page.locator('#webpush-status');
    await page
      .locator('#webpush-status:is([data-state="subscribed"], [data-state="failed"])')
      .waitFor({ timeout: 30_000 });

    // The permission and the service worker, at the demo's scope.
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).Notification.permission)).to.equal(
      'granted',
    );
    const worker = await page.evaluate(async () => {
      const registration = await (globalThis as unknown as PageGlobals).navigator.serviceWorker.ready;
      return { scope: registration.scope, script: registration.active?.scriptURL };
    });
    expect(worker).to.deep.equal({ scope: `${url}/demo/`, script: `${url}/demo/webpush-sw.js` });

    // The browser is a WEB device of the user.
    const devices = await graphql<{ devices: { nodes: Array<{ id: string; platform: string; alias: string }> } }>(
      url,
      ticket,
      '{ devices(platform: WEB) { nodes { id platform alias } } }',
    );
    expect(devices.data!.devices.nodes).to.have.length(1);
    expect(devices.data!.devices.nodes[0]).to.include({ platform: 'WEB', alias: 'web-user' });
    const deviceId = devices.data!.devices.nodes[0]!.id;

    const state = await status.getAttribute('data-state');
    console.log(`      the page: ${state} (${await status.textContent()})`);
    const deviceEvents = await storedEvents(url, admin, { stream: `device-${deviceId}` });
    if (state === 'subscribed') {
      // A browser that reaches its push service: the subscription is recorded.
      expect(await status.getAttribute('data-device')).to.equal(deviceId);
      expect(deviceEvents.at(-1)!.data.webPush).to.have.property('endpoint');
    } else {
      // Offline: Chromium's push service (FCM) is not reachable, and the page says so; nothing is recorded.
      expect(await status.getAttribute('data-code')).to.equal('PUSH_SERVICE');
      expect(await status.textContent()).to.match(/^Not subscribed: the browser's push service: /);
      expect(deviceEvents.map((e) => e.data.webPush ?? null)).to.deep.equal(deviceEvents.map(() => null));
    }

    // What the worker does with a push: herald's payload shown as a notification, one per message id.
    const registration = await eventually(() => {
      const found = registrations.find((r) => r.scopeURL === `${url}/demo/`);
      expect(found).to.not.equal(undefined);
      return found!;
    });
    const payload = {
      messageId: '7d3c5a1e-0000-4000-8000-000000000001',
      appId: 'camel',
      tenantCode: 'xxx',
      alert: 'system patching 20:21',
      extra: null,
      pushMsgType: 'MSG',
      needConfirm: false,
    };
    await cdp.send('ServiceWorker.deliverPushMessage', {
      origin: url,
      registrationId: registration.registrationId,
      data: JSON.stringify(payload),
    });
    const shown = await eventually(async () => {
      const notifications = await page.evaluate(async () =>
        (await (await (globalThis as unknown as PageGlobals).navigator.serviceWorker.ready).getNotifications()).map(
          (n) => ({
            title: n.title,
            body: n.body,
            tag: n.tag,
          }),
        ),
      );
      expect(notifications).to.have.length(1);
      return notifications;
    });
    expect(shown[0]).to.deep.equal({ title: 'xxx', body: 'system patching 20:21', tag: payload.messageId });
    expect(problems).to.deep.equal([]);
    await context.close();
  });
});
