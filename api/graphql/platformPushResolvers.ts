import { GraphQLError } from 'graphql';
import { DEVICE_ID } from '../../domain/device/device';
import type { DeviceView } from '../../src/devices/deviceQueries';
import { isAdmin, type Viewer } from '../../src/identity/tickets';
import type { ApnsCredentialsView } from '../../src/platformPush/credentials';
import { asUser, forbidden, guard, notFound, type GraphqlContext, type UserContext } from './guards';
import type { GraphqlDeps } from './resolvers';

/**
 * Platform-push credentials in GraphQL (docs/platform-push.md): an app's admin sets its APNs key, its
 * FCM service account and its VAPID key pair and reads back what is configured — never a private key.
 * Other apps' credentials are not reachable: the app is the ticket's. Browsers subscribe their WEB
 * device to Web Push with the app's public key.
 */
export function platformPushResolvers(deps: GraphqlDeps) {
  return {
    Query: {
      apnsCredentials: asUser(
        guard(async (_: unknown, __: unknown, { viewer }: UserContext) =>
          shown(await deps.platformCredentials.describeApns(adminApp(viewer))),
        ),
      ),
      fcmCredentials: asUser(
        guard(async (_: unknown, __: unknown, { viewer }: UserContext) =>
          deps.platformCredentials.describeFcm(adminApp(viewer)),
        ),
      ),
      webPushCredentials: asUser(
        guard(async (_: unknown, __: unknown, { viewer }: UserContext) =>
          deps.platformCredentials.describeVapid(adminApp(viewer)),
        ),
      ),
      // What a browser subscribes with (`applicationServerKey`): any user or device of the app may read it.
      webPushPublicKey: guard(async (_: unknown, __: unknown, context: GraphqlContext) => {
        const appId = context.viewer?.appId ?? context.device?.appId;
        if (appId === undefined) throw unauthenticated();
        return (await deps.platformCredentials.describeVapid(appId)).publicKey;
      }),
    },
    Mutation: {
      setApnsCredentials: asUser(
        guard(async (_: unknown, { input }: { input: ApnsCredentialsInput }, { viewer }: UserContext) =>
          shown(
            await deps.platformCredentials.setApns(
              adminApp(viewer),
              // GraphQL's enum is upper case; the stored environment is Apple's host's name.
              {
                ...input,
                environment:
                  typeof input.environment === 'string' ? input.environment.toLowerCase() : input.environment,
              },
              deps.clock(),
            ),
          ),
        ),
      ),
      setFcmCredentials: asUser(
        guard(async (_: unknown, { input }: { input: { serviceAccount: string } }, { viewer }: UserContext) =>
          deps.platformCredentials.setFcm(adminApp(viewer), input.serviceAccount, deps.clock()),
        ),
      ),
      setWebPushCredentials: asUser(
        guard(async (_: unknown, { input }: { input: unknown }, { viewer }: UserContext) =>
          deps.platformCredentials.setVapid(adminApp(viewer), input, deps.clock()),
        ),
      ),
      subscribeWebPush: guard(
        async (_: unknown, args: { deviceId?: string | null; subscription: unknown }, context: GraphqlContext) => {
          const { device, caller } = await webDevice(deps, context, args.deviceId);
          await deps.devices.subscribeWebPush(device, args.subscription, deps.clock(), caller);
          return true;
        },
      ),
      unsubscribeWebPush: guard(async (_: unknown, args: { deviceId?: string | null }, context: GraphqlContext) => {
        const { device, caller } = await webDevice(deps, context, args.deviceId);
        await deps.devices.subscribeWebPush(device, null, deps.clock(), caller);
        return true;
      }),
    },
  };
}

interface ApnsCredentialsInput {
  readonly keyPem: string;
  readonly keyId: string;
  readonly teamId: string;
  readonly topic: string;
  readonly environment: 'PRODUCTION' | 'SANDBOX';
}

const unauthenticated = () =>
  new GraphQLError('send a ticket or a device token as Authorization: Bearer <…>', {
    extensions: { code: 'UNAUTHENTICATED' },
  });

/**
 * The device a browser subscription is for, and who acts (the audit's actor): the device token's own (`deviceId`, if given, must be it),
 * or with a ticket the `deviceId` named — the user's own device (alias = user id), any of the app's for
 * role `admin`; another app's device is NOT_FOUND, as one that does not exist.
 */
async function webDevice(
  deps: GraphqlDeps,
  context: GraphqlContext,
  deviceId?: string | null,
): Promise<{ device: DeviceView; caller: { actor: string; alias?: string } }> {
  const given = deviceId ?? undefined;
  if (context.device) {
    if (given !== undefined && given !== context.device.deviceId)
      throw forbidden('deviceId is not the authenticated device');
    const device = await deps.devices.byId(context.device.deviceId);
    if (!device?.active || device.registration !== context.device.registration)
      throw new GraphQLError('the device token belongs to a registration that has ended', {
        extensions: { code: 'UNAUTHENTICATED' },
      });
    return { device, caller: { actor: `device:${device.deviceId}` } };
  }
  const { viewer } = context;
  if (!viewer) {
    if (context.rtioDevice) throw forbidden('this field is for ONE-PUSH devices and users, not RTIO devices');
    throw unauthenticated();
  }
  if (given === undefined)
    throw new GraphQLError('deviceId: required with a ticket', { extensions: { code: 'BAD_USER_INPUT' } });
  const device = DEVICE_ID.test(given) ? await deps.devices.byId(given) : undefined;
  if (!device?.active || device.appId !== viewer.appId || !(isAdmin(viewer) || device.alias === viewer.userId))
    throw notFound('no such device');
  // A user's permission rests on the alias (their own device): the command re-checks it with the registration.
  const actor = `user:${viewer.userId}`;
  return { device, caller: isAdmin(viewer) ? { actor } : { actor, alias: viewer.userId } };
}

function adminApp(viewer: Viewer): string {
  if (!isAdmin(viewer)) throw forbidden("only role admin may see or set the app's push credentials");
  return viewer.appId;
}

const shown = (view: ApnsCredentialsView) => ({
  ...view,
  environment: view.environment === null ? null : view.environment.toUpperCase(),
});
