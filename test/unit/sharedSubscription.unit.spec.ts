import { makeExecutableSchema } from '@graphql-tools/schema';
import { expect } from 'chai';
import { GraphQLError, parse, subscribe, type DocumentNode, type ExecutionResult } from 'graphql';
import { MessageType, stringifyMessage } from 'graphql-ws';
import type { WebSocket } from 'ws';
import { SOCKET_HIGH_WATER_BYTES } from '../../api/graphql/graphqlWsTransport';
import { SharedSubscriptions } from '../../api/graphql/sharedSubscription';

/**
 * Test double of a `ws` socket: what SharedSubscriptions uses of one (readyState, bufferedAmount, send
 * with a callback). Frames are kept as text; a send's callback runs when the test says the write is done.
 */
class RecordingSocket {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  readonly frames: string[] = [];
  readonly unwritten: Array<() => void> = [];

  send(data: Buffer | string, options: { binary: boolean }, done?: (error?: Error) => void): void {
    expect(options.binary, 'a text frame').to.equal(false);
    this.frames.push(String(data));
    if (done) this.unwritten.push(() => done());
  }

  get asWebSocket(): WebSocket {
    return this as unknown as WebSocket;
  }
}

const poll = async (condition: () => boolean, what: string) => {
  const deadline = Date.now() + 2000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
};

