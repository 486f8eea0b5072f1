import { expect } from 'chai';
import { shouldLinger } from '../../src/eventStore/postgres/append';

/** src/eventStore/postgres/append.ts: when the group commit waits for more appends before committing. */
describe('group commit linger', () => {
  it('waits right after a recent small group that was not alone', () => {
    expect(shouldLinger(2, 0, 1)).to.equal(true);
    expect(shouldLinger(15, 4.9, 15)).to.equal(true);
  });

  it('never waits for a lone client, after a pause, after a large group, or with enough appends waiting', () => {
    expect(shouldLinger(1, 0, 1), 'a lone client').to.equal(false);
    expect(shouldLinger(0, Infinity, 1), 'the first append').to.equal(false);
    expect(shouldLinger(4, 5, 1), 'the previous commit 5 ms ago').to.equal(false);
    expect(shouldLinger(4, 60_000, 1), 'an append after idle').to.equal(false);
    expect(shouldLinger(16, 0, 3), 'a busy store').to.equal(false);
    expect(shouldLinger(4, 0, 16), 'enough waiting').to.equal(false);
  });
});
