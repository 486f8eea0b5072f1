import { expect } from 'chai';
import fc from 'fast-check';
import * as t from 'io-ts';
import {
  APP_CALLBACK_TARGET,
  DeliveryEvent,
  deliveryDecider,
  deliveryTerms,
  type DeliveryState,
} from '../../domain/device/delivery';
import { DeviceEvent, deviceDecider, type DeviceState } from '../../domain/device/device';
import { PushEvent, pushDecider, type PushRequestedData } from '../../domain/device/push';
import { devicesProjection } from '../../projections/devices';
import { decodePublications, encodePublications } from '../../src/bus/redisBus';
import { projectionSpecification, type Given } from '../support/projectionSpecification';

/**
 * The devices projection expands each push to the devices registered when it is applied, and folds a
 * batch's delivery outcomes set-based. Whatever the batching (one batch of everything = a rebuild), it
 * must leave the tables of the obvious model that applies one event at a time: histories are made by
 * the deciders themselves (registrations, unregistrations, pushes by alias / tag / ALL / device number
 * crossed with platform, attempts, confirmations and closes), so they are histories herald can record.
 */

const DEVICES = 4;
const deviceIdOf = (i: number) => `${String(i).padStart(2, '0')}${'ab'.repeat(15)}`;
const clientIdOf = (i: number) => 1000001 + i;
const pushIdOf = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const at = (second: number) => new Date(Date.UTC(2026, 0, 1) + second * 1000).toISOString();

type Step =
  | { kind: 'register'; device: number; alias: string; tags: string[]; platform: 'ANDROID' | 'IOS' }
  | { kind: 'unregister'; device: number }
  | {
      kind: 'push';
      audience: 'ALIAS' | 'TAG' | 'ALL' | 'CLIENTS';
      value: string;
      client: number;
      platform: 'ALL' | 'ANDROID';
      flag: 2 | 3;
      callback: boolean;
    }
  | { kind: 'attempt' | 'confirm' | 'close'; push: number; target: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('register' as const),
      device: fc.nat(DEVICES - 1),
      alias: fc.constantFrom('a', 'b'),
      tags: fc.subarray(['t1', 't2']),
      platform: fc.constantFrom('ANDROID' as const, 'IOS' as const),
    }),
    weight: 2,
  },
  fc.record({ kind: fc.constant('unregister' as const), device: fc.nat(DEVICES - 1) }),
  fc.record({
    kind: fc.constant('push' as const),
    audience: fc.constantFrom('ALIAS' as const, 'TAG' as const, 'ALL' as const, 'CLIENTS' as const),
    value: fc.constantFrom('a', 't1', 't2'),
    client: fc.nat(DEVICES),
    platform: fc.constantFrom('ALL' as const, 'ANDROID' as const),
    flag: fc.constantFrom(2 as const, 3 as const),
    callback: fc.boolean(),
  }),
  // Outcomes often, and of the last few pushes, so a batch holds several events of one delivery.
  {
    arbitrary: fc.record({
      kind: fc.constantFrom('attempt' as const, 'confirm' as const, 'close' as const),
      push: fc.nat(2),
      target: fc.nat(),
    }),
    weight: 3,
  },
);

type Event = DeviceEvent | PushEvent | DeliveryEvent;
type Model = {
  devices: Map<string, { active: boolean; registration: number; alias: string; tags: readonly string[] }>;
  deliveries: Map<string, { status: string; attempts: number; revision: number }>;
};

