import { expect } from 'chai';
import { backoffDelay, DEFAULT_BACKOFF } from '../../sdk/src/backoff';
import { compareSeq } from '../../sdk/src/message';
import { open, toWebSocketUrl, type OpenOptions } from '../../sdk/src/messageClient';
import { eventually } from '../support/eventually';

// The front-end SDK's pure parts (sdk/src); its behaviour against herald is test/e2e/sdk.e2e.spec.ts.
describe('front-end SDK: reconnect waits, seq order, socket URLs', () => {
  it('waits between half and all of a ceiling that doubles from initialMs up to maxMs', () => {
    const backoff = { initialMs: 100, maxMs: 1000 };
    const ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
    ceilings.forEach((ceiling, failures) => {
      expect(
        backoffDelay(failures, backoff, () => 0),
        `floor after ${failures}`,
      ).to.equal(ceiling / 2);
      expect(
        backoffDelay(failures, backoff, () => 0.999999),
        `ceiling after ${failures}`,
      ).to.equal(ceiling);
    });
    expect(
      backoffDelay(10_000, DEFAULT_BACKOFF, () => 1),
      'capped, however many failures',
    ).to.equal(DEFAULT_BACKOFF.maxMs);
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

describe('front-end SDK: message_client.open() refuses options that cannot work, at once, naming them', () => {
  /** A WebSocket that never connects: open() must not get as far as needing one. */
  class SilentSocket {
    static readonly CONNECTING = 0;
    static readonly OPEN = 1;
    static readonly CLOSING = 2;
    static readonly CLOSED = 3;
    close(): void {}
  }
  const good = {
    url: 'wss://push.example.com/graphql',
    ticket: 't',
    onMessage: () => undefined,
    webSocketImpl: SilentSocket,
  };
  const openWith = (options: unknown) => () => open(options as OpenOptions);

  it('names the options when there are none', () => {
    expect(openWith(undefined)).to.throw(
      TypeError,
      /^message_client\.open: options are required: \{ url, ticket, onMessage \}/,
    );
    expect(openWith(null)).to.throw(TypeError, /options are required/);
  });

  it('names each missing or unusable required option', () => {
    const { url: _url, ...noUrl } = good;
    const { ticket: _ticket, ...noTicket } = good;
    const { onMessage: _onMessage, ...noHandler } = good;
    expect(openWith(noUrl)).to.throw(
      TypeError,
      /^message_client\.open: url is required \(url: herald's GraphQL endpoint/,
    );
    expect(openWith(noTicket)).to.throw(
      TypeError,
      /^message_client\.open: ticket is required \(ticket: a ticket, or a function returning one; Koala's token\)/,
    );
    expect(openWith(noHandler)).to.throw(TypeError, /^message_client\.open: onMessage is required/);
    expect(openWith({ onMessage: good.onMessage })).to.throw(
      TypeError,
      /^message_client\.open: url and ticket are required/,
    );
    expect(openWith({})).to.throw(TypeError, /^message_client\.open: url, ticket and onMessage are required/);
    expect(openWith({ ...good, url: ' ' })).to.throw(TypeError, /url is required/);
    expect(openWith({ ...good, ticket: '' })).to.throw(TypeError, /ticket is required/);
    expect(openWith({ ...good, ticket: 42 })).to.throw(TypeError, /ticket is required/);
  });

  it('refuses a url it could never connect to, and malformed optional values', () => {
    expect(openWith({ ...good, url: 'graphql' }), 'relative, with no page to resolve it against').to.throw(
      TypeError,
      /url "graphql" is not a URL/,
    );
    expect(openWith({ ...good, url: 'ftp://push.example.com/graphql' })).to.throw(
      TypeError,
      /url must be a ws\(s\):\/\/ or http\(s\):\/\/ URL/,
    );
    expect(openWith({ ...good, since: 'latest' })).to.throw(TypeError, /since must be a message's seq/);
    expect(openWith({ ...good, heartbeatMs: 0 })).to.throw(TypeError, /heartbeatMs must be a positive number/);
    expect(openWith({ ...good, reconnect: { initialMs: Number.NaN } })).to.throw(TypeError, /reconnect\.initialMs/);
    expect(openWith({ ...good, webSocketImpl: 'ws' })).to.throw(TypeError, /webSocketImpl must be a WebSocket class/);
  });

  it('resolves a relative url against the page, as the same host’s ws(s) URL', async () => {
    const opened: string[] = [];
    class RecordingSocket extends SilentSocket {
      constructor(url: string) {
        super();
        opened.push(url);
      }
    }
    const global = globalThis as { location?: unknown };
    global.location = { href: 'https://push.example.com/app/inbox.html' };
    try {
      const client = open({ ...good, url: '/graphql', webSocketImpl: RecordingSocket });
      await eventually(() => expect(opened).to.deep.equal(['wss://push.example.com/graphql']));
      await client.close();
    } finally {
      delete global.location;
    }
  });

  it("takes Koala's own option names: mas_url (the endpoint is its /graphql), token, ping", async () => {
    const opened: string[] = [];
    class RecordingSocket extends SilentSocket {
      constructor(url: string) {
        super();
        opened.push(url);
      }
    }
    const { url: _url, ticket: _ticket, ...koala } = good;
    const client = open({
      ...koala,
      mas_url: 'https://push.example.com/',
      token: 't',
      ping: 5,
      webSocketImpl: RecordingSocket,
    });
    await eventually(() => expect(opened).to.deep.equal(['wss://push.example.com/graphql']));
    await client.close();
    expect(openWith({ ...koala, mas_url: 'https://push.example.com' })).to.throw(
      TypeError,
      /^message_client\.open: ticket is required/,
    );
    expect(openWith({ ...good, ping: -1 })).to.throw(TypeError, /ping must be a positive number of seconds/);
    expect(openWith({ ...good, onError: 'log' })).to.throw(TypeError, /onError must be a function/);
  });

  it('opens with usable options (an http URL meaning the same host’s ws URL)', async () => {
    const client = open({ ...good, url: 'https://push.example.com/graphql', since: '42' });
    expect(client.lastSeq).to.equal('42');
    await client.close();
    expect(client.state).to.equal('closed');
  });
});
