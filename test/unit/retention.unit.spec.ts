import { expect } from 'chai';
import {
  deliveryRemovable,
  formatKeep,
  inRemovalOrder,
  isRetirable,
  messageRemovable,
  parseKeep,
  RETENTION_CATEGORIES,
  unexpiringMessageRemovable,
  removableUpTo,
  retentionCutoff,
  type RetentionPolicy,
  withDeliveriesOf,
} from '../../domain/retention';
import { appCutoffs, prunePass, type Prunable } from '../../src/storage/retention';

/** The retention rules of domain/retention.ts that are not SQL: durations, the cutoff, the seeds' protected cases. */
describe('retention rules', () => {
  it('reads durations as HERALD_RETENTION_* takes them, and writes them back', () => {
    for (const [text, ms] of [
      ['0', 0],
      ['90s', 90_000],
      ['15m', 900_000],
      ['2h', 7_200_000],
      ['7d', 604_800_000],
      ['forever', 'forever'],
    ] as const) {
      expect(parseKeep(text), text).to.equal(ms);
      expect(formatKeep(ms)).to.equal(text);
    }
    for (const bad of ['', '7', '1.5d', '-1d', '1w', '36501d', 'Forever', ' 7d'])
      expect(parseKeep(bad), bad).to.equal(undefined);
    expect(formatKeep(120_000)).to.equal('2m');
  });

  it('has no cutoff for what is kept forever', () => {
    const now = new Date('2026-06-01T00:00:00Z');
    expect(retentionCutoff(now, 'forever')).to.equal(undefined);
    expect(retentionCutoff(now, 3600_000)).to.deep.equal(new Date('2026-05-31T23:00:00Z'));
  });

  it('never removes a Koala message with expire 0 (000: 永久有效) nor an unconfirmed needConfirm delivery (003), however old', () => {
    const future = new Date('2999-01-01T00:00:00Z');
    const past = new Date('2000-01-01T00:00:00Z');
    expect(messageRemovable({ status: 'delivered', expiresAt: null }, future)).to.equal(false);
    expect(messageRemovable({ status: 'scheduled', expiresAt: past }, future)).to.equal(false);
    expect(messageRemovable({ status: 'delivered', expiresAt: past }, future)).to.equal(true);
    expect(deliveryRemovable({ status: 'delivered', needsConfirm: true, updatedAt: past }, future)).to.equal(false);
    expect(deliveryRemovable({ status: 'pending', needsConfirm: false, updatedAt: past }, future)).to.equal(false);
    expect(deliveryRemovable({ status: 'dropped', needsConfirm: true, updatedAt: past }, future)).to.equal(true);
  });

  it('removes a message without expiry only by its app’s setting, counted from its sending; never a scheduled one', () => {
    const sentAt = new Date('2026-05-01T00:00:00Z');
    const after = new Date('2026-05-02T00:00:00Z');
    expect(unexpiringMessageRemovable({ status: 'delivered', expiresAt: null, sentAt }, after)).to.equal(true);
    expect(unexpiringMessageRemovable({ status: 'delivered', expiresAt: null, sentAt }, sentAt)).to.equal(false);
    expect(unexpiringMessageRemovable({ status: 'scheduled', expiresAt: null, sentAt: null }, after)).to.equal(false);
    expect(unexpiringMessageRemovable({ status: 'delivered', expiresAt: after, sentAt }, after)).to.equal(false);
  });

  it('gives each app its own cutoff, the deployment’s to the others, and none when all keep forever', () => {
    const now = new Date('2026-06-01T00:00:00Z');
    const policy = { ...Object.fromEntries(RETENTION_CATEGORIES.map((c) => [c, 'forever'])) } as RetentionPolicy;
    expect(appCutoffs(now, 'unexpiringMessages', new Map(), policy)).to.equal(undefined);
    expect(
      appCutoffs(now, 'unexpiringMessages', new Map([['camel', { datahubNotifications: 3600_000 }]]), policy),
      'another category’s setting',
    ).to.equal(undefined);
    const cutoffs = appCutoffs(
      now,
      'unexpiringMessages',
      new Map([
        ['camel', { unexpiringMessages: 3600_000 }],
        ['llama', { unexpiringMessages: 'forever' as const }],
      ]),
      { ...policy, unexpiringMessages: 86_400_000 },
    )!;
    expect(cutoffs.byApp.get('camel')).to.deep.equal(new Date('2026-05-31T23:00:00Z'));
    expect(cutoffs.byApp.get('llama')).to.equal(null);
    expect(cutoffs.otherwise).to.deep.equal(new Date('2026-05-31T00:00:00Z'));
  });
});

