import pino from 'pino';

export type Logger = pino.Logger;

/** JSON logs on stdout. Secrets never reach them: the paths below are redacted wherever they appear. */
export function createLogger(level: string = 'info'): Logger {
  return pino({
    level,
    base: { service: 'herald' },
    redact: {
      paths: ['secret', '*.secret', 'secret_key', '*.secret_key', 'password', '*.password', 'ticket', '*.ticket', 'req.headers.authorization', 'req.headers["x-app-key"]', 'req.headers["x-client-token"]'],
      censor: '[redacted]',
    },
  });
}
