import { expect } from 'chai';
import { plateau } from '../../bench/stats';

/** The storage soak's plateau verdict (bench/soak.ts): the last third's peak against the middle third's. */
describe('bench plateau', () => {
  const run = 1800;
  const sampled = (value: (t: number) => number) =>
    Array.from({ length: 61 }, (_, k) => ({ t: k * 30, v: value(k * 30) }));

  it('a series that keeps growing has not levelled off', () => {
    const p = plateau(
      sampled((t) => 10 * t),
      run,
      0.1,
      20,
    );
    expect(p.reached).to.equal(false);
    expect(p.lastThirdMax).to.equal(18_000);
    expect(p.middleThirdMax).to.equal(12_000);
  });

  it('a sawtooth whose peaks stay level has (pruning passes remove rows in steps)', () => {
    const p = plateau(
      sampled((t) => Math.min(t, 300) * 8 - (t % 60 === 0 ? 500 : 0)),
      run,
      0.1,
      20,
    );
    expect(p.reached).to.equal(true);
  });

  it('growth within the tolerance and slack is level, beyond it is not', () => {
    const levelled = (end: number) => sampled((t) => (t <= 1200 ? 1000 : end));
    expect(plateau(levelled(1120), run, 0.1, 20).reached).to.equal(true);
    expect(plateau(levelled(1121), run, 0.1, 20).reached).to.equal(false);
  });

  it('cannot judge without a sample in each third', () => {
    const p = plateau([{ t: 10, v: 1 }], run, 0.1, 20);
    expect(p.reached).to.equal(null);
  });
});
