import { expect } from 'chai';
import type { Presence } from '../../src/devices/presence';
import {
  StreamNotFoundError,
  type AppendResult,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
} from '../../src/eventStore/eventStore';
import type { PlatformPushOutcome } from '../../src/platformPush/platformPush';
import {
  PlatformPushes,
  type DeliveryKey,
  type PlatformPushCandidate,
  type PlatformPushQueries,
} from '../../src/platformPush/platformPusher';

/** The trigger's look (requestPage) against fake queries, presence and store: where its cursors go (issue 25 review 1, 2, 4). */
describe('platform push trigger: the look and its cursors', () => {
  const key = (n: number): DeliveryKey => ({ position: String(n), deviceId: `dev-${n}` });
  const candidate = (n: number): PlatformPushCandidate => ({
    pushId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    deviceId: `dev-${n}`,
    appId: 'camel',
    attempts: 0,
    nativeToken: 'aa'.repeat(32),
    registration: 1,
    expiresAt: '2099-01-01T00:00:00.000Z',
    platform: 'IOS',
  });
  type Look = Awaited<ReturnType<PlatformPushQueries['candidates']>>;

  function setUp(answers: Look[]) {
    const looks: Array<{ tail: DeliveryKey | undefined; sweep: unknown; again: readonly unknown[] }> = [];
    let position = 0n;
    const failing = new Set<string>();
    const store = {
      async append(streamName: string, _events: readonly NewEvent[]): Promise<AppendResult> {
        if ([...failing].some((d) => streamName.endsWith(d))) throw new Error('the store is away');
        return { nextExpectedRevision: 0n, position: ++position };
      },
    } as unknown as EventStore;
    let presenceFails = false;
    const presence: Presence = {
      isOnline: async () => false,
      onlineAmong: async () => {
        if (presenceFails) throw new Error('presence is away');
        return new Set<string>();
      },
      localDevices: () => [],
    };
    const queries = {
      async candidates(_apps, _now, _limit, windows, again) {
        looks.push({ tail: windows.tail, sweep: windows.sweep, again });
        return answers.shift()!;
      },
      latestDelivery: async () => key(100),
      due: async () => [],
      nextAttemptAt: async () => undefined,
    } as Partial<PlatformPushQueries> as PlatformPushQueries;
    const pushes = new PlatformPushes({
      store,
      queries,
      presence,
      services: {} as never,
      appsWith: async () => ({ IOS: ['camel'], ANDROID: [], WEB: [] }),
      clock: () => new Date('2026-01-01T00:00:00Z'),
      log: { error() {}, warn() {}, info() {}, debug() {} } as never,
      readYourWrites: async () => {},
    });
    const offered: unknown[] = [];
    const inner = pushes as unknown as {
      requestPage(): Promise<boolean>;
      sender: { offer(item: unknown): void; wake(): void };
      trigger: { running: boolean };
    };
    inner.sender.offer = (item) => offered.push(item);
    inner.sender.wake = () => {};
    // Leading (the loop itself is not started: the test makes each look).
    Object.defineProperty(inner, 'trigger', { value: { running: true } });
    return {
      looks,
      offered,
      look: () => inner.requestPage(),
      failPresence: (fails: boolean) => (presenceFails = fails),
      failAppendFor: (deviceId: string) => failing.add(deviceId),
      stepDown: () => (inner.trigger.running = false),
    };
  }
  const answer = (over: Partial<Look>): Look => ({
    candidates: [],
    tailThrough: undefined,
    sweepThrough: undefined,
    tailFull: false,
    sweepDone: true,
    ...over,
  });

  it('starts its tail at the newest delivery and never moves it back; the sweep walks on only while the tail is not full', async () => {
    const t = setUp([
      answer({ tailThrough: key(110), tailFull: true, sweepThrough: key(50), sweepDone: false }),
      answer({ tailThrough: key(120), tailFull: false }),
      answer({ tailThrough: key(120), sweepThrough: key(40), sweepDone: false }),
      answer({ tailThrough: key(125), sweepThrough: key(1), sweepDone: true }),
      answer({ tailThrough: key(125) }),
    ]);
    for (let i = 0; i < 5; i++) await t.look();
    expect(t.looks.map((l) => l.tail)).to.deep.equal([key(100), key(110), key(120), key(120), key(125)]);
    // The first look sweeps from the newest; the second none (the tail was full); then on from where it
    // ended, and from the newest again once it reached the oldest.
    expect(t.looks.map((l) => l.sweep)).to.deep.equal([
      { before: undefined },
      undefined,
      { before: key(50) },
      { before: key(40) },
      { before: undefined },
    ]);
  });

  it('moves no cursor when presence fails: the next look reads the same windows', async () => {
    const t = setUp([
      answer({ candidates: [candidate(101)], tailThrough: key(110), sweepThrough: key(50), sweepDone: false }),
      answer({ candidates: [candidate(101)], tailThrough: key(110), sweepThrough: key(50), sweepDone: false }),
    ]);
    t.failPresence(true);
    await t.look().then(
      () => expect.fail('the look should have failed'),
      (error: Error) => expect(error.message).to.equal('presence is away'),
    );
    t.failPresence(false);
    await t.look();
    expect(t.looks[1]!.tail).to.deep.equal(t.looks[0]!.tail);
    expect(t.looks[1]!.sweep).to.deep.equal(t.looks[0]!.sweep);
    expect(t.offered).to.have.length(1);
  });

  it('looks again at a delivery whose request failed, while the tail moves on', async () => {
    const t = setUp([
      answer({ candidates: [candidate(101), candidate(102)], tailThrough: key(110) }),
      answer({ tailThrough: key(110) }),
    ]);
    t.failAppendFor('dev-102');
    await t.look();
    await t.look();
    expect(t.looks[1]!.tail).to.deep.equal(key(110));
    expect(t.looks[1]!.again).to.deep.equal([{ pushId: candidate(102).pushId, deviceId: 'dev-102', appId: 'camel' }]);
    // Each with its service: the sends in flight are bounded per app and service.
    expect(t.offered).to.deep.equal([
      { pushId: candidate(101).pushId, deviceId: 'dev-101', appId: 'camel', service: 'apns', position: 1n },
    ]);
  });

  it('hands nothing to the sender once stepping down (a stop would abort it unrecorded)', async () => {
    const t = setUp([answer({ candidates: [candidate(101)], tailThrough: key(110) })]);
    t.stepDown();
    expect(await t.look()).to.equal(false);
    expect(t.offered).to.deep.equal([]);
  });
});

