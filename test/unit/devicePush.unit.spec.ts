import { expect } from 'chai';
import { DomainError } from '../../domain/decider';
import {
  deliveryDecider,
  deliveryTerms,
  nextAttempt,
  type DeliveryEvent,
  type DeliveryTerms,
} from '../../domain/device/delivery';
import { deviceDecider, type DeviceEvent, type RegisterDevice } from '../../domain/device/device';
import {
  PushEvent,
  pushDecider,
  pushIdOfSentId,
  topvdnFlag,
  topvdnRequestId,
  unknownClients,
  type PushRequestedData,
  type RequestOnePush,
  type RequestTopvdnPush,
} from '../../domain/device/push';
import { deciderSpecification } from '../support/deciderSpecification';

const now = '2026-11-23T10:00:00.000Z';
const at = (seconds: number) => new Date(Date.parse(now) + seconds * 1000).toISOString();
const deviceId = '0123456789abcdef0123456789abcdef';
const pushId = '00000000-0000-4000-8000-0000000000a1';

describe('device decider', () => {
  const spec = deciderSpecification(deviceDecider);
  // The seed's register example.
  const register: RegisterDevice = {
    type: 'RegisterDevice',
    deviceId,
    appId: 'testapp1',
    clientId: 1000001,
    alias: 'testuserid1',
    platform: 'ANDROID',
    nativeToken: 'andToken0011',
    mobile: '13700001111',
    tags: ['tag1', 'sz'],
    now,
  };
  const registered: DeviceEvent = {
    type: 'DeviceRegistered',
    data: {
      deviceId,
      appId: 'testapp1',
      clientId: 1000001,
      alias: 'testuserid1',
      platform: 'ANDROID',
      nativeToken: 'andToken0011',
      mobile: '13700001111',
      tags: ['tag1', 'sz'],
      registration: 1,
      registeredAt: now,
    },
  };
  const unregistered: DeviceEvent = {
    type: 'DeviceUnregistered',
    data: { deviceId, appId: 'testapp1', registration: 1, unregisteredAt: at(5) },
  };

  it('registers once; again unchanged appends nothing; changed is an update that keeps its number', () => {
    spec.given([]).when(register).then([registered]);
    spec
      .given([registered])
      .when({ ...register, now: at(1) })
      .then([]);
    spec
      .given([registered])
      .when({ ...register, alias: 'other', clientId: 999, now: at(1) })
      .then([{ type: 'DeviceRegistered', data: { ...registered.data, alias: 'other', registeredAt: at(1) } as never }]);
  });

  it('unregisters once; registering again starts a new registration (old tokens stay dead)', () => {
    spec
      .given([registered])
      .when({ type: 'UnregisterDevice', now: at(5) })
      .then([unregistered]);
    spec
      .given([registered, unregistered])
      .when({ type: 'UnregisterDevice', now: at(6) })
      .then([]);
    spec
      .given([registered, unregistered])
      .when({ ...register, now: at(7) })
      .then([
        { type: 'DeviceRegistered', data: { ...registered.data, registration: 2, registeredAt: at(7) } as never },
      ]);
    spec
      .given([])
      .when({ type: 'UnregisterDevice', now })
      .thenThrows(DomainError, (e) => expect(e.code).to.equal('not_found'));
  });

  // Issue 22: an empty optional field is not given; limits count characters (code points).
  it('takes an empty mobile as none, drops blank tags, and counts characters, not UTF-16 units', () => {
    spec
      .given([])
      .when({ ...register, mobile: '', tags: ['', ' ', 'sz'] })
      .then([{ type: 'DeviceRegistered', data: { ...registered.data, mobile: null, tags: ['sz'] } as never }]);
    const [event] = deviceDecider.decide({ ...register, alias: '😀'.repeat(128) }, deviceDecider.initialState());
    expect((event!.data as { alias: string }).alias).to.equal('😀'.repeat(128));
    spec
      .given([])
      .when({ ...register, alias: '😀'.repeat(129) })
      .thenThrows(DomainError, (e) => expect(e.message).to.match(/^alias: /));
  });

  // Issue 22 (review): audiences ["ALL"] (in any case) means every device, so no alias or tag may be spelled so.
  it('refuses an alias or tag spelled ALL in any case: a push to it would reach every device of the app', () => {
    for (const change of [
      { alias: 'ALL' },
      { alias: 'all' },
      { alias: 'All' },
      { tags: ['sz', 'ALL'] },
      { tags: [' all '] },
    ]) {
      spec
        .given([])
        .when({ ...register, ...change })
        .thenThrows(DomainError, (e) => expect(e.message).to.match(/^(alias|tag): ALL \(in any case\) is reserved/));
    }
    expect(
      deviceDecider.decide({ ...register, alias: 'allan', tags: ['all-staff'] }, deviceDecider.initialState()),
    ).to.have.length(1);
  });

  it('refuses bad registrations, naming the field', () => {
    for (const [change, field] of [
      [{ alias: '' }, 'alias'],
      [{ alias: 'a b' }, 'alias'],
      [{ platform: 'PHONE' }, 'platform'],
      [{ nativeToken: 'x'.repeat(513) }, 'nativeToken'],
      [{ mobile: 'call me' }, 'mobile'],
      [{ tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }, 'tag'],
      [{ tags: ['\u0000'] }, 'tag'],
    ] as const) {
      spec
        .given([])
        .when({ ...register, ...change })
        .thenThrows(DomainError, (e) => expect(e.message).to.match(new RegExp(`^${field}: `)));
    }
    spec
      .given([registered])
      .when({ ...register, appId: 'other' })
      .thenThrows(DomainError, (e) => expect(e.code).to.equal('forbidden'));
  });
});

