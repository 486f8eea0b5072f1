import { expect } from 'chai';
import type { PoolClient } from 'pg';
import { codecEvent, EVENT_CATALOGUE, membersOf } from '../../domain/eventCatalogue';
import { projections } from '../../projections';
import { notificationsProjection } from '../../projections/koalaInbox';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { UndecodableEventError } from '../../src/projection/eventDecoder';
import type { Projection } from '../../src/projection/projection';

/** Every event type herald records, read from the codecs of the catalogue. */
const ALL_EVENT_TYPES = [
  ...new Set(EVENT_CATALOGUE.flatMap((entry) => membersOf(entry.union).map((codec) => codecEvent(codec)!.type))),
];

/** An event of the type whose data no event codec accepts. */
const unreadable = (type: string): RecordedEvent => ({
  id: '00000000-0000-4000-8000-000000000001',
  streamName: 'test-1',
  revision: 0n,
  position: 1n,
  type,
  data: { unreadable: true },
  metadata: { correlationId: 'c', causationId: 'c' },
  createdAt: new Date(0),
});

/** A transaction that answers every statement with no rows: enough for a batch the projection passes over. */
const emptyTx = { query: async () => ({ rows: [], rowCount: 0 }) } as unknown as PoolClient;

/** Whether `handle` reads events of the type: it refuses one whose data its codec refuses, skips one it does not read. */
async function reads(projection: Projection, type: string): Promise<boolean> {
  try {
    await projection.handle([unreadable(type)], emptyTx);
    return false;
  } catch (error) {
    if (error instanceof UndecodableEventError) return true;
    throw error;
  }
}

describe('projection event types (derived from the codecs each projection decodes)', () => {
  it("Koala's inbox does not take the device feature's MessageDelivered", () => {
    expect(notificationsProjection.eventTypes.has('MessageDelivered')).to.equal(false);
    expect([...notificationsProjection.eventTypes].sort()).to.deep.equal([
      'MessageAcknowledged',
      'MessageExpired',
      'MessageReleased',
      'MessageScheduled',
      'MessageSent',
    ]);
  });

  it('are the types each read model has always taken (but MessageDelivered for the inbox)', () => {
    const expected: Record<string, readonly string[]> = {
      apps: ['AppPushCallbackSet', 'AppRegistered', 'AppRetentionSet', 'AppSecretChanged'],
      notifications: ['MessageAcknowledged', 'MessageExpired', 'MessageReleased', 'MessageScheduled', 'MessageSent'],
      datahub: ['NotificationRead', 'NotificationSent', 'NotificationStatsCleared'],
      emails: ['EmailFailed', 'EmailRequested', 'EmailSent'],
      devices: [
        'DeliveryConfirmed',
        'DeliveryDropped',
        'DeliveryExpired',
        'DeliveryRetried',
        'DeviceRegistered',
        'DeviceUnregistered',
        'MessageDelivered',
        'PushRequested',
      ],
      'platform-pushes': [
        'DeviceRegistered',
        'NativeTokenRevoked',
        'PlatformPushFailed',
        'PlatformPushRequested',
        'PlatformPushSent',
      ],
      rtio: ['RtioDeviceReported', 'RtioReportForwardFailed', 'RtioReportForwarded'],
      'stream-ends': ['RtioDeviceCalled', 'RtioNonceUsed', 'TicketIssued'],
      whitelist: [
        'ItemOwnerRegistered',
        'ItemOwnerRemoved',
        'NotificationSent',
        'WhitelistApplied',
        'WhitelistOwnerNamed',
      ],
    };
    expect(projections.map((projection) => projection.name).sort()).to.deep.equal(Object.keys(expected).sort());
    for (const projection of projections)
      expect([...projection.eventTypes].sort(), projection.name).to.deep.equal(expected[projection.name]);
  });

  for (const projection of projections)
    it(`${projection.name}: its set is exactly the types its decoders read`, async () => {
      const read: string[] = [];
      for (const type of ALL_EVENT_TYPES) if (await reads(projection, type)) read.push(type);
      expect(read.length).to.be.greaterThan(0);
      expect(read.sort()).to.deep.equal([...projection.eventTypes].sort());
    });
});
