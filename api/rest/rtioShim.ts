import { BlockList, isIP } from 'node:net';
import express from 'express';
import { HeraldError, type HeraldErrorCode } from '../../domain/heraldError';
import { RTIO_LIMITS, rtioTimeLiveSeconds } from '../../domain/rtio/rtio';
import { illFormedTextAt, notUnicode } from '../../domain/text';
import { StreamContendedError } from '../../src/command/commandHandler';
import type { Cidr } from '../../src/config';
import type { Tickets } from '../../src/identity/tickets';
import { UnknownRtioDeviceError, type Rtio } from '../../src/rtio/deviceCalls';
import type { Logger } from '../../src/runtime/logger';

/**
 * RTIO's REST routes (shared/seeds/004_e2f5c37d54658cec.txt): `POST /manage/create_device` and
 * `POST /call/send`, JSON bodies whatever the Content-Type (the seed's own example posts with curl
 * `--data`, i.e. as a form). Every answer is HTTP 200 with the seed's `code`/`desc` and the request's
 * `nonce` echoed, except herald's own failures (HTTP 500, with 2705 / 2305). A caller outside the
 * trusted networks without app credentials, or a browser's request in them (Origin, Sec-Fetch-Site),
 * is 1606 (herald's code, HTTP 200). See docs/api/rtio.md.
 */

export const RTIO_CODES = {
  success: [1000, 'SUCCESS'],
  badUri: [1600, 'invalid URI'],
  badBody: [1601, 'invalid HTTP body'],
  badMethod: [1602, 'wrong HTTP method'],
  badJson: [1603, 'JSON parse error'],
  badField: [1604, 'invalid JSON field'],
  unknownDevice: [1605, 'device does not exist'],
  sendFailed: [2305, 'message send failed'],
  createFailed: [2705, 'device create failed'],
  // herald's, in the seed's range of request errors (16xx): the seed's callers are on a trusted network
  // and it has no code for one that is not. Answered like the seed's other codes, HTTP 200.
  untrusted: [1606, 'caller not trusted: not in RTIO_TRUSTED_CIDRS, and no X-APP-ID and X-APP-Key'],
} as const;
export type RtioCode = (typeof RTIO_CODES)[keyof typeof RTIO_CODES];

export class RtioAnswer extends Error {
  constructor(
    readonly code: RtioCode,
    readonly detail?: string,
    readonly status = 200,
    readonly fields: Record<string, unknown> = {},
    /** Sent as Retry-After. */
    readonly retryAfterSeconds?: number,
  ) {
    super(detail ?? code[1]);
  }
}

const BODY_LIMIT = '16kb';

/**
 * `only`: the seed serves /manage on port 8095 and /call on 8090; herald's own port serves both, and a
 * port of the seed's (RTIO_MANAGE_PORT, RTIO_CALL_PORT) serves its one — and answers every other path
 * there in RTIO's envelope (1600).
 */
