import { expect } from 'chai';
import { InProcessBus, publication } from '../../src/bus/bus';
import { deviceTopic } from '../../src/bus/topics';
import { DeviceGateway } from '../../src/devices/deviceGateway';
import type { DevicePublication } from '../../src/devices/devicePublication';
import type { DeliveryQueries, DevicePush, DeviceQueries, DeviceView } from '../../src/devices/deviceQueries';
import { EventStoreUnavailableError, type EventStore } from '../../src/eventStore/eventStore';
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
