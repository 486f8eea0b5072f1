import { expect } from 'chai';
import { InProcessBus, publication } from '../../src/bus/bus';
import { deviceTopic } from '../../src/bus/topics';
import { DeviceGateway } from '../../src/devices/deviceGateway';
import type { DevicePublication } from '../../src/devices/devicePublication';
import type { DeliveryQueries, DevicePush, DeviceQueries, DeviceView } from '../../src/devices/deviceQueries';
import { EventStoreUnavailableError, StreamNotFoundError, type EventStore } from '../../src/eventStore/eventStore';
import { LocalDirectory } from '../../src/nodes/directory';
import { createLogger } from '../../src/runtime/logger';
import { eventually } from '../support/eventually';

/**
 * Issue 21 (found by bench/chaos.ts): a push published while the store restarted made the device's
 * attempt fail, and the failure escaped as an unhandled rejection, which ends a Node process. A failing
 * attempt must be logged and leave the delivery open, nothing more.
 */
describe('device gateway: a delivery attempt that fails', () => {
  const device: DeviceView = {
    deviceId: 'd-1',
    appId: 'camel',
    clientId: 1,
    alias: 'bob',
    platform: 'ANDROID',
    mobile: null,
    tags: [],
    registration: 1,
    active: true,
    registeredAt: new Date(0),
    updatedAt: new Date(0),
  };
  const unavailable = () => Promise.reject(new EventStoreUnavailableError('the store is restarting'));
  // Test double: a store whose every call fails as PostgreSQL's does while it restarts.
  const store = new Proxy({} as EventStore, { get: () => unavailable });
  const devices: DeviceQueries = {
    byId: async () => device,
    byNativeToken: async () => undefined,
    byClientId: async () => undefined,
    list: async () => [],
  };
  const push = { pushId: '6f1c3f0e-8a7b-4a53-9b59-2f0a9a3c1d11', appId: device.appId } as DevicePush;
  /** The read model's deliveries: one retry due, once. */
  function deliveriesWithOneDueRetry(): DeliveryQueries {
    let due = [{ push, deviceId: device.deviceId, status: 'delivered', attempts: 1, revision: 0n, pushPosition: 7n }];
    const taken = async () => {
      const now = due;
      due = [];
      return now;
    };
    return {
      backlog: async () => [],
      dueAttempts: taken,
      expired: async () => [],
      nextDue: async () => undefined,
    } as unknown as DeliveryQueries;
  }

  for (const [how, cause] of [
    ['a push published to the device', 'publication'],
    ['a scheduled retry', 'retry'],
  ] as const) {
    it(`${how}: is logged and leaves no unhandled rejection behind`, async () => {
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      const lines: string[] = [];
      const log = createLogger('error', { write: (line: string) => void lines.push(line) });
      const bus = new InProcessBus();
      const gateway = new DeviceGateway({
        store,
        devices,
        deliveries: deliveriesWithOneDueRetry(),
        bus,
        clock: () => new Date(),
        log,
        readYourWrites: async () => undefined,
        leads: () => false,
        directory: new LocalDirectory(),
      });
      // Mocha's own listener would fail some later test; this one sees the rejection here.
      const mochaListeners = process.listeners('unhandledRejection');
      process.removeAllListeners('unhandledRejection');
      process.on('unhandledRejection', onUnhandled);
      try {
        const delivered: string[] = [];
        const handle = await gateway.connect(device.deviceId, {
          deliver: (push) => delivered.push(push.pushId) > 0,
          close: () => undefined,
        });
        expect(handle, 'connected').to.not.equal(undefined);
        if (cause === 'publication') {
          const pushed: DevicePublication = { type: 'push', push, pushPosition: '7' };
          await bus.publish([publication(deviceTopic(device.appId, device.deviceId), pushed)]);
        } else {
          gateway.start();
        }
        await eventually(() => expect(lines.join('')).to.contain('a delivery to a device failed'));
        // A rejection is reported as unhandled once the microtask queue drains after it: give it that turn.
        await new Promise((resolve) => setImmediate(resolve));
        expect(unhandled).to.deep.equal([]);
        expect(delivered, 'nothing written to the device: the attempt is decided on its stream first').to.deep.equal(
          [],
        );
        handle!.disconnect();
      } finally {
        process.off('unhandledRejection', onUnhandled);
        for (const listener of mochaListeners) process.on('unhandledRejection', listener);
        await gateway.stop();
      }
    });
  }
});

