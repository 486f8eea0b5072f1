import { expect } from 'chai';
import { DomainError } from '../../domain/decider';
import { deviceDecider, type DeviceStreamEvent } from '../../domain/device/device';
import {
  platformPushDecider,
  type PlatformPushEvent,
  type RequestPlatformPush,
} from '../../domain/device/platformPush';
import { deciderSpecification } from '../support/deciderSpecification';

/** ONE-PUSH's `nativeToken` for APNs (shared/seeds/003_834cb051d61fc48e.txt: "用于apns发送离线消息") as events. */
describe('platform push decider', () => {
  const spec = deciderSpecification(platformPushDecider);
  const pushId = '7d3c5a1e-0000-4000-8000-000000000001';
  const deviceId = 'd'.repeat(32);
  const now = '2026-12-07T10:00:00.000Z';
  const at = (seconds: number) => new Date(Date.parse(now) + seconds * 1000).toISOString();
  const item = { pushId, deviceId, appId: 'testapp1', service: 'apns' as const };
  const request: RequestPlatformPush = {
    type: 'RequestPlatformPush',
    ...item,
    nativeToken: 'a'.repeat(64),
    registration: 1,
    why: 'offline',
    expiresAt: at(3600),
    now,
  };
  const requested: PlatformPushEvent = {
    type: 'PlatformPushRequested',
    data: {
      ...item,
      nativeToken: 'a'.repeat(64),
      registration: 1,
      why: 'offline',
      expiresAt: at(3600),
      requestedAt: now,
    },
  };
  const failed = (attempt: number, error: string, failedAt: string, retryAt: string | null): PlatformPushEvent => ({
    type: 'PlatformPushFailed',
    data: { ...item, attempt, error, final: retryAt === null, failedAt, retryAt },
  });
  const outcome = (ok: boolean, retry = true, error = '503 ServiceUnavailable') =>
    ok ? { ok: true as const } : { ok: false as const, error, retry };

  it('is requested once per message and device: a re-send, a restart, a second leader add nothing', () => {
    spec.given([]).when(request).then([requested]);
    spec.given([requested]).when(request).then([]);
    spec
      .given([requested, { type: 'PlatformPushSent', data: { ...item, attempt: 1, sentAt: now } }])
      .when({ ...request, why: 'unconfirmed' })
      .then([]);
  });

  it('is not requested for a message that has expired', () => {
    spec
      .given([])
      .when({ ...request, now: at(3600) })
      .then([]);
  });

  it('refuses a push id that is not a UUID', () => {
    spec
      .given([])
      .when({ ...request, pushId: 'x' })
      .thenThrows(DomainError);
  });

  it('records a send once', () => {
    spec
      .given([requested])
      .when({ type: 'RecordPlatformPushAttempt', attempt: 1, outcome: outcome(true), now: at(1) })
      .then([{ type: 'PlatformPushSent', data: { ...item, attempt: 1, sentAt: at(1) } }]);
    spec
      .given([requested, { type: 'PlatformPushSent', data: { ...item, attempt: 1, sentAt: at(1) } }])
      .when({ type: 'RecordPlatformPushAttempt', attempt: 1, outcome: outcome(true), now: at(2) })
      .then([]);
  });

  it('retries 429/5xx/the network with back-off (5 s, 30 s, …) while the message lives', () => {
    spec
      .given([requested])
      .when({ type: 'RecordPlatformPushAttempt', attempt: 1, outcome: outcome(false), now })
      .then([failed(1, '503 ServiceUnavailable', now, at(5))]);
    spec
      .given([requested, failed(1, '503 ServiceUnavailable', now, at(5))])
      .when({ type: 'RecordPlatformPushAttempt', attempt: 2, outcome: outcome(false), now: at(5) })
      .then([failed(2, '503 ServiceUnavailable', at(5), at(35))]);
  });

  it("waits for the service's Retry-After when it is later than the schedule's (FCM), never sooner", () => {
    const later = { ok: false as const, error: '429 QUOTA_EXCEEDED', retry: true, retryAfterMs: 60_000 };
    spec
      .given([requested])
      .when({ type: 'RecordPlatformPushAttempt', attempt: 1, outcome: later, now })
      .then([failed(1, '429 QUOTA_EXCEEDED', now, at(60))]);
    spec
      .given([requested])
      .when({ type: 'RecordPlatformPushAttempt', attempt: 1, outcome: { ...later, retryAfterMs: 1000 }, now })
      .then([failed(1, '429 QUOTA_EXCEEDED', now, at(5))]);
    // A Retry-After past the message's expiry: final.
    spec
      .given([requested])
      .when({ type: 'RecordPlatformPushAttempt', attempt: 1, outcome: { ...later, retryAfterMs: 7200_000 }, now })
      .then([failed(1, '429 QUOTA_EXCEEDED', now, null)]);
  });

  it("is final when the next try would come after the message's expiry", () => {
    spec
      .given([requested])
      .when({ type: 'RecordPlatformPushAttempt', attempt: 1, outcome: outcome(false), now: at(3597) })
      .then([failed(1, '503 ServiceUnavailable', at(3597), null)]);
  });

  it('is final at once for an answer retrying cannot change (410, 400, PayloadTooLarge)', () => {
    spec
      .given([requested])
      .when({
        type: 'RecordPlatformPushAttempt',
        attempt: 1,
        outcome: outcome(false, false, '410 Unregistered'),
        now,
      })
      .then([failed(1, '410 Unregistered', now, null)]);
  });
});

