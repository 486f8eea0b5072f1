/**
 * herald's one error type: a refused request, named by a stable `code`. Deciders, services and the
 * shims' own checks throw it (or a subclass that fixes the code and carries detail); each API turns a
 * code into its wire answer with one table (api/rest/koalaShim.ts KOALA_CODES, api/rest/shimErrors.ts
 * HTTP_ANSWERS for ONE-PUSH and topvdn, api/rest/datahubShim.ts DATAHUB_ANSWERS, api/rest/rtioShim.ts
 * RTIO_ANSWERS, api/graphql/guards.ts GRAPHQL_CODES, api/sockets/frameErrors.ts for the device sockets'
 * error frames). Anything else thrown is herald's own failure:
 * each API's internal error, its details only logged. A new code is a compile error in every table until
 * each API says how it answers it.
 */
export class HeraldError extends Error {
  override readonly name: string = 'HeraldError';
  constructor(
    readonly code: HeraldErrorCode,
    message: string,
    /** When the same request may succeed again (sent as Retry-After where the API has it). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** Every code, each with what it means; `HeraldErrorCode` is their union. */
export const HERALD_ERROR_CODES = [
  /** The request's own input is refused: a bad value, a value over its limit. */
  'invalid',
  'not_found',
  'forbidden',
  'conflict',
  'expired',
  /** No credentials, or credentials of no known kind. */
  'unauthenticated',
  /** A ticket that is not herald's, has expired, or belongs to a session that has ended (its app's secret changed). */
  'ticket_malformed',
  'ticket_expired',
  'ticket_revoked',
  /** App credentials (app id and secret) refused. */
  'unknown_app',
  'wrong_secret',
  /** The sender went over its sending rate; `retryAfterSeconds` says when to try again. */
  'rate_limited',
  /** Others kept changing the same record; nothing was changed, the request may be sent again. */
  'busy',
] as const;
export type HeraldErrorCode = (typeof HERALD_ERROR_CODES)[number];