/** A pushed payload is executed and serialized once per distinct operation, whatever the number of subscribers. */
describe('shared subscriptions', () => {
  let pushed: unknown[];
  let resolved: number;
  let finished: number;
  const schema = makeExecutableSchema({
    typeDefs:
      'type Query { ok: Boolean } type Message { title: String! upper: String! broken: String } type Subscription { messages: Message! }',
    resolvers: {
      Subscription: {
        messages: {
          subscribe: async function* () {
            try {
              yield* pushed;
            } finally {
              finished++;
            }
          },
          resolve: (payload: unknown) => {
            resolved++;
            return payload;
          },
        },
      },
      Message: {
        upper: (m: { title: string }) => m.title.toUpperCase(),
        broken: () => {
          throw new Error('secret detail');
        },
      },
    },
  });
  const masked = (error: GraphQLError) =>
    new GraphQLError('internal error', { path: error.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } });

  beforeEach(() => {
    pushed = [{ title: 'one' }, { title: 'two' }];
    resolved = 0;
    finished = 0;
  });

  /** Runs the operation for one subscriber to its end, as graphql-ws does: iterates what `subscribe` returns. */
  async function run(
    shared: SharedSubscriptions,
    document: DocumentNode,
    socket: RecordingSocket,
    id: string,
  ): Promise<void> {
    const iterator = await shared.subscribe(shared.attach({ schema, document }, { socket: socket.asWebSocket, id }));
    for await (const result of iterator as AsyncIterable<never>)
      expect.fail(`graphql-ws is handed no result, got ${JSON.stringify(result)}`);
  }

  /** What graphql-ws itself would write for graphql's own results, one subscriber. */
  async function graphqlWsFrames(document: DocumentNode, id: string): Promise<string[]> {
    const frames: string[] = [];
    for await (const result of (await subscribe({ schema, document })) as AsyncIterable<ExecutionResult>) {
      frames.push(stringifyMessage({ id, type: MessageType.Next, payload: result }));
    }
    return frames;
  }

  it('three subscribers of one operation: each payload executed and serialized once; each socket gets graphql-ws’s frame with its own id', async () => {
    const document = parse('subscription { messages { title upper } }');
    const expected = await Promise.all(['a', 'b', 'c'].map((id) => graphqlWsFrames(document, id)));
    expect(resolved, 'graphql itself resolves per subscriber').to.equal(6);

    resolved = 0;
    const shared = new SharedSubscriptions(masked);
    const sockets = [new RecordingSocket(), new RecordingSocket(), new RecordingSocket()];
    const stringify = JSON.stringify;
    let serialized = 0;
    JSON.stringify = ((...args: Parameters<typeof stringify>) => {
      if (typeof args[0] === 'object' && args[0] !== null && 'data' in args[0]) serialized++;
      return stringify(...args);
    }) as typeof stringify;
    try {
      await Promise.all(sockets.map((socket, i) => run(shared, document, socket, ['a', 'b', 'c'][i]!)));
    } finally {
      JSON.stringify = stringify;
    }
    expect(sockets.map((s) => s.frames)).to.deep.equal(expected);
    expect(resolved, 'executions').to.equal(2);
    expect(serialized, 'results serialized').to.equal(2);
  });

  it('executes different selections apart', async () => {
    const shared = new SharedSubscriptions(masked);
    const [titles, uppers] = [new RecordingSocket(), new RecordingSocket()];
    await run(shared, parse('subscription { messages { title } }'), titles, '1');
    await run(shared, parse('subscription { messages { upper } }'), uppers, '1');
    expect(titles.frames.map((f) => JSON.parse(f).payload)).to.deep.equal([
      { data: { messages: { title: 'one' } } },
      { data: { messages: { title: 'two' } } },
    ]);
    expect(uppers.frames.map((f) => JSON.parse(f).payload)).to.deep.equal([
      { data: { messages: { upper: 'ONE' } } },
      { data: { messages: { upper: 'TWO' } } },
    ]);
    expect(resolved).to.equal(4);
  });

  it('formats the errors of a result (data first, as graphql-ws writes it)', async () => {
    pushed = [{ title: 'one' }];
    const socket = new RecordingSocket();
    await run(new SharedSubscriptions(masked), parse('subscription { messages { title broken } }'), socket, '7');
    expect(socket.frames).to.have.length(1);
    expect(socket.frames[0]).not.to.contain('secret detail');
    expect(JSON.parse(socket.frames[0]!)).to.deep.equal({
      id: '7',
      type: 'next',
      payload: {
        data: { messages: { title: 'one', broken: null } },
        errors: [
          { message: 'internal error', path: ['messages', 'broken'], extensions: { code: 'INTERNAL_SERVER_ERROR' } },
        ],
      },
    });
  });

  it('return() ends the source at once, and nothing more is written', async () => {
    let release: (() => void) | undefined;
    const shared = new SharedSubscriptions(masked);
    const socket = new RecordingSocket();
    const waiting = makeExecutableSchema({
      typeDefs: 'type Query { ok: Boolean } type Subscription { ticks: Int! }',
      resolvers: {
        Subscription: {
          ticks: {
            subscribe: () => {
              let n = 0;
              return {
                [Symbol.asyncIterator]() {
                  return this;
                },
                next: () =>
                  n === 0
                    ? Promise.resolve({ done: false, value: { ticks: ++n } })
                    : new Promise((resolve) => (release = () => resolve({ done: true, value: undefined }))),
                return: async () => {
                  finished++;
                  release?.();
                  return { done: true, value: undefined };
                },
              };
            },
          },
        },
      },
    });
    const iterator = (await shared.subscribe(
      shared.attach(
        { schema: waiting, document: parse('subscription { ticks }') },
        { socket: socket.asWebSocket, id: 'x' },
      ),
    )) as AsyncIterableIterator<never>;
    const ended = iterator.next();
    await poll(() => socket.frames.length === 1, 'the first frame');
    await iterator.return!();
    expect(finished).to.equal(1);
    expect(await ended).to.deep.equal({ done: true, value: undefined });
    expect(socket.frames).to.have.length(1);
  });

  it('ends quietly when its source fails after return(): nothing for graphql-ws to send the client', async () => {
    let fail: ((error: Error) => void) | undefined;
    const failing = makeExecutableSchema({
      typeDefs: 'type Query { ok: Boolean } type Subscription { ticks: Int! }',
      resolvers: {
        Subscription: {
          ticks: {
            subscribe: () => ({
              [Symbol.asyncIterator]() {
                return this;
              },
              next: () => new Promise((_, reject) => (fail = reject)),
              return: async () => ({ done: true, value: undefined }),
            }),
          },
        },
      },
    });
    const shared = new SharedSubscriptions(masked);
    const socket = new RecordingSocket();
    const iterator = (await shared.subscribe(
      shared.attach(
        { schema: failing, document: parse('subscription { ticks }') },
        { socket: socket.asWebSocket, id: 'x' },
      ),
    )) as AsyncIterableIterator<never>;
    const ended = iterator.next();
    await poll(() => fail !== undefined, 'the source to be asked');
    await iterator.return!();
    fail!(new Error('the database is gone'));
    expect(await ended).to.deep.equal({ done: true, value: undefined });
    expect(socket.frames).to.deep.equal([]);
  });

  it('waits for a backed-up socket’s write before the next frame, and writes nothing on a closed one', async () => {
    const shared = new SharedSubscriptions(masked);
    const socket = new RecordingSocket();
    socket.bufferedAmount = SOCKET_HIGH_WATER_BYTES;
    const running = run(shared, parse('subscription { messages { title } }'), socket, 'slow');
    await poll(() => socket.frames.length === 1, 'the first frame');
    await new Promise((resolve) => setImmediate(resolve));
    expect(socket.frames, 'the second waits for the first write').to.have.length(1);
    socket.unwritten.shift()!();
    await poll(() => socket.frames.length === 2, 'the second frame');
    socket.unwritten.shift()!();
    await running;

    const closed = new RecordingSocket();
    closed.readyState = 3;
    await run(shared, parse('subscription { messages { title } }'), closed, 'gone');
    expect(closed.frames).to.deep.equal([]);
  });
});
