import { expect } from 'chai';
import { DomainError } from '../../domain/decider';
import {
  isDeviceCode,
  rtioTimeLiveSeconds,
  rtioCallDecider,
  rtioDeviceDecider,
  rtioNonceDecider,
  rtioReportDecider,
  type RtioCallEvent,
  type RtioDeviceEvent,
  type RtioNonceEvent,
  type RtioReportEvent,
} from '../../domain/rtio/rtio';
import { deciderSpecification } from '../support/deciderSpecification';

const now = '2026-11-23T10:00:00.000Z';
const at = (seconds: number) => new Date(Date.parse(now) + seconds * 1000).toISOString();

describe('rtio device decider', () => {
  const spec = deciderSpecification(rtioDeviceDecider);
  const create = {
    type: 'CreateRtioDevice' as const,
    deviceId: 'f5d97609924c4ccdb600bbd240c50a0a',
    appId: 'rtio',
    keyHash: 'h',
    nonce: '1724578899',
    now,
  };
  const created: RtioDeviceEvent = {
    type: 'RtioDeviceCreated',
    data: { deviceId: create.deviceId, appId: 'rtio', keyHash: 'h', nonce: '1724578899', createdAt: now },
  };

  it('creates once; the same nonce again (its stream taken) is refused', () => {
    spec.given([]).when(create).then([created]);
    spec
      .given([created])
      .when(create)
      .thenThrows(DomainError, (e) => expect(e.code).to.equal('conflict'));
  });

  it('refuses a nonce over 32 bytes (the seed counts bytes: 11 Chinese characters are 33)', () => {
    spec
      .given([])
      .when({ ...create, nonce: '随'.repeat(11) })
      .thenThrows(DomainError, (e) => expect(e.message).to.match(/^nonce: /));
    spec
      .given([])
      .when({ ...create, nonce: '随'.repeat(10) })
      .then([{ ...created, data: { ...created.data, nonce: '随'.repeat(10) } }]);
  });
});

describe('rtio nonce decider: one nonce space per app for every request', () => {
  const spec = deciderSpecification(rtioNonceDecider);
  const use = {
    type: 'UseRtioNonce' as const,
    appId: 'rtio',
    nonce: '1724578899',
    request: 'create_device' as const,
    now,
  };
  const used: RtioNonceEvent = {
    type: 'RtioNonceUsed',
    data: { appId: 'rtio', nonce: '1724578899', request: 'create_device', usedAt: now },
  };

  it('takes a nonce once; the request it was used for may take it again (its own stream refuses a repeat), another is refused', () => {
    spec.given([]).when(use).then([used]);
    spec
      .given([used])
      .when({ ...use, now: at(1) })
      .then([]);
    spec
      .given([used])
      .when({ ...use, request: 'call/send' })
      .thenThrows(DomainError, (e) =>
        expect([e.code, e.message]).to.deep.equal(['conflict', 'nonce: already used (by create_device)']),
      );
  });

  it('refuses a nonce that is empty or over 32 bytes', () => {
    for (const nonce of ['', '随'.repeat(11), 'n'.repeat(33)])
      spec
        .given([])
        .when({ ...use, nonce })
        .thenThrows(DomainError, (e) => expect(e.message).to.match(/^nonce: /));
  });
});

describe('rtio call decider', () => {
  const spec = deciderSpecification(rtioCallDecider);
  const target = { callId: 'c1', appId: 'rtio', deviceId: 'd1' };
  const call = {
    type: 'CallRtioDevice' as const,
    ...target,
    nonce: '157789243',
    message: 'this dispatch message',
    now,
  };
  const called: RtioCallEvent = {
    type: 'RtioDeviceCalled',
    data: {
      ...target,
      nonce: '157789243',
      message: 'this dispatch message',
      timeLiveSeconds: 6,
      calledAt: now,
      expiresAt: at(6),
    },
  };

  it('calls with time_live 6 by default, at most 30; the message is at most 512 bytes', () => {
    spec.given([]).when(call).then([called]);
    spec
      .given([])
      .when({ ...call, timeLiveSeconds: 30 })
      .then([{ ...called, data: { ...called.data, timeLiveSeconds: 30, expiresAt: at(30) } }]);
    for (const timeLiveSeconds of [0, 31, 1.5])
      spec
        .given([])
        .when({ ...call, timeLiveSeconds })
        .thenThrows(DomainError, (e) => expect(e.message).to.match(/^time_live: /));
    spec
      .given([])
      .when({ ...call, message: '消'.repeat(171) })
      .thenThrows(DomainError, (e) => expect(e.message).to.match(/^message: /));
    spec
      .given([called])
      .when(call)
      .thenThrows(DomainError, (e) => expect(e.code).to.equal('conflict'));
  });

  it('takes one outcome: a reply, or a failure; a reply after the failure is not taken', () => {
    const replied: RtioCallEvent = {
      type: 'RtioDeviceReplied',
      data: { ...target, code: 1000, message: 'this a device message', repliedAt: at(1) },
    };
    spec
      .given([called])
      .when({ type: 'RecordReply', code: 1000, message: 'this a device message', now: at(1) })
      .then([replied]);
    const failed: RtioCallEvent = { type: 'RtioCallFailed', data: { ...target, reason: 'timeout', failedAt: at(6) } };
    spec
      .given([called])
      .when({ type: 'RecordCallFailure', reason: 'timeout', now: at(6) })
      .then([failed]);
    spec
      .given([called, failed])
      .when({ type: 'RecordReply', code: 1000, message: 'late', now: at(7) })
      .then([]);
    spec
      .given([called, replied])
      .when({ type: 'RecordCallFailure', reason: 'timeout', now: at(6) })
      .then([]);
  });

  it("takes a device's code as the seed's int: a signed 32-bit integer", () => {
    expect([-(2 ** 31), 0, 1000, 2 ** 31 - 1].every(isDeviceCode)).to.equal(true);
    expect([2 ** 31, -(2 ** 31) - 1, 1.5, '1000', Number.NaN].some(isDeviceCode)).to.equal(false);
    spec
      .given([called])
      .when({ type: 'RecordReply', code: 2 ** 31, message: 'm', now: at(1) })
      .thenThrows(DomainError, (e) => expect(e.message).to.match(/^code: /));
  });
});

