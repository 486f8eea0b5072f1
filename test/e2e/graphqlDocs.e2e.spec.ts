import { createECDH, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse, validate } from 'graphql';
import { buildSchema } from '../../api/graphql/graphqlServer';
import { systemClock } from '../../src/runtime/clock';
import { apnsTestKey } from '../support/apnsStandIn';
import { fcmTestAccount, serviceAccountJson } from '../support/fcmStandIn';
import { graphqlWithAuthorization } from '../support/graphqlClient';
import { issueTicket, postForm, startTestHerald } from '../support/herald';

// docs/api/graphql.md stays true: each of its `graphql` blocks is valid against the served schema, and
// its queries and mutations run without errors.
describe('docs/api/graphql.md examples', function () {
  this.timeout(60_000);
  const doc = readFileSync(path.resolve(__dirname, '../../docs/api/graphql.md'), 'utf8');
  const blocks = [...doc.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]!);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let ticket: string;

  before(async () => {
    test = await startTestHerald();
    ticket = (
      await postForm(`${test.url}/koala/api/mas/tickets`, {
        app_key: 'camel',
        secret_key: 'EERWERRRRE',
        user_id: 'jiangxiaoyu',
      })
    ).body.result as string;
  });
  after(() => test?.stop());

  it('has examples', () => {
    expect(blocks.length).to.be.at.least(5);
  });

  it('every example is valid against the schema', () => {
    const schema = buildSchema({
      messaging: test.herald.messaging,
      bus: test.herald.bus,
      clock: systemClock,
      datahub: test.herald.datahub,
      devices: test.herald.devices,
      pushes: test.herald.pushes,
      gateway: test.herald.gateway,
      terminals: test.herald.terminals,
      rtio: test.herald.rtio,
      events: test.herald.events,
      platformCredentials: test.herald.platformCredentials,
      appRetention: test.herald.appRetention,
    });
    for (const block of blocks)
      expect(
        validate(schema, parse(block)).map((e) => e.message),
        block,
      ).to.deep.equal([]);
  });

  /**
   * How a block runs: as the ticket's user, unless it is a device's (then with a device token) or an
   * RTIO device's (then with its id and key), and with the variables it declares, made from what herald
   * holds. `refusedWith`: refused by design.
   */
  async function runOf(
    block: string,
  ): Promise<{ credential: string; variables?: Record<string, unknown>; refusedWith?: string }> {
    // An RTIO device's: a reply to a call that is not waiting is refused by design
    if (block.includes('replyToCall'))
      return {
        credential: await rtioDevice(),
        variables: { callId: '0123456789abcdef0123456789abcdef' },
        refusedWith: 'NOT_FOUND',
      };
    if (block.includes('report(')) return { credential: await rtioDevice() };
    // acknowledge([]) is refused as bad input by design
    if (block.includes('$ids')) return { credential: ticket, variables: { ids: [] }, refusedWith: 'BAD_USER_INPUT' };
    // Platform-push credentials are for admins; the key is one made for the run.
    if (/apnsCredentials/i.test(block))
      return {
        credential: await issueTicket(test.url, 'docs-admin', 'admin'),
        ...(block.includes('$keyPem') && { variables: { keyPem: apnsTestKey().keyPem } }),
      };
    if (/fcmCredentials/i.test(block))
      return {
        credential: await issueTicket(test.url, 'docs-admin', 'admin'),
        ...(block.includes('$json') && {
          variables: { json: serviceAccountJson(fcmTestAccount('docs'), 'https://oauth2.googleapis.com/token') },
        }),
      };
    if (/webPushCredentials/i.test(block)) return { credential: await issueTicket(test.url, 'docs-admin', 'admin') };
    // An app's retention is its admins'.
    if (/setRetention|retention \{/.test(block))
      return { credential: await issueTicket(test.url, 'docs-admin', 'admin') };
    // A browser's subscription for a WEB device of the user (subscribing POSTs nothing: the endpoint is not asked).
    if (/(un)?subscribeWebPush/.test(block)) {
      const browser = createECDH('prime256v1');
      browser.generateKeys();
      const { device } = await test.herald.devices.register(
        { appId: 'camel', alias: 'jiangxiaoyu', platform: 'WEB', nativeToken: `docs-browser-${++devicesMade}` },
        new Date(),
      );
      return {
        credential: ticket,
        variables: {
          deviceId: device.deviceId,
          ...(block.includes('$subscription') && {
            subscription: {
              endpoint: 'https://push.example.com/wpush/v2/docs',
              expirationTime: null,
              keys: {
                p256dh: browser.getPublicKey().toString('base64url'),
                auth: randomBytes(16).toString('base64url'),
              },
            },
          }),
        },
      };
    }
    // The event stream is for admins
    if (block.includes('events(')) return { credential: await issueTicket(test.url, 'docs-analyst', 'admin') };
    if (block.includes('$id:')) return { credential: ticket, variables: { id: (await docsDevice()).device.deviceId } };
    if (block.includes('$messageId')) {
      // A device of the user, with a message pushed to it that it has not confirmed.
      const { token } = await docsDevice();
      const { pushId } = await test.herald.pushes.onePush(
        'camel',
        { platform: 'ALL', audienceType: 'ALIAS', audiences: ['jiangxiaoyu'], alert: 'docs', needConfirm: true },
        new Date(),
      );
      return { credential: token, variables: { messageId: pushId } };
    }
    return { credential: ticket };
  }

  /** An RTIO device's Authorization credential: `RtioDevice <device_id>:<device_key>`. */
  let rtioDevicesMade = 0;
  const rtioDevice = async () => {
    const { deviceId, deviceKey } = await test.herald.rtio.createDevice(
      'rtio',
      `docs-${++rtioDevicesMade}-${Date.now()}`,
    );
    return `RtioDevice ${deviceId}:${deviceKey}`;
  };

  let devicesMade = 0;
  const docsDevice = () =>
    test.herald.devices.register(
      { appId: 'camel', alias: 'jiangxiaoyu', platform: 'ANDROID', nativeToken: `docs-device-${++devicesMade}` },
      new Date(),
    );

  it('the queries and mutations run', async () => {
    for (const block of blocks.filter((b) => !/^\s*subscription/.test(b))) {
      const { credential, variables, refusedWith } = await runOf(block);
      const result = await graphqlWithAuthorization(
        test.url,
        credential.startsWith('RtioDevice ') ? credential : `Bearer ${credential}`,
        block,
        variables,
      );
      if (refusedWith) expect(result.errors?.[0]?.extensions?.code, block).to.equal(refusedWith);
      else expect(result.errors, block).to.equal(undefined);
    }
  });
});
