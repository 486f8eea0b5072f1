import * as t from 'io-ts';
import { DomainError } from './decider';
import { recordableError } from './text';

/**
 * An outbox item's attempts: one side effect (an email, a forwarded report) tried until it succeeds or
 * its schedule ends. The part every such aggregate shares — when an item is due, and which outcome an
 * attempt records — is decided here once; each aggregate wraps the decision in its own events
 * (EmailSent/EmailFailed, RtioReportForwarded/RtioReportForwardFailed). src/runtime/outbox.ts runs them.
 *
 * One outcome per attempt, none after a success or a final failure, so attempts racing on one item
 * (two nodes, or a retry after a timeout) record it once: the loser decides to nothing.
 */

/** The fields of a failed attempt's event (EmailFailed, RtioReportForwardFailed), after the item's own. */
export const failedAttemptFields = {
  attempt: t.number,
  error: t.string,
  /** No attempt is left: the item will not be tried again. */
  final: t.boolean,
  failedAt: t.string,
  /** When to try again; null when final. */
  retryAt: t.union([t.string, t.null]),
};

/** The schedule as data: the wait after failed attempt n (1-based); the attempt after the last wait is the last. */
export interface RetrySchedule {
  readonly retryDelaysMs: readonly number[];
}

export const maxAttempts = (schedule: RetrySchedule): number => schedule.retryDelaysMs.length + 1;

/** Where an item stands. */
export interface AttemptState {
  /** `failed` is final; a failure with attempts left stays `pending`. */
  readonly status: 'pending' | 'succeeded' | 'failed';
  /** Attempts whose outcome is recorded. */
  readonly attempts: number;
  /** When the next attempt is due; null once succeeded or failed for good. */
  readonly nextAttemptAt: string | null;
}

/** A new item: its first attempt is due at once. */
export const firstAttemptAt = (at: string): AttemptState => ({ status: 'pending', attempts: 0, nextAttemptAt: at });

export const isDue = (state: AttemptState, now: Date): boolean =>
  state.status === 'pending' && state.nextAttemptAt !== null && Date.parse(state.nextAttemptAt) <= now.getTime();

/** What an attempt found: the destination took the item, or why not (already free of secrets). */
export type AttemptOutcome = { readonly ok: true } | { readonly ok: false; readonly error: string };

/** The outcome to record, as each aggregate's event carries it. */
export type RecordedAttempt =
  | { readonly succeeded: true; readonly attempt: number }
  | {
      readonly succeeded: false;
      readonly attempt: number;
      readonly error: string;
      readonly final: boolean;
      readonly retryAt: string | null;
    };

export const ERROR_LENGTH = 512;

/**
 * The outcome of attempt `attempt` (1-based) made at `now`; undefined when there is nothing to record:
 * the item is settled already, or a racing attempt recorded this failure first. A success is recorded
 * even for an attempt whose failure a racing attempt recorded: the side effect did happen.
 */
export function decideAttempt(
  schedule: RetrySchedule,
  state: AttemptState,
  attempt: number,
  outcome: AttemptOutcome,
  now: string,
): RecordedAttempt | undefined {
  if (state.status !== 'pending') return undefined;
  const last = Math.min(state.attempts + 1, maxAttempts(schedule));
  if (!Number.isInteger(attempt) || attempt < 1 || attempt > last)
    throw new DomainError('invalid', `attempt: must be 1-${last}`);
  if (outcome.ok) return { succeeded: true, attempt };
  if (attempt <= state.attempts) return undefined;
  const at = Date.parse(now);
  if (Number.isNaN(at)) throw new DomainError('invalid', 'now: not a valid time');
  const delay = schedule.retryDelaysMs[attempt - 1];
  const final = delay === undefined;
  return {
    succeeded: false,
    attempt,
    error: recordableError(outcome.error, ERROR_LENGTH),
    final,
    retryAt: final ? null : new Date(at + delay).toISOString(),
  };
}

export function evolveAttempt(state: AttemptState, recorded: RecordedAttempt): AttemptState {
  if (state.status !== 'pending') return state;
  const attempts = Math.max(state.attempts, recorded.attempt);
  if (recorded.succeeded) return { status: 'succeeded', attempts, nextAttemptAt: null };
  return { status: recorded.final ? 'failed' : 'pending', attempts, nextAttemptAt: recorded.retryAt };
}

/** An item's state after an attempt's recorded outcome, in an aggregate whose stream may hold no item yet. */
export function evolveItem<S extends AttemptState>(
  state: S | { readonly status: 'none' },
  recorded: RecordedAttempt,
): S | { readonly status: 'none' } {
  return state.status === 'none' ? state : { ...state, ...evolveAttempt(state, recorded) };
}
