import { expect } from 'chai';
import express from 'express';
import { buildSchema } from 'graphql';
import { graphqlHttpHandler } from '../../api/graphql/graphqlHttp';
import type { CorsOrigins } from '../../src/config';
import { corsRouter } from '../../src/cors';
import { EventStoreUnavailableError } from '../../src/eventStore/eventStore';
import { createLogger } from '../../src/runtime/logger';
import { createHttpApp, listen } from '../../src/server';

// Issue 22, CORS: the layer alone, in front of herald's own express app (src/server.ts): what no
// configuration does, what `*` does, and that an answer written with writeHead (GraphQL's 503) keeps it.
describe('CORS layer (src/cors.ts)', () => {
  async function withApp<T>(origins: CorsOrigins, use: (url: string) => Promise<T>): Promise<T> {
    const log = createLogger('silent');
    const graphql = express.Router();
    // GraphQL over HTTP while the store is down: 503 + Retry-After, written with res.writeHead.
    graphql.all(
      '/graphql',
      graphqlHttpHandler(
        {
          schema: buildSchema('type Query { hello: String }'),
          context: () => Promise.reject(new EventStoreUnavailableError('down')),
        },
        log,
      ),
    );
    graphql.get(
      '/notifications',
      (_req, res) =>
        void res.status(401).json({ code: 'unauthorized', message: 'Authorization: Token <ticket> is required' }),
    );
    // As datahub's router: every other method on its paths is its 404.
    graphql.all(
      '/notifications',
      (req, res) => void res.status(404).json({ code: 'not_found', message: `no route ${req.method} ${req.path}` }),
    );
    const app = createHttpApp({
      readiness: async () => ({ ready: true, notReady: {}, checks: {} }),
      routers: [corsRouter(origins), graphql],
      log,
    });
    const server = await listen(app, { port: 0, host: '127.0.0.1', log });
    try {
      return await use(server.url);
    } finally {
      await server.close();
    }
  }
  const corsHeaders = (response: Response) =>
    [...response.headers.keys()].filter((name) => name.startsWith('access-control-'));
  const preflight = (url: string, origin: string) =>
    fetch(url, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });

  it('with no origins configured (the default) adds nothing: a preflight is 404 and no answer has a CORS header, as before', async () => {
    await withApp([], async (url) => {
      const answer = await preflight(`${url}/notifications`, 'https://app.example.com');
      expect(answer.status).to.equal(404);
      expect(corsHeaders(answer)).to.deep.equal([]);
      const actual = await fetch(`${url}/notifications`, { headers: { origin: 'https://app.example.com' } });
      expect(actual.status).to.equal(401);
      expect(corsHeaders(actual)).to.deep.equal([]);
    });
  });

  it('with * allows every origin (null too) with Access-Control-Allow-Origin: *, and never credentials', async () => {
    await withApp('*', async (url) => {
      for (const origin of ['https://anywhere.example', 'null']) {
        const answer = await preflight(`${url}/notifications`, origin);
        expect(answer.status).to.equal(204);
        expect(answer.headers.get('access-control-allow-origin')).to.equal('*');
        expect(answer.headers.get('access-control-allow-methods')).to.equal('GET,POST,PUT');
        expect(answer.headers.get('access-control-allow-credentials')).to.equal(null);
        const actual = await fetch(`${url}/notifications`, { headers: { origin } });
        expect(actual.status).to.equal(401);
        expect(actual.headers.get('access-control-allow-origin')).to.equal('*');
      }
    });
  });

  it("keeps its headers on an answer written with writeHead: GraphQL's 503, whose Retry-After the page may read", async () => {
    await withApp(['https://app.example.com'], async (url) => {
      const answer = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { origin: 'https://app.example.com', 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ hello }' }),
      });
      expect(answer.status).to.equal(503);
      expect(answer.headers.get('retry-after')).to.equal('2');
      expect(answer.headers.get('access-control-allow-origin')).to.equal('https://app.example.com');
      expect(answer.headers.get('access-control-expose-headers')).to.equal('Retry-After,X-Correlation-Id');
      expect(answer.headers.get('vary')).to.equal('Origin');
    });
  });

  it('leaves paths outside the APIs alone (the probes)', async () => {
    await withApp('*', async (url) => {
      const answer = await fetch(`${url}/healthz`, { headers: { origin: 'https://app.example.com' } });
      expect(answer.status).to.equal(200);
      expect(corsHeaders(answer)).to.deep.equal([]);
    });
  });
});
