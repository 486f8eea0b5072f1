import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { eventually } from '../support/eventually';

const root = path.resolve(__dirname, '../..');

/**
 * Issue 21, item 6: of several processes claiming one data dir's embedded PostgreSQL at the same moment,
 * over a record left by a dead owner, exactly one becomes the owner and every other one sees it
 * (src/postgres/embeddedPostgresOwner.ts). Real processes: ownership is by pid.
 */
describe('embedded PostgreSQL ownership claims (issue 21, item 6)', function () {
  this.timeout(120_000);
  let dir: string;
  let file: string;
  const claimants: ChildProcess[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'herald-owner-claim-'));
    file = path.join(dir, 'postgres.owner');
  });
  afterEach(async () => {
    for (const child of claimants.splice(0)) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  /** A process that claims `file` when told "go", prints the outcome, and holds its claim until its stdin closes. */
  function claimant(): {
    child: ChildProcess;
    ready: Promise<void>;
    outcome: Promise<{ pid: number; claimed: boolean; owner?: { pid: number } }>;
  } {
    const script = `
      const { claimOwnership, releaseOwnership } = require(${JSON.stringify(path.join(root, 'src/postgres/embeddedPostgresOwner.ts'))});
      let input = '';
      process.stdin.on('data', async (chunk) => {
        input += chunk;
        if (input === 'go\\n') {
          const owner = await claimOwnership(${JSON.stringify(file)}, 5432);
          process.stdout.write(JSON.stringify({ pid: process.pid, claimed: owner === undefined, owner }) + '\\n');
        }
      });
      process.stdin.on('end', () => releaseOwnership(${JSON.stringify(file)}).then(() => process.exit(0)));
      process.stdout.write('ready\\n');`;
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    claimants.push(child);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const outcome = eventually(
      () => {
        const line = output.split('\n').find((l) => l.startsWith('{'));
        if (!line) throw new Error(`no outcome yet: ${output}`);
        return JSON.parse(line) as { pid: number; claimed: boolean; owner?: { pid: number } };
      },
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    const ready = eventually(() => void expect(output).to.include('ready'), { timeoutMs: 60_000, intervalMs: 20 });
    return { child, ready, outcome };
  }

  it('over a dead owner’s record, one of six simultaneous claimants owns, the others name it; the owner’s release removes the record', async () => {
    const dead = spawn(process.execPath, ['-e', '']);
    await once(dead, 'exit');
    await writeFile(file, JSON.stringify({ pid: dead.pid, started: null, port: 5432, command: 'serve' }) + '\n');

    const all = Array.from({ length: 6 }, claimant);
    await Promise.all(all.map((c) => c.ready));
    for (const { child } of all) child.stdin!.write('go\n');
    const outcomes = await Promise.all(all.map((c) => c.outcome));

    const owners = outcomes.filter((o) => o.claimed);
    expect(owners, JSON.stringify(outcomes)).to.have.length(1);
    const owner = owners[0]!.pid;
    for (const o of outcomes.filter((o) => !o.claimed)) expect(o.owner?.pid, JSON.stringify(outcomes)).to.equal(owner);
    expect(JSON.parse(await readFile(file, 'utf8'))).to.include({ pid: owner, port: 5432 });
    expect((await readFile(file, 'utf8')).split('\n').filter(Boolean), 'one record, whole').to.have.length(1);

    // A guest's release leaves the owner's record; the owner's removes it.
    const guests = all.filter((c) => c.child.pid !== owner);
    for (const { child } of guests) child.stdin!.end();
    await Promise.all(guests.map(({ child }) => once(child, 'exit')));
    expect(JSON.parse(await readFile(file, 'utf8'))).to.include({ pid: owner });
    const ownerProcess = all.find((c) => c.child.pid === owner)!.child;
    ownerProcess.stdin!.end();
    await once(ownerProcess, 'exit');
    expect(existsSync(file)).to.equal(false);
  });
});
