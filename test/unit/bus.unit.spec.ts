import { expect } from 'chai';
import { InProcessBus, publication, topic, type Publication } from '../../src/bus/bus';
import { deviceTopic, inboxTopic } from '../../src/bus/topics';
import type { DeliveredMessage } from '../../src/messaging/inboxQueries';

const message: DeliveredMessage = {
  messageId: 'm1',
  appId: 'camel',
  seq: '7',
  sender: 'bob',
  title: 't',
  content: 'c',
  props: null,
  sentAt: '2026-12-07T00:00:00.000Z',
  expiresAt: null,
};

describe('in-process bus', () => {
  // The identity contract of Bus.subscribe: what is made of a payload is made once, not per subscriber.
  it('hands every listener of a publication the published object itself, on one topic or several', async () => {
    const bus = new InProcessBus();
    const received: unknown[] = [];
    for (const user of ['ann', 'ann', 'bob']) bus.subscribe(inboxTopic('camel', user), (m) => received.push(m));
    await bus.publish([
      publication(inboxTopic('camel', 'ann'), message),
      publication(inboxTopic('camel', 'bob'), message),
    ]);
    expect(received).to.have.length(3);
    for (const payload of received) expect(payload).to.equal(message);
  });

  it('one failing listener keeps the publication from no other listener', async () => {
    const failures: string[] = [];
    const bus = new InProcessBus((_error, failed) => failures.push(failed));
    const numbers = topic<number>('numbers');
    const seen: number[] = [];
    bus.subscribe(numbers, () => {
      throw new Error('a broken subscriber');
    });
    bus.subscribe(numbers, (n) => seen.push(n));
    await bus.publish([publication(numbers, 1), publication(numbers, 2)]);
    expect(seen).to.deep.equal([1, 2]);
    expect(failures).to.deep.equal(['numbers', 'numbers']);
  });

  it('checks publishers and subscribers against the topic at compile time', () => {
    const bus = new InProcessBus();
    // Each line below would compile if topics were strings and payloads unknown; tsc fails if it does.
    // @ts-expect-error a device's topic does not carry an inbox message
    const wrongPayload: Publication = publication(deviceTopic('camel', 'd1'), message);
    // @ts-expect-error a publication is made by `publication`, checked against its topic
    const literal: Publication = { topic: inboxTopic('camel', 'ann'), payload: 42 };
    // @ts-expect-error a topic is declared, not a string
    bus.subscribe('inbox:camel:ann', () => undefined);
    // @ts-expect-error the listener takes what the topic carries
    bus.subscribe(inboxTopic('camel', 'ann'), (payload: { type: 'unregistered' }) => payload);
    expect([wrongPayload.topic, literal.topic]).to.deep.equal(['device:camel:d1', 'inbox:camel:ann']);
  });
});
