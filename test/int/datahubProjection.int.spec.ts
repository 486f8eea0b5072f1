import { expect } from 'chai';
import fc from 'fast-check';
import * as t from 'io-ts';
import type { Pool } from 'pg';
import { InboxEvent } from '../../domain/inbox/inbox';
import { NotificationEvent } from '../../domain/notification/notification';
import { datahubProjection, datahubQueries, itemSubscribers } from '../../projections/datahubNotifications';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { projectionSpecification, type Given } from '../support/projectionSpecification';

/**
 * The datahub projection applies a batch in a few set-based statements (deliveries, then reads, then
 * clears). Whatever the batching — so also a rebuild from position 0, which batches differently from
 * the live runner — it must leave the read states and per-type stats of the obvious fold that applies
 * one event at a time (in memory below). Histories interleave sends to several users, site broadcasts
 * (to the whole app), subscription events (which make subscribers), reads (also by non-receivers, of
 * unknown notifications, repeated) and clears. What is compared is what the queries answer: each user's
 * stats, and each item's subscribers, plus which deliveries are read.
 */

const USERS = ['u1', 'u2', 'u3'];
const APPS = ['app-a', 'app-b'];
const TYPES = ['admin_message', 'private_message', 'item_event', 'site_broadcast', 'subs_event'] as const;
const ITEMS = ['item1', 'item2'];
const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();
const notificationId = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

type Step =
  // siteWide: a site_broadcast to the whole app (else to its receivers, as one naming receivers is).
  | {
      kind: 'send';
      app: string;
      type: (typeof TYPES)[number];
      receivers: string[];
      item: string;
      phase: number;
      lists: 'browser' | 'client' | 'both';
      siteWide?: boolean;
    }
  | { kind: 'read'; of: number; app: string; user: string }
  | { kind: 'clear'; app: string; user: string };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('send' as const),
    app: fc.constantFrom(...APPS),
    type: fc.constantFrom(...TYPES),
    receivers: fc.array(fc.constantFrom(...USERS), { minLength: 1, maxLength: 4 }),
    item: fc.constantFrom(...ITEMS),
    phase: fc.constantFrom(1, 2, 5, 6),
    lists: fc.constantFrom('browser' as const, 'client' as const, 'both' as const),
    siteWide: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('read' as const),
    of: fc.nat(),
    app: fc.constantFrom(...APPS),
    user: fc.constantFrom(...USERS),
  }),
  fc.record({ kind: fc.constant('clear' as const), app: fc.constantFrom(...APPS), user: fc.constantFrom(...USERS) }),
);

function toEvents(steps: readonly Step[]): Array<NotificationEvent | InboxEvent> {
  let sent = 0;
  return steps.map((s, i): NotificationEvent | InboxEvent => {
    switch (s.kind) {
      case 'send': {
        const broadcast = s.type === 'site_broadcast' && s.siteWide === true;
        const data =
          s.type === 'subs_event' ? { subscriptionid: i, repname: 'repo', itemname: s.item, phase: s.phase } : { i };
        return {
          type: 'NotificationSent',
          data: {
            notificationId: notificationId(sent++),
            appId: s.app,
            notificationType: s.type,
            sender: 'sender',
            receivers: broadcast ? [] : s.receivers,
            level: 0,
            forBrowser: s.lists !== 'client',
            forClient: s.lists !== 'browser',
            data,
            sentAt: at(i),
          },
        };
      }
      case 'read':
        // Reads of notifications not (yet) sent too: `of` may point past the ones sent so far.
        return {
          type: 'NotificationRead',
          data: { notificationId: notificationId(s.of % (sent + 2)), appId: s.app, userId: s.user, readAt: at(i) },
        };
      case 'clear':
        return { type: 'NotificationStatsCleared', data: { appId: s.app, userId: s.user, clearedAt: at(i) } };
    }
  });
}

