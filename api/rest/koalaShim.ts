import querystring from 'node:querystring';
import { Readable } from 'node:stream';
import express from 'express';
import { isLeft } from 'fp-ts/lib/Either';
import * as t from 'io-ts';
import multer from 'multer';
import { HeraldError, type HeraldErrorCode } from '../../domain/heraldError';
import { MESSAGE_LIMITS } from '../../domain/message/message';
import { characterCount, UUID } from '../../domain/text';
import { isUserId, splitUserList, TICKET_LIMITS, USER_ID_MAX } from '../../domain/ticket/ticket';
import { StreamContendedError } from '../../src/command/commandHandler';
import { validRoles, type Tickets } from '../../src/identity/tickets';
import { parseSeq } from '../../src/messaging/inboxQueries';
import { MAX_ACKNOWLEDGE_IDS, MAX_REQUEST_ID_LENGTH, type Messaging } from '../../src/messaging/messaging';
import type { Clock } from '../../src/runtime/clock';
import type { Logger } from '../../src/runtime/logger';
import { illFormedTextOf } from './shimErrors';

/**
 * Koala web push (shared/seeds/000_83e3b79cc88886e5.txt): its three HTTP routes, unchanged.
 *
 * Every answer is the seed's envelope `{status, errcode, errmsg, result}` (JSON, UTF-8) with HTTP 200;
 * `status` is 0 on success and the error code otherwise. Koala's own client reads errors in jQuery's
 * `success` callback (`if (data.status != 0) … data.errmsg`), which a 4xx/5xx never reaches: the envelope
 * is the error, not the HTTP status. Codes: 1001 missing/corrupt parameters, 1002 unknown target,
 * 1003 no permission, 1004 bad ticket, 1005 session ended (the app's secret changed since the ticket was
 * issued), 1006 wrong app secret, 1007 unknown app, 2001 internal error (Retry-After when busy: send
 * again), 4001 sender restricted (over its sending rate; Retry-After), 4002 ticket expired. See
 * docs/api/koala.md.
 */

export const KoalaCode = {
  ok: 0,
  badParameters: 1001,
  unknownTarget: 1002,
  forbidden: 1003,
  badTicket: 1004,
  sessionError: 1005,
  wrongSecret: 1006,
  unknownApp: 1007,
  internal: 2001,
  senderRestricted: 4001,
  ticketExpired: 4002,
} as const;
type KoalaCode = (typeof KoalaCode)[keyof typeof KoalaCode];

/**
 * Koala's code for each HeraldError code. Busy (others changing the same record past the retry bound) is
 * the seed's system fault, 2001, with the error's message and Retry-After, so a client can tell it from
 * herald's own failure (2001 "internal error") and send again.
 */
export const KOALA_CODES: Readonly<Record<HeraldErrorCode, KoalaCode>> = {
  invalid: KoalaCode.badParameters,
  not_found: KoalaCode.unknownTarget,
  forbidden: KoalaCode.forbidden,
  conflict: KoalaCode.badParameters,
  expired: KoalaCode.unknownTarget,
  unauthenticated: KoalaCode.badTicket,
  ticket_malformed: KoalaCode.badTicket,
  ticket_expired: KoalaCode.ticketExpired,
  ticket_revoked: KoalaCode.sessionError,
  unknown_app: KoalaCode.unknownApp,
  wrong_secret: KoalaCode.wrongSecret,
  rate_limited: KoalaCode.senderRestricted,
  busy: KoalaCode.internal,
};

const badParameters = (message: string) => new HeraldError('invalid', message);

// --- wire format ---------------------------------------------------------------------------------
// Every optional field sent empty (`expire=`, `expire=""`, `user_roles=`) is taken as absent: its default.

/** A field's text as sent (a JSON number as its digits); undefined when it is not one value (a repeated field). */
const rawText = (u: unknown): string | undefined =>
  typeof u === 'string' ? u : typeof u === 'number' && Number.isFinite(u) ? String(u) : undefined;