describe('the event store removal order', () => {
  it('removes every push before any delivery, so a stopped pass never keeps a push without its deliveries', () => {
    const batch = ['delivery-p1.d2', 'message-m1', 'push-p2', 'delivery-p2.d1', 'push-p1', 'email-e1'];
    const ordered = inRemovalOrder(batch);
    expect(ordered).to.have.members(batch);
    const lastPush = Math.max(...ordered.map((s, i) => (s.startsWith('push-') ? i : -1)));
    const firstDelivery = ordered.findIndex((s) => s.startsWith('delivery-'));
    expect(lastPush).to.be.below(firstDelivery);
  });

  it('holds a push’s deliveries back with the push (push ids encoded as delivery streams encode them)', () => {
    const streams = ['push-a.b', 'delivery-a%2Eb.d1', 'delivery-a.d2', 'delivery-c.d1', 'push-c'];
    expect([...withDeliveriesOf(new Set(['push-a.b']), streams)].sort()).to.deep.equal([
      'delivery-a%2Eb.d1',
      'push-a.b',
    ]);
    expect([...withDeliveriesOf(new Set(['message-m']), streams)]).to.deep.equal(['message-m']);
  });
});

describe('a pruning pass', () => {
  it('ends while rows cross the cutoff faster than its batches remove them (one cutoff per table and pass)', async () => {
    // Rows ending every 0.5 s; each batch takes 1 s and removes one: a cutoff taken per batch would see
    // two more rows past it each time and never run dry.
    const DAY = 86_400_000;
    const base = Date.UTC(2026, 0, 1);
    const ended = Array.from({ length: 5000 }, (_, i) => base + i * 500);
    let now = base + DAY + 10 * 500 - 1; // ten rows past the cutoff when the pass starts
    let calls = 0;
    const table: Prunable = {
      table: 'busy',
      category: 'deliveries',
      countRemovable: async () => 0,
      async prune(cutoff, limit) {
        if (++calls > 1000) throw new Error('the pass does not end');
        now += 1000;
        const gone = ended.filter((t) => t < cutoff.getTime()).slice(0, limit);
        for (const t of gone) ended.splice(ended.indexOf(t), 1);
        return gone.length;
      },
    };
    const policy = Object.fromEntries(RETENTION_CATEGORIES.map((c) => [c, DAY])) as RetentionPolicy;
    const [report] = await prunePass({
      prunables: [table],
      policy,
      appRetentions: { of: async () => ({}), all: async () => new Map() },
      clock: () => new Date(now),
      batchSize: 1,
    });
    expect(report).to.deep.include({ table: 'busy', removed: 10, batches: 11 });
  });

  it('removes from the event store only the streams a read model ends, and never past a projection', () => {
    for (const name of [
      'message-m1',
      'delivery-p1.d1',
      'push-p1',
      'platformpush-p1.d1',
      'rtio-report-r1',
      'rtio-call-c1',
      'rtio-nonce-n1',
      'email-e1',
      'ticket-t1',
      'notification-n1',
    ])
      expect(isRetirable(name), name).to.equal(true);
    // Kept: what never ends (apps, devices, RTIO devices, a user's reads of a site broadcast), inboxes.
    for (const name of [
      'app-camel',
      'device-d1',
      'rtio-device-d1',
      'broadcast-read-a.n.u',
      'inbox-a.u',
      'item-a.r.i',
      'whitelist-w1',
    ])
      expect(isRetirable(name), name).to.equal(false);
    expect(removableUpTo(100n, [])).to.equal(100n);
    expect(removableUpTo(100n, [120n, 42n, 99n])).to.equal(42n);
    expect(removableUpTo(100n, [-1n, 50n])).to.equal(-1n);
  });
});
