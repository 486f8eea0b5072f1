import express from 'express';
import * as t from 'io-ts';
import { HeraldError } from '../../domain/heraldError';
import { LEVELS, NotificationTypeCodec, type NotificationType } from '../../domain/notification/notification';
import { characterCount, isStorableText } from '../../domain/text';
import { splitUserList, USER_ID_MAX } from '../../domain/ticket/ticket';
import type { Datahub, NotificationFilter, ReceivedNotification } from '../../src/datahub/datahub';
import type { Tickets, Viewer } from '../../src/identity/tickets';
import { MAX_REQUEST_ID_LENGTH } from '../../src/messaging/messaging';
import type { Clock } from '../../src/runtime/clock';
import type { Logger } from '../../src/runtime/logger';
import { anyJsonBody } from './bodyCodecs';
import { decodeFormat, decodeNotificationData, MessageOptions, optional } from './datahubFormats';
import { badInput, bodyErrors, HTTP_ANSWERS, ShimError, shimRoute, type HttpAnswers } from './shimErrors';

/**
 * datahub notifications (shared/seeds/001_e25b4a10524b93b6.txt): its documented URLs, unchanged, with
 * `Authorization: Token <ticket>` (a ticket from POST /koala/api/mas/tickets).
 *
 * Success answers as the seed shows (an empty body for POST and DELETE); errors are JSON
 * `{"code": "<reason>", "message": "…"}` with the HTTP status saying the kind: 400 bad_request,
 * 401 unauthorized, 403 forbidden, 404 not_found, 413 too_large, 429 too_many_requests (with
 * Retry-After), 500 internal. See docs/api/datahub.md.
 */

export const LIST_DEFAULT_SIZE = 20;
export const LIST_MAX_SIZE = 100;
/**
 * Types a user sends on POST /notifications (apply_whitelist has its own command); the others come from
 * back-end services (POST /topics/to_notifications.json).
 */
const USER_TYPES: ReadonlySet<NotificationType> = new Set(['admin_message', 'site_broadcast', 'private_message']);

// --- wire format ---------------------------------------------------------------------------------

/** The seed's request, and the optional fields its MQ messages share (`sender` is the caller here: ignored). */
const SendBody = t.intersection([
  t.type({ type: t.string, data: t.UnknownRecord }),
  MessageOptions,
  t.partial({ request_id: optional(t.string) }),
]);

/**
 * Pages past this one are empty for any inbox (1e12 pages of 1 notification), so a larger page is read as
 * it: every page ≥ 1 the seed allows is answered, and the offset stays a safe integer.
 */
const LIST_MAX_PAGE = 1_000_000_000_000;

/**
 * A query parameter given once, as the non-negative integer it must be, at least `min`; `""` or absent →
 * undefined. Above `max` it is read as `max` when `clamp`, else refused.
 */
function integerParam(
  query: express.Request['query'],
  name: string,
  min: number,
  max: number,
  clamp = false,
): number | undefined {
  const raw = query[name];
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string' || !/^\d{1,100}$/.test(raw))
    throw badInput(`${name} must be ${clamp ? `an integer, at least ${min}` : `an integer, ${min}-${max}`}`);
  const value = Number(raw);
  if (value < min || (value > max && !clamp))
    throw badInput(`${name} must be ${clamp ? `at least ${min}` : `${min}-${max}`}`);
  return Math.min(value, max);
}

function stringParam(query: express.Request['query'], name: string, maxLength: number): string | undefined {
  const raw = query[name];
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string' || characterCount(raw) > maxLength || !isStorableText(raw))
    throw badInput(`${name} must be one value of at most ${maxLength} characters of text`);
  return raw;
}

/** The seed's list sample shows type `apply_subs`, its stats and topics `subsapply_event`: one type, two names. */
const TYPE_ALIASES: Readonly<Record<string, NotificationType>> = { apply_subs: 'subsapply_event' };

function listFilter(query: express.Request['query']): NotificationFilter {
  const named = stringParam(query, 'type', 64);
  const type = named === undefined ? undefined : (TYPE_ALIASES[named] ?? named);
  if (type !== undefined && !NotificationTypeCodec.is(type))
    throw badInput(`type must be one of ${Object.keys(NotificationTypeCodec.keys).join(', ')}`);
  const level = integerParam(query, 'level', 0, 50);
  if (level !== undefined && !(LEVELS as readonly number[]).includes(level))
    throw badInput(`level must be ${LEVELS.join(' or ')}`);
  const status = integerParam(query, 'status', 0, 2) ?? 2;
  const sender = stringParam(query, 'sender', USER_ID_MAX);
  return {
    forClient: (integerParam(query, 'forclient', 0, 1) ?? 0) === 1,
    status: status === 0 ? 'unread' : status === 1 ? 'read' : 'either',
    page: integerParam(query, 'page', 1, LIST_MAX_PAGE, true) ?? 1,
    // The seed sets no maximum: a larger size is read as the largest page herald serves.
    size: integerParam(query, 'size', 1, LIST_MAX_SIZE, true) ?? LIST_DEFAULT_SIZE,
    ...(type !== undefined && { type }),
    ...(sender !== undefined && { sender }),
    ...(level !== undefined && { level }),
  };
}

/** A client's idempotency key, if given ("" is none). */
export function checkRequestId(requestId: string | undefined): string | undefined {
  if (requestId === undefined || requestId === '') return undefined;
  if (characterCount(requestId) > MAX_REQUEST_ID_LENGTH || !isStorableText(requestId))
    throw badInput(`request_id must be 1-${MAX_REQUEST_ID_LENGTH} characters of text`);
  return requestId;
}

