import { expect } from 'chai';
import { DomainError } from '../../domain/decider';
import { deliveryStreamName, type DeliveryCommand, type DeliveryTerms } from '../../domain/device/delivery';
import { DeliveryRecords } from '../../src/devices/deliveryRecords';
import {
  StreamNotFoundError,
  WrongExpectedRevisionError,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type RecordedEvent,
} from '../../src/eventStore/eventStore';

/** Test double: streams in memory, with the store's expected-revision check; appends can be held back. */
class MemoryStore {
  readonly streams = new Map<string, RecordedEvent[]>();
  readonly appends: Array<{ streamName: string; types: string[]; expected: ExpectedRevision }> = [];
  reads = 0;
  private position = 0n;
  private held: Array<() => void> | undefined;

  hold(): void {
    this.held = [];
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const go of held) go();
  }

  async append(streamName: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    if (this.held) await new Promise<void>((resolve) => this.held!.push(resolve));
    this.appends.push({ streamName, types: events.map((e) => e.type), expected });
    const stream = this.streams.get(streamName) ?? [];
    const current = stream.length === 0 ? 'no_stream' : BigInt(stream.length - 1);
    if (expected !== 'any' && expected !== current) throw new WrongExpectedRevisionError(streamName, expected, current);
    for (const event of events)
      stream.push({
        id: event.id,
        streamName,
        revision: BigInt(stream.length),
        position: ++this.position,
        type: event.type,
        data: event.data,
        metadata: event.metadata ?? {},
        createdAt: new Date(),
      });
    this.streams.set(streamName, stream);
    return { nextExpectedRevision: BigInt(stream.length - 1), position: this.position };
  }

  async readStream(streamName: string): Promise<RecordedEvent[]> {
    this.reads++;
    const stream = this.streams.get(streamName);
    if (!stream) throw new StreamNotFoundError(streamName);
    return [...stream];
  }
}

describe('delivery records: attempts and confirmations in flushes (issue 24)', () => {
  const terms: DeliveryTerms = {
    pushId: '6f1c3f0e-8a7b-4a53-9b59-2f0a9a3c1d11',
    deviceId: 'd-1',
    appId: 'camel',
    source: 'onepush',
    needsConfirm: true,
    retry: 'backoff',
    requestedAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T00:10:00.000Z',
  };
  const streamName = deliveryStreamName(terms.pushId, terms.deviceId);
  const attempt: DeliveryCommand = { type: 'RecordAttempt', terms, now: '2026-01-01T00:00:01.000Z' };
  const confirm = (now = '2026-01-01T00:00:02.000Z'): DeliveryCommand => ({ type: 'ConfirmDelivery', terms, now });
  const context = { appId: 'camel', actor: 'device:d-1' };
  const fresh = { state: { status: 'pending' as const, attempts: 0, nextAttemptAt: null }, revision: -1n };

  function setUp() {
    const store = new MemoryStore();
    return { store, records: new DeliveryRecords(store as unknown as EventStore) };
  }

  it('a confirmation arriving before its attempt is stored joins it: one append of both events', async () => {
    const { store, records } = setUp();
    const [attempted, confirmed] = await Promise.all([
      records.record(streamName, attempt, context, fresh),
      records.record(streamName, confirm(), context),
    ]);
    expect(store.appends).to.deep.equal([
      { streamName, types: ['MessageDelivered', 'DeliveryConfirmed'], expected: 'no_stream' },
    ]);
    expect(attempted.events.map((e) => e.type)).to.deep.equal(['MessageDelivered']);
    expect(confirmed.events.map((e) => e.type)).to.deep.equal(['DeliveryConfirmed']);
    expect(confirmed.state.status).to.equal('confirmed');
    expect(store.reads).to.equal(0);
  });

  it('a confirmation arriving while its attempt is being stored appends after it, decided on its outcome without a read', async () => {
    const { store, records } = setUp();
    store.hold();
    const attempted = records.record(streamName, attempt, context, fresh);
    const known = attempted.then(({ state, revision }) => ({ state, revision }));
    // The attempt's flush has started (its append is held): the confirmation waits for the next.
    await new Promise((resolve) => setImmediate(resolve));
    const confirmed = records.record(streamName, confirm(), context, known);
    store.release();
    await Promise.all([attempted, confirmed]);
    expect(store.appends).to.deep.equal([
      { streamName, types: ['MessageDelivered'], expected: 'no_stream' },
      { streamName, types: ['DeliveryConfirmed'], expected: 0n },
    ]);
    expect(store.reads).to.equal(0);
  });

  it('a push to many devices: only the first flush after a quiet spell (32) is stored without its confirmations', async () => {
    const { store, records } = setUp();
    const devices = Array.from({ length: 100 }, (_, i) => `d-${i}`);
    const streamOf = (deviceId: string) => deliveryStreamName(terms.pushId, deviceId);
    const termsOf = (deviceId: string) => ({ ...terms, deviceId });
    store.hold();
    const attempts = devices.map((d) => records.record(streamOf(d), { ...attempt, terms: termsOf(d) }, context, fresh));
    await new Promise((resolve) => setImmediate(resolve));
    // Each decided on what its attempt leaves, as the gateway does (no read).
    const confirmations = devices.map((d, i) =>
      records.record(
        streamOf(d),
        { ...confirm(), terms: termsOf(d) },
        context,
        attempts[i]!.then(({ state, revision }) => ({ state, revision })),
      ),
    );
    store.release();
    await Promise.all([...attempts, ...confirmations]);
    const both = store.appends.filter((a) => a.types.length === 2);
    expect(store.appends).to.have.length(100 + 32);
    expect(both).to.have.length(68);
    expect(store.reads).to.equal(0);
  });

  it('a confirmation of an ended delivery is refused with the decider’s error; the attempt joined with it is still recorded', async () => {
    const { store, records } = setUp();
    const attempted = records.record(streamName, attempt, context, fresh);
    const refused = records.record(streamName, confirm('2026-01-01T00:10:01.000Z'), context).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect((await attempted).events.map((e) => e.type)).to.deep.equal(['MessageDelivered']);
    const error = await refused;
    expect(error).to.be.instanceOf(DomainError);
    expect((error as DomainError).code).to.equal('expired');
    expect(store.streams.get(streamName)!.map((e) => e.type)).to.deep.equal(['MessageDelivered']);
  });

  it('keeps the expected-revision check: a stream written meanwhile is read and the commands decided again', async () => {
    const { store, records } = setUp();
    // Another node recorded the attempt and the confirmation already: nothing is appended twice.
    await store.append(
      streamName,
      [
        {
          id: '00000000-0000-4000-8000-000000000001',
          type: 'MessageDelivered',
          data: { ...idsOf(), attempt: 1, deliveredAt: attempt.now, nextAttemptAt: null },
        },
        {
          id: '00000000-0000-4000-8000-000000000002',
          type: 'DeliveryConfirmed',
          data: { ...idsOf(), confirmedAt: attempt.now },
        },
      ],
      'no_stream',
    );
    const [attempted, confirmed] = await Promise.all([
      records.record(streamName, attempt, context, fresh),
      records.record(streamName, confirm(), context),
    ]);
    expect(store.reads).to.equal(1);
    expect(attempted.events).to.deep.equal([]);
    expect(confirmed.state.status).to.equal('confirmed');
    expect(store.streams.get(streamName)).to.have.length(2);
  });

  function idsOf() {
    return { pushId: terms.pushId, deviceId: terms.deviceId, appId: terms.appId };
  }
});
