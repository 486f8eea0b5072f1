import { expect } from 'chai';
import { Batcher } from '../../src/runtime/batcher';

// Issue 21 item 7: a bus gap makes every subscriber of a node ask the store at once; that is one query.
describe('Batcher: the requests of one turn are one load', () => {
  it('answers each request with its own result, from one load per turn and per `max` requests', async () => {
    const loads: number[][] = [];
    const batcher = new Batcher<number, string>(async (requests) => {
      loads.push([...requests]);
      return requests.map((n) => `r${n}`);
    }, 3);
    const answers = await Promise.all([1, 2, 3, 4].map((n) => batcher.get(n)));
    expect(answers).to.deep.equal(['r1', 'r2', 'r3', 'r4']);
    expect(loads).to.deep.equal([[1, 2, 3], [4]]);
    expect(await batcher.get(5)).to.equal('r5');
    expect(loads).to.have.length(3);
  });

  it('a failed load fails its requests', async () => {
    const batcher = new Batcher<number, number>(() => Promise.reject(new Error('gone')));
    const failures = await Promise.all(
      [1, 2].map((n) =>
        batcher.get(n).then(
          () => 'answered',
          (error: Error) => error.message,
        ),
      ),
    );
    expect(failures).to.deep.equal(['gone', 'gone']);
  });
});
