import { expect } from 'chai';
import { adding, EMPTY, has } from '../../domain/growingSet';

describe('growing set (a decider state that only grows, folded in O(1) per event)', () => {
  it('holds what was added, and an earlier state is unchanged by a later add', () => {
    const one = adding(EMPTY, 'alice');
    const two = adding(one, 'bob');
    expect([has(EMPTY, 'alice'), has(one, 'alice'), has(one, 'bob')]).to.deep.equal([false, true, false]);
    expect([has(two, 'alice'), has(two, 'bob'), has(two, 'carol')]).to.deep.equal([true, true, false]);
  });

  it('holds 100,000 items without recursion (has walks them in a loop)', () => {
    let set = EMPTY;
    for (let i = 0; i < 100_000; i++) set = adding(set, `user-${i}`);
    expect([has(set, 'user-0'), has(set, 'user-99999'), has(set, 'user-100000')]).to.deep.equal([true, true, false]);
  });
});