describe('device: a revoked native token', () => {
  const spec = deciderSpecification(deviceDecider);
  const now = '2026-12-07T10:00:00.000Z';
  const registration = {
    deviceId: 'd'.repeat(32),
    appId: 'testapp1',
    clientId: 1000001,
    alias: 'testuserid1',
    platform: 'IOS' as const,
    nativeToken: 'a'.repeat(64),
    mobile: null,
    tags: [],
    registration: 1,
  };
  const registered: DeviceStreamEvent = { type: 'DeviceRegistered', data: { ...registration, registeredAt: now } };
  const revoked: DeviceStreamEvent = {
    type: 'NativeTokenRevoked',
    data: {
      deviceId: registration.deviceId,
      appId: 'testapp1',
      registration: 1,
      service: 'apns',
      reason: '410 Unregistered',
      revokedAt: now,
    },
  };
  const revoke = {
    type: 'RevokeNativeToken' as const,
    registration: 1,
    service: 'apns' as const,
    reason: '410 Unregistered',
    now,
  };
  const register = {
    type: 'RegisterDevice' as const,
    deviceId: registration.deviceId,
    appId: 'testapp1',
    clientId: 1000001,
    alias: 'testuserid1',
    platform: 'IOS',
    nativeToken: 'a'.repeat(64),
    now,
  };

  it('is recorded once, for the registration it belongs to', () => {
    spec.given([registered]).when(revoke).then([revoked]);
    spec.given([registered, revoked]).when(revoke).then([]);
    spec
      .given([registered])
      .when({ ...revoke, registration: 2 })
      .then([]);
  });

  it("is not recorded for a 410 dated before the device's registration (it may have a live token since)", () => {
    const at = Date.parse(now);
    spec
      .given([registered])
      .when({ ...revoke, deadSince: at - 1 })
      .then([]);
    spec
      .given([registered])
      .when({ ...revoke, deadSince: at + 1 })
      .then([revoked]);
  });

  it('is cleared by registering again, even unchanged (which otherwise appends nothing)', () => {
    spec.given([registered]).when(register).then([]);
    spec.given([registered, revoked]).when(register).then([registered]);
    const state = [registered, revoked, registered].reduce(deviceDecider.evolve, deviceDecider.initialState());
    expect(state).to.not.have.property('tokenRevoked');
  });
});
