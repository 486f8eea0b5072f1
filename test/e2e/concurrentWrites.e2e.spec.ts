import { expect } from 'chai';
import { deviceStreamName } from '../../domain/device/device';
import { inboxStreamName } from '../../domain/inbox/inbox';
import { CONFLICT_RETRY } from '../../src/command/commandHandler';
import { WrongExpectedRevisionError, type EventStore } from '../../src/eventStore/eventStore';
import { DeviceSocket } from '../support/deviceSocket';
import { graphql } from '../support/graphqlClient';
import { issueTicket, startTestHerald } from '../support/herald';
import { streamEvents, streamEventTypes } from '../support/storedEvents';

// Issue 21, item 4: one user's concurrent writes to one stream — datahub's DELETE /notification_stat
// (shared/seeds/001_e25b4a10524b93b6.txt), GraphQL clearNotificationStats, ONE-PUSH's POST
// /msgpush/register of one app + native token (shared/seeds/003_834cb051d61fc48e.txt) — are retried
// inside the command handler and never answer 500; past the retry bound each API answers its busy code.
describe('concurrent writes to one stream', function () {
  this.timeout(120_000);
  const WRITERS = 32;
  let url: string;
  let stop: () => Promise<void>;
  let herald: Awaited<ReturnType<typeof startTestHerald>>['herald'];
  let auditor: string;

  before(async () => {
    ({ url, stop, herald } = await startTestHerald());
    auditor = await issueTicket(url, 'auditor', 'admin');
  });
  after(() => stop());

  const streamTypes = (streamName: string) => streamEventTypes(url, auditor, streamName);
  const at = <T>(count: number, request: (i: number) => Promise<T>) =>
    Promise.all(Array.from({ length: count }, (_, i) => request(i)));
  const stats = async (ticket: string) =>
    (await (
      await fetch(`${url}/notification_stat`, { headers: { authorization: `Token ${ticket}` } })
    ).json()) as Record<string, number>;
  const unread = (counts: Record<string, number>) => Object.values(counts).reduce((sum, n) => sum + n, 0);
  const sendAdminMessage = async (admin: string, receiver: string) => {
    const response = await fetch(`${url}/notifications`, {
      method: 'POST',
      headers: { authorization: `Token ${admin}` },
      body: JSON.stringify({ type: 'admin_message', receiver, data: { content: 'hi' } }),
    });
    expect(response.status).to.equal(200);
  };
  const register = async (body: Record<string, unknown>) => {
    const response = await fetch(`${url}/msgpush/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ appId: 'camel', platform: 'ANDROID', ...body }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  it(`${WRITERS} concurrent DELETE /notification_stat of one user: all 200, the stats cleared`, async () => {
    const admin = await issueTicket(url, 'admin', 'admin');
    const ticket = await issueTicket(url, 'clear-rest');
    await sendAdminMessage(admin, 'clear-rest');
    expect(unread(await stats(ticket))).to.equal(1);
    const statuses = await at(WRITERS, () =>
      fetch(`${url}/notification_stat`, { method: 'DELETE', headers: { authorization: `Token ${ticket}` } }).then(
        (r) => r.status,
      ),
    );
    expect(
      statuses.filter((s) => s !== 200),
      `statuses ${statuses.join(',')}`,
    ).to.deep.equal([]);
    expect(unread(await stats(ticket))).to.equal(0);
    // Still a clear at its point of the history: a notification after it counts.
    await sendAdminMessage(admin, 'clear-rest');
    expect(unread(await stats(ticket))).to.equal(1);
  });

  it(`${WRITERS} concurrent GraphQL clearNotificationStats of one user: no errors, every answer the cleared stats`, async () => {
    const admin = await issueTicket(url, 'admin', 'admin');
    const ticket = await issueTicket(url, 'clear-graphql');
    await sendAdminMessage(admin, 'clear-graphql');
    const answers = await at(WRITERS, () =>
      graphql<{ clearNotificationStats: Record<string, number> }>(
        url,
        ticket,
        'mutation { clearNotificationStats { admin_message } }',
      ),
    );
    for (const answer of answers) {
      expect(answer.status).to.equal(200);
      expect(answer.errors, JSON.stringify(answer.errors)).to.equal(undefined);
      expect(answer.data?.clearNotificationStats).to.deep.equal({ admin_message: 0 });
    }
    expect(unread(await stats(ticket))).to.equal(0);
  });

  it(`${WRITERS} concurrent POST /msgpush/register of one app + native token, unchanged: one device, one registration`, async () => {
    const answers = await at(WRITERS, () =>
      register({ alias: 'same-phone', nativeToken: 'concurrent-same', tag: ['a'] }),
    );
    expect(answers.filter((a) => a.status !== 200).map((a) => a.body)).to.deep.equal([]);
    const ids = new Set(answers.map((a) => a.body.id));
    expect(ids.size).to.equal(1);
    expect(new Set(answers.map((a) => a.body.clientId)).size).to.equal(1);
    expect(await streamTypes(deviceStreamName([...ids][0] as string))).to.deep.equal(['DeviceRegistered']);
  });

  it(`${WRITERS} concurrent POST /msgpush/register of one app + native token, each changing it: all 200, the last write is the device`, async () => {
    const answers = await at(WRITERS, (i) =>
      register({ alias: `phone-${i}`, nativeToken: 'concurrent-changing', tag: [`t${i}`] }),
    );
    expect(answers.filter((a) => a.status !== 200).map((a) => a.body)).to.deep.equal([]);
    const deviceId = answers[0]!.body.id as string;
    expect(new Set(answers.map((a) => a.body.id))).to.deep.equal(new Set([deviceId]));
    const events = await streamEvents(url, auditor, deviceStreamName(deviceId));
    // Every change was decided on fresh state and appended once; the device is the last one appended.
    expect(events).to.have.length(WRITERS);
    const last = events[events.length - 1]!.data as { alias: string; tags: string[] };
    const listed = await graphql<{ devices: { nodes: Array<{ id: string; alias: string; tags: string[] }> } }>(
      url,
      auditor,
      'query($alias: String) { devices(alias: $alias) { nodes { id alias tags } } }',
      { alias: last.alias },
    );
    expect(listed.data?.devices.nodes).to.deep.equal([{ id: deviceId, alias: last.alias, tags: last.tags }]);
  });

  describe('past the retry bound (another writer always wins the append): each API answers busy, never 500', () => {
    const contended = new Set<string>();
    let restore: () => void;
    // Losing every append to another writer has no public switch: the test wraps herald's store.
    before(() => {
      const target: EventStore = herald.infrastructure.store;
      const append = target.append.bind(target);
      target.append = (streamName, events, expected) =>
        contended.has(streamName)
          ? Promise.reject(new WrongExpectedRevisionError(streamName, expected ?? 'any', 0n))
          : append(streamName, events, expected);
      restore = () => void (target.append = append);
    });
    after(() => restore());

    it(`datahub 503 {"code":"busy"}, ONE-PUSH 503 in its Spring envelope, GraphQL BUSY, all with Retry-After, within ${CONFLICT_RETRY.maxElapsedMs / 1000} s`, async () => {
      const ticket = await issueTicket(url, 'contended');
      const device = await register({ alias: 'contended', nativeToken: 'contended-phone' });
      contended.add(inboxStreamName('camel', 'contended'));
      contended.add(deviceStreamName(device.body.id as string));
      const started = Date.now();
      const [datahub, onePush, graphqlAnswer] = await Promise.all([
        fetch(`${url}/notification_stat`, { method: 'DELETE', headers: { authorization: `Token ${ticket}` } }),
        fetch(`${url}/msgpush/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ appId: 'camel', platform: 'IOS', alias: 'contended', nativeToken: 'contended-phone' }),
        }),
        graphql(url, ticket, 'mutation { clearNotificationStats { admin_message } }'),
      ]);
      expect(Date.now() - started).to.be.below(CONFLICT_RETRY.maxElapsedMs + 2_000);
      expect(datahub.status).to.equal(503);
      expect(datahub.headers.get('retry-after')).to.equal('1');
      expect(await datahub.json()).to.include({ code: 'busy' });
      expect(onePush.status).to.equal(503);
      expect(onePush.headers.get('retry-after')).to.equal('1');
      expect(await onePush.json()).to.include({ status: 503, error: 'Service Unavailable', path: '/msgpush/register' });
      expect(graphqlAnswer.errors?.[0]?.extensions).to.deep.include({ code: 'BUSY', retryAfterSeconds: 1 });
    });

    it('Koala 2001 as HTTP 503 with Retry-After; the ONE-PUSH device socket {"error": {"code": "busy"}}', async () => {
      const ticket = await issueTicket(url, 'koala-contended');
      const sent = await fetch(`${url}/koala/api/mas/messages`, {
        method: 'POST',
        body: new URLSearchParams({ ticket, users: 'koala-contended', title: 't', content: 'c' }),
      });
      const messageId = ((await sent.json()) as { result: string }).result;
      contended.add(`message-${messageId}`);
      const device = await register({ alias: 'socket-contended', nativeToken: 'socket-contended' });
      const socket = await DeviceSocket.connect(url, device.body.id as string);
      try {
        const push = await fetch(`${url}/msgpush/send`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            appId: 'camel',
            appKey: 'EERWERRRRE',
            platform: 'ALL',
            audienceType: 'ALIAS',
            audiences: ['socket-contended'],
            alert: 'hi',
            needConfirm: true,
          }),
        });
        const { requestId } = (await push.json()) as { requestId: string };
        await socket.until((s) => s.messages.length === 1, 'the message');
        contended.add(`delivery-${requestId}.${device.body.id as string}`);
        const [acknowledged] = await Promise.all([
          fetch(`${url}/koala/api/mas/messages/ack`, {
            method: 'POST',
            body: new URLSearchParams({ ticket, sids: messageId }),
          }),
          (async () => {
            socket.confirm(requestId);
            await socket.until((s) => s.frames.some((f) => f.confirm === requestId), 'the busy answer');
          })(),
        ]);
        expect(acknowledged.status, 'Koala answers every error as HTTP 200 with its envelope').to.equal(200);
        expect(acknowledged.headers.get('retry-after')).to.equal('1');
        expect(await acknowledged.json()).to.include({ status: 2001, errcode: 2001 });
        expect(socket.frames.find((f) => f.confirm === requestId)).to.deep.include({
          error: {
            code: 'busy',
            message: 'too many concurrent changes to the same record; nothing was changed, retry in 1 s',
          },
        });
      } finally {
        socket.close();
      }
    });
  });
});