/** A field's text with blanks around it and the seed's one pair of surrounding quotes dropped (`"0"` is 0). */
const bareText = (u: unknown): string | undefined => {
  const raw = rawText(u);
  return raw === undefined ? undefined : unquote(raw.trim()).trim();
};

/** An identifier (ticket, app key, secret, user id, request id): present, 1-`max` characters once bare. */
const id = (name: string, max: number) =>
  new t.Type<string, string, unknown>(
    name,
    (u): u is string => typeof u === 'string',
    (u, c) => {
      const value = bareText(u) ?? '';
      if (value.length === 0) return t.failure(u, c, `${name} is required`);
      return characterCount(value) <= max ? t.success(value) : t.failure(u, c, tooLong(name, max, value));
    },
    String,
  );

/**
 * A message's title or content: delivered exactly as sent (blanks and line breaks kept; only the seed's
 * surrounding quotes dropped); an empty or blank one is refused. Counted in characters (code points).
 */
const text = (name: string, max: number) =>
  new t.Type<string, string, unknown>(
    name,
    (u): u is string => typeof u === 'string',
    (u, c) => {
      const raw = rawText(u);
      const value = raw === undefined ? '' : unquote(raw);
      if (value.trim().length === 0) return t.failure(u, c, `${name} is required (not empty or blank)`);
      return characterCount(value) <= max ? t.success(value) : t.failure(u, c, tooLong(name, max, value));
    },
    String,
  );

/** A value over its limit is told so, never "required": it was sent, only too long. */
const tooLong = (name: string, max: number, value: string) =>
  `${name} is at most ${max} characters (this one has ${characterCount(value)})`;

/** Non-negative integer seconds (`expire`). */
const seconds = (name: string) =>
  new t.Type<number, string, unknown>(
    name,
    (u): u is number => typeof u === 'number',
    (u, c) => {
      const value = bareText(u);
      return value !== undefined && /^\d{1,12}$/.test(value)
        ? t.success(Number(value))
        : t.failure(u, c, `${name} must be a whole number of seconds`);
    },
    String,
  );

/**
 * A time as unix time (`execute`): seconds, or milliseconds (what Java's currentTimeMillis and
 * JavaScript's Date.now() give) for a value of 10^11 or more — as seconds that would be past the year
 * 5000. Answered in milliseconds.
 */
const unixTime = (name: string) =>
  new t.Type<number, string, unknown>(
    name,
    (u): u is number => typeof u === 'number',
    (u, c) => {
      const value = bareText(u);
      if (value === undefined || !/^\d{1,15}$/.test(value))
        return t.failure(u, c, `${name} must be unix time in whole seconds (or milliseconds)`);
      const n = Number(value);
      return t.success(n >= 1e11 ? n : n * 1000);
    },
    String,
  );

/**
 * A list of ids: split as every user list is (domain/ticket/ticket.ts splitUserList: blanks, commas,
 * semicolons, full-width ones, `、`), or given as a repeated field; duplicates dropped. No user id holds
 * a separator (no ticket is issued for one), so `users=a b` and `users=a，b` are the two users a and b,
 * never one user no one could ever receive as.
 */
const idList = (name: string, max: number, maxLength: number) =>
  new t.Type<string[], string, unknown>(
    name,
    (u): u is string[] => Array.isArray(u),
    (u, c) => {
      const values = (Array.isArray(u) ? u : [u]).map(bareText);
      if (values.some((v) => v === undefined)) return t.failure(u, c, `${name} is required`);
      const items = [
        ...new Set(
          values
            .flatMap((v) => splitUserList(v!))
            .map(unquote)
            .filter((s) => s.length > 0),
        ),
      ];
      if (items.length === 0 || items.length > max)
        return t.failure(u, c, `${name} must list 1-${max} values (separated by commas, semicolons or blanks)`);
      const long = items.find((item) => characterCount(item) > maxLength);
      if (long !== undefined) return t.failure(u, c, tooLong(`${name}: each value`, maxLength, long));
      return t.success(items);
    },
    (a) => a.join(','),
  );