/** One event at a time: which deliveries are read, each user's unread stats and list totals, each item's subscribers. */
function foldOneByOne(events: readonly RecordedEvent[]) {
  type Lists = { browser: boolean; client: boolean };
  const deliveries = new Map<
    string,
    { app: string; user: string; type: string; position: bigint; read: boolean; lists: Lists }
  >();
  const broadcasts = new Map<string, { app: string; position: bigint; readBy: Set<string>; lists: Lists }>();
  const clearedUpTo = new Map<string, bigint>();
  const subscribed = new Map<string, boolean>();
  for (const { type, data, position } of events) {
    const event = { type, data } as NotificationEvent | InboxEvent;
    if (event.type === 'NotificationSent') {
      const d = event.data;
      const lists = { browser: d.forBrowser ?? !d.forClient, client: d.forClient };
      if (d.notificationType === 'site_broadcast' && d.receivers.length === 0) {
        if (!broadcasts.has(d.notificationId))
          broadcasts.set(d.notificationId, { app: d.appId, position, readBy: new Set(), lists });
        continue;
      }
      for (const user of new Set(d.receivers)) {
        const key = `${d.notificationId}/${user}`;
        if (!deliveries.has(key))
          deliveries.set(key, { app: d.appId, user, type: d.notificationType, position, read: false, lists });
        if (d.notificationType === 'subs_event')
          subscribed.set(`${d.appId}/${d.data['itemname']}/${user}`, ![5, 6].includes(d.data['phase'] as number));
      }
    } else if (event.type === 'NotificationRead') {
      const delivery = deliveries.get(`${event.data.notificationId}/${event.data.userId}`);
      if (delivery && delivery.app === event.data.appId) delivery.read = true;
      const broadcast = broadcasts.get(event.data.notificationId);
      if (broadcast && broadcast.app === event.data.appId) broadcast.readBy.add(event.data.userId);
    } else {
      clearedUpTo.set(`${event.data.appId}/${event.data.userId}`, position);
    }
  }
  const reads = [...deliveries.entries()]
    .filter(([, d]) => d.read)
    .map(([key]) => key)
    .sort();
  const stats: Record<string, Record<string, number>> = {};
  const count = (app: string, user: string, type: string) => {
    const mine = (stats[`${app}/${user}`] ??= {});
    mine[type] = (mine[type] ?? 0) + 1;
  };
  for (const d of deliveries.values()) {
    if (!d.read && d.position > (clearedUpTo.get(`${d.app}/${d.user}`) ?? -1n)) count(d.app, d.user, d.type);
  }
  for (const b of broadcasts.values()) {
    for (const user of USERS)
      if (!b.readBy.has(user) && b.position > (clearedUpTo.get(`${b.app}/${user}`) ?? -1n))
        count(b.app, user, 'site_broadcast');
  }
  const subscribers = Object.fromEntries(
    APPS.flatMap((app) =>
      ITEMS.map((item) => [`${app}/${item}`, USERS.filter((user) => subscribed.get(`${app}/${item}/${user}`))]),
    ),
  );
  // Each user's list totals: all, and unread, per list (what GET /notifications reports unfiltered).
  const totals = everyUser((app, user) => {
    const mine = [
      ...[...deliveries.values()].filter((d) => d.app === app && d.user === user),
      ...[...broadcasts.values()].filter((b) => b.app === app).map((b) => ({ ...b, read: b.readBy.has(user) })),
    ];
    return Object.fromEntries(
      (['browser', 'client'] as const).flatMap((list) => [
        [`${list}/either`, mine.filter((n) => n.lists[list]).length],
        [`${list}/unread`, mine.filter((n) => n.lists[list] && !n.read).length],
        [`${list}/read`, mine.filter((n) => n.lists[list] && n.read).length],
      ]),
    );
  });
  return { reads, stats: everyUser((app, user) => stats[`${app}/${user}`] ?? {}), subscribers, totals };
}

const everyUser = <T>(f: (app: string, user: string) => T) =>
  Object.fromEntries(APPS.flatMap((app) => USERS.map((user) => [`${app}/${user}`, f(app, user)])));