/** Runs the steps through the deciders, returning the events and the one-by-one model of the tables. */
function history(steps: readonly Step[]): { events: Event[]; model: Model } {
  const events: Event[] = [];
  const deviceStates = new Map<string, DeviceState>();
  const pushes: PushRequestedData[] = [];
  const deliveryStates = new Map<string, DeliveryState>();
  const model: Model = { devices: new Map(), deliveries: new Map() };
  steps.forEach((s, second) => {
    const now = at(second);
    if (s.kind === 'register' || s.kind === 'unregister') {
      const deviceId = deviceIdOf(s.device);
      const state = deviceStates.get(deviceId) ?? deviceDecider.initialState();
      // Registrations only: these steps never revoke a token.
      let decided: readonly DeviceEvent[];
      try {
        decided = (
          s.kind === 'register'
            ? deviceDecider.decide(
                {
                  type: 'RegisterDevice',
                  deviceId,
                  appId: 'app',
                  clientId: clientIdOf(s.device),
                  alias: s.alias,
                  platform: s.platform,
                  nativeToken: deviceId,
                  tags: s.tags,
                  now,
                },
                state,
              )
            : deviceDecider.decide({ type: 'UnregisterDevice', now }, state)
        ) as readonly DeviceEvent[];
      } catch {
        return; // unregistering a device never registered
      }
      for (const event of decided) {
        events.push(event);
        const next = deviceDecider.evolve(deviceStates.get(deviceId) ?? deviceDecider.initialState(), event);
        deviceStates.set(deviceId, next);
        if (next.status !== 'none')
          model.devices.set(deviceId, {
            active: next.status === 'registered',
            registration: next.registration,
            alias: next.alias,
            tags: next.tags,
          });
      }
      return;
    }
    if (s.kind === 'push') {
      const pushId = pushIdOf(pushes.length);
      const [event] =
        s.audience === 'CLIENTS'
          ? pushDecider.decide(
              {
                type: 'RequestTopvdnPush',
                pushId,
                appId: 'app',
                msg: 'aGVsbG8=',
                flag: s.flag,
                from: null,
                clientIds: [clientIdOf(s.client)],
                callback: s.callback,
                now,
              },
              pushDecider.initialState(),
            )
          : pushDecider.decide(
              {
                type: 'RequestOnePush',
                pushId,
                appId: 'app',
                platform: s.platform,
                audienceType: s.audience,
                audiences: [s.value],
                alert: 'hi',
                needConfirm: s.flag === 2,
                duration: 10,
                now,
              },
              pushDecider.initialState(),
            );
      const push = event!.data as PushRequestedData;
      events.push(event!);
      pushes.push(push);
      // Expanded to the devices registered now.
      for (const [deviceId, state] of deviceStates) {
        if (state.status !== 'registered') continue;
        const { audience } = push;
        const matches =
          audience.type === 'ALL' ||
          (audience.type === 'ALIAS' && audience.aliases.includes(state.alias)) ||
          (audience.type === 'TAG' && audience.tags.some((tag) => state.tags.includes(tag))) ||
          (audience.type === 'CLIENTS' && audience.clientIds.includes(state.clientId));
        if (matches && (push.platform === 'ALL' || push.platform === state.platform))
          model.deliveries.set(`${pushId}/${deviceId}`, { status: 'pending', attempts: 0, revision: -1 });
      }
      if (push.message.kind === 'topvdn' && push.message.callback)
        model.deliveries.set(`${pushId}/${APP_CALLBACK_TARGET}`, { status: 'pending', attempts: 0, revision: -1 });
      return;
    }
    const push = pushes[pushes.length - 1 - (s.push % Math.max(1, pushes.length))];
    if (!push) return;
    // One of the push's deliveries (herald records outcomes of deliveries only).
    const keys = [...model.deliveries.keys()].filter((key) => key.startsWith(`${push.pushId}/`)).sort();
    const key = keys[s.target % Math.max(1, keys.length)];
    if (!key) return;
    const target = key.slice(push.pushId.length + 1);
    const row = model.deliveries.get(key)!;
    const terms = deliveryTerms(push, target);
    const state = deliveryStates.get(key) ?? deliveryDecider.initialState();
    let decided: readonly DeliveryEvent[];
    try {
      decided = deliveryDecider.decide(
        s.kind === 'attempt'
          ? { type: 'RecordAttempt', terms, now }
          : s.kind === 'confirm'
            ? { type: 'ConfirmDelivery', terms, now }
            : { type: 'CloseDelivery', terms, now },
        state,
      );
    } catch {
      return; // a confirmation of an ended delivery
    }
    for (const event of decided) {
      events.push(event);
      const next = deliveryDecider.evolve(deliveryStates.get(key) ?? state, event);
      deliveryStates.set(key, next);
      model.deliveries.set(key, { status: next.status, attempts: next.attempts, revision: row.revision + 1 });
      row.revision += 1;
    }
  });
  return { events, model };
}

