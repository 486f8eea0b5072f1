import express from 'express';
import { HeraldError } from '../../domain/heraldError';
import { parseRfc3339 } from '../../domain/rfc3339';
import { characterCount } from '../../domain/text';
import { splitUserList } from '../../domain/ticket/ticket';
import type { Datahub } from '../../src/datahub/datahub';
import type { Tickets } from '../../src/identity/tickets';
import type { Emails } from '../../src/mail/emails';
import type { Clock } from '../../src/runtime/clock';
import type { Logger } from '../../src/runtime/logger';
import { anyJsonBody } from './bodyCodecs';
import {
  decodeFormat,
  decodeNotificationData,
  itemEventOf,
  TopicEmail,
  TopicNotification,
  TopicSubscriptionEvent,
} from './datahubFormats';
import { checkRequestId, datahubReply, reply, route } from './datahubShim';
import { badInput, bodyErrors, ShimError } from './shimErrors';

/**
 * datahub's message-queue topics, for the app's back-end services, over HTTP: a message the seed's
 * services produced to a topic is POSTed, unchanged, to `/topics/<topic>`. See docs/api/datahub.md.
 *
 * - `X-App-Id` and `X-App-Key`: the app's credentials (a service acts for the whole app).
 * - `X-Message-Key`: the message's queue key, for the seed's forclient rule (to_notifications.json).
 * - `X-Request-Id` (optional): an idempotency key; the same key sends once.
 *
 * Errors are datahub's envelope `{"code", "message"}`: 400 bad_request naming the field, 401
 * unauthorized, 413 too_large.
 *
 * to_emails.json answers 202 `{"emailid"}` (recorded, sent by the mailer); to_subscriptions.json 200
 * `{"notified"}`; to_notifications.json 200 with an empty body, like POST /notifications.
 */

/**
 * The seed's key rule: a key containing `forclient` puts the notification in the client's list; a key
 * not containing `notforbrowser` puts it in the browser's. So no key: the browser's; `forclient`: both;
 * `forclient,notforbrowser`: the client's only.
 */
export function listsOfKey(key: string): { forBrowser: boolean; forClient: boolean } {
  return { forBrowser: !key.includes('notforbrowser'), forClient: key.includes('forclient') };
}

const MAX_KEY_LENGTH = 256;

export function datahubTopicsRouter(deps: {
  readonly tickets: Tickets;
  readonly datahub: Datahub;
  readonly emails: Emails;
  readonly clock: Clock;
  readonly log: Logger;
}): express.Router {
  const { tickets, datahub, emails, clock, log } = deps;
  const router = express.Router();
  const json = anyJsonBody('64kb');
  // An email's content may be 64 KB (domain/email/email.ts) and JSON escapes may double it.
  const emailJson = anyJsonBody('256kb');

  /** The app whose service calls. */
  const authenticated = async (req: express.Request): Promise<string> => {
    const appId = req.get('x-app-id');
    const secret = req.get('x-app-key');
    if (!appId || !secret)
      throw new HeraldError('unauthenticated', 'X-App-Id and X-App-Key (the app credentials) are required');
    await tickets.authenticateApp(appId, secret);
    return appId;
  };
  const requestIdOf = (req: express.Request) => checkRequestId(req.get('x-request-id'));

  router.post(
    '/topics/to_notifications.json',
    json,
    route(log, async (req, res) => {
      const appId = await authenticated(req);
      const message = decodeFormat(TopicNotification, req.body);
      const key = req.get('x-message-key') ?? '';
      if (characterCount(key) > MAX_KEY_LENGTH) throw badInput(`X-Message-Key: at most ${MAX_KEY_LENGTH} characters`);
      const lists = listsOfKey(key);
      if (!lists.forBrowser && !lists.forClient)
        throw badInput('X-Message-Key: "notforbrowser" without "forclient" puts the notification in no list');
      const requestId = requestIdOf(req);
      await datahub.sendFromService(
        appId,
        {
          type: message.type,
          sender: message.sender ?? '',
          receivers: splitUserList(message.receiver ?? ''),
          data: decodeNotificationData(message.type, message.data),
          level: message.level ?? 0,
          ...(message.time !== undefined && { time: message.time }),
          ...lists,
          ...(requestId !== undefined && { requestId }),
        },
        clock(),
      );
      res.status(200).end();
    }),
  );

  // Recorded as EmailRequested; the mailer sends it (docs/email.md). 202: accepted, not yet sent.
  router.post(
    '/topics/to_emails.json',
    emailJson,
    route(log, async (req, res) => {
      const appId = await authenticated(req);
      const message = decodeFormat(TopicEmail, req.body);
      const requestId = requestIdOf(req);
      const { emailId } = await emails.request(
        appId,
        `service:${appId}`,
        {
          to: message.to,
          subject: message.subject,
          content: message.content,
          isHtml: message.ishtml ?? false,
          ...(requestId !== undefined && { requestId }),
        },
        clock(),
      );
      res.status(202).json({ emailid: emailId });
    }),
  );

  router.post(
    '/topics/to_subscriptions.json',
    json,
    route(log, async (req, res) => {
      const appId = await authenticated(req);
      const message = decodeFormat(TopicSubscriptionEvent, req.body);
      const data = itemEventOf(message);
      // Checked here, not only by each notification's decider: an item without subscribers sends none.
      if (message.time !== undefined && parseRfc3339(message.time) === undefined)
        throw badInput('time: must be an RFC 3339 time, e.g. 2015-11-10T15:06:09+08:00');
      const item = { repname: message.repname, ...(message.type !== '0x00020003' && { itemname: message.itemname! }) };
      const notified = await datahub.announceItemEvent(appId, item, data, message.time, requestIdOf(req), clock());
      res.status(200).json({ notified });
    }),
  );

  router.all(['/topics', '/topics/*'], (req, res) => {
    reply(res, new ShimError(404, 'not_found', `no route ${req.method} ${req.path}`));
  });
  router.use(
    '/topics',
    bodyErrors(datahubReply, {
      limit: '64 KB; 256 KB for to_emails.json',
      unsupported: 415,
      malformed: "malformed JSON body (strict JSON: the seed samples' typos are not accepted, see docs/api/datahub.md)",
    }),
  );
  return router;
}