export function rtioRouter(deps: {
  readonly rtio: Rtio;
  readonly tickets: Tickets;
  readonly trustedCidrs: readonly Cidr[];
  readonly appId: string;
  readonly log: Logger;
  readonly only?: 'manage' | 'call';
}): express.Router {
  const router = express.Router();
  const trusted = new BlockList();
  for (const cidr of deps.trustedCidrs) trusted.addSubnet(cidr.address, cidr.prefix, cidr.family);

  /** The app the caller acts for: its credentials, or — from a trusted network — RTIO_APP_ID. */
  const appOf = async (req: express.Request): Promise<string> => {
    const appId = req.get('x-app-id');
    const key = req.get('x-app-key');
    if (appId !== undefined || key !== undefined) {
      if (!appId || !key)
        throw new RtioAnswer(RTIO_CODES.untrusted, 'caller not trusted: X-APP-ID and X-APP-Key go together');
      await deps.tickets.authenticateApp(appId, key);
      return appId;
    }
    const caller = req.socket.remoteAddress;
    // A browser inside a trusted network is not a trusted caller: any page it opens, from anywhere, can
    // send it a simple text/plain POST (CORS only keeps the page from reading the answer). Browsers mark
    // every such request — Origin on each cross-origin POST (`null` from a sandbox), Sec-Fetch-Site on
    // each request of a current one; servers' HTTP clients send neither (Node's fetch sends only
    // Sec-Fetch-Mode, which is not looked at).
    if (isTrusted(trusted, caller) && fromBrowser(req)) {
      throw new RtioAnswer(
        RTIO_CODES.untrusted,
        'caller not trusted: a browser request (Origin, Sec-Fetch-Site) is not trusted by network; send X-APP-ID and X-APP-Key',
      );
    }
    if (isTrusted(trusted, caller)) return deps.appId;
    // Named, so the operator sees which network to add to RTIO_TRUSTED_CIDRS.
    throw new RtioAnswer(
      RTIO_CODES.untrusted,
      `caller ${caller ?? '?'} not in RTIO_TRUSTED_CIDRS; or send X-APP-ID and X-APP-Key`,
    );
  };

  /** `echoed`: what every answer of the route carries from the request (call/send's `device_id`, required in its answer). */
  const route = (
    failure: RtioCode,
    handler: (body: Record<string, unknown>, req: express.Request) => Promise<Record<string, unknown>>,
    echoed: (body: Record<string, unknown>) => Record<string, unknown> = () => ({}),
  ): express.RequestHandler => {
    return (req, res) => {
      let nonce: unknown;
      // Until the body is read, what it would echo is empty.
      let echoes = echoed({});
      const answer = async () => {
        const body = parseBody(req.body);
        nonce = body.nonce;
        echoes = echoed(body);
        // Text that is not Unicode (a `\ud800` escape) is a bad field, refused before any field is read.
        const illFormed = illFormedTextAt(body);
        if (illFormed !== undefined) throw new RtioAnswer(RTIO_CODES.badField, notUnicode(illFormed));
        return handler(body, req);
      };
      answer().then(
        (fields) =>
          res.json({ nonce: echoNonce(nonce), code: RTIO_CODES.success[0], desc: RTIO_CODES.success[1], ...fields }),
        (error: unknown) => {
          const known = rtioAnswer(error, failure);
          if (error instanceof StreamContendedError)
            deps.log.warn({ stream: error.streamName, attempts: error.attempts, path: req.path }, 'rtio: busy');
          else if (known.status >= 500) deps.log.error({ err: error, path: req.path }, 'rtio: internal error');
          if (known.retryAfterSeconds !== undefined) res.set('retry-after', String(known.retryAfterSeconds));
          res.status(known.status).json({
            nonce: echoNonce(nonce),
            code: known.code[0],
            desc: descOf(known.detail ?? known.code[1]),
            ...echoes,
            ...known.fields,
          });
        },
      );
    };
  };

  // On a port of the seed's own, every path is RTIO's: an unknown one is 1600 in its envelope (the seed's
  // `/api?seq=123459`), not herald's generic 404. On herald's port, RTIO has the paths under its two.
  const rtioPaths = deps.only === undefined ? ['/manage', '/call'] : ['/'];
  router.use(rtioPaths, express.text({ type: () => true, limit: BODY_LIMIT }));

  if (deps.only !== 'call')
    router.post(
      '/manage/create_device',
      route(RTIO_CODES.createFailed, async (body, req) => {
        const nonce = nonceField(body);
        const appId = await appOf(req);
        const { deviceId, deviceKey } = await deps.rtio.createDevice(appId, nonce);
        return { device_id: deviceId, device_key: deviceKey };
      }),
    );

  if (deps.only !== 'manage')
    router.post(
      '/call/send',
      route(
        RTIO_CODES.sendFailed,
        async (body, req) => {
          const nonce = nonceField(body);
          const deviceId = field(body, 'device_id', RTIO_LIMITS.deviceIdBytes);
          const message = field(body, 'message', RTIO_LIMITS.messageBytes);
          // Optional: none, null, "", 0 → 6 s; above 30 → 30 (domain/rtio/rtio.ts); a negative one is 1604.
          const timeLive = rtioTimeLiveSeconds(body.time_live);
          const appId = await appOf(req);
          const outcome = await deps.rtio
            .call(appId, { nonce, deviceId, message, timeLiveSeconds: timeLive })
            .catch((error: unknown) => {
              // The one not_found with an answer of its own: the device called does not exist (or is another app's).
              if (error instanceof UnknownRtioDeviceError)
                throw new RtioAnswer(RTIO_CODES.unknownDevice, undefined, 200, {
                  device_id: deviceId,
                  device_status: 0,
                });
              throw error;
            });
          if (outcome.kind === 'replied')
            return {
              device_id: deviceId,
              device_status: 1,
              device_code: outcome.deviceCode,
              device_message: outcome.deviceMessage,
            };
          throw new RtioAnswer(
            RTIO_CODES.sendFailed,
            outcome.kind === 'offline'
              ? 'message send failed: the device is offline'
              : 'message send failed: the device did not reply within time_live',
            200,
            { device_id: deviceId, device_status: outcome.kind === 'offline' ? 2 : 1 },
          );
        },
        (body) => ({ device_id: echo(body.device_id, RTIO_LIMITS.deviceIdBytes) }),
      ),
    );

  // The routes' paths with another method; other paths under theirs. The nonce is echoed if there is one.
  const refuse =
    (code: RtioCode): express.RequestHandler =>
    (req, res) => {
      res.json({ nonce: echoNonce(nonceIn(req.body)), code: code[0], desc: code[1] });
    };
  const served = [
    ...(deps.only !== 'call' ? ['/manage/create_device'] : []),
    ...(deps.only !== 'manage' ? ['/call/send'] : []),
  ];
  router.all(served, refuse(RTIO_CODES.badMethod));
  if (deps.only === undefined) router.all(['/manage', '/manage/*', '/call', '/call/*'], refuse(RTIO_CODES.badUri));
  else router.use(refuse(RTIO_CODES.badUri));
  // A body that could not be read: 1601 — on a route's path; elsewhere the URI is what is wrong (1600).
  const isServed = (path: string) =>
    served.some((route) => route.toLowerCase() === path.toLowerCase().replace(/(.)\/$/, '$1'));
  router.use(rtioPaths, (error: unknown, req: express.Request, res: express.Response, next: express.NextFunction) => {
    if (res.headersSent) return next(error);
    if (!isServed(req.path))
      return void res.json({ nonce: '', code: RTIO_CODES.badUri[0], desc: RTIO_CODES.badUri[1] });
    const tooLarge = (error as { status?: unknown }).status === 413;
    res.json({
      nonce: '',
      code: RTIO_CODES.badBody[0],
      desc: tooLarge ? `the body is over ${BODY_LIMIT}` : RTIO_CODES.badBody[1],
    });
  });
  return router;
}

