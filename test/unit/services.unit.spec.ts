import { expect } from 'chai';
import pino from 'pino';
import { Services } from '../../src/runtime/services';

// STYLE.md "Services: one lifecycle for everything that runs" (issue 21, item 9): herald's composition
// root and the leader's background work start their services in order and stop them in reverse.
describe('services: one lifecycle', () => {
  const log = pino({ level: 'silent' });

  it('starts in order, stops in reverse; a service that fails to stop does not keep the others running', async () => {
    const seen: string[] = [];
    const services = new Services(log);
    const service = (name: string, failStop = false) => ({
      name,
      start: async () => void seen.push(`start ${name}`),
      stop: async () => {
        seen.push(`stop ${name}`);
        if (failStop) throw new Error('stuck');
      },
    });
    await services.start(service('store'));
    services.add({ name: 'bus', stop: () => void seen.push('stop bus') });
    await services.start(service('workers', true));
    await services.start(service('http'));
    await services.stop();
    expect(seen).to.deep.equal([
      'start store',
      'start workers',
      'start http',
      'stop http',
      'stop workers',
      'stop bus',
      'stop store',
    ]);
    // Stopped once: stopping again stops nothing twice.
    await services.stop();
    expect(seen).to.have.length(7);
  });

  it('a service that fails to start is not stopped; those started before it are, in reverse', async () => {
    const seen: string[] = [];
    const services = new Services(log);
    await services.start({ name: 'a', stop: () => void seen.push('stop a') });
    await services.start({ name: 'b', stop: () => void seen.push('stop b') });
    const failing = services.start({
      name: 'c',
      start: () => Promise.reject(new Error('port in use')),
      stop: () => void seen.push('stop c'),
    });
    await failing.then(
      () => expect.fail('started'),
      (error: Error) => expect(error.message).to.equal('port in use'),
    );
    await services.stop();
    expect(seen).to.deep.equal(['stop b', 'stop a']);
  });
});