describe('push decider', () => {
  const spec = deciderSpecification(pushDecider);
  const onePush: RequestOnePush = {
    type: 'RequestOnePush',
    pushId,
    appId: 'testapp1',
    platform: 'ALL',
    audienceType: 'ALIAS',
    audiences: ['testuser1', 'testuser1'],
    alert: ' this is a alert',
    extra: 'testmsg',
    now,
  };
  const topvdn: RequestTopvdnPush = {
    type: 'RequestTopvdnPush',
    pushId,
    appId: 'Test',
    msg: 'aGVsbG8=',
    flag: 2,
    from: 1003200,
    clientIds: [5003062, 5003062],
    callback: true,
    now,
  };

  it('records a ONE-PUSH send with the seed defaults (MSG, no confirmation) and 7 days for an offline device', () => {
    const [event] = pushDecider.decide(onePush, pushDecider.initialState());
    const data = event!.data as PushRequestedData;
    expect(data.audience).to.deep.equal({ type: 'ALIAS', aliases: ['testuser1'] });
    expect(data.message).to.include({ kind: 'onepush', pushMsgType: 'MSG', tenantCode: '', extra: 'testmsg' });
    expect(data).to.include({ needsConfirm: false, retry: 'none', expiresAt: at(7 * 24 * 3600) });
    const confirmed = pushDecider.decide(
      { ...onePush, needConfirm: true, duration: 10000 },
      pushDecider.initialState(),
    )[0]!.data as PushRequestedData;
    expect(confirmed).to.include({ needsConfirm: true, retry: 'backoff', expiresAt: at(10000) });
  });

  // Issue 22: the seed's duration is "needConfirm=true时有效": the seed's own example (needConfirm false,
  // duration 10000) keeps the message for an offline device the default 7 days, not 2.8 hours.
  it('duration counts only with needConfirm: without it the message waits the default 7 days, whatever the duration', () => {
    const seedExample = { ...onePush, needConfirm: false, duration: 10000 };
    const push = pushDecider.decide(seedExample, pushDecider.initialState())[0]!.data as PushRequestedData;
    expect(push).to.include({ needsConfirm: false, expiresAt: at(7 * 24 * 3600) });
    // Its delivery to an offline device is still open after the duration, and ends at the default.
    const terms = deliveryTerms(push, deviceId);
    deciderSpecification(deliveryDecider)
      .given([])
      .when({ type: 'CloseDelivery', terms, now: at(10001) })
      .then([]);
    deciderSpecification(deliveryDecider)
      .given([])
      .when({ type: 'CloseDelivery', terms, now: at(7 * 24 * 3600) })
      .then([
        {
          type: 'DeliveryExpired',
          data: { pushId, deviceId, appId: 'testapp1', attempts: 0, expiredAt: at(7 * 24 * 3600) },
        },
      ]);
    // A duration that would count for nothing is not checked either.
    expect(pushDecider.decide({ ...onePush, duration: -1 }, pushDecider.initialState())[0]!.data).to.include({
      expiresAt: at(7 * 24 * 3600),
    });
    // With needConfirm, a duration over the 30-day maximum is the maximum (ONE-PUSH clamped it too).
    expect(
      pushDecider.decide({ ...onePush, needConfirm: true, duration: 10 ** 9 }, pushDecider.initialState())[0]!.data,
    ).to.include({ expiresAt: at(30 * 24 * 3600) });
  });

  it('drops blank audiences; none left is refused', () => {
    const [event] = pushDecider.decide({ ...onePush, audiences: ['', 'testuser1', ' '] }, pushDecider.initialState());
    expect((event!.data as PushRequestedData).audience).to.deep.equal({ type: 'ALIAS', aliases: ['testuser1'] });
    spec
      .given([])
      .when({ ...onePush, audiences: ['', ' '] })
      .thenThrows(DomainError, (e) => expect(e.message).to.equal('audiences: at least one is required'));
  });

  // Issue 22 (audit): what a Java client's unset `int duration` sends is 0: no duration, the default.
  it('needConfirm with duration 0 is the default validity (7 days); over 30 days is 30 days', () => {
    const push = pushDecider.decide({ ...onePush, needConfirm: true, duration: 0 }, pushDecider.initialState())[0]!
      .data as PushRequestedData;
    expect(push).to.include({ needsConfirm: true, expiresAt: at(7 * 24 * 3600) });
    expect(
      pushDecider.decide(
        { ...onePush, needConfirm: true, duration: 30 * 24 * 3600 + 1 },
        pushDecider.initialState(),
      )[0]!.data,
    ).to.include({ expiresAt: at(30 * 24 * 3600) });
  });

  it('takes a multi-line alert and extra (LF, CR, TAB); other control characters are refused', () => {
    const push = pushDecider.decide(
      { ...onePush, alert: 'line1\nline2\r\n\tend', extra: 'a\nb' },
      pushDecider.initialState(),
    )[0]!.data as PushRequestedData;
    expect(push.message).to.include({ alert: 'line1\nline2\r\n\tend', extra: 'a\nb' });
    for (const change of [{ alert: 'a\u0001b' }, { alert: 'a\u0000b' }, { extra: 'a\u001bb' }]) {
      spec
        .given([])
        .when({ ...onePush, ...change })
        .thenThrows(DomainError, (e) =>
          expect(e.message).to.match(/^(alert|extra): may not contain control characters$/),
        );
    }
  });

  it('trims each audience as registration stores it; an alias with inner spaces, or a tag too long to register, is refused, naming it', () => {
    const byAlias = pushDecider.decide(
      { ...onePush, audiences: ['testuser1 ', ' testuser1', '\tbob\n'] },
      pushDecider.initialState(),
    )[0]!.data as PushRequestedData;
    expect(byAlias.audience).to.deep.equal({ type: 'ALIAS', aliases: ['testuser1', 'bob'] });
    const byTag = pushDecider.decide(
      { ...onePush, audienceType: 'TAG', audiences: [' sz ', 'two words'] },
      pushDecider.initialState(),
    )[0]!.data as PushRequestedData;
    expect(byTag.audience).to.deep.equal({ type: 'TAG', tags: ['sz', 'two words'] });
    spec
      .given([])
      .when({ ...onePush, audiences: ['testuser1', 'test user1'] })
      .thenThrows(DomainError, (e) =>
        expect(e.message).to.equal('audiences: "test user1" is not an alias (aliases have no spaces)'),
      );
    spec
      .given([])
      .when({ ...onePush, audienceType: 'TAG', audiences: ['t'.repeat(65)] })
      .thenThrows(DomainError, (e) => expect(e.message).to.equal('audiences: at most 64 characters'));
    spec
      .given([])
      .when({ ...onePush, audiences: ['a'.repeat(129)] })
      .thenThrows(DomainError, (e) => expect(e.message).to.equal('audiences: at most 128 characters'));
  });

  // Issue 22 (audit): the original one-push took any JSON in extra ("业务系统自定义的消息数据") and delivered it.
  it('records extra given as JSON (object, array, number, boolean) as given; old events with text extra still decode', () => {
    for (const extra of [
      { orderId: 7, lines: ['a', { b: null }] },
      [1, 'two'],
      42,
      0,
      false,
      true,
      2 ** 53 - 1,
      1.5,
      -0.25,
    ]) {
      const [event] = pushDecider.decide({ ...onePush, extra }, pushDecider.initialState());
      expect((event!.data as PushRequestedData).message).to.deep.include({ extra });
      expect(PushEvent.is(JSON.parse(JSON.stringify(event)))).to.equal(true);
    }
    const [old] = pushDecider.decide(onePush, pushDecider.initialState());
    expect(PushEvent.is(JSON.parse(JSON.stringify(old)))).to.equal(true);
    // A retry whose stored extra came back with its keys in another order (jsonb) is the same request.
    const [keyed] = pushDecider.decide({ ...onePush, extra: { a: 1, b: [2] } }, pushDecider.initialState());
    spec
      .given([keyed!])
      .when({ ...onePush, extra: { b: [2], a: 1 } })
      .then([]);
    // null is none, as before.
    expect(
      (pushDecider.decide({ ...onePush, extra: null }, pushDecider.initialState())[0]!.data as PushRequestedData)
        .message,
    ).to.include({ extra: '' });
    // The same limit as text, on its JSON text; bounded depth; storable text in values and keys.
    expect(
      pushDecider.decide({ ...onePush, extra: { k: '😀'.repeat(4096 - 8) } }, pushDecider.initialState()),
    ).to.have.length(1);
    for (const [extra, message] of [
      [{ k: '😀'.repeat(4096 - 7) }, 'extra: at most 4096 characters (of its JSON)'],
      [JSON.parse(`${'['.repeat(33)}${']'.repeat(33)}`), 'extra: JSON nested at most 32 deep'],
      [{ 'a\u0000': 1 }, 'extra: may not contain control characters'],
      [{ a: ['\u0001'] }, 'extra: may not contain control characters'],
      [{ a: Infinity }, 'extra: a number too large for JSON'],
      // A Java long id, as JSON.parse reads it: rounded; refused rather than delivered changed.
      [
        JSON.parse('{"orderId": 1234567890123456789}'),
        'extra: an integer beyond ±9007199254740991 cannot be delivered exactly; send it as a string',
      ],
      [[-(2 ** 53)], 'extra: an integer beyond ±9007199254740991 cannot be delivered exactly; send it as a string'],
    ] as const) {
      spec
        .given([])
        .when({ ...onePush, extra })
        .thenThrows(DomainError, (e) => expect(e.message).to.equal(message));
    }
  });

  it('counts the alert limit in characters (code points): 1,024 emoji are fine, 1,025 are not', () => {
    expect(pushDecider.decide({ ...onePush, alert: '😀'.repeat(1024) }, pushDecider.initialState())).to.have.length(1);
    spec
      .given([])
      .when({ ...onePush, alert: '😀'.repeat(1025) })
      .thenThrows(DomainError, (e) => expect(e.message).to.equal('alert: at most 1024 characters'));
  });

  // Issue 21, item 12: a push id made from a client's idempotency key lands a retry on the same stream.
  it('a retry of the same request (later, its keys stored in another order) appends nothing; another request under the same id is a conflict', () => {
    const confirmed = { ...onePush, needConfirm: true, duration: 60 };
    const [sent] = pushDecider.decide(confirmed, pushDecider.initialState());
    const reordered = JSON.parse(
      JSON.stringify(sent, (_, value: unknown) =>
        value && typeof value === 'object' && !Array.isArray(value)
          ? Object.fromEntries(Object.entries(value).reverse())
          : value,
      ),
    ) as typeof sent;
    spec
      .given([reordered!])
      .when({ ...confirmed, now: at(30) })
      .then([]);
    for (const change of [
      { alert: 'again' },
      { duration: 61 },
      { audiences: ['someone-else'] },
      { needConfirm: false },
    ]) {
      spec
        .given([sent!])
        .when({ ...confirmed, ...change })
        .thenThrows(DomainError, (e) => expect(e.code).to.equal('conflict'));
    }
    const [flag2] = pushDecider.decide(topvdn, pushDecider.initialState());
    spec
      .given([flag2!])
      .when({ ...topvdn, now: at(3) })
      .then([]);
    spec
      .given([flag2!])
      .when({ ...topvdn, msg: 'd29ybGQ=' })
      .thenThrows(DomainError, (e) => expect(e.code).to.equal('conflict'));
    spec
      .given([sent!])
      .when({ ...topvdn, pushId })
      .thenThrows(DomainError, (e) => expect(e.code).to.equal('conflict'));
  });

  it('records a topvdn message: flag 2 retries for 16 s, flag 3 once within 5 s', () => {
    const flag2 = pushDecider.decide(topvdn, pushDecider.initialState())[0]!.data as PushRequestedData;
    expect(flag2).to.include({ needsConfirm: true, retry: 'topvdn', expiresAt: at(16) });
    expect(flag2.audience).to.deep.equal({ type: 'CLIENTS', clientIds: [5003062] });
    const flag3 = pushDecider.decide({ ...topvdn, flag: 3 }, pushDecider.initialState())[0]!.data as PushRequestedData;
    expect(flag3).to.include({ needsConfirm: false, retry: 'none', expiresAt: at(5) });
  });

  it('takes base64 of up to 256 bytes, and refuses the rest', () => {
    const base64 = (bytes: number) => Buffer.alloc(bytes, 7).toString('base64');
    expect(pushDecider.decide({ ...topvdn, msg: base64(256) }, pushDecider.initialState())).to.have.length(1);
    for (const msg of [
      base64(257),
      '',
      '\n',
      'aGVsbG8===',
      'aGVsb',
      'aGVsb=G8=',
      'aGVsbG8=aGVsbG8=',
      '=',
      '!!!!',
      'aGVs*bG8=',
      '\u00e9GVsbG8=',
    ]) {
      spec
        .given([])
        .when({ ...topvdn, msg })
        .thenThrows(DomainError, (e) => expect(e.message, JSON.stringify(msg)).to.match(/^msg: /));
    }
    spec
      .given([])
      .when({ ...topvdn, flag: 4 })
      .thenThrows(DomainError, (e) => expect(e.message).to.match(/^flag: /));
  });

  it('takes every common form of base64 (Android DEFAULT, unpadded, URL-safe, MIME) and records the standard padded one', () => {
    const msgOf = (msg: string) =>
      (
        (pushDecider.decide({ ...topvdn, msg }, pushDecider.initialState())[0]!.data as PushRequestedData).message as {
          msg: string;
        }
      ).msg;
    // hello, as Android's Base64.DEFAULT, NO_PADDING, URL_SAFE and NO_WRAP write it.
    for (const msg of ['aGVsbG8=', 'aGVsbG8=\n', 'aGVsbG8', 'aGVsbG8\n', ' aGVs\r\nbG8= '])
      expect(msgOf(msg), JSON.stringify(msg)).to.equal('aGVsbG8=');
    // Bytes whose standard base64 has + and /: the URL-safe alphabet writes them - and _.
    const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0xfe]);
    expect(bytes.toString('base64')).to.equal('+/+//g==');
    for (const msg of ['-_-__g==', '-_-__g', '+/+//g']) expect(msgOf(msg), msg).to.equal('+/+//g==');
    // 256 bytes as Base64.DEFAULT writes them: lines of 76 characters, each ending with \n.
    const all = Buffer.alloc(256, 0xfe).toString('base64');
    const wrapped = `${all.match(/.{1,76}/g)!.join('\n')}\n`;
    expect(msgOf(wrapped)).to.equal(all);
    expect(() =>
      msgOf(
        `${Buffer.alloc(257, 0xfe)
          .toString('base64')
          .match(/.{1,76}/g)!
          .join('\n')}\n`,
      ),
    ).to.throw(DomainError, /257 bytes/);
  });

  it('refuses bad ONE-PUSH sends, naming the field', () => {
    for (const [change, field] of [
      [{ platform: 'PHONE' }, 'platform'],
      [{ audienceType: 'GROUP' }, 'audienceType'],
      [{ audiences: [] }, 'audiences'],
      [{ alert: ' ' }, 'alert'],
      [{ pushMsgType: 'PING' }, 'pushMsgType'],
      [{ needConfirm: true, duration: -1 }, 'duration'],
      [{ needConfirm: true, duration: 1.5 }, 'duration'],
      [{ badge: -1 }, 'badge'],
      [{ extra: 'x'.repeat(4097) }, 'extra'],
      [{ sound: 'a\nb' }, 'sound'],
    ] as const) {
      spec
        .given([])
        .when({ ...onePush, ...change })
        .thenThrows(DomainError, (e) => expect(e.message).to.match(new RegExp(`^${field}: `)));
    }
  });
});

