import { expect } from 'chai';
import fc from 'fast-check';
import { MessageEvent } from '../../domain/message/message';
import { notificationsProjection } from '../../projections/koalaInbox';
import { inboxTopic } from '../../src/bus/topics';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { projectionSpecification, type Given } from '../support/projectionSpecification';

/**
 * The notifications projection applies a batch set-based (a few statements per batch). Whatever the
 * batching, it must leave exactly the tables, and announce exactly the pushes, of the obvious fold that
 * applies one event at a time — the reference below, in memory. Histories are generated: messages sent
 * or scheduled, then released or expired, acknowledged by recipients and by strangers, interleaved, with
 * repeated events and acknowledgements of messages that never existed.
 */

const USERS = ['u1', 'u2', 'u3', 'u4'];
const APPS = ['app-a', 'app-b'];
const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();
const messageId = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

interface MessagePlan {
  app: string;
  recipients: string[];
  scheduled: boolean;
  outcome: 'released' | 'expired' | 'none';
  expires: boolean;
  ackers: string[];
  ackApp: string;
}

const messagePlan: fc.Arbitrary<MessagePlan> = fc.record({
  app: fc.constantFrom(...APPS),
  // Repeated recipients too: a stored event need not be as tidy as the decider makes them.
  recipients: fc.array(fc.constantFrom(...USERS), { minLength: 1, maxLength: 5 }),
  scheduled: fc.boolean(),
  outcome: fc.constantFrom('released', 'expired', 'none'),
  expires: fc.boolean(),
  ackers: fc.array(fc.constantFrom(...USERS), { maxLength: 4 }),
  ackApp: fc.constantFrom(...APPS),
});

/** One message's events, in the only order the decider can produce them. */
function messageEvents(i: number, plan: MessagePlan): MessageEvent[] {
  const id = messageId(i);
  const content = {
    messageId: id,
    appId: plan.app,
    sender: 'sender',
    recipients: plan.recipients,
    title: `title ${i}`,
    content: `content ${i}`,
    props: i % 2 === 0 ? { k: String(i) } : null,
    expiresAt: plan.expires ? at(100 + i) : null,
  };
  const events: MessageEvent[] = [];
  if (plan.scheduled) {
    events.push({ type: 'MessageScheduled', data: { ...content, scheduledAt: at(i), releaseAt: at(50 + i) } });
    if (plan.outcome === 'released')
      events.push({ type: 'MessageReleased', data: { messageId: id, appId: plan.app, releasedAt: at(50 + i) } });
    if (plan.outcome === 'expired')
      events.push({ type: 'MessageExpired', data: { messageId: id, appId: plan.app, expiredAt: at(50 + i) } });
  } else {
    events.push({ type: 'MessageSent', data: { ...content, sentAt: at(i) } });
  }
  plan.ackers.forEach((userId, k) =>
    events.push({
      type: 'MessageAcknowledged',
      data: { messageId: id, appId: plan.ackApp, userId, acknowledgedAt: at(200 + k) },
    }),
  );
  return events;
}

const history: fc.Arbitrary<{ events: MessageEvent[]; batchSizes: number[]; replay: boolean }> = fc
  .record({
    plans: fc.array(messagePlan, { minLength: 1, maxLength: 8 }),
    order: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 80, maxLength: 80 }),
    repeats: fc.array(fc.record({ of: fc.nat(), at: fc.nat() }), { maxLength: 6 }),
    unknownAcks: fc.array(fc.constantFrom(...USERS), { maxLength: 3 }),
    batchSizes: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 10 }),
    replay: fc.boolean(),
  })
  .map(({ plans, order, repeats, unknownAcks, batchSizes, replay }) => {
    // Interleave the messages' events randomly, keeping each message's own order.
    const keyed = plans.flatMap((plan, i) => {
      const events = messageEvents(i, plan);
      const keys = events.map((_, k) => order[(i * 7 + k) % order.length]!).sort((a, b) => a - b);
      return events.map((event, k) => ({ key: keys[k]!, event }));
    });
    const events = keyed.sort((a, b) => a.key - b.key).map((k) => k.event);
    for (const userId of unknownAcks) {
      events.push({
        type: 'MessageAcknowledged',
        data: { messageId: messageId(9999), appId: APPS[0]!, userId, acknowledgedAt: at(300) },
      });
    }
    // Repeated events come after their original, as a redelivered or re-imported event would.
    for (const repeat of repeats) {
      const of = repeat.of % events.length;
      events.splice(of + 1 + (repeat.at % (events.length - of)), 0, events[of]!);
    }
    return { events, batchSizes, replay };
  });

