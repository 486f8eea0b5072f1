import express from 'express';
import * as t from 'io-ts';
import { HeraldError } from '../../domain/heraldError';
import { checkItemNames } from '../../domain/whitelist/itemOwner';
import type { ItemOwners } from '../../src/datahub/itemOwners';
import type { Tickets } from '../../src/identity/tickets';
import type { Clock } from '../../src/runtime/clock';
import type { Logger } from '../../src/runtime/logger';
import { anyJsonBody } from './bodyCodecs';
import { decodeFormat } from './datahubFormats';
import { datahubReply, reply, route, ticketOf } from './datahubShim';
import { bodyErrors, ShimError } from './shimErrors';

/**
 * The owners of an app's data items, for the app (herald's addition to datahub, docs/api/datahub.md,
 * "Item owners"): herald keeps no catalogue of items, so the seed's `apply_whitelist`, which names no
 * owner, goes to the owner the app registers here, now or later.
 *
 * - `PUT /items/{repname}/{itemname}` `{"owner": "<user id>"}`: registers (or changes) the owner; the
 *   applications waiting for it are then sent to the owner, once each.
 * - `GET` answers `{"repname", "itemname", "owner"}` (404 when none); `DELETE` removes the owner.
 *
 * Only the app may: its credentials (`X-App-Id`, `X-App-Key`, as the topics take them) or the ticket of
 * a user with the `admin` role (as admin_message takes it). Another user's ticket is a 403.
 */

const OwnerBody = t.type({ owner: t.string });

export function datahubItemsRouter(deps: {
  readonly tickets: Tickets;
  readonly itemOwners: ItemOwners;
  readonly clock: Clock;
  readonly log: Logger;
}): express.Router {
  const { tickets, itemOwners, clock, log } = deps;
  const router = express.Router();
  const json = anyJsonBody('64kb');

  /** The app that manages its items, and who acts for it (the events' actor). */
  const authenticated = async (req: express.Request): Promise<{ appId: string; actor: string }> => {
    const appId = req.get('x-app-id');
    const secret = req.get('x-app-key');
    if (appId && secret) {
      await tickets.authenticateApp(appId, secret);
      return { appId, actor: `service:${appId}` };
    }
    const ticket = ticketOf(req);
    if (ticket === undefined)
      throw new HeraldError(
        'unauthenticated',
        "X-App-Id and X-App-Key (the app's credentials), or Authorization: Token <an admin's ticket>, are required",
      );
    const viewer = await tickets.authenticate(ticket, clock());
    if (!viewer.roles.includes('admin'))
      throw new HeraldError('forbidden', "only the app (its credentials) or an admin registers an item's owner");
    return { appId: viewer.appId, actor: `user:${viewer.userId}` };
  };
  const itemOf = (req: express.Request) => {
    const item = { repname: req.params.repname ?? '', itemname: req.params.itemname ?? '' };
    checkItemNames(item.repname, item.itemname);
    return item;
  };

  router.put(
    '/items/:repname/:itemname',
    json,
    route(log, async (req, res) => {
      const { appId, actor } = await authenticated(req);
      const item = itemOf(req);
      const { owner } = decodeFormat(OwnerBody, req.body);
      await itemOwners.register(appId, actor, { ...item, owner }, clock());
      res.status(200).end();
    }),
  );

  router.get(
    '/items/:repname/:itemname',
    route(log, async (req, res) => {
      const { appId } = await authenticated(req);
      const item = itemOf(req);
      const owner = await itemOwners.ownerOf(appId, item);
      if (owner === undefined)
        throw new HeraldError('not_found', `no owner registered for ${item.repname}/${item.itemname}`);
      res.status(200).json({ ...item, owner });
    }),
  );

  router.delete(
    '/items/:repname/:itemname',
    route(log, async (req, res) => {
      const { appId, actor } = await authenticated(req);
      await itemOwners.remove(appId, actor, itemOf(req), clock());
      res.status(200).end();
    }),
  );

  router.all(['/items', '/items/*'], (req, res) => {
    reply(res, new ShimError(404, 'not_found', `no route ${req.method} ${req.path}`));
  });
  router.use('/items', bodyErrors(datahubReply, { limit: '64 KB', unsupported: 415 }));
  return router;
}
