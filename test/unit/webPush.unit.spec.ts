import { createECDH, createPublicKey, randomBytes, verify } from 'node:crypto';
import dns from 'node:dns';
import http from 'node:http';
import net from 'node:net';
import { expect } from 'chai';
import webpush from 'web-push';
import { DomainError } from '../../domain/decider';
import { deviceDecider, isKoalaBrowserOf, type DeviceStreamEvent } from '../../domain/device/device';
import { checkWebPushSubscription } from '../../domain/device/webPushSubscription';
import { ConfigError, loadConfig } from '../../src/config';
import { checkVapidCredentials, CredentialsError } from '../../src/platformPush/credentials';
import {
  endpointRefusal,
  topicOf,
  ttlOf,
  urgencyOf,
  WEB_PUSH_LIMITS,
  WebPush,
  webPushOutcome,
} from '../../src/platformPush/webPush';
import { isPublicAddress, publicLookup } from '../../src/runtime/publicAddress';
import { deciderSpecification } from '../support/deciderSpecification';

/** A browser's subscription keys: a real P-256 point and a 16-byte secret. */
export function browserKeys() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') };
}

describe('Web Push: a browser subscription (domain/device/webPushSubscription.ts)', () => {
  const keys = browserKeys();
  const good = { endpoint: 'https://push.example.com/wpush/v2/abc', expirationTime: null, keys };

  it('takes PushSubscription.toJSON() and keeps endpoint, keys and expirationTime', () => {
    expect(checkWebPushSubscription(good)).to.deep.equal({
      endpoint: good.endpoint,
      p256dh: keys.p256dh,
      auth: keys.auth,
      expirationTime: null,
    });
    expect(checkWebPushSubscription({ ...good, expirationTime: 1_800_000_000_000 }).expirationTime).to.equal(
      1_800_000_000_000,
    );
    // A missing expirationTime (some browsers) is none.
    const { expirationTime: _, ...withoutExpiry } = good;
    expect(checkWebPushSubscription(withoutExpiry).expirationTime).to.equal(null);
  });

  it('refuses a bad field naming it, never quoting the keys', () => {
    const cases: Array<[unknown, string]> = [
      [null, 'subscription'],
      [{ ...good, endpoint: 'ftp://push.example.com/x' }, 'subscription.endpoint'],
      [{ ...good, endpoint: 'https://user:pw@push.example.com/x' }, 'subscription.endpoint'],
      [{ ...good, endpoint: `https://push.example.com/${'a'.repeat(1024)}` }, 'subscription.endpoint'],
      [{ ...good, endpoint: 'not a url' }, 'subscription.endpoint'],
      [{ ...good, expirationTime: -1 }, 'subscription.expirationTime'],
      [{ ...good, expirationTime: 1.5 }, 'subscription.expirationTime'],
      [{ ...good, keys: { ...keys, p256dh: keys.p256dh.slice(1) } }, 'subscription.keys.p256dh'],
      // 65 bytes, not an uncompressed point (0x02: compressed).
      [{ ...good, keys: { ...keys, p256dh: Buffer.alloc(65, 2).toString('base64url') } }, 'subscription.keys.p256dh'],
      // Padded base64 is not the Push API's base64url.
      [{ ...good, keys: { ...keys, auth: randomBytes(16).toString('base64') } }, 'subscription.keys.auth'],
      [{ ...good, keys: { ...keys, auth: randomBytes(15).toString('base64url') } }, 'subscription.keys.auth'],
      [{ ...good, keys: { p256dh: keys.p256dh } }, 'subscription.keys.auth'],
    ];
    for (const [input, field] of cases) {
      let error: unknown;
      try {
        checkWebPushSubscription(input);
      } catch (e) {
        error = e;
      }
      expect(error, field).to.be.instanceOf(DomainError);
      expect((error as Error).message, field).to.match(new RegExp(`^${field.replace(/\./g, '\\.')}: expected`));
      expect((error as Error).message).to.not.include(keys.auth);
    }
  });
});

