import { expect } from 'chai';
import { appStreamName } from '../../domain/app/app';
import type { EventStore, NewEvent, RecordedEvent } from '../../src/eventStore/eventStore';
import { StreamNotFoundError } from '../../src/eventStore/eventStore';
import { hashAppSecret } from '../../src/identity/appSecret';
import { TicketError, Tickets } from '../../src/identity/tickets';

/**
 * Tickets keep a verified ticket's claims (issue 24: no HMAC per request), yet every request still
 * checks the ticket's expiry and the app's current secret: the cache never outlives either.
 */
describe('tickets: verified claims cached', () => {
  const appId = 'camel';
  let secretHash = hashAppSecret(appId, 'EERWERRRRE');
  const streams = new Map<string, RecordedEvent[]>();
  let position = 0n;
  const store = {
    kind: 'postgresql',
    readStream(streamName: string) {
      const events = streams.get(streamName);
      return events ? Promise.resolve(events) : Promise.reject(new StreamNotFoundError(streamName));
    },
    append(streamName: string, events: readonly NewEvent[]) {
      const stream = streams.get(streamName) ?? [];
      for (const event of events)
        stream.push({
          ...event,
          streamName,
          revision: BigInt(stream.length),
          position: ++position,
          metadata: event.metadata ?? {},
          createdAt: new Date(),
        });
      streams.set(streamName, stream);
      return Promise.resolve({ nextExpectedRevision: BigInt(stream.length - 1), position });
    },
  } as unknown as EventStore;
  const register = () =>
    store.append(appStreamName(appId), [
      { id: `app-${position}`, type: 'AppRegistered', data: { appId, secretHash, registeredAt: 'x' } },
    ]);

  let tickets: Tickets;
  let secretReads = 0;
  before(async () => {
    await register();
    tickets = await Tickets.open({
      store,
      keptKey: { keep: (candidate) => Promise.resolve(candidate) },
      apps: {
        secretHash: () => {
          secretReads++;
          return Promise.resolve(secretHash);
        },
      },
      ttlSeconds: 60,
      configuredSecret: 'a ticket key for this test',
    });
  });

  const issue = (now: Date) => tickets.issue({ appId, secret: 'EERWERRRRE', userId: 'zhangbin', roles: [], now });

  it('answers the same viewer for the same ticket, until it expires', async () => {
    const now = new Date('2026-12-07T10:00:00Z');
    const { ticket, viewer } = await issue(now);
    const first = await tickets.authenticate(ticket, now);
    const again = await tickets.authenticate(ticket, new Date(now.getTime() + 30_000));
    expect(first).to.deep.equal(viewer);
    expect(again).to.equal(first);
    expect(Object.isFrozen(again) && Object.isFrozen(again.roles)).to.equal(true);
    const error = await tickets.authenticate(ticket, new Date(now.getTime() + 61_000)).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(TicketError).with.property('problem', 'expired');
  });

  it('refuses a cached ticket once its app secret changed', async () => {
    const now = new Date('2026-12-07T11:00:00Z');
    const { ticket } = await issue(now);
    await tickets.authenticate(ticket, now);
    secretHash = hashAppSecret(appId, 'another secret');
    await store.append(appStreamName(appId), [
      { id: `changed-${position}`, type: 'AppSecretChanged', data: { appId, secretHash, changedAt: 'x' } },
    ]);
    const reads = secretReads;
    // Past the 1 s the current secret is trusted for: the read model is asked again and refuses it.
    const error = await tickets.authenticate(ticket, new Date(now.getTime() + 1_500)).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(TicketError).with.property('problem', 'revoked');
    expect(secretReads).to.be.greaterThan(reads);
  });

  it('never takes a forged ticket for a cached one', async () => {
    const now = new Date('2026-12-07T12:00:00Z');
    secretHash = hashAppSecret(appId, 'EERWERRRRE');
    await store.append(appStreamName(appId), [
      { id: `back-${position}`, type: 'AppSecretChanged', data: { appId, secretHash, changedAt: 'x' } },
    ]);
    const { ticket } = await issue(now);
    await tickets.authenticate(ticket, now);
    const [body, signature] = ticket.split('.');
    const forged = `${body}x.${signature}`;
    const error = await tickets.authenticate(forged, now).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(TicketError).with.property('problem', 'malformed');
  });

  it('reads the app secret once for requests that miss its cache together', async () => {
    const now = new Date('2026-12-07T13:00:00Z');
    const issued = await Promise.all(Array.from({ length: 8 }, () => issue(now)));
    const later = new Date(now.getTime() + 5_000); // past the 1 s the current secret is trusted for
    const reads = secretReads;
    await Promise.all(issued.map(({ ticket }) => tickets.authenticate(ticket, later)));
    expect(secretReads - reads).to.equal(1);
  });
});
