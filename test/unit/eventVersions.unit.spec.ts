import { expect } from 'chai';
import { isRight } from 'fp-ts/lib/Either';
import { EVENT_VERSIONS } from '../../domain/eventCatalogue';
import { EventVersions, UpcasterChainError, type Upcaster } from '../../domain/eventVersions';
import {
  NotificationEvent,
  notificationDecider,
  notificationSentV2,
  type NotificationEvent as NotificationEventType,
} from '../../domain/notification/notification';
import { decodeEvent } from '../../src/command/commandHandler';
import type { EventMetadata, RecordedEvent } from '../../src/eventStore/eventStore';
import { schemaVersionOf, upcastEvent } from '../../src/eventStore/upcastingEventStore';
import { eventDecoder, UndecodableEventError } from '../../src/projection/eventDecoder';
import { notificationSentV1 } from '../support/oldEvents';

/** A step of `Noted` that appends its version to `data.steps`, so the order the chain ran in shows. */
const step = (from: number, to = from + 1): Upcaster => ({
  type: 'Noted',
  from,
  to,
  change: `step ${from}`,
  upcast: (data) => ({ steps: [...(data as { steps: number[] }).steps, to] }),
});

const recordedAs = (type: string, data: unknown, metadata: EventMetadata = {}): RecordedEvent => ({
  id: '10000000-0000-4000-8000-000000000001',
  streamName: 'notification-n1',
  revision: 0n,
  position: 7n,
  type,
  data,
  metadata,
  createdAt: new Date(0),
});

describe('event versioning: upcaster chains', () => {
  it('runs the steps from the stored version up, in version order whatever order they were given in', () => {
    const versions = new EventVersions([step(3), step(1), step(2)]);
    expect(versions.current('Noted')).to.equal(4);
    expect(versions.upcast('Noted', 1, { steps: [] })).to.deep.equal({ steps: [2, 3, 4] });
    expect(versions.upcast('Noted', 3, { steps: [] })).to.deep.equal({ steps: [4] });
    expect(versions.upcast('Noted', 4, { steps: [] })).to.deep.equal({ steps: [] });
    expect(versions.changes('Noted').map((s) => s.from)).to.deep.equal([1, 2, 3]);
  });

  it('puts a type without upcasters at version 1', () => {
    const versions = new EventVersions([step(1)]);
    expect(versions.current('Other')).to.equal(1);
    expect(versions.upcast('Other', 1, { a: 1 })).to.deep.equal({ a: 1 });
  });

  it('refuses to build a chain with a missing step, a repeated step, or a step that skips a version', () => {
    expect(() => new EventVersions([step(1), step(3)])).to.throw(
      UpcasterChainError,
      'Noted: no upcaster from version 2 (the next goes from 3)',
    );
    expect(() => new EventVersions([step(2)])).to.throw(UpcasterChainError, 'no upcaster from version 1');
    expect(() => new EventVersions([step(1), step(1)])).to.throw(UpcasterChainError, 'two upcasters from version 1');
    expect(() => new EventVersions([step(1, 3)])).to.throw(UpcasterChainError, 'goes to 3, not 2');
  });

  it('cannot upcast a version outside 1 to current', () => {
    const versions = new EventVersions([step(1)]);
    for (const version of [0, 3, 1.5])
      expect(() => versions.upcast('Noted', version, { steps: [] })).to.throw(RangeError);
  });

  it('refuses a version newer than the code, or no version at all; current and older ones may be decoded', () => {
    const versions = new EventVersions([step(1)]);
    expect(versions.refusal('Noted', 2)).to.equal(undefined);
    expect(versions.refusal('Noted', 1)).to.equal(undefined);
    expect(versions.refusal('Noted', 3)).to.equal(
      "it is schema version 3, newer than this herald's 2: upgrade herald, then retry it",
    );
    expect(versions.refusal('Noted', undefined)).to.match(/not a version/);
  });

  it("reads an event's version from its metadata: absent is 1, anything but a positive integer is none", () => {
    expect(schemaVersionOf({})).to.equal(1);
    expect(schemaVersionOf({ schemaVersion: 2 })).to.equal(2);
    for (const schemaVersion of [0, -1, 1.5, '2', null]) expect(schemaVersionOf({ schemaVersion })).to.equal(undefined);
  });
});

