import { expect } from 'chai';
import express from 'express';
import { GraphQLError } from 'graphql';
import { toGraphqlError } from '../../api/graphql/guards';
import { datahubRouter } from '../../api/rest/datahubShim';
import { koalaRouter } from '../../api/rest/koalaShim';
import { onePushRouter } from '../../api/rest/onepushShim';
import { rtioRouter } from '../../api/rest/rtioShim';
import { topvdnRouter } from '../../api/rest/topvdnShim';
import { HERALD_ERROR_CODES, HeraldError, type HeraldErrorCode } from '../../domain/heraldError';
import { TicketError } from '../../src/identity/tickets';
import { createLogger } from '../../src/runtime/logger';
import { listen } from '../../src/server';

/**
 * Each API's one table from HeraldError codes to its wire answer (domain/heraldError.ts), driven through
 * the API's real router: a fake service throws the error, the test reads what the caller gets. The
 * expected answers are the seeds' (shared/seeds/) and docs/api/*.md's, written out here so a changed
 * table fails. An error herald did not anticipate is each API's internal error, with nothing of it
 * (message, stack) on the wire.
 */

const UNANTICIPATED = new Error('connection to 10.0.0.7:5432 lost at Pool.query (pool.js:45:11)');
const now = () => new Date('2026-01-02T03:04:05Z');
const thrower = (error: unknown) => async () => {
  throw error;
};
/** Every code's error, with Retry-After where the code has one. */
const errorOf = (code: HeraldErrorCode) =>
  new HeraldError(code, `refused: ${code}`, code === 'rate_limited' || code === 'busy' ? 7 : undefined);