describe('rtio report decider', () => {
  const spec = deciderSpecification(rtioReportDecider);
  const target = { reportId: 'r1', appId: 'rtio', deviceId: 'd1' };
  const reported: RtioReportEvent = {
    type: 'RtioDeviceReported',
    data: { ...target, nonce: '6832472384370018048', message: 'this a device message', reportedAt: now },
  };
  const failed = (attempt: number, seconds: number, retryIn: number | null): RtioReportEvent => ({
    type: 'RtioReportForwardFailed',
    data: {
      ...target,
      attempt,
      error: 'HTTP 500',
      final: retryIn === null,
      failedAt: at(seconds),
      retryAt: retryIn === null ? null : at(seconds + retryIn),
    },
  });

  it('retries after 2, 4, 8 … s; the 10th failure is final; a report is at most 1,024 bytes', () => {
    const history: RtioReportEvent[] = [reported];
    let t0 = 0;
    for (let attempt = 1; attempt <= 10; attempt++) {
      const expected = failed(attempt, t0, attempt < 10 ? 2 ** attempt : null);
      spec
        .given(history)
        .when({ type: 'RecordForwardFailed', attempt, error: 'HTTP 500', now: at(t0) })
        .then([expected]);
      history.push(expected);
      t0 += 2 ** attempt;
    }
    spec
      .given(history)
      .when({ type: 'RecordForwarded', attempt: 10, now: at(t0) })
      .then([]);
    spec
      .given([])
      .when({ type: 'ReportFromDevice', ...target, nonce: 'n', message: 'x'.repeat(1025), now })
      .thenThrows(DomainError, (e) => expect(e.message).to.match(/^message: /));
  });

  it('forwarded once: later outcomes (a racing forwarder) record nothing', () => {
    const forwarded: RtioReportEvent = {
      type: 'RtioReportForwarded',
      data: { ...target, attempt: 1, forwardedAt: at(1) },
    };
    spec
      .given([reported])
      .when({ type: 'RecordForwarded', attempt: 1, now: at(1) })
      .then([forwarded]);
    spec
      .given([reported, forwarded])
      .when({ type: 'RecordForwardFailed', attempt: 2, error: 'x', now: at(2) })
      .then([]);
  });
});

describe('rtio time_live', () => {
  it('absent, null, blank and 0 are the default 6 s; above 30 is 30; a string of digits is its number', () => {
    for (const raw of [undefined, null, '', ' ', 0, '0']) expect(rtioTimeLiveSeconds(raw), String(raw)).to.equal(6);
    expect(rtioTimeLiveSeconds(1)).to.equal(1);
    expect(rtioTimeLiveSeconds(30)).to.equal(30);
    expect(rtioTimeLiveSeconds(31)).to.equal(30);
    expect(rtioTimeLiveSeconds(Number.MAX_SAFE_INTEGER)).to.equal(30);
    expect(rtioTimeLiveSeconds('6')).to.equal(6);
    expect(rtioTimeLiveSeconds('3600')).to.equal(30);
  });
  it('refuses a negative number, a fraction and anything else', () => {
    for (const raw of [-1, -30, 1.5, '1.5', '-1', 'six', true, [6], { s: 6 }, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => rtioTimeLiveSeconds(raw), String(raw)).to.throw(DomainError, 'time_live');
    }
  });
});
