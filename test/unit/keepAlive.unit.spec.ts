import net from 'node:net';
import { expect } from 'chai';
import pino from 'pino';
import { createHttpApp, listen } from '../../src/server';
import { eventually } from '../support/eventually';

// Node closes an idle keep-alive connection after 5 s by default; herald keeps it past the 60 s idle
// timeout of the common load balancers, so a proxy's request on a pooled connection never races a close.
describe('HTTP keep-alive', function () {
  this.timeout(15_000);

  it('keeps an idle connection open past Node’s 5 s default (closed at ~6 s) and answers the next request on it', async () => {
    const server = await listen(createHttpApp({ readiness: async () => ({ ready: true, notReady: {}, checks: {} }) }), {
      port: 0,
      host: '127.0.0.1',
      log: pino({ level: 'silent' }),
    });
    const { port } = new URL(server.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    let received = '';
    let closed = false;
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('close', () => (closed = true));
    const answers = () => received.split('HTTP/1.1 200 OK').length - 1;
    const request = 'GET /healthz HTTP/1.1\r\nHost: herald\r\nConnection: keep-alive\r\n\r\n';
    try {
      socket.write(request);
      await eventually(() => expect(answers()).to.equal(1));
      expect(received).to.match(/\r\nKeep-Alive: timeout=65\r\n/i);
      // The one fixed wait is the idle time under test, not a wait for a result.
      await new Promise((resolve) => setTimeout(resolve, 7_000));
      expect(closed, 'closed while idle').to.equal(false);
      socket.write(request);
      await eventually(() => expect(answers()).to.equal(2));
    } finally {
      socket.destroy();
      await server.close();
    }
  });
});
