import { GraphQLError } from 'graphql';
import { DomainError } from '../../domain/decider';
import { DEVICE_ID, DEVICE_LIMITS, type Platform } from '../../domain/device/device';
import { PUSH_LIMITS } from '../../domain/device/push';
import { characterCount } from '../../domain/text';
import { DEVICE_CLOSE, type DeviceConnection } from '../../src/devices/deviceGateway';
import type { DevicePush, DeviceView } from '../../src/devices/deviceQueries';
import { userSender } from '../../src/identity/sender';
import { isAdmin, type Viewer } from '../../src/identity/tickets';
import { MAX_REQUEST_ID_LENGTH } from '../../src/messaging/messaging';
import { closable } from './closable';
import { ConnectionStream } from './connectionStream';
import { MAX_BUFFERED } from './deliveryFeed';
import {
  asDevice,
  asUser,
  badInput,
  filterText,
  forbidden,
  guard,
  notFound,
  type DeviceContext,
  type UserContext,
} from './guards';
import { MAX_PAGE, type GraphqlDeps } from './resolvers';

/**
 * The device API of GraphQL (docs/api/graphql.md, "Devices"): users register, list, unregister and push
 * to the devices of their app (ONE-PUSH's register and send, shared/seeds/003_834cb051d61fc48e.txt);
 * a device, authenticated by its token, receives its messages as a subscription and confirms them.
 * The same services serve ONE-PUSH's REST routes and /msgpush.ws: src/devices.
 *
 * Who may do what: a user acts on their own devices (alias = user id) and pushes to users' devices by
 * alias; role `admin` acts on any device of the app and pushes by tag and to all. Nothing of another
 * app is visible: a device of another app is NOT_FOUND, as one that does not exist.
 */