/** An optional field: absent when missing or empty (`""` too), then its default. */
const optional = <A>(codec: t.Type<A, string, unknown>) =>
  new t.Type<A | undefined, string | undefined, unknown>(
    `${codec.name}?`,
    (u): u is A | undefined => u === undefined || codec.is(u),
    (u, c) => (u === undefined || bareText(u) === '' ? t.success(undefined) : codec.validate(u, c)),
    (a) => (a === undefined ? undefined : codec.encode(a)),
  );

const TicketRequest = t.type({
  app_key: id('app_key', 64),
  secret_key: id('secret_key', 256),
  user_id: id('user_id', USER_ID_MAX),
  user_roles: optional(idList('user_roles', TICKET_LIMITS.roles, TICKET_LIMITS.roleLength)),
});
const SendRequest = t.type({
  ticket: id('ticket', TICKET_LIMITS.ticketLength),
  users: idList('users', MESSAGE_LIMITS.recipients, USER_ID_MAX),
  title: text('title', MESSAGE_LIMITS.titleLength),
  content: text('content', MESSAGE_LIMITS.contentLength),
  // The seed's defaults when absent or empty: expire 0 = forever, execute 0 = now.
  expire: optional(seconds('expire')),
  execute: optional(unixTime('execute')),
  // herald's addition to the seed: a client's idempotency key, so a send retried after a lost answer
  // (a connection reset) sends nothing twice and answers the same message id.
  request_id: optional(id('request_id', MAX_REQUEST_ID_LENGTH)),
});
const AckRequest = t.type({
  ticket: id('ticket', TICKET_LIMITS.ticketLength),
  sids: idList('sids', MAX_ACKNOWLEDGE_IDS, 64),
});

// --- routes --------------------------------------------------------------------------------------

