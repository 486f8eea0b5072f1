import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import {
  buildSchema,
  GraphQLError,
  Kind,
  parse,
  visit,
  type DocumentNode,
  type OperationDefinitionNode,
} from 'graphql';
import {
  MAX_COMPLEXITY,
  MAX_MUTATION_FIELDS,
  MAX_NESTING,
  MAX_TOKENS,
  OperationChecks,
} from '../../api/graphql/operationChecks';
import {
  fragmentsInOrder,
  MAX_FRAGMENTS,
  MAX_SAME_RESPONSE_NAME,
  measureOperation,
  WRITE_COST,
} from '../../api/graphql/operationCost';
import { fragmentBomb } from '../support/fragmentBomb';

/** Issue 21 items 2, 3 and 5: GraphQL's cost is bounded before anything walks the document. */
describe('operation checks (issue 21)', () => {
  const schema = buildSchema(readFileSync('api/graphql/schema.graphql', 'utf8'));
  const checks = new OperationChecks(schema);
  const measure = (text: string, variables: Record<string, unknown> = {}) => {
    const document = parse(text);
    const fragments = fragmentsInOrder(document);
    if (fragments instanceof GraphQLError) throw fragments;
    const operation = document.definitions.find(
      (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION,
    )!;
    return measureOperation(schema, fragments, operation, variables);
  };
  const selectionsIn = (document: DocumentNode) => {
    let count = 0;
    visit(document, {
      Field: () => void count++,
      FragmentSpread: () => void count++,
      InlineFragment: () => void count++,
    });
    return count;
  };
  const errorsOf = (text: string, variables: Record<string, unknown> = {}) => {
    try {
      const document = checks.parse(text);
      return checks.check(document, { variables }).map((e) => ({ message: e.message, code: e.extensions.code }));
    } catch (error) {
      return [{ message: (error as GraphQLError).message, code: (error as GraphQLError).extensions.code }];
    }
  };

  it('measures a fragment bomb in one visit per selection, its cost multiplied through the spreads (item 2)', () => {
    for (const [levels, spreads] of [
      [25, 2],
      [30, 2],
      [25, 3],
      [30, 3],
      [50, 2],
    ] as const) {
      const text = fragmentBomb(levels, spreads);
      const { cost, depth, visited } = measure(text);
      expect(visited, `${levels}×${spreads}: visits`).to.equal(selectionsIn(parse(text)));
      expect(cost, `${levels}×${spreads}: cost`).to.equal(1 + 2 * spreads ** levels);
      expect(depth).to.equal(1);
    }
    // Linear: 50 levels take 104 visits; graphql-depth-limit and graphql-query-complexity walked 2^50 spreads.
    expect(measure(fragmentBomb(50, 2)).visited).to.equal(104);
  });

  it('refuses a spread of a fragment the document does not define before any walk (a bomb ending in one cost 0 and froze the merge check)', () => {
    expect(fragmentsInOrder(parse(fragmentBomb(40, 3, 'undefined')))).to.be.instanceOf(GraphQLError);
    expect(fragmentsInOrder(parse('{ me { ...Nope } }'))).to.be.instanceOf(GraphQLError);
    for (const [levels, spreads] of [
      [23, 2],
      [30, 3],
      [99, 2],
    ] as const) {
      expect(errorsOf(fragmentBomb(levels, spreads, 'undefined')), `${levels}×${spreads}`).to.deep.equal([
        { message: 'Unknown fragment "Nope".', code: 'BAD_REQUEST' },
      ]);
    }
  });

  it('measures every operation of a document, not only the one that runs: graphql validates them all', () => {
    const aliases = Array.from({ length: 400 }, () => `x: me { appId }`).join(' ');
    const document = checks.parse(`query A { me { appId } } query B { ${aliases} }`);
    const errors = checks.check(document, { operationName: 'A' });
    expect(errors.map((e) => e.extensions.code)).to.deep.equal(['QUERY_TOO_COMPLEX']);
    expect(errors[0]!.message).to.match(/"x" is selected 400 times/);
    const mutations = checks.parse(
      `query A { me { appId } } mutation B { ${Array.from({ length: 11 }, (_, i) => `c${i}: clearNotificationStats { site_broadcast }`).join(' ')} }`,
    );
    expect(checks.check(mutations, { operationName: 'A' }).map((e) => e.extensions.code)).to.deep.equal([
      'QUERY_TOO_COMPLEX',
    ]);
  });

  it('answers the bombs QUERY_TOO_COMPLEX at once (item 2)', () => {
    for (const [levels, spreads] of [
      [25, 2],
      [30, 2],
      [25, 3],
      [30, 3],
    ] as const) {
      const started = performance.now();
      expect(errorsOf(fragmentBomb(levels, spreads)).map((e) => e.code)).to.deep.equal(['QUERY_TOO_COMPLEX']);
      // Generous for a contended CPU (undisturbed it is about a millisecond): the old checks took 2–30 s at 25×2, minutes at 30×3.
      expect(performance.now() - started).to.be.below(1000);
    }
  });

  it('keeps the documented limits: depth 8, cost 5,000 with pages costing `first` × their selection', () => {
    // `me` is one level: 9 nested fields are 8 levels below the root.
    expect(measure('{ me { appId } }')).to.include({ cost: 2, depth: 1 });
    expect(measure('{ notifications(first: 100) { total } }').cost).to.equal(1 + 100 * 1);
    expect(measure('query($n: Int) { notifications(first: $n) { total } }', { n: 7 }).cost).to.equal(1 + 7 * 1);
    // The schema's default `first` (20) counts when none is given.
    expect(measure('{ notifications { total } }').cost).to.equal(1 + 20 * 1);
    // A `first` under 1 counts as 1: it cannot take cost away from the rest of the operation.
    expect(measure('{ a: notifications(first: -1000) { total } b: me { appId } }').cost).to.equal(2 + 2);
    // Introspection fields do not count toward the depth (GraphiQL's schema query is deep).
    expect(
      measure(
        '{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }',
      ).depth,
    ).to.equal(0);
    expect(
      errorsOf(
        '{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }',
      ),
    ).to.deep.equal([]);
    const fullPage = `notifications(first: 100) { total nodes { id seq type title content sender sentAt expiresAt props read acknowledged meta { realm seq sender stime } } pageInfo { endCursor hasNextPage } }`;
    expect(errorsOf(`{ ${fullPage} }`)).to.deep.equal([]);
    expect(errorsOf(`{ a: ${fullPage} b: ${fullPage} c: ${fullPage} }`)[0]).to.include({
      code: 'QUERY_TOO_COMPLEX',
      message: `query complexity ${3 * measure(`{ ${fullPage} }`).cost} is over the limit of ${MAX_COMPLEXITY}`,
    });
  });

  it('checks every request of a kept document with its own variables: the cost, their coercion, their text', () => {
    const page = `notifications(first: $n) { total nodes { id seq type title content sender sentAt expiresAt props read acknowledged meta { realm seq sender stime } } }`;
    const text = `query($n: Int!) { a: ${page} b: ${page} c: ${page} }`;
    expect(errorsOf(text, { n: 10 })).to.deep.equal([]);
    expect(checks.parse(text)).to.equal(checks.parse(text)); // the same document: its parse and static rules are kept
    expect(errorsOf(text, { n: 100 }).map((e) => e.code)).to.deep.equal(['QUERY_TOO_COMPLEX']);
    expect(errorsOf(text, { n: 'ten' }).map((e) => e.code)).to.deep.equal([undefined]); // coercion: BAD_USER_INPUT once masked
    expect(errorsOf(text, {}).map((e) => e.message)[0]).to.match(
      /^Variable "\$n" of required type "Int!" was not provided/,
    );
    expect(errorsOf('query($s: String) { me { appId } }', { s: 'a\ud800' })).to.deep.equal([
      { message: '$s: must be Unicode text (no lone surrogates such as \\ud800)', code: 'BAD_USER_INPUT' },
    ]);
    expect(errorsOf(text, { n: 10 })).to.deep.equal([]);
  });

  it('refuses an operation deeper than 8 levels, through fragments too', () => {
    // The schema has no field 9 levels deep: the limit is measured before validation, on any field names.
    const deep = (levels: number) => `{ me ${'{ a '.repeat(levels)}${'}'.repeat(levels)} }`;
    expect(measure(deep(8)).depth).to.equal(8);
    expect(errorsOf(deep(9))).to.deep.equal([
      { message: 'the operation is 9 levels deep, over the limit of 8', code: 'QUERY_TOO_COMPLEX' },
    ]);
    expect(errorsOf(`{ me { ...D } } fragment D on Viewer ${'{ a '.repeat(9)}${'}'.repeat(9)}`)[0]?.code).to.equal(
      'QUERY_TOO_COMPLEX',
    );
  });

  it('refuses fragment cycles, also through a chain of 100 fragments, without recursing', () => {
    expect(errorsOf('{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }')).to.deep.equal([
      { message: 'Cannot spread fragment "A" within itself via "B".', code: 'BAD_REQUEST' },
    ]);
    expect(errorsOf('{ ...A } fragment A on Query { ...A }')).to.deep.equal([
      { message: 'Cannot spread fragment "A" within itself.', code: 'BAD_REQUEST' },
    ]);
    const chain = Array.from({ length: 100 }, (_, i) => `fragment C${i} on Query { ...C${(i + 1) % 100} }`).join(' ');
    expect(fragmentsInOrder(parse(`{ ...C0 } ${chain}`))).to.be.instanceOf(GraphQLError);
    const acyclic = Array.from(
      { length: 100 },
      (_, i) => `fragment C${i} on Query { ${i === 99 ? 'me { appId }' : `...C${i + 1}`} }`,
    ).join(' ');
    expect(measure(`{ ...C0 } ${acyclic}`)).to.include({ cost: 2, depth: 1 });
  });

  it('refuses a 5,000-deep selection and an over-long document as QUERY_TOO_COMPLEX, not a stack overflow (item 5)', () => {
    const deep = `{ me ${'{ a '.repeat(5000)}${'}'.repeat(5000)} }`;
    expect(errorsOf(deep)).to.deep.equal([
      { message: `the document nests more than ${MAX_NESTING} brackets deep`, code: 'QUERY_TOO_COMPLEX' },
    ]);
    const deepValue = `{ notifications(type: ${'['.repeat(5000)}${']'.repeat(5000)}) { total } }`;
    expect(errorsOf(deepValue)[0]?.code).to.equal('QUERY_TOO_COMPLEX');
    const long = `{ ${Array.from({ length: 2000 }, (_, i) => `a${i}: me { appId }`).join(' ')} }`;
    expect(errorsOf(long)).to.deep.equal([
      { message: `the document has more than ${MAX_TOKENS} tokens`, code: 'QUERY_TOO_COMPLEX' },
    ]);
    // A syntax error stays the parser's.
    expect(errorsOf('{ me { appId }')[0]?.message).to.match(/^Syntax Error/);
  });

  it('caps root mutation fields, through fragments, and counts what each mutation appends (item 3)', () => {
    const clears = (n: number) =>
      `mutation { ${Array.from({ length: n }, (_, i) => `c${i}: clearNotificationStats { site_broadcast }`).join(' ')} }`;
    expect(errorsOf(clears(MAX_MUTATION_FIELDS))).to.deep.equal([]);
    expect(errorsOf(clears(MAX_MUTATION_FIELDS + 1))).to.deep.equal([
      {
        message: `the operation has 11 mutation fields, over the limit of ${MAX_MUTATION_FIELDS} per request`,
        code: 'QUERY_TOO_COMPLEX',
      },
    ]);
    const viaFragments =
      'mutation { ...M ...M } fragment M on Mutation { ...N ...N ...N } fragment N on Mutation { report(message: "x") }';
    expect(measure(viaFragments).rootFields).to.equal(6);
    expect(
      errorsOf(
        `mutation { ...M ...M } fragment M on Mutation { ...N ...N } fragment N on Mutation { a: report(message: "x") b: report(message: "y") c: report(message: "z") }`,
      )[0]?.code,
    ).to.equal('QUERY_TOO_COMPLEX');
    expect(measure('mutation { markRead(seq: "1") }').cost).to.equal(1 + WRITE_COST);
    const ids = Array.from({ length: 200 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    expect(measure('mutation($ids: [ID!]!) { acknowledge(ids: $ids) }', { ids }).cost).to.equal(1 + 200 * WRITE_COST);
    // Two full acknowledgements fit; three append too much for one request.
    expect(
      errorsOf('mutation($ids: [ID!]!) { a: acknowledge(ids: $ids) b: acknowledge(ids: $ids) }', { ids }),
    ).to.deep.equal([]);
    expect(
      errorsOf(
        'mutation($ids: [ID!]!) { a: acknowledge(ids: $ids) b: acknowledge(ids: $ids) c: acknowledge(ids: $ids) }',
        { ids },
      )[0]?.code,
    ).to.equal('QUERY_TOO_COMPLEX');
  });

  it('refuses what would make the specified rules quadratic: one name selected 11 times in a merged selection, 101 fragments', () => {
    const aliases = (n: number) => `{ me { ${'a: appId '.repeat(n)} } }`;
    expect(errorsOf(aliases(MAX_SAME_RESPONSE_NAME))).to.deep.equal([]);
    expect(errorsOf(aliases(MAX_SAME_RESPONSE_NAME + 1))).to.deep.equal([
      {
        message: `"a" is selected 11 times in one selection, over the limit of ${MAX_SAME_RESPONSE_NAME}`,
        code: 'QUERY_TOO_COMPLEX',
      },
    ]);
    // Merged as graphql merges them: through inline fragments, fragment spreads, and same-named parents.
    expect(errorsOf(`{ me { appId ${'... { appId } '.repeat(MAX_SAME_RESPONSE_NAME)} } }`)[0]?.code).to.equal(
      'QUERY_TOO_COMPLEX',
    );
    expect(errorsOf(`{ me { ...V ...V ...V ...V } } fragment V on Viewer { appId appId appId }`)[0]?.message).to.equal(
      '"appId" is selected 12 times in one selection, over the limit of 10',
    );
    expect(errorsOf(`{ ${'n: notifications(first: 1) { nodes { id id id } } '.repeat(4)} }`)[0]?.message).to.equal(
      '"id" is selected 12 times in one selection, over the limit of 10',
    );
    expect(errorsOf(`{ ${'n: notifications(first: 1) { nodes { id id } } '.repeat(5)} }`)).to.deep.equal([]);
    const fragments = (n: number) =>
      `{ ${Array.from({ length: n }, (_, i) => `...F${i}`).join(' ')} } ${Array.from({ length: n }, (_, i) => `fragment F${i} on Query { m${i}: me { appId } }`).join(' ')}`;
    expect(errorsOf(fragments(MAX_FRAGMENTS))).to.deep.equal([]);
    expect(errorsOf(fragments(MAX_FRAGMENTS + 1))).to.deep.equal([
      { message: `the document defines more than ${MAX_FRAGMENTS} fragments`, code: 'QUERY_TOO_COMPLEX' },
    ]);
    // What took graphql's OverlappingFieldsCanBeMerged a quarter of a second each, within the other limits:
    // refused by herald's own checks (graphql's rule would answer "Validation aborted." or nothing).
    const rep = (n: number, text: string) => Array(n).fill(text).join(' ');
    const slow = {
      aliases: `{ ${rep(1240, 'me { appId }')} }`,
      fragments: `{ ${Array.from({ length: 25 }, (_, i) => `...F${i}`).join(' ')} } ${Array.from({ length: 25 }, (_, i) => `fragment F${i} on Query { ${rep(10, 'me { appId }')} }`).join(' ')}`,
      nested: `{ ${rep(6, `n: notifications(first: 1) { ${rep(6, `nodes { ${rep(6, `meta { ${rep(6, 'realm')} }`)} }`)} }`)} }`,
      'inline fragments': `{ me { ${rep(1200, '... { appId }')} } }`,
    };
    for (const [what, text] of Object.entries(slow)) {
      expect(errorsOf(text)[0]?.message, what).to.match(
        /is selected \d+ times in one selection, over the limit of 10$/,
      );
    }
  });
});
