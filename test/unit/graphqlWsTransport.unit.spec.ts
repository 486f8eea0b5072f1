import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { expect } from 'chai';
import { GRAPHQL_TRANSPORT_WS_PROTOCOL } from 'graphql-ws';
import pino from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { serveGraphqlWs } from '../../api/graphql/graphqlWsTransport';
import { eventually } from '../support/eventually';

/** herald's graphql-ws transport on a real `ws` server: the protocol, the keep-alive sweep, hook failures. */
describe('graphql-ws transport', () => {
  const schema = makeExecutableSchema({
    typeDefs: 'type Query { hello: String! }',
    resolvers: { Query: { hello: () => 'world' } },
  });
  let server: http.Server;
  let wss: WebSocketServer;
  let transport: { dispose(): Promise<void> };
  let url: string;
  const sockets: WebSocket[] = [];
  /** What the transport logged, at warn or above. */
  let logged: Array<{ level: number; msg: string }> = [];

  beforeEach(async () => {
    logged = [];
    server = http.createServer();
    wss = new WebSocketServer({ server });
    transport = serveGraphqlWs(
      {
        schema,
        connectionInitWaitTimeout: 300,
        onConnect: (ctx) => {
          if (ctx.connectionParams?.fail) throw new Error('a hook failed');
          return true;
        },
      },
      wss,
      pino(
        { level: 'warn' },
        { write: (line: string) => void logged.push(JSON.parse(line) as { level: number; msg: string }) },
      ),
      { keepAliveMs: 100, sweepMs: 50 },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.terminate();
    await transport.dispose();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** A bare client: the frames it received, and how it was closed. */
  function connect(options: WebSocket.ClientOptions = {}) {
    const socket = new WebSocket(url, GRAPHQL_TRANSPORT_WS_PROTOCOL, options);
    sockets.push(socket);
    const state = { socket, frames: [] as unknown[], closedWith: undefined as number | undefined };
    socket.on('message', (data) => state.frames.push(JSON.parse(String(data))));
    socket.on('close', (code) => (state.closedWith = code));
    return state;
  }
  const opened = (socket: WebSocket) =>
    new Promise<void>((resolve, reject) => socket.once('open', resolve).once('error', reject));

  it('speaks graphql-transport-ws: ack, then a query’s next and complete', async () => {
    const client = connect();
    await opened(client.socket);
    client.socket.send(JSON.stringify({ type: 'connection_init' }));
    await eventually(() => expect(client.frames).to.have.length(1)); // graphql-ws refuses (4401) a subscribe before its ack
    client.socket.send(JSON.stringify({ id: 'q', type: 'subscribe', payload: { query: '{ hello }' } }));
    await eventually(() => expect(client.frames).to.have.length(3));
    expect(client.frames).to.deep.equal([
      { type: 'connection_ack' },
      { id: 'q', type: 'next', payload: { data: { hello: 'world' } } },
      { id: 'q', type: 'complete' },
    ]);
  });

  it('terminates a socket that does not answer pings, and keeps one that does', async () => {
    const silent = connect({ autoPong: false });
    const answering = connect();
    await Promise.all([opened(silent.socket), opened(answering.socket)]);
    for (const { socket } of [silent, answering]) socket.send(JSON.stringify({ type: 'connection_init' }));
    await eventually(() => expect(answering.frames).to.deep.equal([{ type: 'connection_ack' }]));
    await eventually(() => expect(silent.closedWith).to.equal(1006), { timeoutMs: 3000 });
    expect(answering.closedWith).to.equal(undefined);
    expect(answering.socket.readyState).to.equal(WebSocket.OPEN);
  });

  it('closes (4408) a socket that sends no connection_init in time, and keeps one that did', async () => {
    const [mute, greeting] = [connect(), connect()];
    await Promise.all([opened(mute.socket), opened(greeting.socket)]);
    greeting.socket.send(JSON.stringify({ type: 'connection_init' }));
    await eventually(() => expect(mute.closedWith).to.equal(4408), { timeoutMs: 3000 });
    expect(greeting.frames).to.deep.equal([{ type: 'connection_ack' }]);
    expect(greeting.closedWith).to.equal(undefined);
  });

  it('closes the socket 4500, graphql-ws’s internal error, with no details, when a hook fails', async () => {
    const client = connect();
    await opened(client.socket);
    let reason = '';
    client.socket.on('close', (_code, why) => (reason = String(why)));
    client.socket.send(JSON.stringify({ type: 'connection_init', payload: { fail: true } }));
    await eventually(() => expect(client.closedWith).to.equal(4500));
    expect(reason).to.equal('Internal server error');
  });

  it('closes the socket 4400 without logging an error when a client sends a server’s message (issue 21 item 5)', async () => {
    for (const message of [
      { type: 'connection_ack' },
      { id: 'x', type: 'next', payload: { data: {} } },
      { id: 'x', type: 'error', payload: [{ message: 'no' }] },
    ]) {
      const client = connect();
      await opened(client.socket);
      client.socket.send(JSON.stringify({ type: 'connection_init' }));
      await eventually(() => expect(client.frames).to.deep.equal([{ type: 'connection_ack' }]));
      client.socket.send(JSON.stringify(message));
      await eventually(() => expect(client.closedWith, message.type).to.equal(4400));
    }
    expect(logged.filter((line) => line.level >= 50)).to.deep.equal([]);
  });
});