describe('delivery decider', () => {
  const spec = deciderSpecification(deliveryDecider);
  const target = { pushId, deviceId, appId: 'Test' };
  const flag2: DeliveryTerms = {
    ...target,
    source: 'topvdn',
    needsConfirm: true,
    retry: 'topvdn',
    requestedAt: now,
    expiresAt: at(16),
  };
  const flag3: DeliveryTerms = { ...flag2, needsConfirm: false, retry: 'none', expiresAt: at(5) };
  const confirmOne: DeliveryTerms = {
    ...target,
    source: 'onepush',
    needsConfirm: true,
    retry: 'backoff',
    requestedAt: now,
    expiresAt: at(60),
  };
  const attempt = (terms: DeliveryTerms, seconds: number, dueOnly = false) => ({
    type: 'RecordAttempt' as const,
    terms,
    dueOnly,
    now: at(seconds),
  });
  const delivered = (attemptNo: number, seconds: number, next: number | null): DeliveryEvent =>
    attemptNo === 1
      ? {
          type: 'MessageDelivered',
          data: { ...target, attempt: 1, deliveredAt: at(seconds), nextAttemptAt: next === null ? null : at(next) },
        }
      : {
          type: 'DeliveryRetried',
          data: {
            ...target,
            attempt: attemptNo,
            retriedAt: at(seconds),
            nextAttemptAt: next === null ? null : at(next),
          },
        };

  it('flag 2: attempts at 0, 1, 3, 6 and 11 s, then none; dropped at 16 s', () => {
    const history: DeliveryEvent[] = [];
    for (const [n, second, next] of [
      [1, 0, 1],
      [2, 1, 3],
      [3, 3, 6],
      [4, 6, 11],
      [5, 11, null],
    ] as const) {
      spec
        .given(history)
        .when(attempt(flag2, second, n > 1))
        .then([delivered(n, second, next)]);
      history.push(delivered(n, second, next));
    }
    spec.given(history).when(attempt(flag2, 15)).then([]);
    spec
      .given(history)
      .when({ type: 'CloseDelivery', terms: flag2, now: at(15.9) })
      .then([]);
    spec
      .given(history)
      .when({ type: 'CloseDelivery', terms: flag2, now: at(16) })
      .then([
        { type: 'DeliveryDropped', data: { ...target, attempts: 5, reason: 'not_confirmed', droppedAt: at(16) } },
      ]);
  });

  it('a scheduled retry waits for its time; a device connecting late gets the slots left', () => {
    spec
      .given([delivered(1, 0, 1)])
      .when(attempt(flag2, 0.5, true))
      .then([]);
    expect(nextAttempt(flag2, 1, Date.parse(at(4)))).to.equal(at(6));
    spec
      .given([])
      .when(attempt(flag2, 12))
      .then([delivered(1, 12, null)]);
  });

  it('flag 3: one attempt; a device never connected is dropped at 5 s as not connected', () => {
    spec
      .given([])
      .when(attempt(flag3, 0))
      .then([delivered(1, 0, null)]);
    spec
      .given([delivered(1, 0, null)])
      .when(attempt(flag3, 1))
      .then([]);
    spec
      .given([delivered(1, 0, null)])
      .when({ type: 'CloseDelivery', terms: flag3, now: at(9) })
      .then([]);
    spec
      .given([])
      .when({ type: 'CloseDelivery', terms: flag3, now: at(5) })
      .then([{ type: 'DeliveryDropped', data: { ...target, attempts: 0, reason: 'not_connected', droppedAt: at(5) } }]);
  });

  it('needConfirm: re-sent 10 s, then 20 s, 40 s … after each attempt until confirmed or expired', () => {
    expect(nextAttempt(confirmOne, 1, Date.parse(now))).to.equal(at(10));
    expect(nextAttempt(confirmOne, 2, Date.parse(at(10)))).to.equal(at(30));
    expect(nextAttempt(confirmOne, 3, Date.parse(at(30)))).to.equal(null); // 70 s is past the 60 s duration
    expect(nextAttempt(confirmOne, 9, Date.parse(now))).to.equal(null); // 300 s cap, still past it
    const confirmed: DeliveryEvent = { type: 'DeliveryConfirmed', data: { ...target, confirmedAt: at(3) } };
    spec
      .given([delivered(1, 0, 10)])
      .when({ type: 'ConfirmDelivery', terms: confirmOne, now: at(3) })
      .then([confirmed]);
    spec
      .given([delivered(1, 0, 10), confirmed])
      .when({ type: 'ConfirmDelivery', terms: confirmOne, now: at(4) })
      .then([]);
    // Issue 21, item 12: a device that lost the answer confirms again, also after the push expired: answered, nothing appended.
    spec
      .given([delivered(1, 0, 10), confirmed])
      .when({ type: 'ConfirmDelivery', terms: confirmOne, now: at(600) })
      .then([]);
    spec
      .given([delivered(1, 0, 10), confirmed])
      .when(attempt(confirmOne, 10, true))
      .then([]);
    // Confirmed before herald recorded its write: taken.
    spec
      .given([])
      .when({ type: 'ConfirmDelivery', terms: confirmOne, now: at(0) })
      .then([{ type: 'DeliveryConfirmed', data: { ...target, confirmedAt: at(0) } }]);
    const expired: DeliveryEvent = { type: 'DeliveryExpired', data: { ...target, attempts: 1, expiredAt: at(60) } };
    spec
      .given([delivered(1, 0, 10)])
      .when({ type: 'CloseDelivery', terms: confirmOne, now: at(60) })
      .then([expired]);
    spec
      .given([delivered(1, 0, 10), expired])
      .when({ type: 'ConfirmDelivery', terms: confirmOne, now: at(61) })
      .thenThrows(DomainError, (e) => expect(e.code).to.equal('expired'));
  });
});

