import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig, type Config } from '../../src/config';
import { startHerald, type Herald } from '../../src/herald';
import { systemClock, type Clock } from '../../src/runtime/clock';
import { createTestDatabase, type TestDatabase } from './postgres';

/** herald's configuration in a test: a free port on localhost, the seed's demo apps, on `databaseUrl`. */
export function testHeraldConfig(databaseUrl: string, overrides: Partial<Config> = {}): Config {
  return {
    ...loadConfig({}),
    port: 0,
    host: '127.0.0.1',
    databaseUrl,
    // Sealed platform-push keys: a key of the test's own, no file in the data dir.
    credentialsKey: randomBytes(32).toString('hex'),
    // The database's archive: one directory per database (batch numbers are a database's), shared by every
    // herald started on it (a pass refuses another archive: src/storage/eventRetention.ts).
    archiveDir: path.join(
      tmpdir(),
      `herald-test-archive-${createHash('sha256').update(databaseUrl).digest('hex').slice(0, 16)}`,
    ),
    apps: [
      { appId: 'camel', secret: 'EERWERRRRE' },
      { appId: 'other', secret: 'other-secret' },
    ],
    ...overrides,
  };
}

/** herald in this process on an existing database: a second node, or the next one after a restart. */
export function startHeraldOn(
  databaseUrl: string,
  overrides: Partial<Config> = {},
  clock: Clock = systemClock,
): Promise<Herald> {
  return startHerald(
    testHeraldConfig(databaseUrl, overrides),
    pino({ level: process.env.HERALD_TEST_LOG ?? 'silent' }),
    {
      clock,
    },
  );
}

/** herald in this process, on a fresh test database and a free port, with the seed's demo apps. */
/** `clock`: herald's time; a test of expiry or schedules passes a `TestClock` and advances it. */
export async function startTestHerald(
  overrides: Partial<Config> = {},
  clock: Clock = systemClock,
): Promise<{ herald: Herald; url: string; testDatabase: TestDatabase; stop(): Promise<void> }> {
  const testDatabase = await createTestDatabase();
  const herald = await startHeraldOn(testDatabase.connectionString, overrides, clock);
  return {
    herald,
    url: herald.url,
    testDatabase,
    async stop() {
      await herald.close();
      await testDatabase.drop();
    },
  };
}

/** POSTs a form, urlencoded by default; returns the JSON body and status. */
export async function postForm(
  url: string,
  body: string | FormData | Record<string, string>,
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const init: RequestInit =
    typeof body === 'string'
      ? { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } }
      : body instanceof FormData
        ? { method: 'POST', body }
        : { method: 'POST', body: new URLSearchParams(body) };
  const response = await fetch(url, init);
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

/** A ticket for `userId` from Koala's ticket route, with the seed's demo app unless another is given. */
export async function issueTicket(
  url: string,
  userId: string,
  roles = '',
  app = 'camel',
  secret = 'EERWERRRRE',
): Promise<string> {
  const { body } = await postForm(`${url}/koala/api/mas/tickets`, {
    app_key: app,
    secret_key: secret,
    user_id: userId,
    ...(roles && { user_roles: roles }),
  });
  if (body.status !== 0) throw new Error(`no ticket for ${userId}: ${JSON.stringify(body)}`);
  return body.result as string;
}

/** herald's clock in a test: real time plus whatever the test has advanced it by (`advance(ms)`). */
export class TestClock {
  private offsetMs = 0;
  readonly now = (): Date => new Date(Date.now() + this.offsetMs);
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}
