import { expect } from 'chai';
import pino from 'pino';
import { platformPushDecider, type PlatformPushEvent } from '../../domain/device/platformPush';
import {
  KOALA_WEB_PUSH_MAX_SECONDS,
  koalaWebPushExpiry,
  koalaWebPushPayload,
  koalaWebPushRequests,
  terminalKey,
  type KoalaPushedMessage,
  type KoalaWebPushCandidate,
} from '../../domain/message/koalaWebPush';
import type { EventStore } from '../../src/eventStore/eventStore';
import { KoalaWebPushes, type KoalaWebPushQueries } from '../../src/platformPush/koalaWebPushes';
import { WEB_PUSH_LIMITS } from '../../src/platformPush/webPush';
import { deciderSpecification } from '../support/deciderSpecification';

/** Koala's messages (shared/seeds/000_83e3b79cc88886e5.txt) to users whose web terminals are closed, through Web Push. */
describe('Koala web push: which messages go to which browsers, and what they carry', () => {
  const now = '2026-12-07T10:00:00.000Z';
  const at = (seconds: number) => new Date(Date.parse(now) + seconds * 1000).toISOString();
  const candidate = (overrides: Partial<KoalaWebPushCandidate> = {}): KoalaWebPushCandidate => ({
    messageId: '7d3c5a1e-0000-4000-8000-000000000001',
    appId: 'camel',
    userId: 'zhangbin',
    sentAt: at(-10),
    expiresAt: at(3600),
    deviceId: 'd'.repeat(32),
    registration: 2,
    subscription: '{"endpoint":"https://push.example.com/x","keys":{"p256dh":"p","auth":"a"}}',
    subscriptionExpiresAt: null,
    ...overrides,
  });

  it("requests one push per message and browser of a user with no live terminal, until the message's expiry", () => {
    const other = candidate({ deviceId: 'e'.repeat(32), registration: 1 });
    expect(koalaWebPushRequests([candidate(), other, candidate()], new Set(), now)).to.deep.equal([
      {
        type: 'RequestPlatformPush',
        pushId: candidate().messageId,
        deviceId: 'd'.repeat(32),
        appId: 'camel',
        service: 'webpush',
        nativeToken: candidate().subscription,
        registration: 2,
        why: 'offline',
        expiresAt: at(3600),
        userId: 'zhangbin',
        now,
      },
      {
        type: 'RequestPlatformPush',
        pushId: candidate().messageId,
        deviceId: 'e'.repeat(32),
        appId: 'camel',
        service: 'webpush',
        nativeToken: candidate().subscription,
        registration: 1,
        why: 'offline',
        expiresAt: at(3600),
        userId: 'zhangbin',
        now,
      },
    ]);
  });

  it('requests nothing for a user with a live `messages` subscription: the socket has it', () => {
    expect(koalaWebPushRequests([candidate()], new Set([terminalKey('camel', 'zhangbin')]), now)).to.deep.equal([]);
    // The same user id in another app is another user.
    expect(koalaWebPushRequests([candidate()], new Set([terminalKey('other', 'zhangbin')]), now)).to.have.length(1);
  });

  it('requests nothing for an expired message, a push past the services’ maximum, or an expired subscription', () => {
    expect(koalaWebPushRequests([candidate({ expiresAt: now })], new Set(), now)).to.deep.equal([]);
    expect(koalaWebPushRequests([candidate({ expiresAt: at(-1) })], new Set(), now)).to.deep.equal([]);
    expect(
      koalaWebPushRequests([candidate({ expiresAt: null, sentAt: at(-KOALA_WEB_PUSH_MAX_SECONDS) })], new Set(), now),
    ).to.deep.equal([]);
    expect(koalaWebPushRequests([candidate({ subscriptionExpiresAt: at(-1) })], new Set(), now)).to.deep.equal([]);
    expect(koalaWebPushRequests([candidate({ subscriptionExpiresAt: at(60) })], new Set(), now)).to.have.length(1);
  });

  it("`expire` 0 (forever) is offered for the push services' maximum, 28 days; a longer expire is cut to it", () => {
    expect(koalaWebPushExpiry(now, null)).to.equal(at(28 * 86_400));
    expect(koalaWebPushExpiry(now, at(365 * 86_400))).to.equal(at(28 * 86_400));
    expect(koalaWebPushExpiry(now, at(60))).to.equal(at(60));
    expect(KOALA_WEB_PUSH_MAX_SECONDS).to.equal(WEB_PUSH_LIMITS.ttlSeconds);
    const [request] = koalaWebPushRequests([candidate({ expiresAt: null, sentAt: now })], new Set(), now);
    expect(request?.expiresAt).to.equal(at(28 * 86_400));
  });

  it('the platform push records the recipient and takes one request per message and browser', () => {
    const spec = deciderSpecification(platformPushDecider);
    const [request] = koalaWebPushRequests([candidate()], new Set(), now);
    const { type: _, now: requestedAt, ...data } = request!;
    const requested: PlatformPushEvent = { type: 'PlatformPushRequested', data: { ...data, requestedAt } };
    spec.given([]).when(request!).then([requested]);
    spec.given([requested]).when(request!).then([]);
    expect(requested.data).to.include({ userId: 'zhangbin', why: 'offline', service: 'webpush' });
  });

  describe('the payload (what the service worker gets)', () => {
    const message = (content: string, props: Record<string, string> = {}): KoalaPushedMessage => ({
      id: '7d3c5a1e-0000-4000-8000-000000000001',
      meta: { realm: 'camel', seq: '4242', sender: 'zhangbin', stime: now },
      title: 'system upgrade',
      content,
      props,
      expiresAt: null,
    });
    const limit = WEB_PUSH_LIMITS.payloadBytes;

    it("is the socket's Message_t as it is when it fits", () => {
      const whole = message('system patching 20:21', { level: '1' });
      expect(JSON.parse(koalaWebPushPayload(whole, limit))).to.deep.equal(whole);
    });

    it('drops props, then cuts content at a whole code point, says so, and stays within 3,993 bytes', () => {
      for (const unit of ['a', '中', '😀', '"', '\n', '\u0001']) {
        const big = message(unit.repeat(16_384), { big: 'x'.repeat(1024) });
        const payload = koalaWebPushPayload(big, limit);
        const bytes = Buffer.byteLength(payload);
        expect(bytes, unit).to.be.at.most(limit);
        const parsed = JSON.parse(payload) as KoalaPushedMessage & { truncated: boolean };
        expect(parsed.truncated).to.equal(true);
        expect(parsed.props).to.deep.equal({});
        expect(parsed).to.deep.include({ id: big.id, meta: big.meta, title: big.title, expiresAt: null });
        expect(big.content.startsWith(parsed.content)).to.equal(true);
        // Whole code points, and as many as fit: one more would not.
        expect([...parsed.content].every((c) => c === unit)).to.equal(true);
        const oneMore = JSON.stringify({ ...parsed, content: parsed.content + unit });
        expect(Buffer.byteLength(oneMore), unit).to.be.above(limit);
      }
    });

    it('keeps the content and drops only props when that is enough', () => {
      const payload = JSON.parse(koalaWebPushPayload(message('short', { big: 'x'.repeat(4000) }), limit));
      expect(payload).to.include({ content: 'short', truncated: true });
    });
  });
});

