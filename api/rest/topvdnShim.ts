import express from 'express';
import * as t from 'io-ts';
import { PUSH_LIMITS, topvdnFlag, topvdnRequestId, unknownClients } from '../../domain/device/push';
import { HeraldError } from '../../domain/heraldError';
import type { AppCallbacks } from '../../src/devices/appCallbacks';
import type { DeviceQueries } from '../../src/devices/deviceQueries';
import type { Devices } from '../../src/devices/devices';
import { PushRefusedError, type Pushes } from '../../src/devices/pushes';
import type { Tickets } from '../../src/identity/tickets';
import type { Clock } from '../../src/runtime/clock';
import type { Logger } from '../../src/runtime/logger';
import { anyJsonBody, decodeBody, Integer, optional, Text } from './bodyCodecs';
import { idempotencyKeyOf } from './idempotencyKey';
import { badInput, bodyErrors, shimRoute, ShimError } from './shimErrors';

/**
 * topvdn's custom message push (shared/seeds/002_66d9dfe67c8bed29.txt): a device pushes to its peers
 * (`/v2/message/client/push`, `X-Client-Token`), the app's server to devices by number
 * (`/v2/message/server/push`, `X-APP-ID` + `X-APP-Key`, `proxy` 0: a batch, 1: on behalf of devices).
 * Both answer `{"request_id"}`; errors `{"code", "message"}` with the seed's statuses (400, 401, 500)
 * and herald's own (404, 409 an Idempotency-Key reused for another push, 413, 429, 503 busy). What
 * `msg` and `flag` may be, and how the deliveries are tried, is the push decider's
 * (domain/device/push.ts). See docs/api/topvdn.md.
 */

const BODY_LIMIT = '64kb';
/** `proxy: 1`: items of one request (the seed gives no limit; each item is a push of its own). */
const PROXY_ITEMS_MAX = 100;
/** Token look-ups of one client push made at once. */
const TOKEN_LOOKUPS_AT_ONCE = 16;

/** The seed's `callback`: 1 or 0 (booleans taken too). */
const Callback = new t.Type<boolean, boolean, unknown>(
  'Callback',
  (u): u is boolean => typeof u === 'boolean',
  (u, c) =>
    u === 1 || u === '1' || u === true
      ? t.success(true)
      : u === 0 || u === '0' || u === false
        ? t.success(false)
        : t.failure(u, c, '0 or 1'),
  t.identity,
);

const ClientPushBody = t.intersection([
  t.type({ msg: Text, callback: Callback, access_tokens: t.array(Text, 'an array of device tokens') }),
  t.partial({ flag: optional(Integer) }),
]);

const Proxy = t.type({ proxy: Integer });

const BatchBody = t.type({
  payload: t.intersection(
    [
      t.type({ msg: Text, clients: t.array(Integer, 'an array of device numbers') }, 'an object'),
      t.partial({ flag: optional(Integer) }),
    ],
    'an object',
  ),
});

const ProxyItem = t.intersection(
  [t.type({ from: Integer, to: Integer, msg: Text }, 'an object'), t.partial({ flag: optional(Integer) })],
  'an object',
);
const ProxyBody = t.type({ payload: t.array(ProxyItem, 'an array of messages') });

const CallbackBody = t.type({ url: t.union([Text, t.null], 'a URL or null') });

/** A client push none of whose `access_tokens` names a device of the app: 400, with the tokens. */
class NoPeerError extends ShimError {
  constructor(readonly skippedTokens: readonly string[]) {
    super(400, 'bad_request', 'access_tokens: none is a device token of this app; nothing was pushed');
  }
}

/** A server push none of whose device numbers is a device of the app: 400, with the numbers. */
class NoClientError extends ShimError {
  constructor(
    where: string,
    readonly skippedClients: readonly number[],
  ) {
    super(400, 'bad_request', `${where}: no device of this app; nothing was pushed`);
  }
}

function send(res: express.Response, _req: express.Request, error: ShimError): void {
  res.status(error.status).json({
    code: error.code,
    message: error.message,
    ...(error instanceof NoPeerError && { skipped_tokens: error.skippedTokens }),
    ...(error instanceof NoClientError && { skipped_clients: error.skippedClients }),
  });
}

/** A refused push's message, put where the caller has the field (`payload[3].flag`). */
async function refusedAt<T>(
  where: (message: string, index: number | undefined) => string,
  push: () => Promise<T>,
): Promise<T> {
  try {
    return await push();
  } catch (error) {
    if (error instanceof HeraldError && error.code === 'invalid')
      throw badInput(where(error.message, error instanceof PushRefusedError ? error.index : undefined));
    throw error;
  }
}

