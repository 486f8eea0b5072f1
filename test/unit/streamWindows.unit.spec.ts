import { expect } from 'chai';
import { DomainError, type Decider } from '../../domain/decider';
import type { DeliveryCommand, DeliveryEvent, DeliveryTerms } from '../../domain/device/delivery';
import type { DeviceCommand } from '../../domain/device/device';
import type { ItemOwnerCommand } from '../../domain/whitelist/itemOwner';
import { deliveryAggregate, deviceAggregate, itemOwnerAggregate } from '../../src/command/aggregates';
import type { Aggregate } from '../../src/command/commandHandler';

// Issue 26, "Long streams": an aggregate with a `window` is loaded from its last events only. That
// is right only if evolve makes every event between them irrelevant: checked here on histories its own
// decider writes (random commands, seeded), against the fold of the whole history.

/** A small seeded generator (mulberry32): the same histories on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The history the decider writes for the commands (refused ones append nothing). */
function history<C, E, S>(decider: Decider<C, E, S>, commands: readonly C[]): E[] {
  const events: E[] = [];
  let state = decider.initialState();
  for (const command of commands) {
    let decided: readonly E[];
    try {
      decided = decider.decide(command, state);
    } catch (error) {
      if (error instanceof DomainError) continue;
      throw error;
    }
    for (const event of decided) {
      events.push(event);
      state = decider.evolve(state, event);
    }
  }
  return events;
}

/** What a window's load folds: the last `last` events. */
const windowed = <E>(events: readonly E[], window: { last: number }): E[] =>
  events.slice(Math.max(events.length - window.last, 0));

function expectWindowSuffices<C, E extends { type: string; data: unknown }, S>(
  aggregate: Aggregate<C, E, S>,
  histories: readonly (readonly E[])[],
): void {
  const { decider, window } = aggregate;
  expect(window, 'the aggregate declares a window').to.not.equal(undefined);
  let longest = 0;
  for (const events of histories) {
    longest = Math.max(longest, events.length);
    // Every prefix: the state after each event, as a load at that revision would see it.
    for (let n = 0; n <= events.length; n++) {
      const prefix = events.slice(0, n);
      const whole = prefix.reduce(decider.evolve, decider.initialState());
      const fromWindow = windowed(prefix, window!).reduce(decider.evolve, decider.initialState());
      expect(fromWindow, `after ${n} events: ${prefix.map((e) => e.type).join(', ')}`).to.deep.equal(whole);
    }
  }
  expect(longest, 'the histories are longer than the window').to.be.above(window!.last + 2);
}

describe('stream windows: loading an aggregate from its window gives the state of its whole stream', () => {
  it('device: registered and unregistered at every login and logout, fields changing, tokens revoked', () => {
    const next = random(26);
    const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)]!;
    const histories = Array.from({ length: 40 }, (_, h) =>
      history(
        deviceAggregate.decider,
        Array.from({ length: 30 }, (_, i): DeviceCommand => {
          const now = new Date(Date.UTC(2026, 0, 1, 0, h, i)).toISOString();
          if (next() < 0.3) return { type: 'UnregisterDevice', now };
          // Issue 25: APNs calls the token dead (of the current registration, or of an earlier one); a Web
          // Push service the subscription (the current one, or one replaced since).
          if (next() < 0.3)
            return {
              type: 'RevokeNativeToken',
              registration: 1 + Math.floor(next() * 3),
              service: pick(['apns', 'webpush'] as const),
              reason: 'Unregistered',
              endpoint: pick(['https://push.example.com/a', 'https://push.example.com/b']),
              ...(next() < 0.5 && { deadSince: Date.parse(now) - Math.floor(next() * 5000) }),
              now,
            };
          // A WEB device's browser subscribes, subscribes anew or unsubscribes.
          if (next() < 0.2)
            return {
              type: 'SubscribeWebPush',
              registration: 1 + Math.floor(next() * 3),
              ...(next() < 0.3 && { alias: pick(['zhang', 'li', 'wang']) }),
              subscription:
                next() < 0.2
                  ? null
                  : {
                      endpoint: pick(['https://push.example.com/a', 'https://push.example.com/b']),
                      p256dh: 'p256dh',
                      auth: 'auth',
                      expirationTime: null,
                    },
              now,
            };
          return {
            type: 'RegisterDevice',
            deviceId: 'ab'.repeat(16),
            appId: next() < 0.05 ? 'other' : 'camel',
            clientId: 1 + Math.floor(next() * 3),
            alias: pick(['zhang', 'li', 'wang']),
            platform: pick(['ANDROID', 'IOS', 'WEB', 'WEB']),
            nativeToken: 'token',
            mobile: pick([null, '', '+86 138', '139']),
            tags: pick([[], ['a'], ['a', 'b'], ['b', ' a ']]),
            now,
          };
        }),
      ),
    );
    expectWindowSuffices(deviceAggregate, histories);
  });

  it('delivery: attempts, reconnects, confirmations and ends, for every kind of push', () => {
    const next = random(27);
    const histories: DeliveryEvent[][] = [];
    for (const source of ['onepush', 'topvdn'] as const)
      for (const needsConfirm of [true, false])
        for (const retry of ['none', 'backoff', 'topvdn'] as const)
          for (let h = 0; h < 6; h++) {
            const start = Date.UTC(2026, 0, 1);
            const terms: DeliveryTerms = {
              pushId: '00000000-0000-4000-8000-000000000001',
              deviceId: 'cd'.repeat(16),
              appId: 'camel',
              source,
              needsConfirm,
              retry,
              requestedAt: new Date(start).toISOString(),
              expiresAt: new Date(start + 60_000).toISOString(),
            };
            let clock = start;
            const commands = Array.from({ length: 40 }, (): DeliveryCommand => {
              clock += Math.floor(next() * 3_000);
              const now = new Date(clock).toISOString();
              const roll = next();
              if (roll < 0.6) return { type: 'RecordAttempt', terms, dueOnly: next() < 0.5, now };
              if (roll < 0.75) return { type: 'ConfirmDelivery', terms, now };
              if (roll < 0.9) return { type: 'CloseDelivery', terms, now };
              return { type: 'DropDelivery', terms, reason: 'no_callback_url', now };
            });
            histories.push(history(deliveryAggregate.decider, commands));
          }
    expectWindowSuffices(deliveryAggregate, histories);
  });

  it('item owner: registered, changed and removed as often as the app likes', () => {
    const next = random(28);
    const histories = Array.from({ length: 20 }, (_, h) =>
      history(
        itemOwnerAggregate.decider,
        Array.from({ length: 20 }, (_, i): ItemOwnerCommand => {
          const base = { appId: 'camel', repname: 'rep', itemname: 'item', now: `2026-01-01T00:${h}:${i}Z` };
          return next() < 0.3
            ? { type: 'RemoveItemOwner', ...base }
            : { type: 'RegisterItemOwner', ...base, owner: next() < 0.5 ? 'zhang' : 'li' };
        }),
      ),
    );
    expectWindowSuffices(itemOwnerAggregate, histories);
  });
});
