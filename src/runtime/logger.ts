import pino from 'pino';
import { classifyFailure } from '../postgres/errors';
import { currentCorrelationId } from './correlation';

export type Logger = pino.Logger;

/**
 * JSON logs, on stdout — or on stderr for the commands whose stdout is their output (replay, status).
 * Secrets never reach them: the paths below are redacted wherever they appear.
 */
export function createLogger(
  level: string = 'info',
  to: 'stdout' | 'stderr' | pino.DestinationStream = 'stdout',
): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'herald' },
    // The request being served, if any (correlation.ts).
    mixin: () => {
      const correlationId = currentCorrelationId();
      return correlationId ? { correlationId } : {};
    },
    serializers: { err: errorForLog },
    redact: {
      paths: [
        'secret',
        '*.secret',
        'secret_key',
        '*.secret_key',
        'password',
        '*.password',
        'ticket',
        '*.ticket',
        'req.headers.authorization',
        'req.headers["x-app-key"]',
        'req.headers["x-client-token"]',
      ],
      censor: '[redacted]',
    },
  };
  if (to === 'stdout') return pino(options);
  return pino(options, to === 'stderr' ? pino.destination(2) : to);
}

const MAX_MESSAGE = 500;
const STACK_FRAMES = 8;

/**
 * An error as a log field, small whatever the error holds: its class, message, code, the database's
 * own fields that say where (constraint, table), and its cause — never its other properties (pg-pool
 * puts the whole connection on `err.client`: an 8 KB line). The top of the stack only for failures
 * herald did not expect; a database unreachable, a timeout or bad data have nothing to find in one.
 */
export function errorForLog(error: unknown, depth = 0): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error).slice(0, MAX_MESSAGE) };
  const { code, constraint, table } = error as { code?: unknown; constraint?: unknown; table?: unknown };
  return {
    type: error.name,
    message: error.message.slice(0, MAX_MESSAGE),
    ...(typeof code === 'string' && { code }),
    ...(typeof constraint === 'string' && { constraint }),
    ...(typeof table === 'string' && { table }),
    ...(classifyFailure(error) === 'other' &&
      error.stack && {
        stack: error.stack
          .split('\n')
          .slice(1, STACK_FRAMES + 1)
          .map((line) => line.trim())
          .join(' | ')
          .slice(0, 1000),
      }),
    ...(error.cause !== undefined && depth < 2 && { cause: errorForLog(error.cause, depth + 1) }),
  };
}