/**
 * Issue 26 (found by bench/soak.ts: "a delivery to a device failed" for deliveries retention had removed):
 * a retry or backlog item read from the read model before its delivery ended, taken up after retention
 * removed its stream, finds no stream. A removed stream is no stream: decided on, it would write the
 * message to the device again and start a delivery stream nothing retires. It is skipped instead.
 */
describe('device gateway: a delivery whose stream retention removed since the read model showed it', () => {
  const device: DeviceView = {
    deviceId: 'd-2',
    appId: 'camel',
    clientId: 2,
    alias: 'ann',
    platform: 'ANDROID',
    mobile: null,
    tags: [],
    registration: 1,
    active: true,
    registeredAt: new Date(0),
    updatedAt: new Date(0),
  };
  const now = new Date('2026-12-07T20:00:00Z');
  const push: DevicePush = {
    pushId: '0b8e1f4c-6a2d-4c1e-9f3a-5d7b2e9c4a10',
    appId: device.appId,
    message: { kind: 'topvdn', msg: 'aGk=', flag: 3, from: null, callback: false },
    needsConfirm: true,
    retry: 'backoff',
    requestedAt: new Date(now.getTime() - 60_000).toISOString(),
    expiresAt: new Date(now.getTime() + 3_600_000).toISOString(),
  } as DevicePush;
  const devices: DeviceQueries = {
    byId: async () => device,
    byNativeToken: async () => undefined,
    byClientId: async () => undefined,
    list: async () => [],
  };

  for (const path of ['a scheduled retry', 'the backlog', 'closing it'] as const) {
    it(`${path}: nothing is written to the device or appended`, async () => {
      const reads: string[] = [];
      const appends: string[] = [];
      // Test double: the store after retention removed the delivery's stream (no stream, as never written).
      const store = {
        readStream: async (name: string) => {
          reads.push(name);
          throw new StreamNotFoundError(name);
        },
        append: async (name: string) => {
          appends.push(name);
          return { nextExpectedRevision: 0n, position: 1n };
        },
      } as unknown as EventStore;
      // The read model's row as it was read: delivered once (revision 0), a retry due (or, to close, expired).
      const item = path === 'closing it' ? { ...push, expiresAt: new Date(now.getTime() - 1000).toISOString() } : push;
      let due = [
        { push: item, deviceId: device.deviceId, status: 'delivered', attempts: 1, revision: 0n, pushPosition: 7n },
      ];
      const once = async () => {
        const taken = due;
        due = [];
        return taken;
      };
      const deliveries = {
        backlog: path === 'the backlog' ? once : async () => [],
        dueAttempts: path === 'a scheduled retry' ? once : async () => [],
        expired: path === 'closing it' ? once : async () => [],
        nextDue: async () => undefined,
      } as unknown as DeliveryQueries;
      const lines: string[] = [];
      const gateway = new DeviceGateway({
        store,
        devices,
        deliveries,
        bus: new InProcessBus(),
        clock: () => now,
        log: createLogger('error', { write: (line: string) => void lines.push(line) }),
        readYourWrites: async () => undefined,
        leads: () => true,
        directory: new LocalDirectory(),
      });
      try {
        const delivered: string[] = [];
        const handle = await gateway.connect(device.deviceId, {
          deliver: (p) => delivered.push(p.pushId) > 0,
          close: () => undefined,
        });
        gateway.start();
        await eventually(() => expect(reads).to.have.length.greaterThan(0));
        await new Promise((resolve) => setImmediate(resolve));
        expect(delivered, 'written to the device').to.deep.equal([]);
        expect(appends, 'appended').to.deep.equal([]);
        expect(lines.join(''), 'logged as failed').to.equal('');
        handle!.disconnect();
      } finally {
        await gateway.stop();
      }
    });
  }
});