export function koalaRouter(deps: {
  readonly tickets: Tickets;
  readonly messaging: Messaging;
  readonly clock: Clock;
  readonly log: Logger;
}): express.Router {
  const { clock } = deps;
  const router = express.Router();
  // The seed names x-www-form-urlencoded for tickets and messages and multipart/form-data for ack, and
  // writes the header as `Content-Type: x-www-form-urlencoded`: every route takes multipart (fields
  // only, no files) and reads any other body as a form whatever its type says (none, text/plain, the
  // seed's spelling), or as a JSON object when it is one; query parameters too. A body sent as
  // multipart is read as multipart only when it is one (realMultipart): the seed's own ack is
  // `Content-Type: multipart/form-data` (no boundary) over a urlencoded body.
  const forms = formBody();

  router.post(
    '/koala/api/mas/tickets',
    forms,
    route(deps.log, async (req) => {
      const input = decode(TicketRequest, params(req));
      if (!isUserId(input.user_id))
        throw badParameters('user_id may not contain blanks, commas, semicolons or 、 (they separate user lists)');
      const roles = input.user_roles ?? [];
      if (!validRoles(roles))
        throw badParameters(
          `user_roles: at most ${TICKET_LIMITS.roles} roles of 1-${TICKET_LIMITS.roleLength} characters A-Z a-z 0-9 _ . : -`,
        );
      const { ticket } = await deps.tickets.issue({
        appId: input.app_key,
        secret: input.secret_key,
        userId: input.user_id,
        roles,
        now: clock(),
      });
      return ticket;
    }),
  );

  router.post(
    '/koala/api/mas/messages',
    forms,
    route(deps.log, async (req) => {
      const input = decode(SendRequest, params(req));
      const viewer = await deps.tickets.authenticate(input.ticket, clock());
      const sent = await deps.messaging.send(
        viewer,
        {
          to: input.users,
          title: input.title,
          content: input.content,
          expireSeconds: input.expire ?? 0,
          ...(input.execute !== undefined && input.execute > 0 && { executeAt: new Date(input.execute) }),
          ...(input.request_id !== undefined && { requestId: input.request_id }),
        },
        clock(),
      );
      return sent.id;
    }),
  );

  router.post(
    '/koala/api/mas/messages/ack',
    forms,
    route(deps.log, async (req) => {
      const input = decode(AckRequest, params(req));
      const viewer = await deps.tickets.authenticate(input.ticket, clock());
      const seqOf = new Map(input.sids.map((sid) => [sid, parseSeq(sid)] as const));
      if (input.sids.some((sid) => seqOf.get(sid) === undefined && !UUID.test(sid)))
        throw badParameters('sids must be message seqs (or message ids)');
      const idBySeq = await deps.messaging.messageIdsOfSeqs(
        viewer,
        [...seqOf.values()].filter((seq) => seq !== undefined),
      );
      const idOf = (sid: string): string | undefined => {
        const seq = seqOf.get(sid);
        return seq === undefined ? sid : idBySeq.get(seq);
      };
      const known = input.sids.filter((sid) => idOf(sid) !== undefined);
      // Every sid of a message delivered to this user is acknowledged, whatever the others are; an expired
      // one counts as done. The rest are named in a 1002 (1003 when all are other users' messages), so a
      // client that sends wrong sids notices; the ones it got right are acknowledged all the same.
      const { acknowledged, refused } =
        known.length > 0
          ? await deps.messaging.acknowledge(viewer, known.map(idOf) as string[], clock())
          : { acknowledged: 0, refused: [] };
      const refusedIds = new Map(refused.map((r) => [r.id, r.error.code] as const));
      const unknown = input.sids.filter(
        (sid) => idOf(sid) === undefined || (refusedIds.has(idOf(sid)!) && refusedIds.get(idOf(sid)!) !== 'forbidden'),
      );
      const othersMessages = known.filter((sid) => refusedIds.get(idOf(sid)!) === 'forbidden');
      if (unknown.length === 0 && othersMessages.length === 0) return acknowledged;
      const reasons = [
        ...(unknown.length > 0 ? [`no message delivered to this user: sids ${unknown.join(',')}`] : []),
        ...(othersMessages.length > 0 ? [`messages sent to other users: sids ${othersMessages.join(',')}`] : []),
      ];
      throw new HeraldError(
        unknown.length > 0 ? 'not_found' : 'forbidden',
        `${acknowledged} acknowledged; refused ${reasons.join('; ')}`,
      );
    }),
  );

  // Only the body parsers fail into here (route handlers answer their own errors): a body too large,
  // malformed urlencoded or multipart data, a file part, too many fields. All are bad parameters.
  router.use('/koala', (error: unknown, _req: express.Request, res: express.Response, next: express.NextFunction) => {
    if (res.headersSent) return next(error);
    const status = (error as { status?: number }).status;
    if (status === undefined || status < 500) return reply(res, KoalaCode.badParameters, bodyErrorMessage(error));
    deps.log.error({ err: error }, 'koala: unexpected error');
    return reply(res, KoalaCode.internal, 'internal error');
  });
  router.use('/koala', (_req, res) => reply(res, KoalaCode.unknownTarget, 'no such route'));
  return router;
}

/** A request with text that is not Unicode is bad parameters (illFormedTextOf), before any field is read. */
function route(log: Logger, handler: (req: express.Request) => Promise<unknown>): express.RequestHandler {
  const checked = async (req: express.Request) => {
    const illFormed = illFormedTextOf(req);
    if (illFormed !== undefined) throw badParameters(illFormed);
    return handler(req);
  };
  return (req, res) => {
    checked(req).then(
      (result) => answer(res, { status: 0, errcode: 0, errmsg: '', result }),
      (error: unknown) => {
        if (!(error instanceof HeraldError)) {
          log.error({ err: error, path: req.path }, 'koala: internal error');
          return reply(res, KoalaCode.internal, 'internal error');
        }
        if (error instanceof StreamContendedError)
          log.warn({ stream: error.streamName, attempts: error.attempts, path: req.path }, 'koala: busy');
        if (error.retryAfterSeconds !== undefined) res.set('retry-after', String(error.retryAfterSeconds));
        reply(res, KOALA_CODES[error.code], error.message);
      },
    );
  };
}

const BODY_LIMIT = '256kb';
const BODY_LIMIT_BYTES = 256 * 1024;