describe('datahub projection: set-based batches equal the one-by-one fold', () => {
  const spec = projectionSpecification(datahubProjection, t.union([NotificationEvent, InboxEvent]));

  /** What the queries answer after the given events. */
  async function answers(given: Given) {
    const reads = await given.rows<{ key: string }>(
      `SELECT notification_id || '/' || user_id AS key FROM datahub_notifications WHERE read_at IS NOT NULL`,
    );
    return { reads: reads.map((r) => r.key).sort(), ...(await given.answer(queryAnswers)) };
  }

  /** Each user's stats and list totals, and each item's subscribers. */
  async function queryAnswers(pool: Pool) {
    const queries = datahubQueries(pool);
    const subscribersOf = itemSubscribers(pool);
    const stats: Record<string, Record<string, number>> = {};
    for (const app of APPS)
      for (const user of USERS)
        stats[`${app}/${user}`] = Object.fromEntries(await queries.unreadStats({ appId: app, userId: user }));
    const subscribers: Record<string, string[]> = {};
    for (const app of APPS)
      for (const item of ITEMS)
        subscribers[`${app}/${item}`] = await subscribersOf.page(app, { repname: 'repo', itemname: item }, '', 10);
    const totals: Record<string, Record<string, number>> = {};
    for (const app of APPS) {
      for (const user of USERS) {
        const mine: Record<string, number> = {};
        for (const list of ['browser', 'client'] as const) {
          for (const status of ['either', 'unread', 'read'] as const) {
            mine[`${list}/${status}`] = (
              await queries.list(
                { appId: app, userId: user },
                { forClient: list === 'client', status, page: 1, size: 1 },
              )
            ).total;
          }
        }
        totals[`${app}/${user}`] = mine;
      }
    }
    return { stats, subscribers, totals };
  }

  it('for generated histories and batchings (one batch of all = a rebuild)', async function () {
    this.timeout(120_000);
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 6 }),
        async (steps, batchSizes) => {
          const events = toEvents(steps);
          const expected = foldOneByOne(spec.record(events));
          expect(await answers(spec.given(events, { batchSizes }))).to.deep.equal(expected);
          expect(await answers(spec.given(events))).to.deep.equal(expected);
        },
      ),
      { numRuns: 60, seed: 20261123 },
    );
  });

  it("takes a rebuild's batch that changes more users than a call's arguments can hold (150,000)", async function () {
    this.timeout(120_000);
    // 150 notifications to 1,000 users each, no user twice: 150,000 users whose stats changed in one batch.
    const events = Array.from({ length: 150 }, (_, i): NotificationEvent => ({
      type: 'NotificationSent',
      data: {
        notificationId: notificationId(i),
        appId: 'app-a',
        notificationType: 'admin_message',
        sender: 'sender',
        receivers: Array.from({ length: 1_000 }, (_, k) => `user-${i}-${k}`),
        level: 0,
        forBrowser: true,
        forClient: true,
        data: { i },
        sentAt: at(i),
      },
    }));
    const given = spec.given(events);
    expect(await given.publications()).to.have.length(150_000);
    await given.expectRows('SELECT count(*)::int AS deliveries FROM datahub_notifications', [{ deliveries: 150_000 }]);
  });

  it('is not fooled by a fold that ignores clears (the comparison can fail)', async () => {
    const given = spec.given(
      toEvents([
        {
          kind: 'send',
          app: 'app-a',
          type: 'admin_message',
          receivers: ['u1'],
          item: 'item1',
          phase: 1,
          lists: 'browser',
        },
        { kind: 'clear', app: 'app-a', user: 'u1' },
      ]),
      { batchSizes: [1] },
    );
    const tables = await answers(given);
    expect(tables.stats['app-a/u1']).to.deep.equal({});
    expect(foldOneByOne(given.recorded.slice(0, 1)).stats).to.not.deep.equal(tables.stats);
  });
});