export function topvdnRouter(deps: {
  readonly tickets: Tickets;
  readonly devices: Devices;
  readonly deviceQueries: DeviceQueries;
  readonly pushes: Pushes;
  readonly appCallbacks: AppCallbacks;
  readonly clock: Clock;
  readonly log: Logger;
}): express.Router {
  const { tickets, devices, deviceQueries, pushes, appCallbacks, clock, log } = deps;
  const router = express.Router();
  const route = (handler: (req: express.Request, res: express.Response) => Promise<void>) =>
    shimRoute(log, 'topvdn', send, handler);
  // JSON whatever the Content-Type says (none, or curl's `-d` default, form-urlencoded), as datahub and
  // RTIO read theirs: a client that leaves the seed's `Content-Type: application/json` out is not told
  // that `msg` is missing from a body that has it.
  // …and in whatever charset it names (`charset=utf8`, `GBK`): the bodies are ASCII JSON.
  router.use('/v2/message', ...anyJsonBody(BODY_LIMIT));

  router.post(
    '/v2/message/client/push',
    route(async (req, res) => {
      const token = req.get('x-client-token')?.trim();
      if (!token) throw new HeraldError('unauthenticated', 'X-Client-Token is required');
      const sender = await devices.authenticate(token);
      if (!sender) throw new HeraldError('unauthenticated', 'X-Client-Token: not a valid device token');
      const body = decodeBody(ClientPushBody, req.body);
      const idempotencyKey = idempotencyKeyOf(req);
      if (body.access_tokens.length > PUSH_LIMITS.topvdnTargets)
        throw badInput(`access_tokens: at most ${PUSH_LIMITS.topvdnTargets}`);
      const input = { msg: body.msg, flag: topvdnFlag(body.flag), from: sender.clientId, callback: body.callback };
      // The peers: the tokens that name a registered device of the sender's app. A stale or unknown token
      // (its device unregistered, re-registered, of another app, forged) is skipped, not a reason to keep
      // the message from the others; the answer lists it, so the device can drop it (docs/api/topvdn.md).
      const peers = new Map<string, number | undefined>(body.access_tokens.map((peer) => [peer, undefined]));
      const distinct = [...peers.keys()];
      for (let i = 0; i < distinct.length; i += TOKEN_LOOKUPS_AT_ONCE) {
        const slice = distinct.slice(i, i + TOKEN_LOOKUPS_AT_ONCE);
        const found = await Promise.all(slice.map((peer) => devices.authenticate(peer)));
        found.forEach((device, j) => {
          if (device?.appId === sender.appId) peers.set(slice[j]!, device.clientId);
        });
      }
      const skipped = distinct.filter((peer) => peers.get(peer) === undefined);
      const clientIds = distinct.flatMap((peer) => peers.get(peer) ?? []);
      // A message that would reach nobody — every token skipped, and no callback to the app's server (not
      // asked, or the app has no callback URL) — is refused, not accepted and lost. (`access_tokens: []` is
      // the seed's own "push to no device", and stays a success.)
      if (
        skipped.length > 0 &&
        clientIds.length === 0 &&
        (!body.callback || (await appCallbacks.urlOf(sender.appId)) === null)
      ) {
        throw new NoPeerError(skipped);
      }
      const { pushId } = await pushes.topvdnPush(
        sender.appId,
        { ...input, clientIds },
        clock(),
        // A device's sends count against its own rate.
        {
          sender: { kind: 'device', appId: sender.appId, deviceId: sender.deviceId },
          ...(idempotencyKey !== undefined && { idempotencyKey }),
        },
      );
      // The seed's answer is `{"request_id"}`; `skipped_tokens` is added only when there is something to say.
      res.json({ request_id: topvdnRequestId(pushId), ...(skipped.length > 0 && { skipped_tokens: skipped }) });
    }),
  );

  /** The app's server: X-APP-ID and X-APP-Key. */
  const authenticatedApp = async (req: express.Request): Promise<string> => {
    const appId = req.get('x-app-id')?.trim();
    const key = req.get('x-app-key');
    if (!appId || !key) throw new HeraldError('unauthenticated', 'X-APP-ID and X-APP-Key are required');
    await tickets.authenticateApp(appId, key);
    return appId;
  };

  // herald's addition: where the app's server receives messages sent with `callback: 1` (docs/delivery.md).
  router.put(
    '/v2/message/callback',
    route(async (req, res) => {
      const appId = await authenticatedApp(req);
      const { url } = decodeBody(CallbackBody, req.body);
      res.json({ url: await appCallbacks.setUrl(appId, url, clock()) });
    }),
  );

  router.get(
    '/v2/message/callback',
    route(async (req, res) => {
      res.json({ url: await appCallbacks.urlOf(await authenticatedApp(req)) });
    }),
  );

  /** Which of these device numbers are registered devices of the app. */
  const devicesOfApp = async (appId: string, numbers: readonly number[]): Promise<Set<number>> => {
    const distinct = [...new Set(numbers)];
    const known = new Set<number>();
    for (let i = 0; i < distinct.length; i += TOKEN_LOOKUPS_AT_ONCE) {
      const slice = distinct.slice(i, i + TOKEN_LOOKUPS_AT_ONCE);
      const found = await Promise.all(slice.map((number) => deviceQueries.byClientId(number)));
      found.forEach((device, j) => {
        if (device?.active && device.appId === appId) known.add(slice[j]!);
      });
    }
    return known;
  };

  // Device numbers that are no device of the app are skipped, as a client push skips stale tokens: the
  // message goes to the others, and the answer lists them (`skipped_clients`). When no number names a
  // device, the message would reach no one: refused (400, with them), nothing pushed. Every message is
  // checked first, so bad input is its own 400 (docs/api/topvdn.md).
  router.post(
    '/v2/message/server/push',
    route(async (req, res) => {
      const appId = await authenticatedApp(req);
      const { proxy } = decodeBody(Proxy, req.body);
      const idempotencyKey = idempotencyKeyOf(req);
      const by = { ...(idempotencyKey !== undefined && { idempotencyKey }) };
      if (proxy === 0) {
        const { payload } = decodeBody(BatchBody, req.body);
        if (payload.clients.length > PUSH_LIMITS.topvdnTargets)
          throw badInput(`payload.clients: at most ${PUSH_LIMITS.topvdnTargets} devices`);
        // The audience is recorded as asked (the devices read model expands it to the app's devices).
        const input = {
          msg: payload.msg,
          flag: topvdnFlag(payload.flag),
          from: null,
          clientIds: payload.clients,
          callback: false,
        };
        const known = await devicesOfApp(appId, payload.clients);
        const skipped = unknownClients(payload.clients, known);
        // `clients: []` names no one, as the client push's `access_tokens: []` ("空则表示不推送给任何设备"): taken.
        const none = skipped.length > 0 && known.size === 0;
        const [pushId] = await refusedAt(
          (message) => `payload.${message}`,
          () => pushes.topvdnPushes(appId, [input], clock(), by, new Set(none ? [0] : [])),
        );
        if (none) throw new NoClientError('payload.clients', skipped);
        res.json({ request_id: topvdnRequestId(pushId!), ...(skipped.length > 0 && { skipped_clients: skipped }) });
        return;
      }
      if (proxy !== 1) throw badInput('proxy: must be 0 (batch) or 1 (proxy)');
      const { payload } = decodeBody(ProxyBody, req.body);
      if (payload.length === 0 || payload.length > PROXY_ITEMS_MAX)
        throw badInput(`payload: 1 to ${PROXY_ITEMS_MAX} messages`);
      const inputs = payload.map((item) => ({
        msg: item.msg,
        flag: topvdnFlag(item.flag),
        from: item.from,
        clientIds: [item.to],
        callback: false,
      }));
      // An item whose `from` or `to` is no device of the app is skipped; the others are pushed.
      const named = payload.flatMap((item) => [item.from, item.to]);
      const known = await devicesOfApp(appId, named);
      const skippedItems = new Set(
        payload.flatMap((item, i) => (known.has(item.from) && known.has(item.to) ? [] : [i])),
      );
      // Every item is checked before any is pushed: a refused request appends nothing.
      const ids = await refusedAt(
        (message, index) =>
          `payload[${index ?? 0}].${message.startsWith('clients:') ? 'to: must be a device number' : message}`,
        () => pushes.topvdnPushes(appId, inputs, clock(), by, skippedItems),
      );
      const skipped = unknownClients(named, known);
      if (skippedItems.size === payload.length) throw new NoClientError('payload: from and to', skipped);
      // `request_ids`: one per item, in order; a skipped item's is null. `request_id`: the first pushed.
      const requestIds = ids.map((id, i) => (skippedItems.has(i) ? null : topvdnRequestId(id)));
      res.json({
        request_id: requestIds.find((id) => id !== null),
        request_ids: requestIds,
        ...(skipped.length > 0 && { skipped_clients: skipped }),
      });
    }),
  );

  router.all(['/v2/message', '/v2/message/*'], (req, res) =>
    send(res, req, new ShimError(404, 'not_found', `no route ${req.method} ${req.path}`)),
  );
  // An unknown charset is 400: the seed's status table lists 200, 400, 401 and 500 only.
  router.use('/v2/message', bodyErrors(send, { limit: BODY_LIMIT, unsupported: 400 }));
  return router;
}
