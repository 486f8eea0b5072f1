import { expect } from 'chai';
import pino from 'pino';
import { DueWork, MAX_IN_FLIGHT, RECORDING_GRACE_MS, type DueWorkDeps, type Recorded } from '../../src/runtime/dueWork';
import { eventually } from '../support/eventually';

// Issue 21, item 9: the due-work runner bounds each attempt by its timeout, whether or not the attempt
// heeds its signal (a store that hangs, a lock held), and keeps nothing of an attempt once it has ended.
describe('due work: a timeout per attempt, enforced', () => {
  const log = pino({ level: 'silent' });
  const never = new Promise<never>(() => undefined);

  /** A worker over `items`, each due until perform answers for it. */
  const worker = (items: readonly string[], perform: DueWorkDeps<string>['perform'], attemptTimeoutMs: number) => {
    const done = new Set<string>();
    const work = new DueWork<string>({
      clock: () => new Date(),
      log,
      doing: 'testing',
      due: async (_now, limit) => items.filter((item) => !done.has(item)).slice(0, limit),
      nextDueAt: async () => undefined,
      idOf: (item) => item,
      // A key each: the attempts in flight are bounded by MAX_IN_FLIGHT alone.
      keyOf: (item) => item,
      perform: async (item, now, signal) => {
        const recorded = await perform(item, now, signal);
        done.add(item);
        return recorded;
      },
      attemptTimeoutMs,
      maxWaitMs: 50,
    });
    return { work, done };
  };

  it('frees the slot of an attempt that never ends and ignores its signal: the other items proceed', async () => {
    // Every slot taken by an attempt that hangs: on the old runner the last item was never attempted.
    const hung = Array.from({ length: MAX_IN_FLIGHT }, (_, i) => `hung-${i}`);
    const signals: AbortSignal[] = [];
    const { work, done } = worker(
      [...hung, 'fine'],
      (item, _now, signal) => {
        if (item === 'fine') return Promise.resolve({ events: [{}] });
        signals.push(signal);
        return never;
      },
      300,
    );
    work.start();
    try {
      await eventually(() => expect(signals).to.have.length(MAX_IN_FLIGHT));
      expect(done.has('fine')).to.equal(false);
      await eventually(() => expect(done.has('fine'), 'the item past the hung ones is done').to.equal(true), {
        timeoutMs: 10 * (300 + RECORDING_GRACE_MS),
      });
      // Each hung attempt was told it took too long, then abandoned.
      for (const signal of signals) expect((signal.reason as Error).message).to.equal('no answer within 300 ms');
    } finally {
      await work.stop();
    }
  });

  it('stop() returns at once while an attempt hangs, its signal telling it the worker stops', async () => {
    let seen: AbortSignal | undefined;
    const { work } = worker(
      ['hung'],
      (_item, _now, signal) => {
        seen = signal;
        return never;
      },
      60_000,
    );
    work.start();
    await eventually(() => expect(seen).to.not.equal(undefined));
    const started = Date.now();
    await work.stop();
    expect(Date.now() - started, 'ms stop() took').to.be.below(5000);
    expect(seen!.aborted).to.equal(true);
    expect(work.attemptsInFlight).to.equal(0);
  });

  it('stop() returns at once while a look for due items hangs on the store', async () => {
    let asked = false;
    const work = new DueWork<string>({
      clock: () => new Date(),
      log,
      doing: 'testing',
      due: () => {
        asked = true;
        return never;
      },
      nextDueAt: async () => undefined,
      idOf: (item) => item,
      perform: async () => undefined,
      attemptTimeoutMs: 60_000,
      maxWaitMs: 50,
    });
    work.start();
    await eventually(() => expect(asked).to.equal(true));
    const started = Date.now();
    await work.stop();
    expect(Date.now() - started, 'ms stop() took').to.be.below(5000);
  });

  it('keeps nothing of an attempt once it has ended (no signal of the worker collects the attempts’ signals)', async () => {
    const items = Array.from({ length: 300 }, (_, i) => `item-${i}`);
    const { work } = worker(items, async (): Promise<Recorded> => ({ events: [{}] }), 60_000);
    let recorded = 0;
    while (recorded < items.length) recorded += await work.doDue();
    // On Node 20, a signal given to AbortSignal.any keeps a reference to each combined signal for its whole
    // life (nodejs/node#55351): the old runner's worker-long `stopping` signal held one per attempt.
    const dependants = (signal: AbortSignal) => {
      const symbol = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
      return symbol ? ((signal as unknown as Record<symbol, Set<unknown> | undefined>)[symbol]?.size ?? 0) : 0;
    };
    for (const [field, value] of Object.entries(work)) {
      const signal = value instanceof AbortController ? value.signal : value instanceof AbortSignal ? value : undefined;
      if (signal) expect(dependants(signal), `signals kept by the worker's ${field}`).to.equal(0);
    }
    expect(work.attemptsInFlight).to.equal(0);
  });
});

