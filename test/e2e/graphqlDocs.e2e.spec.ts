import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse, validate } from 'graphql';
import { buildSchema } from '../../api/graphql/graphqlServer';
import { systemClock } from '../../src/clock';
import { graphql } from '../support/graphqlClient';
import { postForm, startTestHerald } from '../support/herald';

// docs/api/graphql.md stays true: each of its `graphql` blocks is valid against the served schema, and
// its queries and mutations run without errors.
describe('docs/api/graphql.md examples', function () {
  this.timeout(60_000);
  const doc = readFileSync(path.resolve(__dirname, '../../docs/api/graphql.md'), 'utf8');
  const blocks = [...doc.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]!);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let ticket: string;

  before(async () => {
    test = await startTestHerald();
    ticket = (await postForm(`${test.url}/koala/api/mas/tickets`, { app_key: 'camel', secret_key: 'EERWERRRRE', user_id: 'jiangxiaoyu' })).body.result as string;
  });
  after(() => test?.stop());

  it('has examples', () => {
    expect(blocks.length).to.be.at.least(5);
  });

  it('every example is valid against the schema', () => {
    const schema = buildSchema({
      messaging: test.herald.messaging,
      bus: test.herald.bus,
      clock: systemClock,
      datahub: test.herald.datahub,
    });
    for (const block of blocks) expect(validate(schema, parse(block)).map((e) => e.message), block).to.deep.equal([]);
  });

  it('the queries and mutations run', async () => {
    for (const block of blocks.filter((b) => !/^\s*subscription/.test(b))) {
      const variables = block.includes('$ids') ? { ids: [] as string[] } : undefined;
      const result = await graphql(test.url, ticket, block, variables);
      // acknowledge([]) is refused as bad input by design; everything else must succeed
      if (variables) expect(result.errors?.[0]?.extensions?.code, block).to.equal('BAD_USER_INPUT');
      else expect(result.errors, block).to.equal(undefined);
    }
  });
});
