import http from 'node:http';
import express from 'express';
import * as t from 'io-ts';
import { namesEveryone } from '../../domain/device/device';
import type { Devices } from '../../src/devices/devices';
import type { Pushes } from '../../src/devices/pushes';
import type { Tickets } from '../../src/identity/tickets';
import type { Clock } from '../../src/runtime/clock';
import type { Logger } from '../../src/runtime/logger';
import { anyJsonBody, decodeBody, Integer, optional, Text, WholeNumber } from './bodyCodecs';
import { idempotencyKeyOf } from './idempotencyKey';
import { bodyErrors, shimRoute, ShimError } from './shimErrors';

/**
 * ONE-PUSH (shared/seeds/003_834cb051d61fc48e.txt): register, unregister and send on the seed's URLs,
 * JSON in and out. Errors answer in the envelope of the Spring Boot service ONE-PUSH was:
 * `{"timestamp", "status", "error", "message", "path"}`, with the HTTP status in `status`
 * (400 bad input, 401 wrong appId/appKey, 404 unknown device, 409 an Idempotency-Key reused for another
 * send, 413 too large, 429 too many, 503 busy, 500).
 * See docs/api/onepush.md; the device socket is api/sockets/msgpush.ts.
 */

const BODY_LIMIT = '64kb';

/** A boolean as Jackson, behind the original service, read one: also "true"/"false" in any case, and 1/0. */
const Flag = new t.Type<boolean, boolean, unknown>(
  'Boolean',
  (u): u is boolean => typeof u === 'boolean',
  (u, c) => {
    const word = typeof u === 'string' ? u.trim().toLowerCase() : u;
    return typeof u === 'boolean'
      ? t.success(u)
      : word === 'true' || u === 1
        ? t.success(true)
        : word === 'false' || u === 0
          ? t.success(false)
          : t.failure(u, c, 'true or false');
  },
  t.identity,
);

const RegisterBody = t.intersection([
  t.type({ alias: Text, appId: Text, platform: Text, nativeToken: Text }),
  t.partial({ mobile: optional(Text), tag: optional(t.array(Text)), appKey: optional(Text) }),
]);

const SendBody = t.intersection([
  t.type({ appId: Text, appKey: Text, platform: Text, alert: Text }),
  t.partial({
    tenantCode: optional(Text),
    pushMsgType: optional(Text),
    needConfirm: optional(Flag),
    duration: optional(WholeNumber),
    audienceType: optional(Text),
    audiences: optional(t.array(Text)),
    // Text, or any other JSON, delivered as given (docs/api/onepush.md); the push decider checks it.
    extra: optional(t.unknown),
    sound: optional(Text),
    badge: optional(Integer),
    sender: optional(Text),
    // The seed spells it sendDeive; sendDevice is taken too.
    sendDeive: optional(Text),
    sendDevice: optional(Text),
    smsMessage: optional(Text),
  }),
]);

/** Spring Boot's error body, stamped with herald's clock. */
const springError =
  (clock: Clock) =>
  (res: express.Response, req: express.Request, error: ShimError): void => {
    res.status(error.status).json({
      timestamp: clock().toISOString(),
      status: error.status,
      error: http.STATUS_CODES[error.status] ?? 'Error',
      message: error.message,
      path: req.originalUrl.split('?')[0],
    });
  };

export function onePushRouter(deps: {
  readonly tickets: Tickets;
  readonly devices: Devices;
  readonly pushes: Pushes;
  readonly clock: Clock;
  readonly log: Logger;
}): express.Router {
  const { tickets, devices, pushes, clock, log } = deps;
  const router = express.Router();
  const send = springError(clock);
  const route = (handler: (req: express.Request, res: express.Response) => Promise<void>) =>
    shimRoute(log, 'onepush', send, handler);
  // JSON whatever the Content-Type says (a client that leaves it out sends text/plain), as the RTIO shim
  // reads it; unregister reads no body, so none it is sent can refuse it.
  router.use(['/msgpush/register', '/msgpush/send'], anyJsonBody(BODY_LIMIT));

  // Open, as the seed has it (a device has no app secret). With `appKey`, it is checked: the app's own
  // server registering devices for its users. docs/api/onepush.md says what that means for aliases.
  router.post(
    '/msgpush/register',
    route(async (req, res) => {
      const body = decodeBody(RegisterBody, req.body);
      if (body.appKey !== undefined && body.appKey !== null) await tickets.authenticateApp(body.appId, body.appKey);
      const { device, token } = await devices.register(
        {
          appId: body.appId,
          alias: body.alias,
          platform: body.platform,
          nativeToken: body.nativeToken,
          mobile: body.mobile ?? null,
          tags: body.tag ?? [],
        },
        clock(),
      );
      res.json({ id: device.deviceId, clientId: device.clientId, token });
    }),
  );

  router.post(
    '/msgpush/unregister/:deviceId',
    route(async (req, res) => {
      const device = await devices.unregister(req.params.deviceId!, clock());
      res.json({ id: device.deviceId });
    }),
  );

  router.post(
    '/msgpush/send',
    route(async (req, res) => {
      const body = decodeBody(SendBody, req.body);
      const idempotencyKey = idempotencyKeyOf(req);
      await tickets.authenticateApp(body.appId, body.appKey);
      const audienceType = body.audienceType ?? 'ALIAS';
      const audiences = body.audiences ?? [];
      const { pushId } = await pushes.onePush(
        body.appId,
        {
          platform: body.platform,
          // The seed's "ALL-所有用户": an ALL audience beside aliases or tags still means everyone (docs/api/onepush.md).
          audienceType:
            (audienceType === 'ALIAS' || audienceType === 'TAG') && audiences.some(namesEveryone)
              ? 'ALL'
              : audienceType,
          audiences,
          tenantCode: body.tenantCode ?? null,
          alert: body.alert,
          extra: body.extra ?? null,
          pushMsgType: body.pushMsgType ?? null,
          needConfirm: body.needConfirm ?? null,
          duration: body.duration ?? null,
          sound: body.sound ?? null,
          badge: body.badge ?? null,
          sender: body.sender ?? null,
          sendDevice: body.sendDeive ?? body.sendDevice ?? null,
          smsMessage: body.smsMessage ?? null,
        },
        clock(),
        { ...(idempotencyKey !== undefined && { idempotencyKey }) },
      );
      res.json({ requestId: pushId });
    }),
  );

  router.all(['/msgpush', '/msgpush/*'], (req, res) =>
    send(res, req, new ShimError(404, 'not_found', `no route ${req.method} ${req.path}`)),
  );
  // An unknown charset is 415, as the Spring Boot service answered a body it could not read by its type.
  router.use('/msgpush', bodyErrors(send, { limit: BODY_LIMIT, unsupported: 415 }));
  return router;
}
