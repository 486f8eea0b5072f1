import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { checkFcmCredentials, CredentialsError } from '../../src/platformPush/credentials';
import {
  Fcm,
  GOOGLE_TOKEN_URI,
  fcmMessage,
  fcmOutcome,
  parseFcmError,
  retryAfterMs,
  type FcmCredentials,
} from '../../src/platformPush/fcm';
import type { PlatformNotification } from '../../src/platformPush/platformPush';
import { eventually } from '../support/eventually';
import {
  fcmTestAccount,
  serviceAccountJson,
  startFcmStandIn,
  type FcmStandIn,
  type FcmTestAccount,
} from '../support/fcmStandIn';

const notification = (over: Partial<PlatformNotification> = {}): PlatformNotification => ({
  messageId: '0f8fad5b-d9cb-469f-a165-70867728950e',
  appId: 'camel',
  token: 'fcm-token-1',
  alert: ' this is a alert',
  sound: 'default',
  badge: 1,
  extra: 'testmsg',
  tenantCode: 'xxx',
  pushMsgType: 'MSG',
  needConfirm: false,
  expiresAt: new Date(Date.now() + 600_000),
  ...over,
});

describe('FCM HTTP v1 adapter', function () {
  this.timeout(20_000);

  describe('the message', () => {
    it("carries the ONE-PUSH frame's fields as data strings, alert as the notification, ttl, collapse_key, priority", () => {
      const now = Date.now();
      const body = fcmMessage(notification({ expiresAt: new Date(now + 90_500), extra: { a: 1 } }), now) as {
        message: Record<string, unknown>;
      };
      expect(body.message).to.deep.equal({
        token: 'fcm-token-1',
        data: {
          messageId: '0f8fad5b-d9cb-469f-a165-70867728950e',
          appId: 'camel',
          tenantCode: 'xxx',
          alert: ' this is a alert',
          extra: '{"a":1}',
          pushMsgType: 'MSG',
          needConfirm: 'false',
        },
        notification: { body: ' this is a alert' },
        android: {
          ttl: '90s',
          collapse_key: '0f8fad5b-d9cb-469f-a165-70867728950e',
          priority: 'HIGH',
          notification: { tag: '0f8fad5b-d9cb-469f-a165-70867728950e' },
        },
      });
    });

    it("a CMD is data only, NORMAL priority; ttl is 0s for an expired message, at most FCM's 4 weeks", () => {
      const now = Date.now();
      const body = fcmMessage(notification({ pushMsgType: 'CMD', expiresAt: new Date(now - 5000) }), now) as {
        message: { notification?: unknown; android: { priority: string; ttl: string } };
      };
      expect(body.message.notification).to.equal(undefined);
      expect(body.message.android).to.include({ priority: 'NORMAL', ttl: '0s' });
      expect(body.message.android, 'no notification, so no tag').to.not.have.property('notification');
      const far = fcmMessage(notification({ expiresAt: new Date(now + 60 * 86_400_000) }), now) as {
        message: { android: { ttl: string } };
      };
      expect(far.message.android.ttl).to.equal(`${28 * 86_400}s`);
    });

    it('over 4 KB is not sent', () => {
      expect(fcmMessage(notification({ extra: 'x'.repeat(4100) }), Date.now())).to.equal(undefined);
    });
  });

  describe('answers', () => {
    const error = (status: number, errorCode?: string, field?: string) =>
      parseFcmError(
        JSON.stringify({
          error: {
            code: status,
            status: 'X',
            details: [
              ...(errorCode ? [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode }] : []),
              ...(field
                ? [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field }] }]
                : []),
            ],
          },
        }),
      );

    it('404 UNREGISTERED and 400 INVALID_ARGUMENT on message.token kill the token; other 400s do not', () => {
      expect(fcmOutcome(404, error(404, 'UNREGISTERED'))).to.deep.include({ tokenDead: true, retry: false });
      expect(fcmOutcome(400, error(400, 'INVALID_ARGUMENT', 'message.token'))).to.deep.include({
        tokenDead: true,
        reason: '400 INVALID_ARGUMENT',
      });
      expect(fcmOutcome(400, error(400, 'INVALID_ARGUMENT', 'message.android.ttl'))).to.deep.include({
        tokenDead: false,
        retry: false,
      });
      expect(fcmOutcome(403, error(403, 'SENDER_ID_MISMATCH'))).to.deep.include({ tokenDead: false, retry: false });
    });

    it('429/500/503 are retried, with Retry-After', () => {
      expect(fcmOutcome(429, error(429, 'QUOTA_EXCEEDED'), 7000)).to.deep.equal({
        ok: false,
        reason: '429 QUOTA_EXCEEDED',
        retry: true,
        tokenDead: false,
        retryAfterMs: 7000,
      });
      expect(fcmOutcome(503, error(503, 'UNAVAILABLE'))).to.deep.include({ retry: true });
      expect(fcmOutcome(500, parseFcmError('not json'))).to.deep.include({
        retry: true,
        reason: '500 no reason given',
      });
      expect(retryAfterMs('12', 0)).to.equal(12_000);
      expect(retryAfterMs(new Date(60_000).toUTCString(), 0)).to.equal(60_000);
      expect(retryAfterMs('soon', 0)).to.equal(undefined);
      expect(retryAfterMs(null, 0)).to.equal(undefined);
    });
  });

  describe('against the stand-in', () => {
    let standIn: FcmStandIn;
    let a: FcmTestAccount;
    let b: FcmTestAccount;
    let credentials: Map<string, FcmCredentials>;
    let fcm: Fcm;
    const signal = new AbortController().signal;

    before(async () => {
      a = fcmTestAccount('a');
      b = fcmTestAccount('b');
      standIn = await startFcmStandIn([a, b]);
    });
    beforeEach(() => {
      credentials = new Map([
        ['camel', checkFcmCredentials(serviceAccountJson(a, standIn.tokenUri))],
        ['other', checkFcmCredentials(serviceAccountJson(b, standIn.tokenUri))],
      ]);
      fcm = new Fcm(async (appId) => credentials.get(appId), { baseUrl: standIn.url, tokenUri: standIn.tokenUri });
    });
    afterEach(() => {
      standIn.holdSends(false);
      standIn.holdTokens(false);
    });
    after(() => standIn?.close());

    it('gets an access token once (a verified RS256 assertion) and sends with it, per app', async () => {
      const issued = standIn.tokensIssued.length;
      expect(await fcm.send(notification({ token: 't-a1' }), signal)).to.deep.equal({ ok: true });
      expect(await fcm.send(notification({ token: 't-a2' }), signal)).to.deep.equal({ ok: true });
      expect(await fcm.send(notification({ token: 't-b1', appId: 'other' }), signal)).to.deep.equal({ ok: true });
      expect(standIn.tokensIssued.slice(issued).map((t) => t.clientEmail)).to.deep.equal([
        a.clientEmail,
        b.clientEmail,
      ]);
      const seen = standIn.requests.filter((r) => r.token.startsWith('t-'));
      expect(seen.map((r) => [r.token, r.projectId, r.clientEmail])).to.deep.equal([
        ['t-a1', a.projectId, a.clientEmail],
        ['t-a2', a.projectId, a.clientEmail],
        ['t-b1', b.projectId, b.clientEmail],
      ]);
      expect(standIn.refused).to.deep.equal([]);
    });

    it('keeps an access token until 5 minutes before it expires', async () => {
      standIn.setExpiresIn(301);
      try {
        const issued = standIn.tokensIssued.length;
        expect(await fcm.send(notification({ token: 'e-1' }), signal)).to.deep.equal({ ok: true });
        expect(await fcm.send(notification({ token: 'e-2' }), signal)).to.deep.equal({ ok: true });
        expect(standIn.tokensIssued.length).to.equal(issued + 1);
        standIn.setExpiresIn(299);
        const fresh = new Fcm(async (appId) => credentials.get(appId), {
          baseUrl: standIn.url,
          tokenUri: standIn.tokenUri,
        });
        expect(await fresh.send(notification({ token: 'e-3' }), signal)).to.deep.equal({ ok: true });
        expect(await fresh.send(notification({ token: 'e-4' }), signal)).to.deep.equal({ ok: true });
        expect(standIn.tokensIssued.length).to.equal(issued + 3);
      } finally {
        standIn.setExpiresIn(3599);
      }
    });

    it('a 401 makes a new access token and tries once more', async () => {
      expect(await fcm.send(notification({ token: 'r-1' }), signal)).to.deep.equal({ ok: true });
      const issued = standIn.tokensIssued.length;
      standIn.forgetAccessTokens();
      expect(await fcm.send(notification({ token: 'r-2' }), signal)).to.deep.equal({ ok: true });
      expect(standIn.tokensIssued.length).to.equal(issued + 1);
    });

    it('8 sends refused together (401) share one new access token, even when their 401s come after it was made', async () => {
      expect(await fcm.send(notification({ token: 'c-0' }), signal)).to.deep.equal({ ok: true });
      const issued = standIn.tokensIssued.length;
      standIn.holdSends(true);
      const sends = Array.from({ length: 8 }, (_, i) => fcm.send(notification({ token: `c-${i + 1}` }), signal));
      await eventually(() => expect(standIn.held().sends).to.equal(8));
      standIn.forgetAccessTokens();
      // The first is refused and renews (its retry, with the new token, is held again); only then are the
      // other 7 refused, with the old token: they take the new one rather than each renewing.
      standIn.releaseSends(1);
      await eventually(() =>
        expect([standIn.tokensIssued.length, standIn.held().sends]).to.deep.equal([issued + 1, 8]),
      );
      standIn.holdSends(false);
      expect(await Promise.all(sends)).to.deep.equal(sends.map(() => ({ ok: true })));
      expect(standIn.tokensIssued.length).to.equal(issued + 1);
    });

    it('a token request shared by concurrent sends outlives the first one giving up: the others get the token', async () => {
      const issued = standIn.tokensIssued.length;
      standIn.holdTokens(true);
      try {
        const first = new AbortController();
        const firstSend = fcm.send(notification({ token: 'f-0' }), first.signal).catch((e: unknown) => e);
        const others = Array.from({ length: 7 }, (_, i) =>
          fcm.send(notification({ token: `f-${i + 1}` }), AbortSignal.timeout(5000)),
        );
        await eventually(() => expect(standIn.held().tokens).to.equal(1));
        first.abort(new Error('the first send gave up'));
        expect(await firstSend).to.have.property('message', 'the first send gave up');
        standIn.holdTokens(false);
        expect(await Promise.all(others)).to.deep.equal(others.map(() => ({ ok: true })));
        expect(standIn.tokensIssued.length).to.equal(issued + 1);
        expect(standIn.requests.filter((r) => r.token === 'f-0')).to.deep.equal([]);
      } finally {
        standIn.holdTokens(false);
      }
    });

    it('a second 403 is failed, not retried', async () => {
      standIn.answer(
        'p-1',
        { status: 403, errorCode: 'SENDER_ID_MISMATCH' },
        { status: 403, errorCode: 'SENDER_ID_MISMATCH' },
      );
      expect(await fcm.send(notification({ token: 'p-1' }), signal)).to.deep.include({
        ok: false,
        reason: '403 SENDER_ID_MISMATCH',
        retry: false,
      });
      expect(standIn.requests.filter((r) => r.token === 'p-1')).to.have.length(2);
    });

    it('answers each documented status as the outcome', async () => {
      standIn.answer('s-1', { status: 404, errorCode: 'UNREGISTERED' });
      standIn.answer('s-2', { status: 503, errorCode: 'UNAVAILABLE', retryAfter: 20 });
      standIn.answer('s-3', { status: 400, errorCode: 'INVALID_ARGUMENT', tokenViolation: true });
      expect(await fcm.send(notification({ token: 's-1' }), signal)).to.deep.include({ tokenDead: true });
      expect(await fcm.send(notification({ token: 's-2' }), signal)).to.deep.include({
        retry: true,
        retryAfterMs: 20_000,
      });
      expect(await fcm.send(notification({ token: 's-3' }), signal)).to.deep.include({ tokenDead: true });
    });

    it("an account the token endpoint refuses is a failure naming OAuth's answer", async () => {
      const stranger = fcmTestAccount('z');
      credentials.set('camel', checkFcmCredentials(serviceAccountJson(stranger, standIn.tokenUri)));
      expect(await fcm.send(notification({ token: 'x-1' }), signal)).to.deep.include({
        ok: false,
        reason: 'OAuth 400 invalid_grant',
        retry: false,
      });
      expect(standIn.refused).to.include('iss');
    });

    it("HERALD_FCM_TOKEN_URI sends token requests elsewhere; the assertion's aud stays the account's token_uri", async () => {
      const google = 'https://oauth2.googleapis.com/token';
      const proxy = await startFcmStandIn([a], { audience: google });
      try {
        const viaProxy = new Fcm(async () => checkFcmCredentials(serviceAccountJson(a, google)), {
          baseUrl: proxy.url,
          tokenUri: proxy.tokenUri,
        });
        expect(await viaProxy.send(notification({ token: 'v-1' }), signal)).to.deep.equal({ ok: true });
        expect(proxy.tokensIssued).to.have.length(1);
        expect(proxy.refused).to.deep.equal([]);
      } finally {
        await proxy.close();
      }
    });

    it("never asks the account's own token_uri (an app admin's URL: SSRF into herald's network), only Google or the operator's proxy", async () => {
      const inside = await startFcmStandIn([a]);
      try {
        // The account names a service inside the network; the operator set no proxy: Google is asked.
        const asked: string[] = [];
        const direct = new Fcm(async () => checkFcmCredentials(serviceAccountJson(a, inside.tokenUri)), {
          baseUrl: inside.url,
        });
        const realFetch = globalThis.fetch;
        globalThis.fetch = ((input: string | URL | Request) => {
          asked.push(String(input));
          return Promise.reject(new Error('no network in this test'));
        }) as typeof fetch;
        try {
          await direct.send(notification({ token: 's-1' }), signal).catch(() => undefined);
        } finally {
          globalThis.fetch = realFetch;
        }
        expect(asked).to.deep.equal([GOOGLE_TOKEN_URI]);
        expect(inside.tokensIssued).to.have.length(0);
      } finally {
        await inside.close();
      }
    });

    it('no service account: not sent', async () => {
      expect(await fcm.send(notification({ appId: 'nobody' }), signal)).to.deep.include({ ok: false, retry: false });
    });
  });

  describe('service-account input', () => {
    const account = fcmTestAccount('c');
    const good = serviceAccountJson(account, 'https://oauth2.googleapis.com/token');

    it("takes Google's JSON key file", () => {
      expect(checkFcmCredentials(good)).to.deep.include({
        projectId: account.projectId,
        clientEmail: account.clientEmail,
        tokenUri: 'https://oauth2.googleapis.com/token',
      });
    });

    it('refuses, naming the field and never quoting the key', () => {
      const cases: Array<[unknown, RegExp]> = [
        ['not json', /^serviceAccount: not JSON/],
        [42, /^serviceAccount: expected/],
        ['x'.repeat(20_000), /^serviceAccount: expected/],
        ['[]', /^serviceAccount: expected a JSON object|^serviceAccount\./],
        [serviceAccountJson(account, 'x', { type: 'authorized_user' }), /^serviceAccount\.type: /],
        [
          serviceAccountJson(account, 'https://oauth2.googleapis.com/token', { project_id: 'A B' }),
          /^serviceAccount\.project_id: /,
        ],
        [
          serviceAccountJson(account, 'https://oauth2.googleapis.com/token', { client_email: 'nope' }),
          /^serviceAccount\.client_email: /,
        ],
        [serviceAccountJson(account, 'ftp://x'), /^serviceAccount\.token_uri: /],
        [
          serviceAccountJson(account, 'https://oauth2.googleapis.com/token', {
            private_key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----',
          }),
          /^serviceAccount\.private_key: /,
        ],
        [
          serviceAccountJson(account, 'https://oauth2.googleapis.com/token', {
            private_key: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({
              format: 'pem',
              type: 'pkcs8',
            }),
          }),
          /^serviceAccount\.private_key: not an RSA key/,
        ],
      ];
      for (const [input, message] of cases) {
        let thrown: unknown;
        try {
          checkFcmCredentials(input);
        } catch (error) {
          thrown = error;
        }
        expect(thrown, String(message)).to.be.instanceOf(CredentialsError);
        expect((thrown as Error).message).to.match(message);
        expect((thrown as Error).message).to.not.include('PRIVATE KEY');
      }
    });
  });
});
