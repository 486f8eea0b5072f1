import net from 'node:net';
import { expect } from 'chai';
import { issueTicket, postForm, startTestHerald } from '../support/herald';

// Issue 22, "Browsers on other origins": Koala's and datahub's callers are web front ends ("前端",
// shared/seeds/000_83e3b79cc88886e5.txt, 001_e25b4a10524b93b6.txt). With HERALD_CORS_ORIGINS set, a page
// on a listed origin may call the REST shims and /graphql and read every answer, errors included; any
// other origin gets no CORS header. On the wire here; in Chromium in corsBrowser.e2e.spec.ts.
describe('CORS for pages on other origins (issue 22) over HTTP', function () {
  this.timeout(60_000);
  const APP = 'https://app.example.com';
  const OTHER = 'http://localhost:3000';
  const EVIL = 'https://evil.example';
  let test: Awaited<ReturnType<typeof startTestHerald>>;

  before(async () => {
    // A rate of 2 sends a minute, so the 429 below is reachable in three sends.
    test = await startTestHerald({ corsOrigins: [APP, OTHER], sendRatePerMinute: 2 });
  });
  after(() => test?.stop());

  const corsHeaders = (response: Response) =>
    Object.fromEntries([...response.headers.entries()].filter(([name]) => name.startsWith('access-control-')));
  const preflight = (path: string, origin: string, method: string, requestHeaders?: string) =>
    fetch(`${test.url}${path}`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': method,
        ...(requestHeaders && { 'access-control-request-headers': requestHeaders }),
      },
    });
  const ALLOWED_HEADERS =
    'Authorization,Content-Type,X-Request-Id,Idempotency-Key,X-Client-Token,X-APP-ID,X-APP-Key,X-Message-Key,X-Correlation-Id';

  describe('preflights', () => {
    // Every path a page calls, with the methods of the routes under it.
    const paths: Array<[string, string, string]> = [
      ['/koala/api/mas/tickets', 'POST', 'POST'],
      ['/koala/api/mas/messages', 'POST', 'POST'],
      ['/koala/api/mas/messages/ack', 'POST', 'POST'],
      ['/notifications', 'GET', 'GET,POST,PUT'],
      ['/notifications/12', 'PUT', 'GET,POST,PUT'],
      ['/notification_stat', 'DELETE', 'GET,DELETE'],
      ['/topics/to_notifications.json', 'POST', 'POST'],
      ['/items/repo001/item123', 'PUT', 'GET,PUT,DELETE'],
      ['/msgpush/send', 'POST', 'POST'],
      ['/msgpush/register', 'POST', 'POST'],
      ['/v2/message/client/push', 'POST', 'GET,POST,PUT'],
      ['/v2/message/server/push', 'POST', 'GET,POST,PUT'],
      ['/v2/message/callback', 'PUT', 'GET,POST,PUT'],
      ['/graphql', 'POST', 'GET,POST'],
    ];
    for (const [path, method, methods] of paths) {
      it(`answers OPTIONS ${path} from a listed origin: 204, the origin echoed, ${methods}, the headers the routes read, no credentials`, async () => {
        const answer = await preflight(path, APP, method, 'authorization,content-type');
        expect(answer.status).to.equal(204);
        expect(await answer.text()).to.equal('');
        expect(corsHeaders(answer)).to.deep.equal({
          'access-control-allow-origin': APP,
          'access-control-allow-methods': methods,
          'access-control-allow-headers': ALLOWED_HEADERS,
          'access-control-max-age': '600',
          'access-control-expose-headers': 'Retry-After,X-Correlation-Id',
        });
        expect(answer.headers.get('vary')).to.equal('Origin');
      });
    }

    it('echoes each listed origin as it is, and only it', async () => {
      const answer = await preflight('/notifications', OTHER, 'GET', 'authorization');
      expect(answer.status).to.equal(204);
      expect(answer.headers.get('access-control-allow-origin')).to.equal(OTHER);
    });

    it('answers a preflight from an origin not listed with 204 and no CORS header at all, so the browser refuses the call', async () => {
      for (const path of ['/notifications', '/koala/api/mas/messages', '/graphql', '/v2/message/client/push']) {
        const answer = await preflight(path, EVIL, 'POST', 'authorization');
        expect(answer.status, path).to.equal(204);
        expect(corsHeaders(answer), path).to.deep.equal({});
        expect(answer.headers.get('vary'), path).to.equal('Origin');
      }
    });

    it('leaves RTIO alone (server to server, trusted by network): its OPTIONS is its own refusal, with no CORS header', async () => {
      const answer = await preflight('/manage/create_device', APP, 'POST', 'content-type');
      expect(answer.status).to.not.equal(204);
      expect(corsHeaders(answer)).to.deep.equal({});
    });
  });

  describe('answers', () => {
    it("carries the origin on the seed's Koala send and ack (form bodies, no preflight), and exposes Retry-After and X-Correlation-Id", async () => {
      const sender = await issueTicket(test.url, 'zhangbin');
      const receiver = await issueTicket(test.url, 'jiangxiaoyu');
      const sent = await fetch(`${test.url}/koala/api/mas/messages`, {
        method: 'POST',
        headers: { origin: APP, 'content-type': 'application/x-www-form-urlencoded' },
        body: `tickets=${encodeURIComponent(sender)}&users=jiangxiaoyu,zhouyang&title="system upgrade"&content="system patching 20:21"`,
      });
      expect(sent.status).to.equal(200);
      expect(corsHeaders(sent)).to.deep.equal({
        'access-control-allow-origin': APP,
        'access-control-expose-headers': 'Retry-After,X-Correlation-Id',
      });
      expect(sent.headers.get('vary')).to.equal('Origin');
      const { result: messageId } = (await sent.json()) as { result: string };
      const ack = new FormData();
      ack.set('tickets', receiver);
      ack.set('sids', messageId);
      const acked = await fetch(`${test.url}/koala/api/mas/messages/ack`, {
        method: 'POST',
        headers: { origin: APP },
        body: ack,
      });
      expect(await acked.json()).to.include({ status: 0 });
      expect(acked.headers.get('access-control-allow-origin')).to.equal(APP);
    });

    it("carries it on the seed's datahub GET /notifications and GET /notification_stat", async () => {
      const ticket = await issueTicket(test.url, 'zhang3@example.com');
      for (const path of ['/notifications', '/notification_stat']) {
        const answer = await fetch(`${test.url}${path}`, {
          headers: { origin: APP, accept: 'application/json', authorization: `Token ${ticket}` },
        });
        expect(answer.status, path).to.equal(200);
        expect(answer.headers.get('access-control-allow-origin'), path).to.equal(APP);
      }
    });

    it('carries it on errors, so the page can read them: Koala 1004 (HTTP 200, its envelope), datahub 401 and 400, GraphQL 401, a 404 under a shim', async () => {
      const errors: Array<[string, RequestInit, number]> = [
        [
          '/koala/api/mas/messages',
          {
            method: 'POST',
            body: new URLSearchParams({ ticket: 'not-a-ticket', users: 'a', title: 't', content: 'c' }),
          },
          200,
        ],
        ['/notifications', {}, 401],
        [
          '/notifications?size=abc',
          { headers: { authorization: `Token ${await issueTicket(test.url, 'li4@example.com')}` } },
          400,
        ],
        [
          '/graphql',
          {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: 'Bearer nope' },
            body: '{"query":"{ userId }"}',
          },
          401,
        ],
        ['/notifications/12/nothing', {}, 404],
      ];
      for (const [path, init, status] of errors) {
        const answer = await fetch(`${test.url}${path}`, {
          ...init,
          headers: { ...(init.headers as Record<string, string>), origin: APP },
        });
        expect(answer.status, path).to.equal(status);
        expect(answer.headers.get('access-control-allow-origin'), path).to.equal(APP);
        expect(answer.headers.get('access-control-expose-headers'), path).to.equal('Retry-After,X-Correlation-Id');
      }
    });

    it("carries it on datahub's 429, whose Retry-After it exposes", async () => {
      const admin = await issueTicket(test.url, 'admin@hub.dataio.com', 'admin');
      const send = () =>
        fetch(`${test.url}/notifications`, {
          method: 'POST',
          headers: { origin: APP, authorization: `Token ${admin}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            type: 'admin_message',
            receiver: 'zhang3@example.com',
            data: { content: 'bla bla ...' },
          }),
        });
      const statuses = [];
      let last: Response | undefined;
      for (let i = 0; i < 3; i++) statuses.push((last = await send()).status);
      expect(statuses).to.deep.equal([200, 200, 429]);
      expect(last!.headers.get('retry-after')).to.match(/^\d+$/);
      expect(last!.headers.get('access-control-allow-origin')).to.equal(APP);
      expect(last!.headers.get('access-control-expose-headers')).to.equal('Retry-After,X-Correlation-Id');
    });

    it('carries none for an origin not listed, nor for a caller without Origin (a server)', async () => {
      const ticket = await issueTicket(test.url, 'zhang3@example.com');
      const unlisted = await fetch(`${test.url}/notifications`, {
        headers: { origin: EVIL, authorization: `Token ${ticket}` },
      });
      expect(unlisted.status).to.equal(200);
      expect(corsHeaders(unlisted)).to.deep.equal({});
      expect(unlisted.headers.get('vary')).to.equal('Origin');
      const server = await postForm(`${test.url}/koala/api/mas/tickets`, {
        app_key: 'camel',
        secret_key: 'EERWERRRRE',
        user_id: 'zhangbin',
      });
      expect(server.body).to.include({ status: 0 });
      const noOrigin = await fetch(`${test.url}/notifications`, { headers: { authorization: `Token ${ticket}` } });
      expect(corsHeaders(noOrigin)).to.deep.equal({});
    });
  });

  describe('odd Origin headers', () => {
    /** One request as raw bytes (Origin headers fetch would not send), answered with Connection: close. */
    function raw(lines: string[]): Promise<{ status: number; headers: string[] }> {
      const { port } = new URL(test.url);
      return new Promise((resolve, reject) => {
        const socket = net.connect(Number(port), '127.0.0.1');
        const chunks: Buffer[] = [];
        socket.on('data', (chunk) => chunks.push(chunk));
        socket.on('error', reject);
        socket.on('end', () => {
          const [head = ''] = Buffer.concat(chunks).toString('latin1').split('\r\n\r\n');
          const [statusLine = '', ...headers] = head.split('\r\n');
          resolve({ status: Number(statusLine.split(' ')[1]), headers: headers.map((h) => h.toLowerCase()) });
        });
        // Written, not ended: a half-closed socket is one Node's server drops before a slow answer.
        socket.write([...lines, 'Host: herald', 'Connection: close', '', ''].join('\r\n'), 'utf8');
      });
    }
    const odd: Array<[string, string[]]> = [
      ['the literal null (a sandboxed page, a file)', ['Origin: null']],
      ['quoted "null"', ['Origin: "null"']],
      ['empty', ['Origin: ']],
      ['very long (8 KB)', [`Origin: https://${'a'.repeat(8000)}.example.com`]],
      ['past the 16 KB header limit (Node answers 431)', [`Origin: https://${'a'.repeat(17000)}.example.com`]],
      ['a listed origin with a path', [`Origin: ${APP}/page`]],
      ['a listed origin with a trailing slash', [`Origin: ${APP}/`]],
      ['a listed origin in upper case', [`Origin: ${APP.toUpperCase()}`]],
      ['non-ASCII (UTF-8 bytes)', ['Origin: https://bücher.example']],
      ['a list of origins, the listed one first', [`Origin: ${APP} ${EVIL}`]],
      ['two Origin headers, the listed one first', [`Origin: ${APP}`, `Origin: ${EVIL}`]],
      ['a listed origin with a comma after it', [`Origin: ${APP},`]],
    ];
    for (const [what, headers] of odd) {
      it(`never answers 5xx nor allows an Origin header that is ${what}`, async () => {
        const ticket = await issueTicket(test.url, 'zhang3@example.com');
        const requests = [
          [
            'OPTIONS /notifications HTTP/1.1',
            'Access-Control-Request-Method: GET',
            'Access-Control-Request-Headers: authorization',
          ],
          ['OPTIONS /koala/api/mas/messages HTTP/1.1', 'Access-Control-Request-Method: POST'],
          ['OPTIONS /graphql HTTP/1.1', 'Access-Control-Request-Method: POST'],
          ['GET /notifications HTTP/1.1', `Authorization: Token ${ticket}`],
          [
            'POST /koala/api/mas/messages HTTP/1.1',
            'Content-Type: application/x-www-form-urlencoded',
            'Content-Length: 0',
          ],
        ];
        for (const request of requests) {
          const answer = await raw([...request, ...headers]);
          expect(answer.status, `${request[0]} with ${headers.join(' / ').slice(0, 100)}`).to.be.within(200, 499);
          expect(
            answer.headers.filter((h) => h.startsWith('access-control-')),
            request[0],
          ).to.deep.equal([]);
        }
      });
    }
  });
});
