import { makeExecutableSchema } from '@graphql-tools/schema';
import { expect } from 'chai';
import { parse, subscribe, type ExecutionResult } from 'graphql';
import { sharedSubscribe } from '../../api/graphql/sharedSubscription';

/** A pushed message is executed once per distinct operation, whatever the number of subscribers. */
describe('shared subscription execution', () => {
  const pushed = [{ title: 'one' }, { title: 'two' }];
  let resolved = 0;
  const schema = makeExecutableSchema({
    typeDefs: 'type Query { ok: Boolean } type Message { title: String! upper: String! } type Subscription { messages: Message! }',
    resolvers: {
      Subscription: {
        messages: {
          subscribe: async function* () {
            yield* pushed;
          },
          resolve: (payload: unknown) => {
            resolved++;
            return payload;
          },
        },
      },
      Message: { upper: (m: { title: string }) => m.title.toUpperCase() },
    },
  });

  async function collect(results: AsyncIterable<ExecutionResult> | ExecutionResult): Promise<unknown[]> {
    const out: unknown[] = [];
    for await (const result of results as AsyncIterable<ExecutionResult>) out.push(result.data);
    return out;
  }

  beforeEach(() => {
    resolved = 0;
  });

  it('three subscribers of the same operation: each message resolved once, same answers as graphql', async () => {
    const document = parse('subscription { messages { title upper } }');
    const expected = await collect(await subscribe({ schema, document }));
    expect(resolved, 'graphql itself resolves per subscriber').to.equal(2);

    resolved = 0;
    const shared = sharedSubscribe();
    const answers = await Promise.all([1, 2, 3].map(async () => collect(await shared({ schema, document }))));
    expect(answers).to.deep.equal([expected, expected, expected]);
    expect(resolved).to.equal(2);
  });

  it('different selections are executed apart', async () => {
    const shared = sharedSubscribe();
    const titles = await collect(await shared({ schema, document: parse('subscription { messages { title } }') }));
    const uppers = await collect(await shared({ schema, document: parse('subscription { messages { upper } }') }));
    expect(titles).to.deep.equal([{ messages: { title: 'one' } }, { messages: { title: 'two' } }]);
    expect(uppers).to.deep.equal([{ messages: { upper: 'ONE' } }, { messages: { upper: 'TWO' } }]);
    expect(resolved).to.equal(4);
  });
});