/** RFC 3339 in UTC to the second. (The seed's `2015-11-10T15:05:09Z08:00` is not valid RFC 3339.) */
export function rfc3339(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * As the seed lists it: a system notification (sender "") has no `sender`, as in its item_event and
 * subs_event samples; `time` is the producer's own, byte for byte as sent (the seed writes `…Z08:00`), else
 * when herald accepted it.
 */
function toWire(n: ReceivedNotification) {
  const time = n.givenTime ?? rfc3339(n.sentAt);
  return {
    messageid: n.messageId,
    type: n.type,
    ...(n.sender !== '' && { sender: n.sender }),
    time,
    data: n.data,
    level: n.level,
    status: n.read ? 1 : 0,
  };
}

/** The ticket of `Authorization: Token <ticket>`, datahub's scheme (case-insensitive, RFC 9110 §11.1); undefined when none. */
export function ticketOf(req: express.Request): string | undefined {
  return /^Token\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
}

// --- routes --------------------------------------------------------------------------------------

export function datahubRouter(deps: {
  readonly tickets: Tickets;
  readonly datahub: Datahub;
  readonly clock: Clock;
  readonly log: Logger;
}): express.Router {
  const { tickets, datahub, clock, log } = deps;
  const router = express.Router();
  const json = anyJsonBody('64kb');

  const authenticated = (req: express.Request): Promise<Viewer> => {
    const ticket = ticketOf(req);
    if (ticket === undefined) throw new HeraldError('unauthenticated', 'Authorization: Token <ticket> is required');
    return tickets.authenticate(ticket, clock());
  };

  router.post(
    '/notifications',
    json,
    route(log, async (req, res) => {
      const viewer = await authenticated(req);
      const body = decodeFormat(SendBody, req.body);
      if (!NotificationTypeCodec.is(body.type))
        throw badInput(`type must be one of ${Object.keys(NotificationTypeCodec.keys).join(', ')}`);
      if (!USER_TYPES.has(body.type) && body.type !== 'apply_whitelist')
        throw badInput(`type ${body.type} is sent by back-end services (POST /topics/to_notifications.json)`);
      const data = decodeNotificationData(body.type, body.data);
      if (body.type === 'apply_whitelist') {
        const item = data as { repname: string; itemname: string };
        // The seed's own request names no owner: the item's registered owner gets it (docs/api/datahub.md, "Item owners").
        const owner = splitUserList(body.receiver ?? '');
        if (owner.length > 1) throw badInput('receiver: at most one user, the owner of the item, for apply_whitelist');
        await datahub.applyWhitelist(
          viewer,
          { repname: item.repname, itemname: item.itemname, owner: owner[0] },
          clock(),
        );
        res.status(200).end();
        return;
      }
      const requestId = checkRequestId(body.request_id);
      await datahub.send(
        viewer,
        {
          type: body.type,
          receivers: splitUserList(body.receiver ?? ''),
          data,
          level: body.level ?? 0,
          forBrowser: true,
          forClient: false,
          ...(body.time !== undefined && { time: body.time }),
          ...(requestId !== undefined && { requestId }),
        },
        clock(),
      );
      res.status(200).end();
    }),
  );

  router.get(
    '/notifications',
    route(log, async (req, res) => {
      const viewer = await authenticated(req);
      const { total, results } = await datahub.list(viewer, listFilter(req.query));
      res.status(200).json({ total, results: results.map(toWire) });
    }),
  );

  router.put(
    '/notifications/:messageid',
    route(log, async (req, res) => {
      const viewer = await authenticated(req);
      const messageId = req.params.messageid ?? '';
      if (!/^\d{1,15}$/.test(messageId)) throw badInput('messageid must be a notification number');
      await datahub.markRead(viewer, Number(messageId), clock());
      res.status(200).end();
    }),
  );

  router.get(
    '/notification_stat',
    route(log, async (req, res) => {
      const viewer = await authenticated(req);
      res.status(200).json(await datahub.stats(viewer));
    }),
  );

  router.delete(
    '/notification_stat',
    route(log, async (req, res) => {
      const viewer = await authenticated(req);
      await datahub.clearStats(viewer, clock());
      res.status(200).end();
    }),
  );

  // Anything else under datahub's paths (another method, a path below them) in the same envelope.
  router.all(['/notifications', '/notifications/*', '/notification_stat', '/notification_stat/*'], (req, res) => {
    reply(res, new ShimError(404, 'not_found', `no route ${req.method} ${req.path}`));
  });

  // Body errors (bad JSON, too large, an unknown charset: 415) in the same envelope.
  router.use(['/notifications', '/notification_stat'], bodyErrors(datahubReply, { limit: '64 KB', unsupported: 415 }));
  return router;
}

/** How datahub answers each HeraldError code: as the other JSON shims, but an expired notification is one not found. */
export const DATAHUB_ANSWERS: HttpAnswers = { ...HTTP_ANSWERS, expired: [404, 'not_found'] };

export function route(
  log: Logger,
  handler: (req: express.Request, res: express.Response) => Promise<void>,
): express.RequestHandler {
  return shimRoute(log, 'datahub', datahubReply, handler, DATAHUB_ANSWERS);
}

/** reply as a shim's `send` (shimErrors bodyErrors). */
export const datahubReply = (res: express.Response, _req: express.Request, error: ShimError): void => reply(res, error);

export function reply(res: express.Response, error: ShimError): void {
  if (error.retryAfterSeconds !== undefined) res.set('retry-after', String(error.retryAfterSeconds));
  res.status(error.status).json({ code: error.code, message: error.message });
}