/** The obvious fold: one event at a time, in memory. Returns the tables as the projection's queries below read them. */
function foldOneByOne(events: readonly RecordedEvent[]) {
  const messages = new Map<string, Record<string, unknown>>();
  const notifications = new Map<string, Record<string, unknown>>();
  const pushes: string[] = [];
  const deliver = (id: string, message: Record<string, unknown>) => {
    for (const userId of message.recipients as string[]) {
      const key = `${id}/${userId}`;
      if (notifications.has(key)) continue;
      notifications.set(key, {
        message_id: id,
        user_id: userId,
        app_id: message.app_id,
        seq: message.seq,
        expires_at: message.expires_at,
        read_at: null,
        acknowledged_at: null,
      });
      pushes.push(`${inboxTopic(message.app_id as string, userId)} ${id}`);
    }
  };
  for (const { type, data, position } of events) {
    const event = { type, data } as MessageEvent;
    switch (event.type) {
      case 'MessageSent':
      case 'MessageScheduled': {
        const d = event.data;
        if (messages.has(d.messageId)) break;
        const sent = event.type === 'MessageSent';
        const message = {
          message_id: d.messageId,
          app_id: d.appId,
          sender: d.sender,
          title: d.title,
          content: d.content,
          props: d.props,
          recipients: d.recipients,
          status: sent ? 'delivered' : 'scheduled',
          seq: sent ? String(position) : null,
          sent_at: sent ? event.data.sentAt : null,
          release_at: sent ? null : event.data.releaseAt,
          expires_at: d.expiresAt,
        };
        messages.set(d.messageId, message);
        if (sent) deliver(d.messageId, message);
        break;
      }
      case 'MessageReleased':
      case 'MessageExpired': {
        const message = messages.get(event.data.messageId);
        if (!message || message.status !== 'scheduled') break;
        if (event.type === 'MessageExpired') {
          message.status = 'expired';
          break;
        }
        Object.assign(message, { status: 'delivered', seq: String(position), sent_at: event.data.releasedAt });
        deliver(event.data.messageId, message);
        break;
      }
      case 'MessageAcknowledged': {
        const row = notifications.get(`${event.data.messageId}/${event.data.userId}`);
        if (!row || row.app_id !== event.data.appId || row.acknowledged_at !== null) break;
        row.acknowledged_at = event.data.acknowledgedAt;
        row.read_at ??= event.data.acknowledgedAt;
        break;
      }
    }
  }
  const counters = new Map<string, Record<string, unknown>>();
  for (const row of notifications.values()) {
    const key = `${row.app_id}/${row.user_id}`;
    const counter = counters.get(key) ?? { app_id: row.app_id, user_id: row.user_id, total: 0, unread: 0 };
    counter.total = (counter.total as number) + 1;
    if (row.read_at === null) counter.unread = (counter.unread as number) + 1;
    counters.set(key, counter);
  }
  return {
    messages: sortBy([...messages.values()], 'message_id'),
    notifications: sortBy([...notifications.values()], 'message_id', 'user_id'),
    counters: sortBy([...counters.values()], 'app_id', 'user_id'),
    pushes: pushes.sort(),
  };
}

function sortBy<T extends Record<string, unknown>>(rows: T[], ...keys: string[]): T[] {
  const key = (row: T) => keys.map((k) => String(row[k])).join('\u0000');
  return rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

const messageStream = (event: MessageEvent) => `message-${event.data.messageId}`;
const iso = (value: Date | null) => value?.toISOString() ?? null;

describe('notifications projection: set-based batches equal the one-by-one fold', () => {
  const spec = projectionSpecification(notificationsProjection, MessageEvent, messageStream);

  async function readTables(given: Given) {
    const messages = await given.rows(`SELECT * FROM notification_messages ORDER BY message_id`);
    const notifications = await given.rows(`SELECT * FROM notifications ORDER BY message_id, user_id`);
    const counters = await given.rows(
      `SELECT app_id, user_id, total::int, unread::int FROM inbox_counters ORDER BY app_id, user_id`,
    );
    const at = (row: Record<string, unknown>, column: string) => iso(row[column] as Date | null);
    return {
      messages: messages.map((r) => ({
        ...r,
        sent_at: at(r, 'sent_at'),
        release_at: at(r, 'release_at'),
        expires_at: at(r, 'expires_at'),
      })),
      notifications: notifications.map((r) => ({
        message_id: r.message_id,
        user_id: r.user_id,
        app_id: r.app_id,
        seq: r.seq,
        expires_at: at(r, 'expires_at'),
        read_at: at(r, 'read_at'),
        acknowledged_at: at(r, 'acknowledged_at'),
      })),
      counters,
    };
  }

  // `replay`: as a rebuild does it — counters left out per batch, then derived once by finishReplay, and
  // nothing to publish (a replay's history was pushed when it happened).
  it('for generated histories and batchings, live and replaying (a rebuild)', async () => {
    await fc.assert(
      fc.asyncProperty(history, async ({ events, batchSizes, replay }) => {
        const given = spec.given(events, { batchSizes, replay });
        const publications = await given.publications();
        const expected = foldOneByOne(given.recorded);
        const actual = await readTables(given);
        // Message rows carry recipients as given; the fold keeps them the same way.
        expect(actual.messages).to.deep.equal(expected.messages);
        expect(actual.notifications).to.deep.equal(expected.notifications);
        expect(actual.counters).to.deep.equal(expected.counters);
        const pushes = publications.map((p) => `${p.topic} ${(p.payload as { messageId: string }).messageId}`).sort();
        expect(pushes).to.deep.equal(replay ? [] : expected.pushes);
        // Each inbox is pushed in seq order: a subscriber skips a seq at or below the last one it sent.
        for (const topic of new Set(publications.map((p) => p.topic))) {
          const seqs = publications
            .filter((p) => p.topic === topic)
            .map((p) => BigInt((p.payload as { seq: string }).seq));
          expect(seqs, topic).to.deep.equal([...seqs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
        }
      }),
      { numRuns: 100 },
    );
  });

  it('is not fooled by a fold that skips the counters (the comparison can fail)', async () => {
    const given = spec.given(
      messageEvents(1, {
        app: 'app-a',
        recipients: ['u1', 'u2'],
        scheduled: false,
        outcome: 'none',
        expires: false,
        ackers: ['u1'],
        ackApp: 'app-a',
      }),
      { batchSizes: [1] },
    );
    await given.rows(`UPDATE inbox_counters SET unread = unread + 1`);
    expect((await readTables(given)).counters).not.to.deep.equal(foldOneByOne(given.recorded).counters);
  });
});
