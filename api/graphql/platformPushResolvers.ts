import { isAdmin, type Viewer } from '../../src/identity/tickets';
import type { ApnsCredentialsView } from '../../src/platformPush/credentials';
import { asUser, forbidden, guard, type UserContext } from './guards';
import type { GraphqlDeps } from './resolvers';

/**
 * Platform-push credentials in GraphQL (docs/platform-push.md): an app's admin sets its APNs key and its
 * FCM service account and reads back what is configured — never a key. Other apps' credentials are not reachable: the app is the
 * ticket's.
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

function adminApp(viewer: Viewer): string {
  if (!isAdmin(viewer)) throw forbidden("only role admin may see or set the app's push credentials");
  return viewer.appId;
}

const shown = (view: ApnsCredentialsView) => ({
  ...view,
  environment: view.environment === null ? null : view.environment.toUpperCase(),
});
