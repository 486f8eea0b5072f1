import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';

/**
 * A request's correlation id, wherever its work goes: every log line written while serving it carries
 * it (logger.ts), and every event it appends records it as `metadata.correlationId` (commandHandler.ts),
 * so a log line and the events of one request are found together. A caller may send its own as
 * `X-Correlation-Id` (1–128 of A-Z a-z 0-9 . _ : -); otherwise herald makes one. The response names it.
 */
const current = new AsyncLocalStorage<string>();

export const CORRELATION_HEADER = 'x-correlation-id';
const VALID = /^[A-Za-z0-9._:-]{1,128}$/;

export function currentCorrelationId(): string | undefined {
  return current.getStore();
}

export function correlate(): RequestHandler {
  return (req, res, next) => {
    const given = req.headers[CORRELATION_HEADER];
    const id = typeof given === 'string' && VALID.test(given) ? given : randomUUID();
    res.setHeader(CORRELATION_HEADER, id);
    current.run(id, next);
  };
}
