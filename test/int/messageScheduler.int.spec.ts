import { expect } from 'chai';
import pino from 'pino';
import { messageStreamName } from '../../domain/message/message';
import { messageAggregate } from '../../src/command/aggregates';
import { handleCommand } from '../../src/command/commandHandler';
import type { EventStore } from '../../src/eventStore/eventStore';
import { MessageScheduler, type ScheduledMessages } from '../../src/messaging/messageScheduler';
import { TestClock } from '../support/herald';
import { openTestInfrastructure } from '../support/infrastructure';

/** A due message whose release keeps failing holds up no other, and waits out a back-off of its own. */
describe('message scheduler: a release that keeps failing', () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  before(async () => {
    infrastructure = await openTestInfrastructure();
  });
  after(() => infrastructure?.close());

  const ids = [
    '00000000-0000-4000-8000-0000000000b1',
    '00000000-0000-4000-8000-0000000000a1',
    '00000000-0000-4000-8000-0000000000a2',
  ];
  const [bad, good1, good2] = ids as [string, string, string];

  async function schedule(messageId: string, clock: TestClock): Promise<void> {
    const now = clock.now();
    await handleCommand(infrastructure.store, messageAggregate, messageStreamName(messageId), {
      type: 'SendMessage',
      messageId,
      appId: 'camel',
      sender: 's',
      recipients: ['r'],
      title: 't',
      content: 'c',
      props: null,
      expireSeconds: 0,
      executeAt: new Date(now.getTime() + 60_000).toISOString(),
      now: now.toISOString(),
    });
  }

  it('is retried after its own back-off while the others are released', async () => {
    const clock = new TestClock();
    for (const id of ids) await schedule(id, clock);
    let attemptsOnBad = 0;
    // The store refuses anything for the bad message (say, a value the store cannot take).
    const store: EventStore = Object.create(infrastructure.store, {
      append: {
        value: (stream: string, ...rest: Parameters<EventStore['append']> extends [string, ...infer R] ? R : never) => {
          if (stream === messageStreamName(bad)) {
            attemptsOnBad++;
            return Promise.reject(new Error('refused'));
          }
          return infrastructure.store.append(stream, ...rest);
        },
      },
    });
    // The read model's view: all three due, the bad one first (as ordered by release time).
    let released = new Set<string>();
    const scheduled: ScheduledMessages = {
      due: async () => ids.filter((id) => !released.has(id)).map((messageId) => ({ messageId, appId: 'camel' })),
      nextReleaseAt: async () => undefined,
    };
    const scheduler = new MessageScheduler({ store, scheduled, clock: clock.now, log: pino({ level: 'silent' }) });
    clock.advance(61_000);

    expect(await scheduler.releaseDue()).to.equal(2);
    const typesOf = async (id: string) =>
      (await infrastructure.store.readStream(messageStreamName(id))).map((e) => e.type);
    expect(await typesOf(good1)).to.deep.equal(['MessageScheduled', 'MessageReleased']);
    expect(await typesOf(good2)).to.deep.equal(['MessageScheduled', 'MessageReleased']);
    expect(attemptsOnBad).to.equal(1);
    released = new Set([good1, good2]);

    // Within its back-off (1 s) it is not tried again; after it, it is.
    expect(await scheduler.releaseDue()).to.equal(0);
    expect(attemptsOnBad).to.equal(1);
    clock.advance(1_100);
    await scheduler.releaseDue();
    expect(attemptsOnBad).to.equal(2);
    // The back-off doubles.
    clock.advance(1_100);
    await scheduler.releaseDue();
    expect(attemptsOnBad).to.equal(2);
    clock.advance(1_000);
    await scheduler.releaseDue();
    expect(attemptsOnBad).to.equal(3);
  });
});
