import pino from 'pino';
import { currentCorrelationId } from './correlation';

export type Logger = pino.Logger;

/**
 * JSON logs, on stdout — or on stderr for the commands whose stdout is their output (replay, status).
 * Secrets never reach them: the paths below are redacted wherever they appear.
 */
export function createLogger(level: string = 'info', to: 'stdout' | 'stderr' = 'stdout'): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'herald' },
    // The request being served, if any (correlation.ts).
    mixin: () => {
      const correlationId = currentCorrelationId();
      return correlationId ? { correlationId } : {};
    },
    redact: {
      paths: ['secret', '*.secret', 'secret_key', '*.secret_key', 'password', '*.password', 'ticket', '*.ticket', 'req.headers.authorization', 'req.headers["x-app-key"]', 'req.headers["x-client-token"]'],
      censor: '[redacted]',
    },
  };
  return to === 'stderr' ? pino(options, pino.destination(2)) : pino(options);
}