describe('event versioning: reading a recorded event', () => {
  const versions = new EventVersions([step(1), step(2)]);

  it('upcasts an older event to the current version and says so in its metadata, keeping the rest', () => {
    const stored = recordedAs('Noted', { steps: [] }, { correlationId: 'c1' });
    const read = upcastEvent(stored, versions);
    expect(read.data).to.deep.equal({ steps: [2, 3] });
    expect(read.metadata).to.deep.equal({ correlationId: 'c1', schemaVersion: 3 });
    expect({ ...read, data: stored.data, metadata: stored.metadata }).to.deep.equal(stored);
    expect(stored.data, 'the stored event is not changed').to.deep.equal({ steps: [] });
  });

  it('leaves an event of the current version, of a newer one, or of no version as it is', () => {
    for (const metadata of [{ schemaVersion: 3 }, { schemaVersion: 4 }, { schemaVersion: 'x' }]) {
      const stored = recordedAs('Noted', { steps: [] }, metadata);
      expect(upcastEvent(stored, versions)).to.equal(stored);
    }
  });

  it('leaves the event old when an upcaster throws, rather than stop the reader', () => {
    const throwing = new EventVersions([{ ...step(1), upcast: () => JSON.parse('{') as unknown }]);
    const stored = recordedAs('Noted', { steps: [] });
    expect(upcastEvent(stored, throwing)).to.equal(stored);
  });
});

describe('event versioning: NotificationSent 1 → 2 (forBrowser always recorded)', () => {
  const v1 = notificationSentV1;

  it('is the current version of NotificationSent, from the catalogue', () => {
    expect(EVENT_VERSIONS.current('NotificationSent')).to.equal(2);
    expect(EVENT_VERSIONS.changes('NotificationSent')).to.deep.equal([notificationSentV2]);
    expect(EVENT_VERSIONS.current('NotificationRead')).to.equal(1);
  });

  it("gives a version 1 event without forBrowser the one list it was in: the browser's unless the client's", () => {
    expect(notificationSentV2.upcast(v1)).to.deep.equal({ ...v1, forBrowser: true });
    expect(notificationSentV2.upcast({ ...v1, forClient: true })).to.deep.equal({
      ...v1,
      forClient: true,
      forBrowser: false,
    });
  });

  it('keeps forBrowser where a version 1 event recorded it, and leaves data it cannot read to the codec', () => {
    const both = { ...v1, forClient: true, forBrowser: true };
    expect(notificationSentV2.upcast(both)).to.deep.equal(both);
    for (const data of [null, 'text', [1], { ...v1, forClient: 'yes' }])
      expect(notificationSentV2.upcast(data)).to.deep.equal(data);
  });

  it('the old shape does not decode as version 2; upcast, it decodes and folds as a version 2 event does', () => {
    const stored = recordedAs('NotificationSent', v1);
    expect(isRight(NotificationEvent.decode({ type: stored.type, data: stored.data }))).to.equal(false);
    const upcast = decodeEvent(NotificationEvent, upcastEvent(stored));
    const current = decodeEvent(
      NotificationEvent,
      recordedAs('NotificationSent', { ...v1, forBrowser: true }, { schemaVersion: 2 }),
    );
    expect(upcast).to.deep.equal(current);
    const fold = (event: NotificationEventType) =>
      notificationDecider.evolve(notificationDecider.initialState(), event);
    expect(fold(upcast)).to.deep.equal(fold(current));
  });
});

describe('event versioning: decoders refuse an event newer than the code', () => {
  const newer = recordedAs(
    'NotificationRead',
    { notificationId: 'n1', appId: 'camel', userId: 'bob', readAt: 't' },
    {
      schemaVersion: 2,
    },
  );

  it('a projection decoder throws UndecodableEventError, which parks the event with its reason', () => {
    const decoder = eventDecoder(NotificationEvent);
    expect(() => decoder.decode(newer)).to.throw(
      UndecodableEventError,
      "NotificationRead at position 7 cannot be read: it is schema version 2, newer than this herald's 1",
    );
    expect(decoder.decode({ ...newer, metadata: { schemaVersion: 1 } })?.type).to.equal('NotificationRead');
    expect(decoder.decode({ ...newer, metadata: {} })?.type).to.equal('NotificationRead');
  });

  it('the command handler does not decide on it', () => {
    expect(() => decodeEvent(NotificationEvent, newer)).to.throw(/cannot be read: it is schema version 2, newer/);
    expect(() => decodeEvent(NotificationEvent, { ...newer, metadata: { schemaVersion: 0 } })).to.throw(
      /not a version/,
    );
  });
});
