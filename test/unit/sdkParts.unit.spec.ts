import { expect } from 'chai';
import { backoffDelay, DEFAULT_BACKOFF } from '../../sdk/src/backoff';
import { compareSeq } from '../../sdk/src/message';
import { toWebSocketUrl } from '../../sdk/src/messageClient';

// The front-end SDK's pure parts (sdk/src); its behaviour against herald is test/e2e/sdk.e2e.spec.ts.
describe('front-end SDK: reconnect waits, seq order, socket URLs', () => {
  it('waits between half and all of a ceiling that doubles from initialMs up to maxMs', () => {
    const backoff = { initialMs: 100, maxMs: 1000 };
    const ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
    ceilings.forEach((ceiling, failures) => {
      expect(backoffDelay(failures, backoff, () => 0), `floor after ${failures}`).to.equal(ceiling / 2);
      expect(backoffDelay(failures, backoff, () => 0.999999), `ceiling after ${failures}`).to.equal(ceiling);
    });
    expect(backoffDelay(10_000, DEFAULT_BACKOFF, () => 1), 'capped, however many failures').to.equal(DEFAULT_BACKOFF.maxMs);
  });

  it('spreads the waits of many pages over the upper half', () => {
    const waits = Array.from({ length: 1000 }, () => backoffDelay(3, { initialMs: 1000, maxMs: 30_000 }));
    expect(Math.min(...waits)).to.be.at.least(4000);
    expect(Math.max(...waits)).to.be.at.most(8000);
    expect(new Set(waits).size, 'not all the same').to.be.greaterThan(100);
  });

  it('orders seqs as numbers, beyond 2^53', () => {
    expect(compareSeq('9', '10')).to.be.lessThan(0);
    expect(compareSeq('10', '9')).to.be.greaterThan(0);
    expect(compareSeq('123', '123')).to.equal(0);
    expect(compareSeq('9007199254740993', '9007199254740992')).to.be.greaterThan(0);
  });

  it('takes an http(s) URL as the same host’s ws(s) URL, and leaves ws(s) URLs alone', () => {
    expect(toWebSocketUrl('http://localhost:8080/graphql')).to.equal('ws://localhost:8080/graphql');
    expect(toWebSocketUrl('HTTPS://push.example.com/graphql')).to.equal('wss://push.example.com/graphql');
    expect(toWebSocketUrl('wss://push.example.com/graphql')).to.equal('wss://push.example.com/graphql');
  });
});