const isMultipartTyped = (req: { headers: { 'content-type'?: string } }) =>
  /^\s*multipart\//i.test(req.headers['content-type'] ?? '');

/** The boundary a multipart content type names (`boundary=XYZ` or `boundary="X Y"`); undefined when none. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  const match = /;\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType ?? '');
  return match?.[1] ?? match?.[2];
}

/**
 * A body typed multipart (buffered by express.raw) handed to `parse` (multer) only when it is multipart:
 * its type names a boundary and the body opens with that boundary's delimiter (after a preamble, RFC
 * 2046, at most). Otherwise it is the text it is — the seed's `multipart/form-data` header over
 * `tickets=…&sids=…` — and read as any other body (formFields).
 */
function realMultipart(parse: express.RequestHandler): express.RequestHandler {
  return (req, res, next) => {
    const raw: unknown = req.body;
    if (!Buffer.isBuffer(raw)) return next();
    const boundary = multipartBoundary(req.headers['content-type']);
    const delimiter = boundary === undefined ? undefined : `--${boundary}`;
    if (
      delimiter === undefined ||
      !(
        raw.subarray(0, delimiter.length).toString('latin1') === delimiter ||
        raw.includes(`\r\n${delimiter}`, 0, 'latin1')
      )
    ) {
      req.body = raw.toString('utf8');
      return next();
    }
    // multer reads a stream with the request's headers: the buffered body, replayed.
    const replay = Object.assign(Readable.from([raw]), { headers: req.headers }) as unknown as express.Request;
    parse(replay, res, (error?: unknown) => {
      if (error !== undefined) return next(error);
      req.body = replay.body;
      next();
    });
  };
}

/**
 * The body as fields (req.body), in one middleware: a body typed multipart is buffered (express.raw) and
 * parsed by multer when it is multipart (realMultipart); any other is read as text (textBody); either
 * text then becomes fields (formFields). Only a multipart-typed request pays for the multipart parsers.
 */
function formBody(): express.RequestHandler {
  const raw = express.raw({ type: () => true, limit: BODY_LIMIT });
  const multipart = realMultipart(multer({ limits: { fields: 16, fieldSize: 256 * 1024, files: 0 } }).none());
  const text = textBody(BODY_LIMIT_BYTES);
  return (req, res, next) => {
    const fields = (error?: unknown) => (error === undefined ? formFields(req, res, next) : next(error));
    if (!isMultipartTyped(req)) return text(req, res, fields);
    raw(req, res, (error?: unknown) => (error === undefined ? multipart(req, res, fields) : next(error)));
  };
}

/**
 * Any body not typed multipart, as text (req.body a string). A body in UTF-8 (no charset, or a UTF-8
 * one) and not compressed — what every Koala client sends — is read here, in one step; any other goes
 * through express.text, which decodes its charset and inflates it. Both refuse a body over `limit`
 * (413, "request entity too large") and drop a byte order mark.
 */
function textBody(maxBytes: number): express.RequestHandler {
  const general = express.text({ type: (req) => !isMultipartTyped(req), limit: maxBytes });
  return (req, res, next) => {
    const contentType = req.headers['content-type'];
    const encoding = req.headers['content-encoding'];
    if (
      (encoding !== undefined && encoding.toLowerCase() !== 'identity') ||
      (contentType !== undefined && (isMultipartTyped(req) || !isUtf8(contentType)))
    )
      return general(req, res, next);
    req.body ??= {};
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) return next();
    if (length !== undefined && Number(length) > maxBytes) return next(tooLarge());
    const chunks: Buffer[] = [];
    let received = 0;
    const stop = (error?: unknown) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', stop);
      req.off('aborted', onAborted);
      if (error !== undefined) {
        req.unpipe();
        req.pause();
        next(error);
      }
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > maxBytes) stop(tooLarge());
      else chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8');
      req.body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
      next();
    };
    const onAborted = () => stop(Object.assign(new Error('request aborted'), { status: 400, type: 'request.aborted' }));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', stop);
    req.on('aborted', onAborted);
  };
}