function nonceIn(raw: unknown): unknown {
  try {
    return typeof raw === 'string' ? (JSON.parse(raw) as { nonce?: unknown } | null)?.nonce : undefined;
  } catch {
    return undefined;
  }
}

function parseBody(raw: unknown): Record<string, unknown> {
  if (typeof raw !== 'string' || raw.trim().length === 0)
    throw new RtioAnswer(RTIO_CODES.badBody, 'invalid HTTP body: a JSON object is required');
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new RtioAnswer(RTIO_CODES.badJson);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new RtioAnswer(RTIO_CODES.badBody, 'invalid HTTP body: a JSON object is required');
  return body as Record<string, unknown>;
}

/** A required string field of at most `maxBytes` (the seed's lengths are in bytes). */
function field(body: Record<string, unknown>, name: string, maxBytes: number): string {
  const value = body[name];
  if (typeof value !== 'string' || value.length === 0)
    throw new RtioAnswer(RTIO_CODES.badField, `${name}: a string is required`);
  if (Buffer.byteLength(value, 'utf8') > maxBytes)
    throw new RtioAnswer(RTIO_CODES.badField, `${name}: at most ${maxBytes} bytes`);
  return value;
}

/**
 * The nonce: a string, as the seed's examples send it, or a whole number (`"nonce": time()` from PHP, an
 * int64 from Go), taken as its decimal digits — the same nonce as that string. Echoed as it was sent.
 */