interface Answer {
  readonly status: number;
  readonly retryAfter: string | null;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

/** Serves `router` on a free port, asks `path` once, closes. */
async function ask(router: express.Router, path: string, init: RequestInit): Promise<Answer> {
  const app = express();
  app.use(router);
  const server = await listen(app, { port: 0, host: '127.0.0.1', log: createLogger('silent') });
  try {
    const response = await fetch(`${server.url}${path}`, init);
    const text = await response.text();
    return {
      status: response.status,
      retryAfter: response.headers.get('retry-after'),
      body: JSON.parse(text) as Record<string, unknown>,
      text,
    };
  } finally {
    await server.close(0);
  }
}

const log = createLogger('silent');
const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

/** Nothing of the unanticipated error reaches the caller. */
function expectNothingLeaked(answer: Answer): void {
  expect(answer.text).not.to.include('10.0.0.7');
  expect(answer.text).not.to.include('pool.js');
  expect(answer.text).not.to.include('stack');
}

describe('API error tables: one wire answer per HeraldError code', () => {
  describe('Koala (seed 000): the envelope code, HTTP 200', () => {
    const KOALA: Record<HeraldErrorCode, number> = {
      invalid: 1001,
      not_found: 1002,
      forbidden: 1003,
      conflict: 1001,
      expired: 1002,
      unauthenticated: 1004,
      ticket_malformed: 1004,
      ticket_expired: 4002,
      ticket_revoked: 1005,
      unknown_app: 1007,
      wrong_secret: 1006,
      rate_limited: 4001,
      busy: 2001,
    };
    const issueThrowing = (error: unknown) =>
      ask(
        koalaRouter({ tickets: { issue: thrower(error) } as never, messaging: {} as never, clock: now, log }),
        '/koala/api/mas/tickets',
        {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'app_key=app1&secret_key=s3cret&user_id=alice',
        },
      );

    for (const code of HERALD_ERROR_CODES) {
      it(`${code} → ${KOALA[code]}`, async () => {
        const answer = await issueThrowing(errorOf(code));
        expect(answer.status).to.equal(200);
        expect(answer.body).to.deep.equal({
          status: KOALA[code],
          errcode: KOALA[code],
          errmsg: `refused: ${code}`,
          result: null,
        });
        expect(answer.retryAfter).to.equal(code === 'rate_limited' || code === 'busy' ? '7' : null);
      });
    }

    it('a ticket refused as expired is 4002 with its own message', async () => {
      const answer = await issueThrowing(new TicketError('expired'));
      expect(answer.body).to.include({ status: 4002, errmsg: 'the ticket has expired' });
    });

    it('an unanticipated error is 2001 "internal error", nothing of it leaked', async () => {
      const answer = await issueThrowing(UNANTICIPATED);
      expect(answer.body).to.deep.equal({ status: 2001, errcode: 2001, errmsg: 'internal error', result: null });
      expect(answer.retryAfter).to.equal(null);
      expectNothingLeaked(answer);
    });
  });

  /** ONE-PUSH and topvdn share HTTP_ANSWERS; datahub differs in one code. */
  const HTTP: Record<HeraldErrorCode, [number, string]> = {
    invalid: [400, 'bad_request'],
    not_found: [404, 'not_found'],
    forbidden: [403, 'forbidden'],
    conflict: [409, 'conflict'],
    expired: [410, 'gone'],
    unauthenticated: [401, 'unauthorized'],
    ticket_malformed: [401, 'unauthorized'],
    ticket_expired: [401, 'unauthorized'],
    ticket_revoked: [401, 'unauthorized'],
    unknown_app: [401, 'unauthorized'],
    wrong_secret: [401, 'unauthorized'],
    rate_limited: [429, 'too_many_requests'],
    busy: [503, 'busy'],
  };
  const DATAHUB: Record<HeraldErrorCode, [number, string]> = { ...HTTP, expired: [404, 'not_found'] };
  const retryAfterOf = (code: HeraldErrorCode) => (code === 'rate_limited' || code === 'busy' ? '7' : null);

  describe("ONE-PUSH (seed 003): Spring Boot's error body with the HTTP status", () => {
    const registerThrowing = (error: unknown) =>
      ask(
        onePushRouter({
          tickets: {} as never,
          devices: { register: thrower(error) } as never,
          pushes: {} as never,
          clock: now,
          log,
        }),
        '/msgpush/register?x=1',
        json({ alias: 'a', appId: 'app1', platform: 'android', nativeToken: 't' }),
      );

    for (const code of HERALD_ERROR_CODES) {
      it(`${code} → ${HTTP[code][0]}`, async () => {
        const answer = await registerThrowing(errorOf(code));
        const [status] = HTTP[code];
        expect(answer.status).to.equal(status);
        expect(answer.body).to.deep.equal({
          timestamp: '2026-01-02T03:04:05.000Z',
          status,
          error: answer.body.error,
          message: `refused: ${code}`,
          path: '/msgpush/register',
        });
        expect(answer.body.error).to.be.a('string').and.not.equal('Error');
        expect(answer.retryAfter).to.equal(retryAfterOf(code));
      });
    }

    it('an unanticipated error is 500 "internal error", nothing of it leaked', async () => {
      const answer = await registerThrowing(UNANTICIPATED);
      expect(answer.status).to.equal(500);
      expect(answer.body).to.include({ status: 500, error: 'Internal Server Error', message: 'internal error' });
      expectNothingLeaked(answer);
    });
  });

  /** topvdn and datahub: `{code, message}` with the HTTP status, by `table`. */
  function describeCodeAndMessage(
    title: string,
    table: Record<HeraldErrorCode, [number, string]>,
    askThrowing: (error: unknown) => Promise<Answer>,
  ): void {
    describe(title, () => {
      for (const code of HERALD_ERROR_CODES) {
        it(`${code} → ${table[code].join(' ')}`, async () => {
          const answer = await askThrowing(errorOf(code));
          expect(answer.status).to.equal(table[code][0]);
          expect(answer.body).to.deep.equal({ code: table[code][1], message: `refused: ${code}` });
          expect(answer.retryAfter).to.equal(retryAfterOf(code));
        });
      }

      it('an unanticipated error is 500 internal, nothing of it leaked', async () => {
        const answer = await askThrowing(UNANTICIPATED);
        expect(answer.status).to.equal(500);
        expect(answer.body).to.deep.equal({ code: 'internal', message: 'internal error' });
        expectNothingLeaked(answer);
      });
    });
  }

  describeCodeAndMessage('topvdn (seed 002): {code, message} with the HTTP status', HTTP, (error) =>
    ask(
      topvdnRouter({
        tickets: { authenticateApp: thrower(error) } as never,
        devices: {} as never,
        deviceQueries: {} as never,
        pushes: {} as never,
        appCallbacks: {} as never,
        clock: now,
        log,
      }),
      '/v2/message/callback',
      { headers: { 'x-app-id': 'app1', 'x-app-key': 'key' } },
    ),
  );

  describeCodeAndMessage(
    'datahub (seed 001): {code, message} with the HTTP status; an expired notification is not found',
    DATAHUB,
    (error) =>
      ask(
        datahubRouter({ tickets: { authenticate: thrower(error) } as never, datahub: {} as never, clock: now, log }),
        '/notification_stat',
        { headers: { authorization: 'Token abc' } },
      ),
  );

  describe("RTIO (seed 004): the seed's code and desc, the nonce echoed", () => {
    /** create_device's answers (its failure code is 2705): [HTTP status, code, desc, extra fields]. */
    const RTIO: Record<HeraldErrorCode, [number, number, string, Record<string, unknown>?]> = {
      invalid: [200, 1604, 'refused: invalid'],
      not_found: [200, 1604, 'refused: not_found'],
      forbidden: [200, 1604, 'refused: forbidden'],
      conflict: [200, 1604, 'refused: conflict'],
      expired: [200, 1604, 'refused: expired'],
      unauthenticated: [500, 2705, 'device create failed'],
      ticket_malformed: [500, 2705, 'device create failed'],
      ticket_expired: [500, 2705, 'device create failed'],
      ticket_revoked: [500, 2705, 'device create failed'],
      unknown_app: [200, 1606, 'caller not trusted: app credentials refused: refused: unknown_app'],
      wrong_secret: [200, 1606, 'caller not trusted: app credentials refused: refused: wrong_secret'],
      rate_limited: [500, 2705, 'device create failed'],
      busy: [503, 2705, 'refused: busy'],
    };
    const createThrowing = (error: unknown) =>
      ask(
        rtioRouter({
          rtio: { createDevice: thrower(error) } as never,
          tickets: {} as never,
          trustedCidrs: [{ address: '127.0.0.1', prefix: 32, family: 'ipv4' }],
          appId: 'rtio',
          log,
        }),
        '/manage/create_device',
        json({ nonce: 'n-1' }),
      );

    for (const code of HERALD_ERROR_CODES) {
      it(`${code} → ${RTIO[code][1]} (HTTP ${RTIO[code][0]})`, async () => {
        const answer = await createThrowing(errorOf(code));
        const [status, rtioCode, desc, fields] = RTIO[code];
        expect(answer.status).to.equal(status);
        expect(answer.body).to.deep.equal({ nonce: 'n-1', code: rtioCode, desc, ...fields });
        expect(answer.retryAfter).to.equal(code === 'busy' ? '7' : null);
      });
    }

    it("an unanticipated error is the route's failure (2705, HTTP 500), nothing of it leaked", async () => {
      const answer = await createThrowing(UNANTICIPATED);
      expect(answer.status).to.equal(500);
      expect(answer.body).to.deep.equal({ nonce: 'n-1', code: 2705, desc: 'device create failed' });
      expectNothingLeaked(answer);
    });
  });

  describe('GraphQL: extensions.code', () => {
    const GRAPHQL: Record<HeraldErrorCode, Record<string, unknown>> = {
      invalid: { code: 'BAD_USER_INPUT' },
      not_found: { code: 'NOT_FOUND' },
      forbidden: { code: 'FORBIDDEN' },
      conflict: { code: 'CONFLICT' },
      expired: { code: 'NOT_FOUND' },
      unauthenticated: { code: 'UNAUTHENTICATED' },
      ticket_malformed: { code: 'UNAUTHENTICATED', reason: 'malformed' },
      ticket_expired: { code: 'UNAUTHENTICATED', reason: 'expired' },
      ticket_revoked: { code: 'UNAUTHENTICATED', reason: 'revoked' },
      unknown_app: { code: 'UNAUTHENTICATED' },
      wrong_secret: { code: 'UNAUTHENTICATED' },
      rate_limited: { code: 'RATE_LIMITED', retryAfterSeconds: 7 },
      busy: { code: 'BUSY', retryAfterSeconds: 7 },
    };

    for (const code of HERALD_ERROR_CODES) {
      it(`${code} → ${String(GRAPHQL[code].code)}`, () => {
        const typed = toGraphqlError(errorOf(code));
        expect(typed).to.be.instanceOf(GraphQLError);
        // Key order too: the extensions are serialized as they are built.
        expect(JSON.stringify((typed as GraphQLError).toJSON())).to.equal(
          JSON.stringify({ message: `refused: ${code}`, extensions: GRAPHQL[code] }),
        );
      });
    }

    it('a refused ticket carries its reason', () => {
      const typed = toGraphqlError(new TicketError('revoked')) as GraphQLError;
      expect(typed.extensions).to.deep.equal({ code: 'UNAUTHENTICATED', reason: 'revoked' });
      expect(typed.message).to.equal('the ticket belongs to a session that has ended');
    });

    it('leaves an unanticipated error as it is, for formatError to mask as INTERNAL_SERVER_ERROR', () => {
      expect(toGraphqlError(UNANTICIPATED)).to.equal(UNANTICIPATED);
    });
  });
});
