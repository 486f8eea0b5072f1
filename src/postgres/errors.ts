import { EventStoreUnavailableError } from '../eventStore/eventStore';

/**
 * What a failure of the database says about its cause, decided here once, by SQLSTATE class
 * (PostgreSQL's manual, appendix A), for everything that retries or answers on it:
 *
 * - `unavailable`: the database could not be reached or went away — class 08 (connection exception),
 *   53 (insufficient resources: too many connections, out of memory, disk full), 57P01–57P03 (admin or
 *   crash shutdown, cannot connect now), Node's socket errors, node-postgres's dead-connection and pool
 *   timeout messages, and the event store saying so. Retried; an API answers 503.
 * - `transient`: the statement met something that passes — 40 (serialization failure, deadlock),
 *   57014 (statement_timeout, a cancel), 55P03 (lock_timeout), 25P03 and 57P05 (a session ended idle).
 *   Retried; an API answers 503.
 * - `data`: the statement's own data was refused — 22 (data exception: bad text, a number out of
 *   range) and 23 (integrity constraint violation). The same data will be refused again.
 * - `other`: anything else (a bug, SQL the server cannot run, an error of no database at all).
 */
export type FailureKind = 'unavailable' | 'transient' | 'data' | 'other';

const NODE_SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
const UNAVAILABLE_CODES = new Set(['57P01', '57P02', '57P03']);
const TRANSIENT_CODES = new Set(['57014', '55P03', '25P03', '57P05']);
// node-postgres raises these without a code: a socket that died mid-query, a pool that found no connection in time.
const UNAVAILABLE_MESSAGE =
  /Connection terminated|not queryable|connection is closed|timeout exceeded when trying to connect|Client has encountered a connection error/i;

export function classifyFailure(error: unknown): FailureKind {
  if (error instanceof EventStoreUnavailableError) return 'unavailable';
  if (!(error instanceof Error)) return 'other';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NODE_SOCKET_CODES.has(code) || UNAVAILABLE_CODES.has(code) || code.startsWith('08') || code.startsWith('53'))
      return 'unavailable';
    if (TRANSIENT_CODES.has(code) || code.startsWith('40')) return 'transient';
    if (code.startsWith('22') || code.startsWith('23')) return 'data';
  }
  if (UNAVAILABLE_MESSAGE.test(error.message)) return 'unavailable';
  // A wrapper (a GraphQL error, an error with a cause) is what it wraps.
  const cause = (error as { cause?: unknown; originalError?: unknown }).originalError ?? error.cause;
  return cause !== undefined && cause !== error ? classifyFailure(cause) : 'other';
}

/** True when the error says the database could not be reached or went away, rather than that the query was wrong. */
export function isConnectionError(error: unknown): boolean {
  return classifyFailure(error) === 'unavailable';
}

/** True when the same request may succeed in a moment: the database was unreachable or met a passing conflict. */
export function isTemporary(error: unknown): boolean {
  const kind = classifyFailure(error);
  return kind === 'unavailable' || kind === 'transient';
}
