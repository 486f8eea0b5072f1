import { expect } from 'chai';
import express from 'express';
import { buildSchema } from 'graphql';
import pg from 'pg';
import { graphqlHttpHandler } from '../../api/graphql/graphqlHttp';
import { EventStoreUnavailableError } from '../../src/eventStore/eventStore';
import { createLogger } from '../../src/runtime/logger';
import { listen } from '../../src/server';

// Issue 21, item 11: while the database is down, an authenticated GraphQL request answered an empty 500
// (graphql-http's adapter, when the context's authentication threw) and printed a stack on the console;
// a failed PostgreSQL connection logged the whole pg Client (an 8 KB line).
describe('GraphQL over HTTP when the context fails', () => {
  async function ask(
    failure: Error,
  ): Promise<{ status: number; retryAfter: string | null; contentType: string | null; body: string; logs: string[] }> {
    const logs: string[] = [];
    const log = createLogger('info', { write: (line: string) => void logs.push(line) });
    const schema = buildSchema('type Query { hello: String }');
    const app = express();
    app.use(express.json());
    app.all('/graphql', graphqlHttpHandler({ schema, context: () => Promise.reject(failure) }, log));
    const server = await listen(app as express.Express, { port: 0, host: '127.0.0.1', log: createLogger('silent') });
    const printed: unknown[] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => void printed.push(args);
    try {
      const response = await fetch(`${server.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ hello }' }),
      });
      const answer = {
        status: response.status,
        retryAfter: response.headers.get('retry-after'),
        contentType: response.headers.get('content-type'),
        body: await response.text(),
        logs,
      };
      expect(printed, 'nothing printed on the console').to.deep.equal([]);
      return answer;
    } finally {
      console.error = consoleError;
      await server.close();
    }
  }

  it('answers 503 with Retry-After and a JSON SERVICE_UNAVAILABLE when the store is unreachable, logging one small line', async () => {
    // As pg-pool hands it over: the dead connection on the error itself.
    const client = new pg.Client({ connectionString: 'postgres://herald@127.0.0.1:1/none' });
    const answer = await ask(
      new EventStoreUnavailableError('PostgreSQL event store unavailable: connect ECONNREFUSED', {
        cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', client }),
      }),
    );
    expect(answer.status).to.equal(503);
    expect(answer.retryAfter).to.equal('2');
    expect(answer.contentType).to.match(/^application\/json/);
    expect(JSON.parse(answer.body)).to.deep.equal({
      errors: [
        {
          message: 'the store is unavailable; retry shortly',
          extensions: { code: 'SERVICE_UNAVAILABLE', retryAfterSeconds: 2 },
        },
      ],
    });
    expect(answer.logs).to.have.length(1);
    expect(answer.logs[0]!.length).to.be.below(600);
    expect(answer.logs[0]).not.to.match(/"client"|"stack"/);
  });

  it('answers a JSON 500 INTERNAL_SERVER_ERROR for anything else, without its details', async () => {
    const answer = await ask(new TypeError("Cannot read properties of undefined (reading 'appId')"));
    expect(answer.status).to.equal(500);
    expect(answer.contentType).to.match(/^application\/json/);
    expect(JSON.parse(answer.body)).to.deep.equal({
      errors: [{ message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
    });
    expect(answer.logs).to.have.length(1);
    expect(answer.logs[0]!.length).to.be.below(2048);
  });
});