describe('Web Push: where herald may POST (endpointRefusal)', () => {
  const none = { allowedOrigins: [] };
  it('public https only, unless the origin is allowed', () => {
    expect(endpointRefusal('https://fcm.googleapis.com/fcm/send/x', none)).to.equal(undefined);
    expect(endpointRefusal('http://push.example.com/x', none)).to.equal('not https');
    expect(endpointRefusal('https://127.0.0.1:8443/x', none)).to.match(/not a public address/);
    expect(endpointRefusal('https://[::1]/x', none)).to.match(/not a public address/);
    expect(endpointRefusal('https://10.1.2.3/x', none)).to.match(/not a public address/);
    expect(endpointRefusal('https://169.254.169.254/latest', none)).to.match(/not a public address/);
    expect(endpointRefusal('https://[::ffff:192.168.0.1]/x', none)).to.match(/not a public address/);
    expect(endpointRefusal('https://localhost/x', none)).to.match(/not a public address/);
    expect(endpointRefusal('https://a:b@push.example.com/x', none)).to.match(/user or password/);
    const tests = { allowedOrigins: ['http://127.0.0.1:8090'] };
    expect(endpointRefusal('http://127.0.0.1:8090/notify/abc', tests)).to.equal(undefined);
    expect(endpointRefusal('http://127.0.0.1:8091/notify/abc', tests)).to.equal('not https');
  });

  it('a name resolving to a non-public address is refused on the connection (publicLookup), not saying which', async () => {
    const error = await new Promise<NodeJS.ErrnoException | null>((resolve) =>
      publicLookup('localhost', {}, (e) => resolve(e)),
    );
    expect(error?.code).to.equal('ENOTPUBLIC');
    expect(error?.message).to.not.include('127.0.0.1');
  });

  it('IPv6 addresses that carry an IPv4 one (mapped, compatible, translated, NAT64, 6to4, Teredo) and site-local are not public', () => {
    for (const address of [
      '::1',
      '::',
      '::7f00:1',
      '::ffff:7f00:1',
      '::ffff:127.0.0.1',
      '::ffff:0:a00:1',
      '64:ff9b::a00:1',
      '64:ff9b:1::a00:1',
      '2002:c0a8:1::1',
      '2001:0:4136:e378::1',
      '100::1',
      'fec0::1',
      'fd00::1',
      'fe80::1',
    ])
      expect(isPublicAddress(address), address).to.equal(false);
    for (const address of ['2001:4860:4860::8888', '2a00:1450:4001::1', '8.8.8.8', '::ffff:8.8.8.8'])
      expect(isPublicAddress(address), address).to.equal(true);
  });

  describe('WebPush.send to a name that resolves to a loopback address', () => {
    // A listener on loopback standing in for an internal service; the name resolves to it.
    let server: net.Server;
    let connections = 0;
    const realLookup = dns.lookup;
    before(async () => {
      server = net.createServer((socket) => {
        connections += 1;
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      (dns as { lookup: unknown }).lookup = (
        hostname: string,
        options: dns.LookupOptions,
        callback: (...args: unknown[]) => void,
      ) =>
        hostname === 'push.internal.example'
          ? options.all
            ? callback(null, [{ address: '127.0.0.1', family: 4 }])
            : callback(null, '127.0.0.1', 4)
          : realLookup(hostname, options, callback as never);
    });
    after(async () => {
      (dns as { lookup: unknown }).lookup = realLookup;
      await new Promise((resolve) => server.close(resolve));
    });

    it('is a final EndpointRefused without the address, and no connection is made', async () => {
      const pushService = new WebPush(
        async () => ({ ...webpush.generateVAPIDKeys(), subject: 'mailto:ops@example.com' }),
        { allowedOrigins: [] },
      );
      const { port } = server.address() as net.AddressInfo;
      const endpoint = `https://push.internal.example:${port}/x`;
      expect(endpointRefusal(endpoint, { allowedOrigins: [] })).to.equal(undefined);
      try {
        const outcome = await pushService.send(
          {
            messageId: '7d3c5a1e-0000-4000-8000-000000000001',
            appId: 'testapp1',
            token: JSON.stringify({ endpoint, keys: browserKeys() }),
            alert: 'hello',
            sound: null,
            badge: null,
            extra: null,
            tenantCode: 'xxx',
            pushMsgType: 'MSG',
            needConfirm: false,
            expiresAt: new Date(Date.now() + 60_000),
          },
          AbortSignal.timeout(5000),
        );
        expect(outcome).to.deep.equal({
          ok: false,
          reason: 'EndpointRefused: not a public address',
          retry: false,
          tokenDead: false,
        });
        expect(connections).to.equal(0);
      } finally {
        await pushService.close();
      }
    });
  });
});

describe('Web Push: headers and answers (src/platformPush/webPush.ts)', () => {
  const messageId = '7d3c5a1e-0000-4000-8000-000000000001';

  it('signs one VAPID JWT per app and push service, verifiable, reused across requests; a new key pair gets a new one (issue 25)', async () => {
    const authorizations: string[] = [];
    const server = http.createServer((request, response) => {
      authorizations.push(request.headers.authorization ?? '');
      request.resume();
      request.on('end', () => response.writeHead(201).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    let vapid = { ...webpush.generateVAPIDKeys(), subject: 'mailto:ops@example.com' };
    const pushService = new WebPush(async () => vapid, { allowedOrigins: [origin] });
    const send = (path: string) =>
      pushService.send(
        {
          messageId,
          appId: 'testapp1',
          token: JSON.stringify({ endpoint: `${origin}${path}`, keys: browserKeys() }),
          alert: 'hello',
          sound: null,
          badge: null,
          extra: null,
          tenantCode: 'xxx',
          pushMsgType: 'MSG',
          needConfirm: false,
          expiresAt: new Date(Date.now() + 60_000),
        },
        AbortSignal.timeout(5000),
      );
    try {
      for (const path of ['/a', '/b', '/c']) expect(await send(path)).to.deep.equal({ ok: true });
      const first = vapid;
      vapid = { ...webpush.generateVAPIDKeys(), subject: 'mailto:ops@example.com' };
      expect(await send('/d')).to.deep.equal({ ok: true });
      expect(new Set(authorizations.slice(0, 3)).size, 'one JWT for the three').to.equal(1);
      const check = (authorization: string, publicKey: string) => {
        const match = /^vapid t=([^,]+), k=(.+)$/.exec(authorization)!;
        expect(match[2]).to.equal(publicKey);
        const [header, claims, signature] = match[1]!.split('.');
        const claimed = JSON.parse(Buffer.from(claims!, 'base64url').toString()) as {
          aud: string;
          exp: number;
          sub: string;
        };
        expect(claimed.aud).to.equal(origin);
        expect(claimed.sub).to.equal('mailto:ops@example.com');
        // Within RFC 8292's 24 h.
        expect(claimed.exp - Date.now() / 1000).to.be.within(11 * 3600, 24 * 3600);
        const key = createPublicKey({
          key: {
            kty: 'EC',
            crv: 'P-256',
            x: Buffer.from(publicKey, 'base64url').subarray(1, 33).toString('base64url'),
            y: Buffer.from(publicKey, 'base64url').subarray(33).toString('base64url'),
          },
          format: 'jwk',
        });
        expect(
          verify(
            'sha256',
            Buffer.from(`${header}.${claims}`),
            { key, dsaEncoding: 'ieee-p1363' },
            Buffer.from(signature!, 'base64url'),
          ),
        ).to.equal(true);
      };
      check(authorizations[0]!, first.publicKey);
      check(authorizations[3]!, vapid.publicKey);
    } finally {
      await pushService.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('TTL is the seconds the message has left, at most 4 weeks, never negative', () => {
    const now = Date.parse('2026-12-07T10:00:00.000Z');
    expect(ttlOf(new Date(now + 7 * 86_400_000), now)).to.equal(7 * 86_400);
    expect(ttlOf(new Date(now + 1500), now)).to.equal(1);
    expect(ttlOf(new Date(now - 1000), now)).to.equal(0);
    expect(ttlOf(new Date(now + 60 * 86_400_000), now)).to.equal(WEB_PUSH_LIMITS.ttlSeconds);
  });

  it('Urgency: high for MSG (shown), normal for CMD (background); Topic: the message id in 32 base64url characters', () => {
    expect(urgencyOf('MSG')).to.equal('high');
    expect(urgencyOf('CMD')).to.equal('normal');
    expect(topicOf(messageId)).to.equal('7d3c5a1e000040008000000000000001');
    expect(topicOf(messageId)).to.match(/^[A-Za-z0-9_-]{1,32}$/);
  });

  it('201/202 sent; 404/410 drop the subscription; 429/5xx retried (Retry-After kept); 400/403/413 final', () => {
    expect(webPushOutcome(201, '', undefined, 5)).to.deep.equal({ ok: true });
    expect(webPushOutcome(202, '', undefined, 5)).to.deep.equal({ ok: true });
    expect(webPushOutcome(410, 'Gone', undefined, 5)).to.deep.equal({
      ok: false,
      reason: '410 Gone',
      retry: false,
      tokenDead: true,
      deadSince: 5,
    });
    expect(webPushOutcome(404, 'Not Found', undefined, 5)).to.include({ tokenDead: true, retry: false });
    expect(webPushOutcome(429, 'Too Many Requests', 20_000, 5)).to.deep.equal({
      ok: false,
      reason: '429 Too Many Requests',
      retry: true,
      tokenDead: false,
      retryAfterMs: 20_000,
    });
    expect(webPushOutcome(503, '', undefined, 5)).to.include({ retry: true, tokenDead: false });
    for (const status of [400, 401, 403, 413, 301])
      expect(webPushOutcome(status, 'why', undefined, 5), String(status)).to.deep.equal({
        ok: false,
        reason: `${status} why`,
        retry: false,
        tokenDead: false,
      });
  });
});

describe('Web Push: VAPID key pairs (checkVapidCredentials)', () => {
  it('makes a pair when none is given; imports a pair that matches', () => {
    const made = checkVapidCredentials({ subject: 'mailto:ops@example.com' });
    expect(Buffer.from(made.publicKey, 'base64url')).to.have.length(65);
    expect(Buffer.from(made.privateKey, 'base64url')).to.have.length(32);
    const pair = webpush.generateVAPIDKeys();
    expect(checkVapidCredentials({ subject: 'https://example.com/contact', ...pair })).to.deep.equal({
      subject: 'https://example.com/contact',
      ...pair,
    });
  });

  it('refuses a bad field naming it, never quoting the private key', () => {
    const pair = webpush.generateVAPIDKeys();
    const other = webpush.generateVAPIDKeys();
    const cases: Array<[unknown, string]> = [
      [{ subject: 'ops@example.com' }, 'subject'],
      [{ subject: 'http://example.com' }, 'subject'],
      [{ subject: `mailto:${'a'.repeat(300)}@example.com` }, 'subject'],
      [{ subject: 'mailto:ops@example.com', publicKey: pair.publicKey }, 'publicKey, privateKey'],
      [{ subject: 'mailto:ops@example.com', privateKey: pair.privateKey }, 'publicKey, privateKey'],
      [{ subject: 'mailto:ops@example.com', ...pair, publicKey: pair.publicKey.slice(2) }, 'publicKey'],
      [{ subject: 'mailto:ops@example.com', ...pair, privateKey: `${pair.privateKey}==` }, 'privateKey'],
      [{ subject: 'mailto:ops@example.com', publicKey: other.publicKey, privateKey: pair.privateKey }, 'privateKey'],
      [
        {
          subject: 'mailto:ops@example.com',
          publicKey: Buffer.alloc(65, 4).toString('base64url'),
          privateKey: pair.privateKey,
        },
        'publicKey',
      ],
    ];
    for (const [input, field] of cases) {
      let error: unknown;
      try {
        checkVapidCredentials(input);
      } catch (e) {
        error = e;
      }
      expect(error, field).to.be.instanceOf(CredentialsError);
      expect((error as Error).message, field).to.match(new RegExp(`^${field}: `));
      expect((error as Error).message).to.not.include(pair.privateKey);
    }
  });
});

describe('Web Push: the subscription on the device stream (device decider)', () => {
  const spec = deciderSpecification(deviceDecider);
  const now = '2026-12-07T10:00:00.000Z';
  const later = '2026-12-07T10:05:00.000Z';
  const keys = browserKeys();
  const registration = {
    deviceId: 'd'.repeat(32),
    appId: 'testapp1',
    clientId: 1000001,
    alias: 'testuserid1',
    platform: 'WEB' as const,
    nativeToken: 'browser-1',
    mobile: null,
    tags: [],
    registration: 1,
  };
  const registered: DeviceStreamEvent = { type: 'DeviceRegistered', data: { ...registration, registeredAt: now } };
  const subscription = {
    endpoint: 'https://push.example.com/x',
    p256dh: keys.p256dh,
    auth: keys.auth,
    expirationTime: null,
  };
  const subscribe = { type: 'SubscribeWebPush' as const, subscription, registration: 1, now: later };
  const subscribed: DeviceStreamEvent = {
    type: 'DeviceRegistered',
    data: { ...registration, registeredAt: later, webPush: { ...subscription, subscribedAt: later } },
  };
  const revoke = {
    type: 'RevokeNativeToken' as const,
    registration: 1,
    service: 'webpush' as const,
    reason: '410 Gone',
    endpoint: subscription.endpoint,
    now: later,
  };
  const dropped: DeviceStreamEvent = {
    type: 'NativeTokenRevoked',
    data: {
      deviceId: registration.deviceId,
      appId: 'testapp1',
      registration: 1,
      service: 'webpush',
      reason: '410 Gone',
      revokedAt: later,
    },
  };

  it('is recorded as a registration holding it (the window of the last events still holds the state); unchanged appends nothing', () => {
    spec.given([registered]).when(subscribe).then([subscribed]);
    spec.given([registered, subscribed]).when(subscribe).then([]);
    // Another endpoint replaces it.
    spec
      .given([registered, subscribed])
      .when({ ...subscribe, subscription: { ...subscription, endpoint: 'https://push.example.com/y' } })
      .then([
        {
          type: 'DeviceRegistered',
          data: {
            ...registration,
            registeredAt: later,
            webPush: { ...subscription, endpoint: 'https://push.example.com/y', subscribedAt: later },
          },
        },
      ]);
    // A state from the last event alone has it.
    expect(deviceDecider.evolve(deviceDecider.initialState(), subscribed)).to.deep.include({
      status: 'registered',
      webPush: { ...subscription, subscribedAt: later },
    });
  });

  it('refused as not found when the registration or the alias the permission was checked on changed since', () => {
    const reRegistered: DeviceStreamEvent = {
      type: 'DeviceRegistered',
      data: { ...registration, alias: 'someoneelse', registeredAt: later },
    };
    // A user allowed as the device's owner (alias = user id), the device given to another user since.
    spec
      .given([registered, reRegistered])
      .when({ ...subscribe, alias: 'testuserid1' })
      .thenThrows(DomainError, (e) => expect(e.code).to.equal('not_found'));
    spec
      .given([registered])
      .when({ ...subscribe, alias: 'testuserid1' })
      .then([
        {
          ...subscribed,
          data: { ...subscribed.data, webPush: { ...subscribed.data.webPush!, userId: 'testuserid1' } },
        },
      ]);
    // A device token (or an admin) of a registration that has ended and begun again since.
    const unregistered: DeviceStreamEvent = {
      type: 'DeviceUnregistered',
      data: { deviceId: registration.deviceId, appId: 'testapp1', registration: 1, unregisteredAt: later },
    };
    const second: DeviceStreamEvent = {
      type: 'DeviceRegistered',
      data: { ...registration, registration: 2, registeredAt: later },
    };
    spec
      .given([registered, unregistered, second])
      .when(subscribe)
      .thenThrows(DomainError, (e) => expect(e.code).to.equal('not_found'));
    spec
      .given([registered, unregistered, second])
      .when({ ...subscribe, registration: 2 })
      .then([{ type: 'DeviceRegistered', data: { ...subscribed.data, registration: 2 } }]);
  });

  it("is the user's browser for Koala only when that user gave it with their ticket, and only while they register it with that alias", () => {
    const byUser = { ...subscribe, alias: 'testuserid1' };
    const usersSubscription = { ...subscription, subscribedAt: later, userId: 'testuserid1' };
    const usersSubscribed: DeviceStreamEvent = {
      type: 'DeviceRegistered',
      data: { ...registration, registeredAt: later, webPush: usersSubscription },
    };
    const state = (events: DeviceStreamEvent[]) => events.reduce(deviceDecider.evolve, deviceDecider.initialState());
    // A device token or an admin (no alias checked): the device's only (ONE-PUSH), not the alias's Koala messages.
    expect(isKoalaBrowserOf(state([registered, subscribed]), 'testuserid1')).to.equal(false);
    spec.given([registered]).when(byUser).then([usersSubscribed]);
    expect(isKoalaBrowserOf(state([registered, usersSubscribed]), 'testuserid1')).to.equal(true);
    expect(isKoalaBrowserOf(state([registered, usersSubscribed]), 'someoneelse')).to.equal(false);
    // The same subscription given anew by the user (it was the device's): recorded, now the user's.
    spec.given([registered, subscribed]).when(byUser).then([usersSubscribed]);
    spec.given([registered, usersSubscribed]).when(byUser).then([]);
    const register = {
      type: 'RegisterDevice' as const,
      ...registration,
      now: '2026-12-07T10:06:00.000Z',
    };
    const kept = (webPush: typeof usersSubscription | typeof subscribed.data.webPush, alias = registration.alias) => ({
      type: 'DeviceRegistered' as const,
      data: { ...registration, alias, registeredAt: register.now, webPush },
    });
    const { userId: _, ...devicesOnly } = usersSubscription;
    // The user registering it again (GraphQL, their ticket), unchanged: nothing; changed: kept as theirs.
    spec
      .given([registered, usersSubscribed])
      .when({ ...register, byUser: 'testuserid1' })
      .then([]);
    spec
      .given([registered, usersSubscribed])
      .when({ ...register, tags: ['x'], byUser: 'testuserid1' })
      .then([{ ...kept(usersSubscription), data: { ...kept(usersSubscription).data, tags: ['x'] } }]);
    // Registered again without their ticket (the open REST register, appKey, an admin), even unchanged: the
    // subscription stays the device's (ONE-PUSH), no more the user's.
    spec
      .given([registered, usersSubscribed])
      .when(register)
      .then([kept(devicesOnly)]);
    spec
      .given([registered, usersSubscribed])
      .when({ ...register, byUser: 'someoneelse' })
      .then([kept(devicesOnly)]);
    // Given to another alias (a shared computer, the app's server registering it for the next user).
    spec
      .given([registered, usersSubscribed])
      .when({ ...register, alias: 'someoneelse', byUser: 'someoneelse' })
      .then([kept(devicesOnly, 'someoneelse')]);
    expect(isKoalaBrowserOf(state([registered, usersSubscribed, kept(devicesOnly)]), 'testuserid1')).to.equal(false);
    // Whatever the subscription says, a device with another alias is not the user's browser.
    const aliasChanged: DeviceStreamEvent = {
      ...usersSubscribed,
      data: { ...usersSubscribed.data, alias: 'someoneelse' },
    };
    expect(isKoalaBrowserOf(state([registered, usersSubscribed, aliasChanged]), 'testuserid1')).to.equal(false);
    // Events of before (no userId) read as they did: the device's.
    expect(isKoalaBrowserOf(state([registered, subscribed]), 'testuserid1')).to.equal(false);
  });

  it('only a registered WEB device takes one', () => {
    spec
      .given([{ ...registered, data: { ...registered.data, platform: 'IOS' } } as DeviceStreamEvent])
      .when(subscribe)
      .thenThrows(DomainError, (e) => expect(e.message).to.match(/^subscription: only a WEB device/));
    spec.given([]).when(subscribe).thenThrows(DomainError);
  });

  it("a registration of the same registration keeps it (ONE-PUSH's register has no such field); a new registration drops it", () => {
    const register = {
      type: 'RegisterDevice' as const,
      ...registration,
      nativeToken: 'browser-1',
      tags: ['x'],
      now: '2026-12-07T10:06:00.000Z',
    };
    spec
      .given([registered, subscribed])
      .when(register)
      .then([
        {
          type: 'DeviceRegistered',
          data: {
            ...registration,
            tags: ['x'],
            registeredAt: register.now,
            webPush: { ...subscription, subscribedAt: later },
          },
        },
      ]);
    const unregistered: DeviceStreamEvent = {
      type: 'DeviceUnregistered',
      data: { deviceId: registration.deviceId, appId: 'testapp1', registration: 1, unregisteredAt: later },
    };
    spec
      .given([registered, subscribed, unregistered])
      .when(register)
      .then([
        {
          type: 'DeviceRegistered',
          data: { ...registration, tags: ['x'], registration: 2, registeredAt: register.now },
        },
      ]);
  });

  it('a 404/410 drops it: never used again, also after a registration, until the browser subscribes again', () => {
    spec.given([registered, subscribed]).when(revoke).then([dropped]);
    // Dead since before the device subscribed (a new subscription given after the request went out): kept.
    spec
      .given([registered, subscribed])
      .when({ ...revoke, deadSince: Date.parse(later) - 1 })
      .then([]);
    const state = [registered, subscribed, dropped].reduce(deviceDecider.evolve, deviceDecider.initialState());
    expect(state).to.deep.include({ tokenRevoked: true, webPush: null });
    // Registering again clears the revocation, not the subscription: nothing to push to.
    spec
      .given([registered, subscribed, dropped])
      .when({ type: 'RegisterDevice', ...registration, now: '2026-12-07T10:07:00.000Z' })
      .then([{ type: 'DeviceRegistered', data: { ...registration, registeredAt: '2026-12-07T10:07:00.000Z' } }]);
    // The same subscription given again is live again.
    spec
      .given([registered, subscribed, dropped])
      .when({ ...subscribe, now: '2026-12-07T10:08:00.000Z' })
      .then([
        {
          type: 'DeviceRegistered',
          data: {
            ...registration,
            registeredAt: '2026-12-07T10:08:00.000Z',
            webPush: { ...subscription, subscribedAt: '2026-12-07T10:08:00.000Z' },
          },
        },
      ]);
    // Nothing to drop without a subscription.
    spec.given([registered]).when(revoke).then([]);
  });

  it('a 404/410 for an old subscription (a retry after the browser subscribed anew) never drops the new one', () => {
    const renewedAt = '2026-12-07T10:06:00.000Z';
    const renewed: DeviceStreamEvent = {
      type: 'DeviceRegistered',
      data: {
        ...registration,
        registeredAt: renewedAt,
        webPush: { ...subscription, endpoint: 'https://push.example.com/b', subscribedAt: renewedAt },
      },
    };
    // Answered after B was given, naming A.
    spec
      .given([registered, subscribed, renewed])
      .when({ ...revoke, deadSince: Date.parse(renewedAt) + 1000, now: '2026-12-07T10:07:00.000Z' })
      .then([]);
    spec
      .given([registered, subscribed, renewed])
      .when({ ...revoke, now: '2026-12-07T10:07:00.000Z' })
      .then([]);
    // Naming B, it does.
    spec
      .given([registered, subscribed, renewed])
      .when({ ...revoke, endpoint: 'https://push.example.com/b', now: '2026-12-07T10:07:00.000Z' })
      .then([{ ...dropped, data: { ...dropped.data, revokedAt: '2026-12-07T10:07:00.000Z' } }]);
    // No endpoint named (a token that was no subscription): nothing.
    const { endpoint: _, ...unnamed } = revoke;
    spec.given([registered, subscribed]).when(unnamed).then([]);
  });

  it("a 410 sent after the subscription but before a re-registration (ONE-PUSH's register at login) drops it", () => {
    const reRegisteredAt = '2026-12-07T10:10:00.000Z';
    const reRegistered: DeviceStreamEvent = {
      type: 'DeviceRegistered',
      data: { ...subscribed.data, tags: ['x'], registeredAt: reRegisteredAt },
    };
    // Sent at 10:08 (after the subscription at 10:05), answered after the 10:10 registration.
    spec
      .given([registered, subscribed, reRegistered])
      .when({ ...revoke, deadSince: Date.parse('2026-12-07T10:08:00.000Z'), now: '2026-12-07T10:11:00.000Z' })
      .then([{ ...dropped, data: { ...dropped.data, revokedAt: '2026-12-07T10:11:00.000Z' } }]);
  });

  it('unsubscribing records none; without one it appends nothing', () => {
    spec
      .given([registered, subscribed])
      .when({ type: 'SubscribeWebPush', subscription: null, registration: 1, now: later })
      .then([{ type: 'DeviceRegistered', data: { ...registration, registeredAt: later, webPush: null } }]);
    spec
      .given([registered])
      .when({ type: 'SubscribeWebPush', subscription: null, registration: 1, now: later })
      .then([]);
  });
});

describe('Web Push: HERALD_VAPID_… and HERALD_WEBPUSH_ALLOWED_ORIGINS', () => {
  const pair = webpush.generateVAPIDKeys();
  const env = {
    HERALD_VAPID_APP: 'solo',
    HERALD_VAPID_PUBLIC_KEY: pair.publicKey,
    HERALD_VAPID_PRIVATE_KEY: pair.privateKey,
    HERALD_VAPID_SUBJECT: 'mailto:ops@example.com',
  };
  const problem = (vars: NodeJS.ProcessEnv) => {
    try {
      loadConfig(vars);
      return '';
    } catch (error) {
      expect(error).to.be.instanceOf(ConfigError);
      return (error as Error).message;
    }
  };

  it('are read together; origins are exact', () => {
    const config = loadConfig({
      ...env,
      HERALD_WEBPUSH_ALLOWED_ORIGINS: 'http://127.0.0.1:8090, https://push.internal',
    });
    expect(config.vapid).to.deep.equal({
      appId: 'solo',
      credentials: { ...pair, subject: 'mailto:ops@example.com' },
    });
    expect(config.webPushEndpoint).to.deep.equal({
      allowedOrigins: ['http://127.0.0.1:8090', 'https://push.internal'],
    });
    expect(loadConfig({}).webPushEndpoint).to.deep.equal({ allowedOrigins: [] });
    expect(loadConfig({}).vapid).to.equal(undefined);
  });

  it('stop start-up naming the variable that is wrong, never quoting the private key', () => {
    expect(problem({ HERALD_VAPID_APP: 'solo' })).to.include(
      'HERALD_VAPID_PRIVATE_KEY: required with HERALD_VAPID_APP',
    );
    expect(problem({ HERALD_VAPID_SUBJECT: 'mailto:a@b.c' })).to.include('HERALD_VAPID_APP: required');
    const other = webpush.generateVAPIDKeys();
    const mismatch = problem({ ...env, HERALD_VAPID_PUBLIC_KEY: other.publicKey });
    expect(mismatch).to.include('HERALD_VAPID_PRIVATE_KEY: not the private key of publicKey');
    expect(mismatch).to.not.include(pair.privateKey);
    expect(problem({ ...env, HERALD_VAPID_SUBJECT: 'ops@example.com' })).to.include('HERALD_VAPID_SUBJECT: expected');
    expect(problem({ HERALD_WEBPUSH_ALLOWED_ORIGINS: 'http://127.0.0.1:8090/path' })).to.include(
      'HERALD_WEBPUSH_ALLOWED_ORIGINS',
    );
    expect(problem({ HERALD_WEBPUSH_ALLOWED_ORIGINS: 'ftp://x' })).to.include('HERALD_WEBPUSH_ALLOWED_ORIGINS');
  });
});
