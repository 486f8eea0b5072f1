import { expect } from 'chai';
import { DeviceSocket } from '../support/deviceSocket';
import { eventually } from '../support/eventually';
import { graphql, GraphqlSocket } from '../support/graphqlClient';
import { HeraldProcess } from '../support/heraldProcess';
import { createTestDatabase, freePort, type TestDatabase } from '../support/postgres';
import { RtioDevice } from '../support/rtioDevice';

/**
 * Two herald processes on one PostgreSQL and one Redis (REDIS_URL: the machine's server in CI) behave
 * as one: what is sent through one node reaches a subscriber on the other, and when the node running
 * the projections is killed, the other takes them over.
 */
const REDIS_URL = process.env.REDIS_URL;

describe('two herald nodes (Redis bus)', function () {
  this.timeout(180_000);
  let testDatabase: TestDatabase;
  const nodes: HeraldProcess[] = [];
  const sockets: GraphqlSocket[] = [];

  before(async function () {
    if (!REDIS_URL) {
      console.log("      (skipped: REDIS_URL is unset; .ci/run sets it to the machine's Redis)");
      this.skip();
    }
    testDatabase = await createTestDatabase();
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    for (const node of nodes) node.kill('SIGKILL');
    await Promise.all(nodes.map((node) => node.exitCode()));
    await testDatabase?.drop();
  });

  async function startNode(): Promise<string> {
    const port = await freePort();
    const node = HeraldProcess.start({
      PORT: String(port),
      DATABASE_URL: testDatabase.connectionString,
      REDIS_URL: REDIS_URL!,
      HERALD_APPS: 'camel:EERWERRRRE',
    });
    nodes.push(node);
    const url = `http://127.0.0.1:${port}`;
    await node.waitForHttp(`${url}/readyz`);
    return url;
  }

  const ticket = async (url: string, userId: string) => {
    const response = await fetch(`${url}/koala/api/mas/tickets`, {
      method: 'POST',
      body: new URLSearchParams({ app_key: 'camel', secret_key: 'EERWERRRRE', user_id: userId }),
    });
    return ((await response.json()) as { result: string }).result;
  };
  const send = async (url: string, sender: string, title: string) => {
    const response = await fetch(`${url}/koala/api/mas/messages`, {
      method: 'POST',
      body: new URLSearchParams({ ticket: sender, users: 'two-nodes-reader', title, content: 'c' }),
    });
    expect(((await response.json()) as { status: number }).status, title).to.equal(0);
  };

  /** RTIO's routes, as the seed's curl posts them (a form body holding JSON). */
  const rtio = async (url: string, path: string, fields: Record<string, unknown>) => {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: JSON.stringify(fields),
    });
    return (await response.json()) as Record<string, unknown>;
  };

  it('an RTIO call through node 1 reaches a device connected to node 2, and its reply comes back', async () => {
    const one = await startNode();
    const two = await startNode();
    const created = await rtio(one, '/manage/create_device', { nonce: `two-nodes-${Date.now()}` });
    const device = await RtioDevice.connect(
      two,
      { device_id: created.device_id, device_key: created.device_key },
      (message) => ({ code: 7, message: `node 2 heard ${message}` }),
    );
    try {
      const nonce = `call-${Date.now()}`;
      const answer = await rtio(one, '/call/send', {
        nonce,
        device_id: created.device_id,
        message: 'hello across nodes',
      });
      expect(answer).to.deep.equal({
        nonce,
        code: 1000,
        desc: 'SUCCESS',
        device_id: created.device_id,
        device_status: 1,
        device_code: 7,
        device_message: 'node 2 heard hello across nodes',
      });

      // The device connects again, to node 1: its connection to node 2 is replaced (4409), as on one node,
      // and a call through node 2 now reaches it on node 1.
      const moved = await RtioDevice.connect(
        one,
        { device_id: created.device_id, device_key: created.device_key },
        (message) => ({ code: 8, message: `node 1 heard ${message}` }),
      );
      try {
        await device.until((d) => d.closeCode !== undefined, 'the older connection replaced');
        expect(device.closeCode).to.equal(4409);
        const back = await rtio(two, '/call/send', {
          nonce: `back-${Date.now()}`,
          device_id: created.device_id,
          message: 'and back',
        });
        expect(back).to.include({ code: 1000, device_code: 8, device_message: 'node 1 heard and back' });
      } finally {
        moved.socket.close();
      }
      // Once the device is gone, node 1 finds it offline (2305) at once.
      let tries = 0;
      await eventually(
        async () => {
          const offline = await rtio(one, '/call/send', {
            nonce: `gone-${Date.now()}-${++tries}`,
            device_id: created.device_id,
            message: 'anyone?',
          });
          expect(offline).to.include({ code: 2305, device_status: 2 });
        },
        { timeoutMs: 15_000, intervalMs: 200 },
      );
    } finally {
      device.socket.close();
      for (const node of nodes.splice(0)) {
        node.kill('SIGTERM');
        await node.exitCode();
      }
    }
  });

  it('a ONE-PUSH device on node 2 gets a push sent through node 1, and node 1 sees it online', async () => {
    const one = await startNode();
    const two = await startNode();
    const post = async (url: string, path: string, body: unknown) =>
      (
        await fetch(`${url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      ).json() as Promise<Record<string, unknown>>;
    const registered = await post(one, '/msgpush/register', {
      appId: 'camel',
      alias: 'two-nodes-phone',
      platform: 'ANDROID',
      nativeToken: `two-nodes-${Date.now()}`,
    });
    const socket = await DeviceSocket.connect(two, registered.id as string);
    try {
      const admin = await (async () => {
        const response = await fetch(`${one}/koala/api/mas/tickets`, {
          method: 'POST',
          body: new URLSearchParams({
            app_key: 'camel',
            secret_key: 'EERWERRRRE',
            user_id: 'two-nodes-admin',
            user_roles: 'admin',
          }),
        });
        return ((await response.json()) as { result: string }).result;
      })();
      await eventually(async () => {
        const listed = await graphql<{ devices: { nodes: Array<{ id: string; online: boolean }> } }>(
          one,
          admin,
          '{ devices(alias: "two-nodes-phone") { nodes { id online } } }',
        );
        expect(listed.data!.devices.nodes).to.deep.equal([{ id: registered.id, online: true }]);
      });
      const sent = await post(one, '/msgpush/send', {
        appId: 'camel',
        appKey: 'EERWERRRRE',
        platform: 'ALL',
        audienceType: 'ALIAS',
        audiences: ['two-nodes-phone'],
        alert: 'across nodes',
      });
      await socket.until((s) => s.messages.some((m) => m.messageId === sent.requestId), 'the push sent through node 1');
      expect(socket.messages.filter((m) => m.messageId === sent.requestId)).to.have.length(1);
    } finally {
      socket.close();
      for (const node of nodes.splice(0)) {
        node.kill('SIGTERM');
        await node.exitCode();
      }
    }
  });

  const leads = async (url: string) =>
    ((await (await fetch(`${url}/readyz`)).json()) as { leadsBackgroundWork: boolean }).leadsBackgroundWork;

  it('a subscriber on node 2 receives what is sent through node 1; with node 1 killed, node 2 projects, leads and pushes on', async () => {
    // Node 1 starts first and holds the projections and the lead; node 2 waits as their standby.
    const one = await startNode();
    await eventually(async () => expect(await leads(one)).to.equal(true));
    const two = await startNode();
    expect(await leads(two)).to.equal(false);
    const reader = await ticket(two, 'two-nodes-reader');
    const socket = GraphqlSocket.connect(two, { ticket: reader });
    sockets.push(socket);
    const live = socket.subscribe<{ messages: { title: string; seq: string } }>(
      'subscription { messages { title seq } }',
    );
    await socket.until(() => socket.isConnected, 'node 2 connected');

    const sender = await ticket(one, 'two-nodes-sender');
    // The subscription starts on the server a moment after connecting: send until one arrives.
    await eventually(
      async () => {
        await send(one, sender, 'through node 1');
        expect(live.results.length).to.be.greaterThan(0);
      },
      { timeoutMs: 20_000, intervalMs: 300 },
    );
    expect(live.results.every((r) => r.messages.title === 'through node 1')).to.equal(true);

    nodes[0]!.kill('SIGKILL');
    await nodes[0]!.exitCode();
    const before = live.results.length;
    // Node 2's runners take the projections' locks once node 1's sessions are gone.
    await send(two, await ticket(two, 'two-nodes-sender'), 'after node 1 died');
    await socket.until(
      () => live.results.some((r) => r.messages.title === 'after node 1 died'),
      'the message sent after node 1 died',
      30_000,
    );
    // Before it, maybe the last message sent through node 1: still on its way when node 1 was killed, or
    // committed by node 1 and never published, then read from the store on node 2's takeover (each once: below).
    const afterKill = live.results.slice(before).map((r) => r.messages.title);
    expect(afterKill.filter((title) => title !== 'through node 1')).to.deep.equal(['after node 1 died']);

    // Node 2 leads now: a message scheduled through it is released by its scheduler.
    await eventually(async () => expect(await leads(two)).to.equal(true), { timeoutMs: 15_000 });
    const scheduled = await fetch(`${two}/koala/api/mas/messages`, {
      method: 'POST',
      body: new URLSearchParams({
        ticket: await ticket(two, 'two-nodes-sender'),
        users: 'two-nodes-reader',
        title: 'scheduled on node 2',
        content: 'c',
        execute: String(Math.floor(Date.now() / 1000) + 2),
      }),
    });
    expect(((await scheduled.json()) as { status: number }).status).to.equal(0);
    await socket.until(
      () => live.results.some((r) => r.messages.title === 'scheduled on node 2'),
      'the scheduled message, released by node 2',
      30_000,
    );

    const listed = await graphql<{ notifications: { nodes: Array<{ title: string }> } }>(
      two,
      reader,
      '{ notifications(first: 100) { nodes { title } } }',
    );
    expect(listed.data!.notifications.nodes.filter((n) => n.title === 'after node 1 died')).to.have.length(1);
    expect(listed.data!.notifications.nodes.filter((n) => n.title === 'scheduled on node 2')).to.have.length(1);
    const seqs = live.results.map((r) => r.messages.seq);
    expect(new Set(seqs).size, 'no message pushed twice').to.equal(seqs.length);
  });
});
