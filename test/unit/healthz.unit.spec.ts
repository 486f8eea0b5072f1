import { expect } from 'chai';
import pino from 'pino';
import { createHttpApp, listen } from '../../src/server';

describe('GET /healthz', () => {
  async function healthz(unhealthy: () => string | undefined) {
    const server = await listen(
      createHttpApp({ readiness: async () => ({ ready: true, notReady: {}, checks: {} }), unhealthy }),
      { port: 0, host: '127.0.0.1', log: pino({ level: 'silent' }) },
    );
    try {
      const response = await fetch(`${server.url}/healthz`);
      return { status: response.status, body: await response.json() };
    } finally {
      await server.close();
    }
  }

  it('is 200 while herald is healthy, 503 with the problem once it is not (a store down past its grace)', async () => {
    expect(await healthz(() => undefined)).to.deep.equal({ status: 200, body: { status: 'ok' } });
    expect(await healthz(() => 'embedded PostgreSQL down since 2026-11-22T00:00:00.000Z')).to.deep.equal({
      status: 503,
      body: { status: 'unhealthy', problem: 'embedded PostgreSQL down since 2026-11-22T00:00:00.000Z' },
    });
  });
});