export function deviceResolvers(deps: GraphqlDeps) {
  return {
    Query: {
      devices: asUser(
        guard((_: unknown, args: DevicesArgs, { viewer }: UserContext) => listDevices(deps, viewer, args)),
      ),
    },
    Mutation: {
      registerDevice: asUser(
        guard(async (_: unknown, { input }: { input: RegisterDeviceInput }, { viewer }: UserContext) => {
          const alias = input.alias ?? viewer.userId;
          if (alias !== viewer.userId && !isAdmin(viewer))
            throw forbidden('only role admin may register a device for another alias');
          return deps.devices.register(
            // A user takes over only their own device; an admin registers for anyone.
            {
              appId: viewer.appId,
              alias,
              platform: input.platform,
              nativeToken: input.nativeToken,
              mobile: input.mobile ?? null,
              tags: input.tags ?? [],
              ...(!isAdmin(viewer) && { ownedBy: viewer.userId }),
            },
            deps.clock(),
          );
        }),
      ),
      unregisterDevice: asUser(
        guard(async (_: unknown, { id }: { id: string }, { viewer }: UserContext) => {
          const device = DEVICE_ID.test(id) ? await deps.devices.byId(id) : undefined;
          if (!device || device.appId !== viewer.appId || !(isAdmin(viewer) || device.alias === viewer.userId))
            throw notFound('no such device');
          await deps.devices.unregister(device.deviceId, deps.clock());
          return true;
        }),
      ),
      pushToDevices: asUser(
        guard(async (_: unknown, { input }: { input: PushToDevicesInput }, { viewer }: UserContext) => {
          if (input.audienceType !== 'ALIAS' && !isAdmin(viewer))
            throw forbidden(`only role admin may push to ${input.audienceType === 'TAG' ? 'a tag' : 'all devices'}`);
          const idempotencyKey = filterText('idempotencyKey', input.idempotencyKey, MAX_REQUEST_ID_LENGTH);
          const now = deps.clock();
          const { pushId } = await deps.pushes.onePush(
            viewer.appId,
            {
              platform: input.platform,
              audienceType: input.audienceType,
              audiences: input.audienceType === 'ALL' ? [] : (input.audiences ?? []),
              tenantCode: input.tenantCode ?? null,
              alert: input.alert,
              extra: input.extra ?? null,
              pushMsgType: input.pushMsgType ?? null,
              needConfirm: input.needConfirm ?? null,
              duration: input.duration ?? null,
              sound: input.sound ?? null,
              badge: input.badge ?? null,
              // Recorded with the push (ONE-PUSH's `sender`): who sent it, for analysts.
              sender: characterCount(viewer.userId) <= PUSH_LIMITS.senderLength ? viewer.userId : null,
            },
            now,
            { sender: userSender(viewer), ...(idempotencyKey !== undefined && { idempotencyKey }) },
          );
          const status = await deps.pushes.status(viewer.appId, pushId);
          if (!status) throw new Error(`push ${pushId} is not in the read model after it was requested`);
          return {
            requestId: pushId,
            requestedAt: status.requestedAt.toISOString(),
            expiresAt: status.expiresAt.toISOString(),
            deliveries: status.deliveries,
          };
        }),
      ),
      confirmDelivery: asDevice(
        guard(async (_: unknown, { messageId }: { messageId: string }, context: DeviceContext) => {
          const device = await currentDevice(deps, context);
          try {
            await deps.gateway.confirm(device, messageId);
          } catch (error) {
            // The delivery has ended (dropped or expired): not the same as an id that names nothing.
            if (error instanceof DomainError && error.code === 'expired')
              throw new GraphQLError(error.message, { extensions: { code: 'GONE' } });
            throw error;
          }
          return true;
        }),
      ),
    },
    Subscription: {
      deviceMessages: {
        subscribe: asDevice(
          guard(async (_: unknown, { deviceId }: { deviceId?: string | null }, context: DeviceContext) => {
            if (deviceId !== undefined && deviceId !== null && deviceId !== context.device.deviceId)
              throw forbidden('deviceId is not the authenticated device');
            const device = await currentDevice(deps, context);
            return closable((signal) => devicePushes(deps, device, signal));
          }),
        ),
        // The push object itself: sharedSubscription executes a push once per operation for every
        // subscriber it reaches, so the fields below read the push, never the subscriber.
        resolve: (push: DevicePush) => push,
      },
    },
    Device: {
      id: (device: DeviceView) => device.deviceId,
      online: (device: DeviceView) => deps.gateway.presence.isOnline(device.deviceId),
      registeredAt: (device: DeviceView) => device.registeredAt.toISOString(),
      updatedAt: (device: DeviceView) => device.updatedAt.toISOString(),
    },
    DeviceMessage: {
      messageId: (push: DevicePush) => push.pushId,
      source: (push: DevicePush) => (push.message.kind === 'onepush' ? 'ONEPUSH' : 'TOPVDN'),
      tenantCode: (push: DevicePush) => (push.message.kind === 'onepush' ? push.message.tenantCode : null),
      alert: (push: DevicePush) => (push.message.kind === 'onepush' ? push.message.alert : null),
      // extra given as other JSON than text (an object, a number) is its JSON text: the field is a String.
      extra: (push: DevicePush) =>
        push.message.kind !== 'onepush'
          ? null
          : typeof push.message.extra === 'string'
            ? push.message.extra
            : JSON.stringify(push.message.extra),
      pushMsgType: (push: DevicePush) => (push.message.kind === 'onepush' ? push.message.pushMsgType : null),
      sound: (push: DevicePush) => (push.message.kind === 'onepush' ? push.message.sound : null),
      badge: (push: DevicePush) => (push.message.kind === 'onepush' ? push.message.badge : null),
      msg: (push: DevicePush) => (push.message.kind === 'topvdn' ? push.message.msg : null),
      flag: (push: DevicePush) => (push.message.kind === 'topvdn' ? push.message.flag : null),
      from: (push: DevicePush) => (push.message.kind === 'topvdn' ? push.message.from : null),
      needConfirm: (push: DevicePush) => push.needsConfirm,
    },
  };
}

interface DevicesArgs {
  alias?: string | null;
  tag?: string | null;
  platform?: Platform | null;
  first?: number | null;
  after?: string | null;
}

interface RegisterDeviceInput {
  platform: Platform;
  nativeToken: string;
  alias?: string | null;
  mobile?: string | null;
  tags?: string[] | null;
}

interface PushToDevicesInput {
  platform: string;
  audienceType: 'ALIAS' | 'TAG' | 'ALL';
  audiences?: string[] | null;
  alert: string;
  extra?: string | null;
  pushMsgType?: string | null;
  needConfirm?: boolean | null;
  duration?: number | null;
  sound?: string | null;
  badge?: number | null;
  tenantCode?: string | null;
  idempotencyKey?: string | null;
}

