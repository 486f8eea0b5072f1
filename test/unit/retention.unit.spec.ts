import { expect } from 'chai';
import { deliveryRemovable, formatKeep, messageRemovable, parseKeep, retentionCutoff } from '../../domain/retention';

/** The retention rules of domain/retention.ts that are not SQL: durations, the cutoff, the seeds' protected cases. */
describe('retention rules', () => {
  it('reads durations as HERALD_RETENTION_* takes them, and writes them back', () => {
    for (const [text, ms] of [
      ['0', 0],
      ['90s', 90_000],
      ['15m', 900_000],
      ['2h', 7_200_000],
      ['7d', 604_800_000],
      ['forever', 'forever'],
    ] as const) {
      expect(parseKeep(text), text).to.equal(ms);
      expect(formatKeep(ms)).to.equal(text);
    }
    for (const bad of ['', '7', '1.5d', '-1d', '1w', '36501d', 'Forever', ' 7d'])
      expect(parseKeep(bad), bad).to.equal(undefined);
    expect(formatKeep(120_000)).to.equal('2m');
  });

  it('has no cutoff for what is kept forever', () => {
    const now = new Date('2026-06-01T00:00:00Z');
    expect(retentionCutoff(now, 'forever')).to.equal(undefined);
    expect(retentionCutoff(now, 3600_000)).to.deep.equal(new Date('2026-05-31T23:00:00Z'));
  });

  it('never removes a Koala message with expire 0 (000: 永久有效) nor an unconfirmed needConfirm delivery (003), however old', () => {
    const future = new Date('2999-01-01T00:00:00Z');
    const past = new Date('2000-01-01T00:00:00Z');
    expect(messageRemovable({ status: 'delivered', expiresAt: null }, future)).to.equal(false);
    expect(messageRemovable({ status: 'scheduled', expiresAt: past }, future)).to.equal(false);
    expect(messageRemovable({ status: 'delivered', expiresAt: past }, future)).to.equal(true);
    expect(deliveryRemovable({ status: 'delivered', needsConfirm: true, updatedAt: past }, future)).to.equal(false);
    expect(deliveryRemovable({ status: 'pending', needsConfirm: false, updatedAt: past }, future)).to.equal(false);
    expect(deliveryRemovable({ status: 'dropped', needsConfirm: true, updatedAt: past }, future)).to.equal(true);
  });
});
