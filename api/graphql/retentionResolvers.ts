import { isAdmin, type Viewer } from '../../src/identity/tickets';
import { asUser, forbidden, guard, type UserContext } from './guards';
import type { GraphqlDeps } from './resolvers';

/**
 * An app's retention of its records that never end (docs/operations.md, "Retention"): its admin sets it
 * and reads it back. Other apps' settings are not reachable: the app is the ticket's.
 */
export function retentionResolvers(deps: GraphqlDeps) {
  return {
    Query: {
      retention: asUser(
        guard(async (_: unknown, __: unknown, { viewer }: UserContext) => deps.appRetention.view(adminApp(viewer))),
      ),
    },
    Mutation: {
      setRetention: asUser(
        guard(async (_: unknown, { input }: { input: unknown }, { viewer }: UserContext) =>
          deps.appRetention.set(adminApp(viewer), `user:${viewer.userId}`, input, deps.clock()),
        ),
      ),
    },
  };
}

function adminApp(viewer: Viewer): string {
  if (!isAdmin(viewer)) throw forbidden("only role admin may see or set the app's retention");
  return viewer.appId;
}