describe('devices projection: set-based batches equal the one-by-one model', () => {
  const spec = projectionSpecification(devicesProjection, t.union([DeviceEvent, PushEvent, DeliveryEvent]));

  async function tables(given: Given): Promise<Model> {
    const devices = await given.rows<{
      device_id: string;
      active: boolean;
      registration: number;
      alias: string;
      tags: string[];
    }>('SELECT device_id, active, registration, alias, tags FROM devices');
    const deliveries = await given.rows<{ key: string; status: string; attempts: number; revision: string }>(
      `SELECT push_id || '/' || device_id AS key, status, attempts, revision FROM device_deliveries`,
    );
    return {
      devices: new Map(
        devices.map((r) => [
          r.device_id,
          { active: r.active, registration: r.registration, alias: r.alias, tags: r.tags },
        ]),
      ),
      deliveries: new Map(
        deliveries.map((r) => [r.key, { status: r.status, attempts: r.attempts, revision: Number(r.revision) }]),
      ),
    };
  }

  const sorted = (model: Model) => ({ devices: [...model.devices].sort(), deliveries: [...model.deliveries].sort() });

  it('for generated histories and batchings (one batch of all = a rebuild)', async function () {
    this.timeout(120_000);
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 6 }),
        async (steps, batchSizes) => {
          const { events, model } = history(steps);
          expect(sorted(await tables(spec.given(events, { batchSizes })))).to.deep.equal(sorted(model));
          expect(sorted(await tables(spec.given(events)))).to.deep.equal(sorted(model));
        },
      ),
      { numRuns: 80, seed: 20261123 },
    );
  });

  it('expands a push by the devices of its time, not those registered after it (the comparison can fail)', async () => {
    const steps: Step[] = [
      { kind: 'register', device: 0, alias: 'a', tags: [], platform: 'ANDROID' },
      { kind: 'push', audience: 'ALL', value: 'a', client: 0, platform: 'ALL', flag: 3, callback: false },
      { kind: 'register', device: 1, alias: 'a', tags: [], platform: 'ANDROID' },
    ];
    const { events, model } = history(steps);
    const given = spec.given(events);
    await given.expectRows(`SELECT push_id || '/' || device_id AS key FROM device_deliveries`, [
      { key: `${pushIdOf(0)}/${deviceIdOf(0)}` },
    ]);
    expect(sorted(await tables(given))).to.deep.equal(sorted(model));
  });

  it('publishes the end of a device unregistered in a batch, also when it was registered in the same batch, or again after', async () => {
    for (const steps of [
      [
        { kind: 'register', device: 0, alias: 'a', tags: [], platform: 'ANDROID' },
        { kind: 'unregister', device: 0 },
      ],
      [
        { kind: 'register', device: 1, alias: 'a', tags: [], platform: 'ANDROID' },
        { kind: 'register', device: 1, alias: 'b', tags: [], platform: 'ANDROID' },
        { kind: 'unregister', device: 1 },
      ],
      [
        { kind: 'register', device: 2, alias: 'a', tags: [], platform: 'ANDROID' },
        { kind: 'unregister', device: 2 },
        { kind: 'register', device: 2, alias: 'b', tags: [], platform: 'ANDROID' },
      ],
    ] as Step[][]) {
      const { events } = history(steps);
      const device = steps[0]!.kind === 'register' ? steps[0]!.device : 0;
      expect(await spec.given(events).publications(), JSON.stringify(steps)).to.deep.equal([
        { topic: `device:app:${deviceIdOf(device)}`, payload: { type: 'unregistered' } },
      ]);
    }
  });

  // Found by bench/chaos.ts: a push's publication carried its position as a bigint, which JSON cannot
  // encode, so every batch with a push failed to cross Redis and reached other nodes' devices by retries only.
  it('publishes a push as JSON can carry it across nodes: what the Redis bus decodes equals what was published', async () => {
    const { events } = history([
      { kind: 'register', device: 0, alias: 'a', tags: [], platform: 'ANDROID' },
      { kind: 'push', audience: 'ALIAS', value: 'a', client: 0, platform: 'ALL', flag: 2, callback: false },
    ]);
    const publications = await spec.given(events).publications();
    expect(publications.map((p) => (p.payload as { type: string }).type)).to.include('push');
    expect(decodePublications(encodePublications(publications, { from: 'node-a', seq: 1 })).publications).to.deep.equal(
      publications,
    );
  });
});
