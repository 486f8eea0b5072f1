import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { projections } from '../../projections';
import { eventually } from '../support/eventually';
import { HeraldProcess } from '../support/heraldProcess';
import { freePort } from '../support/postgres';

/**
 * Issue 21, item 6: the embedded store has one owner. The maintenance commands (`projections status`,
 * `rebuild`, `retry`, `replay`) run in the data dir of a live `herald serve`, as docs/analysts.md tells
 * analysts to, use that herald's PostgreSQL and never stop it; without a live herald they start and stop
 * their own, as before. Always on the embedded store (the feature is the embedded default's), whatever
 * DATABASE_URL the suite runs with.
 */
describe('the embedded PostgreSQL has one owner (issue 21, item 6)', function () {
  this.timeout(300_000);
  let dataDir: string;
  let env: Record<string, string>;
  let base: string;
  const pidFile = () => path.join(dataDir, 'postgres', 'postmaster.pid');
  const ownerFile = () => path.join(dataDir, 'postgres.owner');
  const postmaster = async () => Number((await readFile(pidFile(), 'utf8')).split('\n')[0]);

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-owner-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    env = {
      PORT: String(port),
      HERALD_DATA_DIR: dataDir,
      HERALD_EMBEDDED_POSTGRES_PORT: String(await freePort(port)),
      HERALD_APPS: 'camel:EERWERRRRE',
      HERALD_SEND_RATE_PER_MINUTE: '100000',
    };
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  /** A maintenance command in the same environment as serve: its exit code and stdout (its output). */
  async function command(...args: string[]): Promise<{ code: number | null; stdout: string; logs: string }> {
    const cli = HeraldProcess.start({ ...env, LOG_LEVEL: 'warn' }, args);
    const code = await cli.finished();
    return { code, stdout: cli.stdout, logs: cli.logs };
  }
  const jsonLines = (stdout: string) =>
    stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  async function serve(): Promise<HeraldProcess> {
    const herald = HeraldProcess.start(env);
    await herald.waitForHttp(`${base}/readyz`);
    return herald;
  }
  async function stop(herald: HeraldProcess): Promise<void> {
    herald.kill('SIGTERM');
    expect(await herald.exitCode(), herald.logs).to.equal(0);
  }

  async function ticket(userId: string): Promise<string> {
    const response = await fetch(`${base}/koala/api/mas/tickets`, {
      method: 'POST',
      body: new URLSearchParams({ app_key: 'camel', secret_key: 'EERWERRRRE', user_id: userId }),
    });
    return ((await response.json()) as { result: string }).result;
  }

  it('status, storage status, rebuild, retry and replay beside a serving herald: 0 failed sends (one every 100 ms), the postmaster untouched, each command’s output', async () => {
    const herald = await serve();
    try {
      const postmasterPid = await postmaster();
      const sender = await ticket('sender');
      await ticket('receiver');

      // Sends every 100 ms, each recorded as answered (its title) or failed (why), until told to stop.
      const answered: string[] = [];
      const failed: string[] = [];
      let sending = true;
      const inFlight: Promise<void>[] = [];
      const sends = (async () => {
        for (let i = 0; sending; i++) {
          const title = `send-${i}`;
          inFlight.push(
            fetch(`${base}/koala/api/mas/messages`, {
              method: 'POST',
              body: new URLSearchParams({ ticket: sender, users: 'receiver', title, content: 'c', request_id: title }),
              signal: AbortSignal.timeout(15_000),
            }).then(
              async (response) => {
                const body = await response.text();
                if (response.status === 200 && (JSON.parse(body) as { status: number }).status === 0)
                  answered.push(title);
                else failed.push(`${title}: ${response.status} ${body}`);
              },
              (error: unknown) => void failed.push(`${title}: ${(error as Error).message}`),
            ),
          );
          await new Promise((resolve) => setTimeout(resolve, 100)); // the pace of the load, not a wait for a result
        }
      })();
      await eventually(() => expect(answered.length).to.be.at.least(5), { timeoutMs: 30_000 });
      const answeredBeforeCommands = answered.length;

      const status = await command('projections', 'status');
      expect(status.code, status.logs).to.equal(0);
      const statusLines = jsonLines(status.stdout);
      expect(statusLines.map((line) => line.projection)).to.deep.equal(projections.map((p) => p.name));
      for (const line of statusLines)
        expect(line)
          .to.include({ parked: 0, lastError: null })
          .and.to.have.keys('projection', 'version', 'position', 'head', 'lag', 'parked');

      const storage = await command('storage', 'status', '--json');
      expect(storage.code, storage.logs).to.equal(0);
      const stored = JSON.parse(storage.stdout) as {
        readModels: Array<{ table: string; removableNextPass: number | null }>;
        events: { store: string; categories: Array<{ prefix: string; events: number }> };
      };
      expect(stored.readModels.map((t) => t.table)).to.include.members(projections.flatMap((p) => p.tables));
      expect(stored.readModels.find((t) => t.table === 'notification_messages')?.removableNextPass).to.equal(0);
      expect(stored.events.categories.find((c) => c.prefix === 'message')?.events).to.be.greaterThan(0);

      const rebuild = await command('projections', 'rebuild');
      expect(rebuild.code, rebuild.logs).to.equal(0);
      const rebuildLines = jsonLines(rebuild.stdout);
      for (const { name } of projections)
        expect(
          rebuildLines.filter((line) => line.projection === name && line.done),
          `one done line for ${name}`,
        ).to.have.length(1);

      const retry = await command('projections', 'retry', 'notifications');
      expect(retry.code, retry.logs).to.equal(0);
      expect(jsonLines(retry.stdout)).to.deep.equal([{ projection: 'notifications', retried: 0, stillParked: 0 }]);

      const sentBeforeReplay = [...answered];
      const replay = await command('replay', '--type', 'MessageSent');
      expect(replay.code, replay.logs).to.equal(0);
      const replayed = jsonLines(replay.stdout) as Array<{ type: string; data: { title: string } }>;
      expect(new Set(replayed.map((line) => line.type))).to.deep.equal(new Set(['MessageSent']));
      const titles = new Set(replayed.map((line) => line.data.title));
      for (const title of sentBeforeReplay)
        expect(titles.has(title), `${title}, answered before the replay, is in it`).to.equal(true);

      const sentDuringCommands = answered.length - answeredBeforeCommands;
      sending = false;
      await sends;
      await Promise.all(inFlight);
      expect(failed, 'failed sends').to.deep.equal([]);
      expect(sentDuringCommands, 'sends went on while the commands ran').to.be.greaterThan(10);
      expect(await postmaster(), 'the serving herald’s postmaster (postmaster.pid)').to.equal(postmasterPid);
      expect(isAlive(postmasterPid)).to.equal(true);
      expect(herald.logs).not.to.include('is gone; restarting it');
      expect(((await (await fetch(`${base}/readyz`)).json()) as { status: string }).status).to.equal('ready');
    } finally {
      await stop(herald);
    }
  });

  it('a command started as the owner’s PostgreSQL dies uses the server the owner restarts, and starts none', async () => {
    const herald = await serve();
    try {
      const dead = await postmaster();
      process.kill(dead, 'SIGKILL');
      const status = await command('projections', 'status');
      expect(status.code, status.logs).to.equal(0);
      expect(jsonLines(status.stdout).map((line) => line.projection)).to.deep.equal(projections.map((p) => p.name));
      expect(herald.logs, 'the owner restarted it').to.include('embedded PostgreSQL restarted');
      const restarted = await postmaster();
      expect(restarted).not.to.equal(dead);
      expect(isAlive(restarted), 'the owner’s server outlives the command').to.equal(true);
      expect(JSON.parse(await readFile(ownerFile(), 'utf8'))).to.include({ pid: herald.pid });
    } finally {
      await stop(herald);
    }
  });

  it('a second serve on the same data dir refuses, naming the live one, and changes nothing', async () => {
    const first = await serve();
    let second: HeraldProcess | undefined;
    try {
      const postmasterPid = await postmaster();
      second = HeraldProcess.start({
        ...env,
        PORT: String(await freePort(Number(env.PORT), Number(env.HERALD_EMBEDDED_POSTGRES_PORT))),
      });
      expect(await second.exitCode(), second.logs).to.equal(1);
      expect(second.logs).to.include(`belongs to herald pid ${first.pid} (serve), which is running`);
      expect(await postmaster()).to.equal(postmasterPid);
      expect(await ticket('still-served')).to.be.a('string');
      expect(JSON.parse(await readFile(ownerFile(), 'utf8'))).to.include({
        pid: first.pid,
        port: Number(env.HERALD_EMBEDDED_POSTGRES_PORT),
      });
    } finally {
      second?.kill('SIGKILL'); // already gone, unless it failed to refuse
      await stop(first);
    }
    expect(existsSync(ownerFile()), 'the owner leaves no record behind').to.equal(false);
  });

  it('without a live herald a command starts and stops its own PostgreSQL, taking over an orphan of a killed one, and a stale record of a reused pid', async () => {
    const status = async () => {
      const result = await command('projections', 'status');
      expect(result.code, result.logs).to.equal(0);
      expect(jsonLines(result.stdout).map((line) => line.projection)).to.deep.equal(projections.map((p) => p.name));
      expect(existsSync(pidFile()), 'its PostgreSQL stopped with it').to.equal(false);
      expect(existsSync(ownerFile())).to.equal(false);
    };
    await status(); // a fresh data dir

    const killed = await serve();
    const orphan = await postmaster();
    killed.kill('SIGKILL'); // its PostgreSQL lives on, an orphan; its record names a dead pid
    await killed.exitCode();
    expect(isAlive(orphan)).to.equal(true);
    await status();
    expect(isAlive(orphan), 'the orphan was stopped').to.equal(false);

    // A record whose pid now belongs to another live process (this one) that started at another time.
    await writeFile(ownerFile(), JSON.stringify({ pid: process.pid, started: '1', port: 1, command: 'serve' }) + '\n');
    await status();
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