function nonceField(body: Record<string, unknown>): string {
  const { nonce } = body;
  if (typeof nonce === 'number' && Number.isSafeInteger(nonce) && nonce >= 0) return String(nonce);
  return field(body, 'nonce', RTIO_LIMITS.nonceBytes);
}

/** A nonce echoed as sent: text within its length, or a whole number; otherwise empty. */
const echoNonce = (value: unknown) =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : echo(value);

/** A refusal in the seed's range of request errors (HTTP 200), its message in `desc`. */
const refused =
  (code: RtioCode, prefix = '') =>
  (error: HeraldError) =>
    new RtioAnswer(code, `${prefix}${error.message}`);
/** The route's own failure code (2305 call/send, 2705 create_device), without detail, as herald's failure (HTTP 500). */
const failed = (_error: HeraldError, failure: RtioCode) => new RtioAnswer(failure, undefined, 500);

/**
 * RTIO's answer to each HeraldError code. App credentials refused are an untrusted caller (1606); busy — others
 * changing the same record past the retry bound — is the route's failure code as HTTP 503 (send again);
 * the other refusals are a field's (1604; call/send answers a device that does not exist with 1605 itself). Codes no RTIO route meets are herald's failure, as before.
 */
export const RTIO_ANSWERS: Readonly<Record<HeraldErrorCode, (error: HeraldError, failure: RtioCode) => RtioAnswer>> = {
  invalid: refused(RTIO_CODES.badField),
  not_found: refused(RTIO_CODES.badField),
  forbidden: refused(RTIO_CODES.badField),
  conflict: refused(RTIO_CODES.badField),
  expired: refused(RTIO_CODES.badField),
  unauthenticated: failed,
  ticket_malformed: failed,
  ticket_expired: failed,
  ticket_revoked: failed,
  unknown_app: refused(RTIO_CODES.untrusted, 'caller not trusted: app credentials refused: '),
  wrong_secret: refused(RTIO_CODES.untrusted, 'caller not trusted: app credentials refused: '),
  rate_limited: failed,
  busy: (error, failure) => new RtioAnswer(failure, error.message, 503, {}, error.retryAfterSeconds),
};

/** What a route answers to what it threw: its own answer, a HeraldError by RTIO_ANSWERS, else the route's failure (500). */
export function rtioAnswer(error: unknown, failure: RtioCode): RtioAnswer {
  if (error instanceof RtioAnswer) return error;
  if (error instanceof HeraldError) return RTIO_ANSWERS[error.code](error, failure);
  return new RtioAnswer(failure, undefined, 500);
}

/** The seed's `desc` is at most 128 bytes: a longer one (a field's path from the body in it) is cut, with `…`. */
function descOf(text: string): string {
  if (Buffer.byteLength(text, 'utf8') <= RTIO_LIMITS.descBytes) return text;
  let cut = '';
  for (const char of text) {
    if (Buffer.byteLength(`${cut}${char}…`, 'utf8') > RTIO_LIMITS.descBytes) break;
    cut += char;
  }
  return `${cut}…`;
}

/** A request's field as given, when it is one the seed allows to echo (Unicode text within its length); otherwise empty. */
const echo = (value: unknown, maxBytes: number = RTIO_LIMITS.nonceBytes) =>
  typeof value === 'string' && Buffer.byteLength(value, 'utf8') <= maxBytes && illFormedTextAt(value) === undefined
    ? value
    : '';

/** A request a web browser sent on a page's behalf (see appOf). */
const fromBrowser = (req: express.Request) =>
  req.get('origin') !== undefined || req.get('sec-fetch-site') !== undefined;

function isTrusted(trusted: BlockList, address: string | undefined): boolean {
  if (!address) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return trusted.check(mapped, 'ipv4');
  return trusted.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}
