import { HeraldError, type HeraldErrorCode } from '../../domain/heraldError';

/**
 * The device sockets' error frames (`{"error": {"code", "message"}}` on /msgpush and /rtio.ws) name a
 * refusal by this table's code: today HeraldError's own, written out so that a new or renamed code is a
 * decision here (docs/api/onepush.md, docs/api/rtio.md), not a silent change of a frame.
 */
const FRAME_CODES: Readonly<Record<HeraldErrorCode, string>> = {
  invalid: 'invalid',
  not_found: 'not_found',
  forbidden: 'forbidden',
  conflict: 'conflict',
  expired: 'expired',
  unauthenticated: 'unauthenticated',
  ticket_malformed: 'ticket_malformed',
  ticket_expired: 'ticket_expired',
  ticket_revoked: 'ticket_revoked',
  unknown_app: 'unknown_app',
  wrong_secret: 'wrong_secret',
  rate_limited: 'rate_limited',
  busy: 'busy',
};

/** A refusal as a socket frame's `error`. */
export const frameError = (error: HeraldError): { code: string; message: string } => ({
  code: FRAME_CODES[error.code],
  message: error.message,
});