describe('Koala web push: the leader’s look and an attempt (KoalaWebPushes)', () => {
  const now = new Date('2026-12-07T10:00:00.000Z');
  const message = {
    id: '7d3c5a1e-0000-4000-8000-000000000001',
    meta: { realm: 'camel', seq: '100', sender: 'boss', stime: now.toISOString() },
    title: 't',
    content: 'c',
    props: {},
    expiresAt: null,
  };
  const candidate = (messageId: string, deviceId: string): KoalaWebPushCandidate => ({
    messageId,
    appId: 'camel',
    userId: 'zhangbin',
    sentAt: now.toISOString(),
    expiresAt: null,
    deviceId,
    registration: 1,
    subscription: '{"endpoint":"https://push.example.com/x","keys":{"p256dh":"p","auth":"a"}}',
    subscriptionExpiresAt: null,
  });
  const service = (overrides: {
    candidates?: KoalaWebPushCandidate[];
    messageOf?: KoalaWebPushQueries['messageOf'];
    clock?: () => Date;
  }) => {
    const appended: string[] = [];
    const recorded: bigint[] = [];
    const queries: KoalaWebPushQueries = {
      window: async () => ({ candidates: overrides.candidates ?? [], fullThrough: undefined }),
      lookedThrough: async () => 10n,
      recordLookedThrough: async (seq) => {
        recorded.push(seq);
      },
      messageOf: overrides.messageOf ?? (async () => ({ message, acknowledged: false })),
    };
    const store = {
      append: async (stream: string) => {
        appended.push(stream);
        return { nextExpectedRevision: 0n, position: BigInt(1000 + appended.length) };
      },
      headPosition: async () => 0n,
    } as unknown as EventStore;
    const pushes = new KoalaWebPushes({
      store,
      queries,
      terminals: { onlineAmong: async () => new Set<string>() },
      appsWithVapid: async () => ['camel'],
      shownThrough: () => 200n,
      readYourWrites: async () => undefined,
      requested: () => undefined,
      clock: overrides.clock ?? (() => now),
      log: pino({ level: 'silent' }),
    });
    return { pushes, appended, recorded };
  };
  const item = {
    pushId: message.id,
    appId: 'camel',
    userId: 'zhangbin',
    nativeToken: '{"endpoint":"https://push.example.com/x","keys":{"p256dh":"p","auth":"a"}}',
    expiresAt: new Date(now.getTime() + 3_600_000).toISOString(),
  };

  it('a request the decider refuses is skipped: the others are appended and the cursor moves on', async () => {
    const good = candidate(message.id, 'd'.repeat(32));
    // Refused every time (not a UUID): before, it failed the whole look and held the cursor for good.
    const bad = candidate('not-a-uuid', 'e'.repeat(32));
    const { pushes, appended, recorded } = service({ candidates: [bad, good] });
    pushes.start();
    try {
      const deadline = Date.now() + 5_000;
      while (!recorded.includes(200n) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    } finally {
      await pushes.stop();
    }
    expect(appended).to.deep.equal([`platformpush-${message.id}.${'d'.repeat(32)}`]);
    expect(recorded).to.include(200n);
  });

  it('a message the inbox read model does not show (rebuilding) is retried until the push expires, then final', async () => {
    let clock = now;
    const { pushes } = service({ messageOf: async () => undefined, clock: () => clock });
    const missing = await pushes.notificationOf(item);
    expect(missing).to.include({ ok: false, retry: true });
    clock = new Date(Date.parse(item.expiresAt));
    const gone = await pushes.notificationOf(item);
    expect(gone).to.include({ ok: false, retry: false });
    expect(gone.ok === false && gone.error).to.match(/^AlreadyEnded/);
  });
});
