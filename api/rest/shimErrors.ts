import type express from 'express';
import { HeraldError, type HeraldErrorCode } from '../../domain/heraldError';
import { illFormedTextAt, notUnicode } from '../../domain/text';
import { StreamContendedError } from '../../src/command/commandHandler';
import type { Logger } from '../../src/runtime/logger';

/**
 * A JSON shim's answer to a failed request (ONE-PUSH, topvdn, datahub), before the shim puts it in its own
 * envelope: an HTTP status, a stable code and a message for the caller. A HeraldError becomes one through
 * the shim's table (HTTP_ANSWERS); errors herald did not anticipate are 500 `internal`, their details only
 * logged. Thrown as it is only for what is the wire's own (a body too large, an unknown route).
 */
export class ShimError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Sent as Retry-After. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export const badInput = (message: string) => new HeraldError('invalid', message);

/** An HTTP status and the envelope's `code`, for each HeraldError code. */
export type HttpAnswers = Readonly<Record<HeraldErrorCode, readonly [status: number, code: string]>>;

/**
 * How ONE-PUSH and topvdn answer each HeraldError code (datahub: DATAHUB_ANSWERS, this table but for one
 * code). Busy is neither herald's failure nor the caller's: others were changing the same record, and the
 * request may be sent again (Retry-After, as for 429).
 */
export const HTTP_ANSWERS: HttpAnswers = {
  invalid: [400, 'bad_request'],
  not_found: [404, 'not_found'],
  forbidden: [403, 'forbidden'],
  conflict: [409, 'conflict'],
  expired: [410, 'gone'],
  unauthenticated: [401, 'unauthorized'],
  ticket_malformed: [401, 'unauthorized'],
  ticket_expired: [401, 'unauthorized'],
  ticket_revoked: [401, 'unauthorized'],
  unknown_app: [401, 'unauthorized'],
  wrong_secret: [401, 'unauthorized'],
  rate_limited: [429, 'too_many_requests'],
  busy: [503, 'busy'],
};

/** The shim's answer to what a request threw, by `answers`. */
export function toShimError(error: unknown, answers: HttpAnswers = HTTP_ANSWERS): ShimError {
  if (error instanceof ShimError) return error;
  if (error instanceof HeraldError) {
    const [status, code] = answers[error.code];
    return new ShimError(status, code, error.message, error.retryAfterSeconds);
  }
  return new ShimError(500, 'internal', 'internal error');
}

/**
 * The refusal of a request whose query string or parsed body holds text that is not Unicode (a lone
 * surrogate from a JSON `\ud800` escape), naming the field; undefined when all its text is Unicode.
 * Every shim asks it before reading any field (issue 21 item 5).
 */
export function illFormedTextOf(req: express.Request): string | undefined {
  const path = illFormedTextAt(req.query) ?? illFormedTextAt(req.body);
  return path === undefined ? undefined : notUnicode(path || 'the body');
}

/**
 * An async route whose errors reach `send` as ShimErrors (by `answers`); a request with text that is not
 * Unicode is bad input (illFormedTextOf). Express's body-parser errors (malformed JSON, too large) are a
 * shim's too: `bodyErrors` puts them in the same envelope.
 */
export function shimRoute(
  log: Logger,
  shim: string,
  send: (res: express.Response, req: express.Request, error: ShimError) => void,
  handler: (req: express.Request, res: express.Response) => Promise<void>,
  answers: HttpAnswers = HTTP_ANSWERS,
): express.RequestHandler {
  const checked = async (req: express.Request, res: express.Response) => {
    const illFormed = illFormedTextOf(req);
    if (illFormed !== undefined) throw badInput(illFormed);
    await handler(req, res);
  };
  return (req, res) => {
    checked(req, res).catch((error: unknown) => {
      const known = toShimError(error, answers);
      if (error instanceof StreamContendedError)
        log.warn({ stream: error.streamName, attempts: error.attempts, path: req.path }, `${shim}: busy`);
      else if (known.status >= 500) log.error({ err: error, path: req.path }, `${shim}: internal error`);
      if (known.retryAfterSeconds !== undefined) res.set('retry-after', String(known.retryAfterSeconds));
      send(res, req, known);
    });
  };
}

/**
 * What a body parser's error (express.text/json in anyJsonBody, Express's path decoding) says went wrong,
 * in a shim's terms, so each shim answers it in its own envelope and none sends a caller looking in the
 * wrong place (an unknown charset is not "malformed JSON"):
 * - too large (413): `limit` says how large a body may be;
 * - a charset (or Content-Encoding) herald cannot decode: `unsupported` (415, or 400 for a shim whose seed
 *   lists no 415), naming it;
 * - a path that is not percent-encoded UTF-8 (Express decodes parameters before any route): 400;
 * - anything else the body's own fault: 400 with `malformed`.
 */
export function bodyError(
  error: unknown,
  options: { readonly limit: string; readonly unsupported: 400 | 415; readonly malformed?: string },
): ShimError {
  const { status, type, charset, encoding } = error as {
    status?: unknown;
    type?: unknown;
    charset?: unknown;
    encoding?: unknown;
  };
  const badBody = (message: string) => new ShimError(400, 'bad_request', message);
  if (status === 413) return new ShimError(413, 'too_large', `request body too large (at most ${options.limit})`);
  const unsupported = (message: string) =>
    new ShimError(options.unsupported, options.unsupported === 415 ? 'unsupported_media_type' : 'bad_request', message);
  // body-parser's own names (a charset is a token from the caller's header: quoted, capped).
  const named = (value: unknown) => JSON.stringify(String(value).slice(0, 40));
  if (type === 'charset.unsupported')
    return unsupported(`unsupported charset ${named(charset)} (UTF-8, GBK, … are read)`);
  if (type === 'encoding.unsupported')
    return unsupported(`unsupported content encoding ${named(encoding)} (identity, gzip, deflate are read)`);
  if (error instanceof URIError) return badBody('malformed request path (not percent-encoded UTF-8)');
  if (type === 'json.not_object') return badBody((error as Error).message);
  return badBody(options.malformed ?? 'malformed JSON body');
}

/** bodyError as a router's error handler, answered by `send` in the shim's envelope. */
export function bodyErrors(
  send: (res: express.Response, req: express.Request, error: ShimError) => void,
  options: Parameters<typeof bodyError>[1],
): express.ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) return next(error);
    send(res, req, bodyError(error, options));
  };
}
