import type express from 'express';
import { isLeft } from 'fp-ts/lib/Either';
import * as t from 'io-ts';
import { MAX_REQUEST_ID_LENGTH } from '../../src/messaging/messaging';
import { badInput } from './shimErrors';

/**
 * herald's optional idempotency key on the sending routes whose seed has none (ONE-PUSH's send,
 * topvdn's pushes): the `Idempotency-Key` header (the name of the IETF httpapi draft), so the seed's
 * bodies and answers stay as they are. The same key from the same sender makes the same pushes: a
 * retry after a connection reset appends nothing twice and answers the same ids; the same key with
 * another body is refused (409). 1–128 printable ASCII characters, as a header carries them.
 */
const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';

const IdempotencyKey = t.refinement(
  t.string,
  (key) => key.length <= MAX_REQUEST_ID_LENGTH && /^[\x21-\x7e]+$/.test(key),
  'IdempotencyKey',
);

/** The request's key, undefined without one; a malformed one is a 400 in the shim's envelope. */
export function idempotencyKeyOf(req: express.Request): string | undefined {
  const raw = req.get(IDEMPOTENCY_KEY_HEADER);
  if (raw === undefined) return undefined;
  const decoded = IdempotencyKey.decode(raw.trim());
  if (isLeft(decoded)) throw badInput(`Idempotency-Key: 1-${MAX_REQUEST_ID_LENGTH} printable ASCII characters`);
  return decoded.right;
}
