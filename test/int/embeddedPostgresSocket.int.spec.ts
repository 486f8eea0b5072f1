import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/postgres/embeddedPostgres';
import { freePort } from '../support/postgres';

/** Whether a connection to `connectionString` goes over a Unix socket (PostgreSQL has no server address then). */
async function overUnixSocket(connectionString: string): Promise<boolean> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const { rows } = await client.query<{ address: string | null }>('SELECT inet_server_addr() AS address');
    return rows[0]!.address === null;
  } finally {
    await client.end();
  }
}

// Issue 24: herald reaches its embedded PostgreSQL over a Unix socket in the cluster dir (less CPU per
// round trip than loopback TCP), and over TCP where the socket's path would be too long for the kernel.
// A guest (a maintenance command beside `serve`) uses the owner's socket: test/e2e/embeddedOwner.e2e.spec.ts.
describe('embedded PostgreSQL over a Unix socket (issue 24)', function () {
  this.timeout(120_000);
  let dir: string;
  const servers: EmbeddedPostgres[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'herald-socket-'));
  });
  afterEach(async () => {
    for (const server of servers.splice(0).reverse()) await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('connects over the socket in the cluster dir', async () => {
    const port = await freePort();
    const server = await startEmbeddedPostgres({ dataDir: dir, port });
    servers.push(server);
    expect(
      existsSync(path.join(dir, 'postgres', `.s.PGSQL.${port}`)),
      'the socket, where a guest looks for it',
    ).to.equal(true);
    expect(await overUnixSocket(server.connectionString)).to.equal(true);
  });

  it('connects over TCP when the data dir is too deep for a socket path', async () => {
    // Beside the others in the temporary dir (as root, the postgres user must be able to reach it).
    const deep = `${dir}-${'d'.repeat(100)}`;
    try {
      const server = await startEmbeddedPostgres({ dataDir: deep, port: await freePort() });
      servers.push(server);
      expect(await overUnixSocket(server.connectionString)).to.equal(false);
    } finally {
      for (const server of servers.splice(0)) await server.stop();
      await rm(deep, { recursive: true, force: true });
    }
  });
});
