import { expect } from 'chai';
import fc from 'fast-check';
import * as t from 'io-ts';
import { deviceDecider, DeviceRegistered, NativeTokenRevoked, type DeviceState } from '../../domain/device/device';
import {
  PlatformPushEvent,
  platformPushDecider,
  type PlatformPushCommand,
  type PlatformPushState,
} from '../../domain/device/platformPush';
import { platformPushesProjection } from '../../projections/platformPushes';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { projectionSpecification } from '../support/projectionSpecification';

const Event = t.union([PlatformPushEvent, NativeTokenRevoked, DeviceRegistered]);
type Event = t.TypeOf<typeof Event>;

/**
 * The platform-push read model applies a batch in a few set-based statements; whatever the batching it
 * must leave the tables the one-event-at-a-time fold leaves. Histories come from the deciders, driven by
 * generated commands over a few items and devices.
 */
describe('platform-pushes projection: set-based batches equal the one-by-one fold', () => {
  const spec = projectionSpecification(platformPushesProjection, Event);
  const pushIds = [1, 2].map((i) => `00000000-0000-4000-8000-00000000a00${i}`);
  const deviceIds = ['a', 'b'].map((c) => c.repeat(32));
  const at = (second: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString();
  type Step =
    | { kind: 'request' | 'sent' | 'failed' | 'dead'; push: number; device: number }
    | { kind: 'revoke' | 'register'; device: number };
  const step: fc.Arbitrary<Step> = fc.oneof(
    {
      arbitrary: fc.record({
        kind: fc.constantFrom('request' as const, 'sent' as const, 'failed' as const, 'dead' as const),
        push: fc.nat(pushIds.length - 1),
        device: fc.nat(deviceIds.length - 1),
      }),
      weight: 4,
    },
    {
      arbitrary: fc.record({ kind: fc.constantFrom('revoke' as const, 'register' as const), device: fc.nat(1) }),
      weight: 1,
    },
  );

  function toEvents(steps: readonly Step[]): Event[] {
    const items = new Map<string, PlatformPushState>();
    const devices = new Map<number, DeviceState>();
    const events: Event[] = [];
    const deviceState = (d: number): DeviceState =>
      devices.get(d) ??
      deviceDecider.evolve(deviceDecider.initialState(), {
        type: 'DeviceRegistered',
        data: {
          deviceId: deviceIds[d]!,
          appId: 'camel',
          clientId: d + 1,
          alias: `u${d}`,
          platform: 'IOS',
          nativeToken: 'f'.repeat(64),
          mobile: null,
          tags: [],
          registration: 1,
          registeredAt: at(0),
        },
      });
    steps.forEach((s, i) => {
      const now = at(i + 1);
      if (s.kind === 'revoke' || s.kind === 'register') {
        const state = deviceState(s.device);
        const decided =
          s.kind === 'revoke'
            ? deviceDecider.decide(
                { type: 'RevokeNativeToken', registration: 1, service: 'apns', reason: `410 #${i}`, now },
                state,
              )
            : deviceDecider.decide(
                {
                  type: 'RegisterDevice',
                  deviceId: deviceIds[s.device]!,
                  appId: 'camel',
                  clientId: s.device + 1,
                  alias: `u${s.device}`,
                  platform: 'IOS',
                  nativeToken: 'f'.repeat(64),
                  now,
                },
                state,
              );
        devices.set(s.device, decided.reduce(deviceDecider.evolve, state));
        events.push(...(decided as Event[]));
        return;
      }
      const item = s as Extract<Step, { push: number }>;
      const key = `${item.push}/${item.device}`;
      const state = items.get(key) ?? platformPushDecider.initialState();
      const attempt = state.status === 'none' ? 1 : state.attempts + 1;
      const command: PlatformPushCommand =
        item.kind === 'request'
          ? {
              type: 'RequestPlatformPush',
              pushId: pushIds[item.push]!,
              deviceId: deviceIds[item.device]!,
              appId: 'camel',
              service: 'apns',
              nativeToken: 'f'.repeat(64),
              registration: 1,
              why: 'offline',
              expiresAt: at(100_000),
              now,
            }
          : {
              type: 'RecordPlatformPushAttempt',
              attempt,
              outcome:
                item.kind === 'sent'
                  ? { ok: true }
                  : { ok: false, error: `${item.kind === 'dead' ? 410 : 503} #${i}`, retry: item.kind === 'failed' },
              now,
            };
      let decided: readonly Event[] = [];
      try {
        decided = platformPushDecider.decide(command, state);
      } catch {
        // an outcome for an item never requested: no event
      }
      items.set(key, (decided as PlatformPushEvent[]).reduce(platformPushDecider.evolve, state));
      events.push(...decided);
    });
    return events;
  }

  function foldOneByOne(events: readonly RecordedEvent[]) {
    const pushes = new Map<string, Record<string, unknown>>();
    const revoked = new Map<string, Record<string, unknown>>();
    for (const { type, data, position } of events) {
      const event = { type, data } as Event;
      switch (event.type) {
        case 'PlatformPushRequested': {
          const key = `${event.data.pushId}/${event.data.deviceId}`;
          if (!pushes.has(key))
            pushes.set(key, {
              push_id: event.data.pushId,
              device_id: event.data.deviceId,
              status: 'pending',
              attempts: 0,
              next_attempt_at: event.data.requestedAt,
              last_error: null,
              position,
            });
          break;
        }
        case 'PlatformPushSent':
        case 'PlatformPushFailed': {
          const row = pushes.get(`${event.data.pushId}/${event.data.deviceId}`);
          if (!row || (row.position as bigint) >= position) break;
          row.attempts = Math.max(row.attempts as number, event.data.attempt);
          row.position = position;
          if (event.type === 'PlatformPushSent') Object.assign(row, { status: 'sent', next_attempt_at: null });
          else
            Object.assign(row, {
              status: event.data.final ? 'failed' : 'pending',
              next_attempt_at: event.data.retryAt,
              last_error: event.data.error,
            });
          break;
        }
        case 'NativeTokenRevoked':
          revoked.set(event.data.deviceId, {
            device_id: event.data.deviceId,
            registration: event.data.registration,
            reason: event.data.reason,
          });
          break;
        case 'DeviceRegistered':
          revoked.delete(event.data.deviceId);
          break;
      }
    }
    const order = (a: Record<string, unknown>, b: Record<string, unknown>) =>
      `${String(a.push_id)}/${String(a.device_id)}`.localeCompare(`${String(b.push_id)}/${String(b.device_id)}`);
    return {
      pushes: [...pushes.values()].map(({ position: _, ...row }) => row).sort(order),
      revoked: [...revoked.values()].sort((a, b) => String(a.device_id).localeCompare(String(b.device_id))),
    };
  }

  it("a browser subscription's position is where it was given: a re-registration that leaves it unchanged keeps it, whatever the batching", async () => {
    const registration = {
      deviceId: deviceIds[0]!,
      appId: 'camel',
      clientId: 1,
      alias: 'u0',
      platform: 'WEB' as const,
      nativeToken: 'browser',
      mobile: null,
      tags: [],
      registration: 1,
    };
    const webPush = {
      endpoint: 'https://push.example.com/x',
      p256dh: 'p',
      auth: 'a',
      expirationTime: null,
      subscribedAt: at(1),
      userId: 'u0',
    };
    const registered = (second: number, data: object): Event => ({
      type: 'DeviceRegistered',
      data: { ...registration, registeredAt: at(second), ...data },
    });
    const { userId: _, ...devicesOnly } = webPush;
    const events = [
      registered(0, {}),
      registered(1, { webPush }),
      // Tags changed (ONE-PUSH's register at a login): the subscription is the same.
      registered(2, { tags: ['x'], webPush }),
      registered(3, { tags: ['y'], webPush }),
    ];
    for (const batchSizes of [[1], [2], [4]]) {
      const given = spec.given(events, { batchSizes });
      await given.expectRows(`SELECT user_id, position::text FROM web_push_subscriptions`, [
        { user_id: 'u0', position: given.recorded[1]!.position.toString() },
      ]);
    }
    // No more the user's (registered again without their ticket): a change, from then on.
    const dropped = [...events, registered(4, { tags: ['y'], webPush: devicesOnly })];
    for (const batchSizes of [[1], [5]]) {
      const given = spec.given(dropped, { batchSizes });
      await given.expectRows(`SELECT user_id, position::text FROM web_push_subscriptions`, [
        { user_id: null, position: given.recorded[4]!.position.toString() },
      ]);
    }
  });

  it('for generated histories and batchings (one batch of all = a rebuild)', async function () {
    this.timeout(120_000);
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 5, maxLength: 40, size: 'max' }),
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 5 }),
        async (steps, batchSizes) => {
          const events = toEvents(steps);
          const expected = foldOneByOne(spec.record(events));
          const given = spec.given(events, { batchSizes });
          const pushes = await given.rows<Record<string, unknown>>(
            `SELECT push_id::text, device_id, status, attempts,
                    to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS next_attempt_at, last_error
               FROM platform_pushes ORDER BY push_id::text || '/' || device_id`,
          );
          const revoked = await given.rows(
            `SELECT device_id, registration, reason FROM revoked_native_tokens ORDER BY device_id`,
          );
          expect({ pushes, revoked }).to.deep.equal(expected);
        },
      ),
      { numRuns: 40 },
    );
  });
});
