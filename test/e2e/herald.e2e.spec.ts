import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { projections } from '../../projections';
import { eventually } from '../support/eventually';
import { graphql, type GraphqlResponse } from '../support/graphqlClient';
import { HeraldProcess } from '../support/heraldProcess';
import { heraldProcessSetup, type HeraldProcessSetup } from '../support/heraldProcessSetup';
import { describeTarget, freePort, type TestDatabase } from '../support/postgres';

describe(`herald process (${process.env.DATABASE_URL ? describeTarget() : 'embedded defaults'})`, function () {
  this.timeout(180_000);
  let setup: HeraldProcessSetup | undefined;
  let dataDir: string;
  let testDatabase: TestDatabase | undefined;
  let env: Record<string, string>;
  let base: string;

  before(async () => {
    setup = await heraldProcessSetup('herald-e2e-');
    ({ dataDir, testDatabase, env, base } = setup);
  });
  after(() => setup?.remove());

  it('starts, answers /healthz and /readyz, survives kill -9, and stops cleanly on SIGTERM', async () => {
    const first = HeraldProcess.start(env);
    expect(await (await first.waitForHttp(`${base}/healthz`)).json()).to.deep.equal({ status: 'ok' });
    const ready = (await (await first.waitForHttp(`${base}/readyz`)).json()) as {
      status: string;
      projections: Record<string, { caughtUp: boolean; parked: number }>;
    };
    expect(ready.status).to.equal('ready');
    expect(ready.projections.apps?.caughtUp).to.equal(true);
    expect(ready.projections.notifications?.parked).to.equal(0);

    first.kill('SIGKILL'); // leaves an embedded PostgreSQL orphaned, with its postmaster.pid
    await first.exitCode();

    const second = HeraldProcess.start(env);
    await second.waitForHttp(`${base}/readyz`);
    // HERALD_APPS again with the same secret: registered once, not twice.
    expect(second.logs).not.to.include('app registered from HERALD_APPS');

    const pidFile = path.join(dataDir, 'postgres', 'postmaster.pid');
    const postgresPid = testDatabase ? undefined : Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
    second.kill('SIGTERM');
    expect(await second.exitCode()).to.equal(0);
    expect(second.logs).to.include('"msg":"stopped"');
    if (postgresPid !== undefined) {
      expect(isAlive(postgresPid), 'embedded PostgreSQL stopped with herald').to.equal(false);
      expect(existsSync(pidFile)).to.equal(false);
    }
  });

  it('kill -9 under send load: every answered send is kept, and every unanswered one, retried with its request_id, lands once', async () => {
    const first = HeraldProcess.start(env);
    await first.waitForHttp(`${base}/readyz`);
    const ticketOf = async (userId: string) => {
      const response = await fetch(`${base}/koala/api/mas/tickets`, {
        method: 'POST',
        body: new URLSearchParams({ app_key: 'camel', secret_key: 'EERWERRRRE', user_id: userId }),
      });
      return ((await response.json()) as { result: string }).result;
    };
    const sender = await ticketOf('load-sender');
    const receiver = await ticketOf('load-receiver');
    const send = async (i: number): Promise<string> => {
      const response = await fetch(`${base}/koala/api/mas/messages`, {
        method: 'POST',
        body: new URLSearchParams({
          ticket: sender,
          users: 'load-receiver',
          title: `load-${i}`,
          content: 'c',
          request_id: `load-${i}`,
        }),
        signal: AbortSignal.timeout(15_000),
      });
      const body = (await response.json()) as { status: number; result: string };
      if (body.status !== 0) throw new Error(`send ${i}: ${JSON.stringify(body)}`);
      return body.result;
    };

    // 16 senders until 150 sends are answered, then kill -9 with sends in flight.
    const answered = new Map<number, string>();
    const unanswered = new Set<number>();
    let next = 0;
    let killed = false;
    const senders = Array.from({ length: 16 }, async () => {
      while (!killed) {
        const i = next++;
        await send(i).then(
          (id) => answered.set(i, id),
          () => unanswered.add(i),
        );
        if (answered.size >= 150 && !killed) {
          killed = true;
          first.kill('SIGKILL');
        }
      }
    });
    await Promise.all(senders);
    await first.exitCode();
    expect(unanswered.size, 'sends were in flight when herald was killed').to.be.greaterThan(0);

    const second = HeraldProcess.start(env);
    await second.waitForHttp(`${base}/readyz`);
    try {
      // The client retries what it saw no answer to, with the same request_id.
      for (const i of unanswered) answered.set(i, await send(i));

      const titles = new Map<string, string>();
      let after: string | null = null;
      for (;;) {
        const page: GraphqlResponse<{
          notifications: {
            nodes: Array<{ id: string; title: string }>;
            pageInfo: { endCursor: string | null; hasNextPage: boolean };
          };
        }> = await graphql(
          base,
          receiver,
          'query($after: String) { notifications(first: 100, after: $after) { nodes { id title } pageInfo { endCursor hasNextPage } } }',
          { after },
        );
        for (const node of page.data!.notifications.nodes) {
          expect(titles.has(node.title), `${node.title} listed twice`).to.equal(false);
          titles.set(node.title, node.id);
        }
        if (!page.data!.notifications.pageInfo.hasNextPage) break;
        after = page.data!.notifications.pageInfo.endCursor;
      }
      expect(answered.size).to.equal(next);
      expect(titles.size, 'one message per send, none lost, none doubled').to.equal(next);
      for (const [i, id] of answered) expect(titles.get(`load-${i}`), `load-${i}`).to.equal(id);
    } finally {
      second.kill('SIGTERM');
      expect(await second.exitCode()).to.equal(0);
    }
  });

  it('starts its embedded PostgreSQL as a normal user too', async function () {
    // As root the embedded server runs as `postgres`; this checks the other path, herald run by `nobody`.
    const nobody = {
      uid: Number(execFileSync('id', ['-u', 'nobody']).toString()),
      gid: Number(execFileSync('id', ['-g', 'nobody']).toString()),
    };
    if (process.env.DATABASE_URL || process.getuid?.() !== 0 || !canRunAs(nobody)) this.skip();
    const userDir = await mkdtemp(path.join(os.tmpdir(), 'herald-user-'));
    await chmod(userDir, 0o777);
    const port = await freePort();
    const herald = HeraldProcess.start(
      {
        PORT: String(port),
        HERALD_DATA_DIR: path.join(userDir, 'data'),
        HERALD_EMBEDDED_POSTGRES_PORT: String(await freePort(port)),
      },
      ['serve'],
      nobody,
    );
    try {
      const ready = (await (await herald.waitForHttp(`http://127.0.0.1:${port}/readyz`)).json()) as { status: string };
      expect(ready.status).to.equal('ready');
      const owner = (await stat(path.join(userDir, 'data', 'postgres', 'PG_VERSION'))).uid;
      expect(owner, 'the cluster belongs to the user who ran herald').to.equal(nobody.uid);
    } finally {
      herald.kill('SIGTERM');
      expect(await herald.exitCode()).to.equal(0);
      await rm(userDir, { recursive: true, force: true });
    }
  });

  it('restarts its embedded PostgreSQL when it dies, and exits non-zero when it cannot', async function () {
    if (testDatabase) this.skip(); // supervision is of the embedded server
    const pidFile = path.join(dataDir, 'postgres', 'postmaster.pid');
    const postmaster = async () => Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
    const herald = HeraldProcess.start(env);
    await herald.waitForHttp(`${base}/readyz`);
    const ticket = async () => {
      const response = await fetch(`${base}/koala/api/mas/tickets`, {
        method: 'POST',
        body: new URLSearchParams({ app_key: 'camel', secret_key: 'EERWERRRRE', user_id: 'survivor' }),
      });
      return ((await response.json()) as { result: string }).result;
    };
    expect(await ticket()).to.be.a('string');

    process.kill(await postmaster(), 'SIGKILL');
    await eventually(() => expect(herald.logs).to.include('embedded PostgreSQL restarted'), { timeoutMs: 30_000 });
    await eventually(async () => expect(await ticket()).to.be.a('string'), { timeoutMs: 15_000 });
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);
    herald.kill('SIGTERM');
    expect(await herald.exitCode()).to.equal(0);
    expect(herald.logs).to.include('"msg":"stopped"');

    // Dead and unable to come back (its cluster is damaged): herald stops in order and exits non-zero.
    const doomed = HeraldProcess.start(env);
    await doomed.waitForHttp(`${base}/readyz`);
    const versionFile = path.join(dataDir, 'postgres', 'PG_VERSION');
    const version = await readFile(versionFile, 'utf8');
    process.kill(await postmaster(), 'SIGKILL');
    await rm(versionFile);
    try {
      expect(await doomed.exitCode()).to.equal(1);
      expect(doomed.logs).to.include('could not be restarted');
      expect(doomed.logs).to.include('"msg":"stopped"');
    } finally {
      await writeFile(versionFile, version);
    }
  });

  it('projections status and retry: JSON lines per projection', async () => {
    const run = async (args: string[]) => {
      const cli = HeraldProcess.start(env, args);
      expect(await cli.exitCode(), cli.logs).to.equal(0);
      const lines = cli.logs
        .trim()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      // The command's output, apart from herald's own log records (pino: level, msg) on the same stream.
      const [logRecords, output] = [lines.filter((line) => 'msg' in line), lines.filter((line) => !('msg' in line))];
      for (const record of logRecords) expect(record, cli.logs).to.have.property('level').that.is.below(50);
      return output;
    };
    const status = await run(['projections', 'status']);
    expect(status.map((s) => s.projection)).to.deep.equal(projections.map((p) => p.name));
    for (const line of status)
      expect(line).to.include({ parked: 0 }).and.to.have.keys('projection', 'version', 'position', 'head', 'parked');
    expect(await run(['projections', 'retry', 'notifications'])).to.deep.equal([
      { projection: 'notifications', retried: 0, stillParked: 0 },
    ]);
    const unknown = HeraldProcess.start(env, ['projections', 'retry', 'nope']);
    expect(await unknown.exitCode()).to.equal(2);
    expect(unknown.logs).to.match(/unknown projection\(s\) nope/);
  });

  it('refuses to start on a bad variable, naming it and the expected form', async () => {
    const bad = HeraldProcess.start({ ...env, PORT: 'eighty' });
    expect(await bad.exitCode()).to.equal(2);
    expect(bad.logs).to.include('PORT: expected an integer from 1 to 65535');
  });
});

/** Whether that user can read this checkout and run its tsx (a checkout under a private folder cannot). */
function canRunAs(user: { uid: number; gid: number }): boolean {
  try {
    execFileSync(process.execPath, ['--import', 'tsx', '-e', ''], {
      ...user,
      cwd: path.resolve(__dirname, '../..'),
      stdio: 'ignore',
      timeout: 30_000,
    });
    return true;
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
