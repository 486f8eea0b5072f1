import { expect } from 'chai';
import { pushStreamName } from '../../domain/device/push';
import { listedDevice } from './deviceQueries';
import { DeviceSocket } from './deviceSocket';
import { issueTicket, startTestHerald, type TestClock } from './herald';
import { pushDeliveries } from './pushDeliveries';
import { streamEvents, streamEventTypes, type StoredEvent } from './storedEvents';

/**
 * herald for a describe of ONE-PUSH tests (shared/seeds/003_834cb051d61fc48e.txt), started in its mocha
 * `before` on `clock` and stopped in `after`, with the requests the seed's clients make: JSON POSTs,
 * device registration, device sockets (closed with herald), and what the app's admin reads: a device
 * as GraphQL `devices` lists it, a push's recorded events and its deliveries (GraphQL `events`).
 */
export function onePushTestbed(clock: TestClock) {
  let test: Awaited<ReturnType<typeof startTestHerald>> | undefined;
  let admin: string;
  const sockets: DeviceSocket[] = [];
  let nativeTokens = 0;

  before(async () => {
    test = await startTestHerald({}, clock.now);
    admin = await issueTicket(test.url, 'push-auditor', 'admin');
  });
  after(async () => {
    for (const socket of sockets) socket.close();
    await test?.stop();
  });

  const url = () => test!.url;
  /** A POST with a JSON body (a string is sent as it is; no body when undefined). */
  const post = async (path: string, body?: unknown) => {
    const response = await fetch(`${url()}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  /** The events recorded in a push's stream, oldest first. */
  const pushEvents = (requestId: string): Promise<StoredEvent[]> =>
    streamEvents(url(), admin, pushStreamName(requestId));
  return {
    get url() {
      return url();
    },
    get herald() {
      return test!.herald;
    },
    post,
    /** A device of the app camel, on Android with a native token of its own unless `fields` say otherwise. */
    async register(fields: Record<string, unknown>) {
      const { status, body } = await post('/msgpush/register', {
        appId: 'camel',
        platform: 'ANDROID',
        nativeToken: `native-${++nativeTokens}-${Date.now()}`,
        ...fields,
      });
      expect(status, JSON.stringify(body)).to.equal(200);
      return body as { id: string; clientId: number; token: string };
    },
    /** The device's /msgpush.ws socket. */
    async connect(deviceId: string | undefined) {
      const socket = await DeviceSocket.connect(url(), deviceId);
      sockets.push(socket);
      return socket;
    },
    /** The device as the app's admin sees it listed; undefined once unregistered. */
    device: (deviceId: string) => listedDevice(url(), admin, deviceId),
    /** A push's deliveries by status, as recorded (no pending count). */
    deliveries: (requestId: string) => pushDeliveries(url(), admin, requestId),
    pushEvents,
    pushEventTypes: (requestId: string) => streamEventTypes(url(), admin, pushStreamName(requestId)),
  };
}
