import { stopTestServer } from './postgres';

/** Mocha root hooks: shared test servers are stopped once, after every suite. */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    await stopTestServer();
  },
};
