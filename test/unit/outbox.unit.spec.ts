import { expect } from 'chai';
import { DomainError } from '../../domain/decider';
import {
  decideAttempt,
  evolveAttempt,
  firstAttemptAt,
  isDue,
  maxAttempts,
  type AttemptState,
  type RetrySchedule,
} from '../../domain/outbox';

// domain/outbox.ts: the part the email and RTIO report deciders share (issue 21, item 9: one outbox).
describe('outbox item: attempts on a schedule', () => {
  const schedule: RetrySchedule = { retryDelaysMs: [2000, 4000] };
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1) + s * 1000).toISOString();
  const fold = (recorded: ReturnType<typeof decideAttempt>[]) =>
    recorded.reduce<AttemptState>((state, r) => (r ? evolveAttempt(state, r) : state), firstAttemptAt(at(0)));

  it('is due at once, then after each failure at its wait; the attempt after the last wait is final', () => {
    expect(maxAttempts(schedule)).to.equal(3);
    let state = firstAttemptAt(at(0));
    expect(isDue(state, new Date(at(0)))).to.equal(true);
    const first = decideAttempt(schedule, state, 1, { ok: false, error: 'HTTP 500' }, at(5));
    expect(first).to.deep.equal({ succeeded: false, attempt: 1, error: 'HTTP 500', final: false, retryAt: at(7) });
    state = evolveAttempt(state, first!);
    expect(isDue(state, new Date(at(6)))).to.equal(false);
    expect(isDue(state, new Date(at(7)))).to.equal(true);
    state = evolveAttempt(state, decideAttempt(schedule, state, 2, { ok: false, error: 'x' }, at(7))!);
    expect(state.nextAttemptAt).to.equal(at(11));
    const last = decideAttempt(schedule, state, 3, { ok: false, error: 'x' }, at(11));
    expect(last).to.include({ final: true, retryAt: null });
    state = evolveAttempt(state, last!);
    expect(state).to.deep.equal({ status: 'failed', attempts: 3, nextAttemptAt: null });
    expect(isDue(state, new Date(at(99)))).to.equal(false);
  });

  it('records one outcome per attempt: a racing failure records nothing, a success after it still counts', () => {
    const failed = fold([decideAttempt(schedule, firstAttemptAt(at(0)), 1, { ok: false, error: 'x' }, at(1))]);
    expect(decideAttempt(schedule, failed, 1, { ok: false, error: 'again' }, at(1))).to.equal(undefined);
    const succeeded = decideAttempt(schedule, failed, 1, { ok: true }, at(1));
    expect(succeeded).to.deep.equal({ succeeded: true, attempt: 1 });
    const settled = evolveAttempt(failed, succeeded!);
    expect(settled).to.deep.equal({ status: 'succeeded', attempts: 1, nextAttemptAt: null });
    expect(decideAttempt(schedule, settled, 2, { ok: false, error: 'late' }, at(3))).to.equal(undefined);
  });

  it('refuses an attempt that skips ahead, and a time that is not one', () => {
    expect(() => decideAttempt(schedule, firstAttemptAt(at(0)), 2, { ok: true }, at(1))).to.throw(
      DomainError,
      'attempt: must be 1-1',
    );
    expect(() => decideAttempt(schedule, firstAttemptAt(at(0)), 1, { ok: false, error: 'x' }, 'soon')).to.throw(
      DomainError,
      'now: not a valid time',
    );
  });
});