const tooLarge = () => Object.assign(new Error('request entity too large'), { status: 413, type: 'entity.too.large' });

/** Whether a content type's charset, if it names one, is UTF-8. */
function isUtf8(contentType: string): boolean {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(contentType)?.[1];
  return charset === undefined || /^utf-?8$/i.test(charset);
}

/** The text body (express.text) as fields: a JSON object when it is one, a urlencoded form otherwise. */
const formFields: express.RequestHandler = (req, _res, next) => {
  if (typeof req.body !== 'string') return next();
  try {
    req.body = fieldsOf(req.body);
    next();
  } catch (error) {
    next(error);
  }
};

const MAX_FORM_FIELDS = 1000;

function fieldsOf(body: string): Record<string, unknown> {
  if (/^\s*\{/.test(body)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw Object.assign(new Error('malformed JSON'), { status: 400 });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw Object.assign(new Error('malformed JSON'), { status: 400 });
    // null is JSON's absent field.
    return Object.fromEntries(Object.entries(parsed).filter(([, value]) => value !== null));
  }
  if (body.split('&').length > MAX_FORM_FIELDS) throw Object.assign(new Error('too many parameters'), { status: 413 });
  return querystring.parse(body);
}

function bodyErrorMessage(error: unknown): string {
  if (error instanceof multer.MulterError)
    return `malformed form: ${error.message}${error.field ? ` (${error.field})` : ''}`;
  const message = (error as Error).message ?? '';
  // body-parser's and busboy's own messages name the problem and nothing of the server.
  return /^[\w ,.:'()-]{1,120}$/.test(message) ? `malformed request body: ${message}` : 'malformed request body';
}

/** An error in the seed's envelope, as HTTP 200 (see the top of this file: Koala's clients read the envelope). */
function reply(res: express.Response, code: KoalaCode, errmsg: string): void {
  answer(res, { status: code, errcode: code, errmsg, result: null });
}

/**
 * The envelope as HTTP 200 JSON, written straight to the response: express's res.json would also parse
 * the content type back, hash the body for an ETag and check freshness, none of which a POST's answer
 * uses (issue 24: a measurable share of a send's CPU).
 */
function answer(res: express.Response, envelope: { status: number; errcode: number; errmsg: string; result: unknown }) {
  const body = JSON.stringify(envelope);
  res.statusCode = 200;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}

/**
 * Other names Koala's clients give a field: the seed's examples spell `ticket` as `tickets`; getTickets'
 * signature names the secret `app_secret` where its parameter list says `secret_key`; Koala's own demo
 * page logs in with `app_id` for `app_key`.
 */
const ALIASES: ReadonlyArray<[string, string]> = [
  ['ticket', 'tickets'],
  ['secret_key', 'app_secret'],
  ['app_key', 'app_id'],
];

/**
 * Query parameters and form fields; the body wins. A field missing or empty is taken from its alias; a
 * list may be sent as jQuery sends arrays (`users[]=a&users[]=b`).
 */
function params(req: express.Request): Record<string, unknown> {
  const merged: Record<string, unknown> = {
    ...(req.query as Record<string, unknown>),
    ...((req.body ?? {}) as Record<string, unknown>),
  };
  for (const list of ['users', 'sids', 'user_roles']) {
    if (merged[list] === undefined && merged[`${list}[]`] !== undefined) merged[list] = merged[`${list}[]`];
  }
  for (const [name, alias] of ALIASES) {
    if ((merged[name] === undefined || bareText(merged[name]) === '') && merged[alias] !== undefined)
      merged[name] = merged[alias];
  }
  return merged;
}

function decode<A>(codec: t.Decoder<unknown, A>, input: unknown): A {
  const result = codec.decode(input);
  if (isLeft(result)) {
    const message = result.left.map((e) => e.message).find((m) => m !== undefined) ?? 'missing or malformed parameters';
    throw badParameters(message);
  }
  return result.right;
}

/** The seed's examples quote values (`title="system upgrade"`); one pair of surrounding quotes is dropped. */
function unquote(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
}