/**
 * A page of the app's registered devices, keyset-paged by id. A user who is not an admin is held to
 * their own alias: another alias is an empty page, not an error (nobody learns whose devices exist).
 */
async function listDevices(deps: GraphqlDeps, viewer: Viewer, args: DevicesArgs) {
  const first = args.first ?? 20;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) throw badInput(`first must be 1-${MAX_PAGE}`);
  const alias = filterText('alias', args.alias, DEVICE_LIMITS.aliasLength);
  const tag = filterText('tag', args.tag, DEVICE_LIMITS.tagLength);
  const afterDeviceId = args.after ? decodeDeviceCursor(args.after) : undefined;
  const empty = { nodes: [] as DeviceView[], pageInfo: { endCursor: null, hasNextPage: false } };
  if (!isAdmin(viewer) && alias !== undefined && alias !== viewer.userId) return empty;
  const ownAlias = isAdmin(viewer) ? alias : viewer.userId;
  // One more than the page: whether the list goes on past it.
  const listed = await deps.devices.list(viewer.appId, {
    first: first + 1,
    ...(ownAlias !== undefined && { alias: ownAlias }),
    ...(tag !== undefined && { tag }),
    ...(args.platform !== undefined && args.platform !== null && { platform: args.platform }),
    ...(afterDeviceId !== undefined && { afterDeviceId }),
  });
  const nodes = listed.slice(0, first);
  const last = nodes[nodes.length - 1];
  return {
    nodes,
    pageInfo: { endCursor: last ? encodeDeviceCursor(last.deviceId) : null, hasNextPage: listed.length > first },
  };
}

const encodeDeviceCursor = (deviceId: string) => Buffer.from(`device:${deviceId}`).toString('base64url');

function decodeDeviceCursor(cursor: string): string {
  const match = /^device:([0-9a-f]{32})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw badInput('after is not a cursor from pageInfo.endCursor');
  return match[1]!;
}

/**
 * The device as it is now. A graphql-ws socket authenticated its token when it connected; the device
 * may have been unregistered (or registered again, which ends its old tokens) since.
 */
async function currentDevice(deps: GraphqlDeps, { device }: DeviceContext): Promise<DeviceView> {
  const now = await deps.devices.byId(device.deviceId);
  if (!now?.active || now.registration !== device.registration) {
    throw new GraphQLError('the device token belongs to a registration that has ended', {
      extensions: { code: 'UNAUTHENTICATED' },
    });
  }
  return now;
}

/** How a gateway close ends a deviceMessages subscription: an error, or (herald stopping) completion. */
function endingOf(code: number): GraphQLError | undefined {
  if (code === DEVICE_CLOSE.unknownDevice.code)
    return new GraphQLError('the device is not registered', { extensions: { code: 'NOT_FOUND' } });
  if (code === DEVICE_CLOSE.unregistered.code)
    return new GraphQLError('the device was unregistered', { extensions: { code: 'DEVICE_UNREGISTERED' } });
  return undefined;
}

/**
 * The device's pushes: this subscription is one of the device's connections to the gateway
 * (src/devices/deviceGateway.ts), which sends it the device's backlog, then live pushes, and records
 * each write as an attempt. A write is taken into this subscription's buffer; a subscriber that lets
 * MAX_BUFFERED pile up is cut off (SUBSCRIBER_TOO_SLOW), as a /msgpush.ws socket that stops reading.
 * Once the subscription has ended, a write is refused, so the gateway records no attempt for it.
 */
async function* devicePushes(deps: GraphqlDeps, device: DeviceView, signal: AbortSignal): AsyncGenerator<DevicePush> {
  const stream = new ConnectionStream<DevicePush>(signal, MAX_BUFFERED);
  const connection: DeviceConnection = {
    deliver: (push) => stream.offer(push),
    close: (code, reason) => stream.close(code, reason),
  };
  const handle = await deps.gateway.connect(device.deviceId, connection);
  try {
    // What was written before the end still goes out; then the end (herald stopping: the socket closes too).
    yield* stream.items(
      () => new GraphQLError('the subscriber fell too far behind', { extensions: { code: 'SUBSCRIBER_TOO_SLOW' } }),
      (ended) => endingOf(ended.code),
    );
  } finally {
    handle?.disconnect();
  }
}