describe("topvdn's request_id and device numbers", () => {
  it('answers a push id as 32 lowercase hex digits and takes it back in either form', () => {
    const id = '2279fa57-f4d6-44c1-b333-f5ff5ff7a2b7';
    expect(topvdnRequestId(id)).to.equal('2279fa57f4d644c1b333f5ff5ff7a2b7');
    for (const sent of [id, '2279fa57f4d644c1b333f5ff5ff7a2b7', '2279FA57F4D644C1B333F5FF5FF7A2B7', id.toUpperCase()])
      expect(pushIdOfSentId(sent), sent).to.equal(id);
    // Not an id of either form: as given (it names no push).
    for (const other of ['', 'abc', '2279fa57f4d644c1b333f5ff5ff7a2b', '2279fa57f4d644c1b333f5ff5ff7a2b7z'])
      expect(pushIdOfSentId(other)).to.equal(other);
  });
  it('lists the named numbers that are no device of the app, each once, in the order named', () => {
    expect(unknownClients([5, 1003181, 7, 1003181, 9], new Set([5, 7]))).to.deep.equal([1003181, 9]);
    expect(unknownClients([5, 7], new Set([5, 7]))).to.deep.equal([]);
  });
});

describe("topvdn's flag", () => {
  it('absent, null and 0 (a Go struct without omitempty) are the default, 2; other values are as sent', () => {
    for (const flag of [undefined, null, 0]) expect(topvdnFlag(flag)).to.equal(2);
    for (const flag of [2, 3, 1, 4, -1]) expect(topvdnFlag(flag)).to.equal(flag);
  });
});