/** An attempt after this leader revoked the device's token, the read model not showing it yet (issue 25 review 3). */
describe('platform push attempt: a token this leader revoked', () => {
  it('is not sent to by another message while the read model still shows it live', async () => {
    const deviceId = 'd'.repeat(32);
    const registeredAt = '2026-12-07T10:00:00.000Z';
    const streams = new Map<string, RecordedEvent[]>([
      [
        `device-${deviceId}`,
        [
          {
            id: '00000000-0000-4000-8000-000000000001',
            streamName: `device-${deviceId}`,
            revision: 0n,
            position: 1n,
            type: 'DeviceRegistered',
            data: {
              deviceId,
              appId: 'camel',
              clientId: 1000001,
              alias: 'u1',
              platform: 'IOS',
              nativeToken: 'a'.repeat(64),
              mobile: null,
              tags: [],
              registration: 1,
              registeredAt,
            },
            metadata: {},
            createdAt: new Date(registeredAt),
          },
        ],
      ],
    ]);
    let position = 1n;
    const store = {
      async append(streamName: string, events: readonly NewEvent[]): Promise<AppendResult> {
        const stream = streams.get(streamName) ?? [];
        for (const e of events)
          stream.push({
            id: e.id,
            streamName,
            revision: BigInt(stream.length),
            position: ++position,
            type: e.type,
            data: e.data,
            metadata: e.metadata ?? {},
            createdAt: new Date(),
          });
        streams.set(streamName, stream);
        return { nextExpectedRevision: BigInt(stream.length - 1), position };
      },
      async readStream(streamName: string, options?: { direction?: string; maxCount?: number }) {
        const stream = streams.get(streamName);
        if (!stream) throw new StreamNotFoundError(streamName);
        const events = options?.direction === 'backwards' ? [...stream].reverse() : [...stream];
        return events.slice(0, options?.maxCount ?? events.length);
      },
    } as unknown as EventStore;
    const sent: string[] = [];
    const answers: PlatformPushOutcome[] = [
      { ok: false, reason: '410 Unregistered', retry: false, tokenDead: true },
      { ok: true },
    ];
    const queries = {
      // The read model lags: it shows the token live all along.
      sendability: async (items: readonly unknown[]) =>
        items.map(() => ({ tokenLive: true, delivery: { status: 'pending' as const, needsConfirm: false } })),
      messageOf: async () => ({
        message: { kind: 'onepush', alert: 'hi', sound: null, badge: null, extra: {} } as never,
        needsConfirm: false,
      }),
    } as Partial<PlatformPushQueries> as PlatformPushQueries;
    let shown: () => void = () => {};
    const pushes = new PlatformPushes({
      store,
      queries,
      presence: {} as never,
      services: {
        apns: {
          send: async (n: { messageId: string }) => (sent.push(n.messageId), answers.shift()!),
          close: async () => {},
        },
      } as never,
      appsWith: async () => ({ IOS: ['camel'], ANDROID: [], WEB: [] }),
      clock: () => new Date('2026-12-07T11:00:00Z'),
      log: { error() {}, warn() {}, info() {}, debug() {} } as never,
      // The read model does not show the revocation until the test says so.
      readYourWrites: () => new Promise<void>((resolve) => (shown = resolve)),
    });
    const attempt = (pushId: string) =>
      (
        pushes as unknown as {
          attempt(state: unknown, signal: AbortSignal): Promise<{ ok: boolean; error?: string; revoked?: boolean }>;
        }
      ).attempt(
        {
          pushId,
          deviceId,
          appId: 'camel',
          service: 'apns',
          nativeToken: 'a'.repeat(64),
          registration: 1,
          expiresAt: '2026-12-08T10:00:00.000Z',
          why: 'offline',
          status: 'pending',
          attempts: 0,
          nextAttemptAt: null,
        },
        new AbortController().signal,
      );
    const first = await attempt('m1');
    expect(first).to.include({ ok: false, revoked: true });
    const second = await attempt('m2');
    expect(second.ok).to.equal(false);
    expect(second.error).to.match(/^NativeTokenRevoked/);
    expect(sent).to.deep.equal(['m1']);
    // Once the read model shows it, it says (a registration anew clears it there).
    shown();
    await new Promise((resolve) => setImmediate(resolve));
    expect(await attempt('m3')).to.include({ ok: true });
    expect(sent).to.deep.equal(['m1', 'm3']);
  });
});