describe('due work: attempts in flight bounded in all and per key', () => {
  it('takes maxInFlight in all and maxInFlightPerKey per key, and gives a key its share back as attempts end', async () => {
    const items = [...Array.from({ length: 6 }, (_, i) => `a-${i}`), ...Array.from({ length: 3 }, (_, i) => `b-${i}`)];
    const done = new Set<string>();
    const running = new Map<string, () => void>();
    const work = new DueWork<string>({
      clock: () => new Date(),
      log: pino({ level: 'silent' }),
      doing: 'testing',
      due: async (_now, limit) => items.filter((item) => !done.has(item)).slice(0, limit),
      nextDueAt: async () => undefined,
      idOf: (item) => item,
      keyOf: (item) => item.slice(0, 1),
      maxInFlight: 5,
      maxInFlightPerKey: 3,
      perform: (item) =>
        new Promise<Recorded>((resolve) =>
          running.set(item, () => {
            done.add(item);
            running.delete(item);
            resolve({ events: [{}] });
          }),
        ),
      attemptTimeoutMs: 60_000,
      maxWaitMs: 20,
    });
    const inFlight = (key: string) => [...running.keys()].filter((item) => item.startsWith(key)).length;
    work.start();
    try {
      // a's share is 3 (though 6 are due), b takes the 2 left of the 5.
      await eventually(() => expect([inFlight('a'), inFlight('b')]).to.deep.equal([3, 2]));
      // Two of a's end: a takes their slots back (its count went down), up to its share again.
      running.get('a-0')!();
      running.get('a-1')!();
      await eventually(() => expect([inFlight('a'), inFlight('b')]).to.deep.equal([3, 2]));
      expect(done).to.have.keys(['a-0', 'a-1']);
      // Everything ends.
      await eventually(() => {
        for (const finish of [...running.values()]) finish();
        expect(done.size).to.equal(items.length);
      });
      await eventually(() => expect(work.attemptsInFlight).to.equal(0));
    } finally {
      await work.stop();
    }
  });
});

describe('due work: a flood of one key', () => {
  it('begins the items held back by the key’s share as its attempts end, without a look per attempt (issue 25)', async () => {
    // A send to ALL through one APNs connection: hundreds in flight for one key. Each ending attempt used
    // to look again, reading back every item in flight to find the one it could begin.
    const items = Array.from({ length: 300 }, (_, i) => `a-${String(i).padStart(3, '0')}`);
    const done = new Set<string>();
    let looks = 0;
    let peak = 0;
    let running = 0;
    const work = new DueWork<string>({
      clock: () => new Date(),
      log: pino({ level: 'silent' }),
      doing: 'testing',
      due: async (_now, limit) => {
        looks += 1;
        return items.filter((item) => !done.has(item)).slice(0, limit);
      },
      nextDueAt: async () => undefined,
      idOf: (item) => item,
      keyOf: () => 'app',
      maxInFlight: 40,
      maxInFlightPerKey: 10,
      perform: async (item) => {
        running += 1;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setImmediate(resolve));
        running -= 1;
        done.add(item);
        return { events: [{}] };
      },
      attemptTimeoutMs: 60_000,
      // No timed looks within the test: only wakes look.
      maxWaitMs: 60_000,
    });
    work.start();
    try {
      await eventually(() => expect(done.size).to.equal(items.length), { timeoutMs: 5000 });
      expect(peak, 'the key’s share is kept').to.equal(10);
      // A few looks per hundred (the batch a look takes beyond what is in flight), not one per attempt
      // (301 before: 13 now).
      expect(looks).to.be.at.most(30);
    } finally {
      await work.stop();
    }
  });
});
