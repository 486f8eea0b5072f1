import { expect } from 'chai';
import { copyRows, type CopyValue } from '../../src/postgres/copyRows';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/** COPY's text format written by hand: every value must come back as it went in. */
describe('copyRows (src/postgres/copyRows.ts)', () => {
  let testDatabase: TestDatabase;
  let pool: ReturnType<TestDatabase['open']>['pool'];
  before(async () => {
    testDatabase = await createTestDatabase();
    pool = testDatabase.open().pool;
    await pool.query(
      'CREATE TABLE copied (k int, t text, j jsonb, a text[], b boolean, n bigint, at timestamptz, u uuid)',
    );
  });
  after(() => testDatabase?.drop());

  const awkward = [
    'tab\there',
    'new\nline',
    'cr\rhere',
    'back\\slash',
    '\\N',
    'NULL',
    'quote "q"',
    'comma,brace{}',
    ' ',
    '',
    'é 漢字 😀',
  ];

  it('round-trips text, arrays, JSON, booleans, numbers, times, uuids and NULLs, whatever their characters', async () => {
    const client = await pool.connect();
    try {
      await copyRows(
        client,
        'copied',
        ['k', 't', 'j', 'a', 'b', 'n', 'at', 'u'],
        [
          ...awkward.map((text, k) => [
            BigInt(k),
            text,
            JSON.stringify({ text }),
            [text, 'x'],
            k % 2 === 0,
            2n ** 62n,
            '2026-12-07T10:00:00.123Z',
            '00000000-0000-4000-8000-000000000001',
          ]),
          [99n, null, null, null, null, null, null, null],
          [100n, 'empty array', null, [], true, 0n, null, null],
        ],
      );
      await copyRows(client, 'copied', ['k'], []);
    } finally {
      client.release();
    }
    const { rows } = await pool.query<Record<string, unknown>>('SELECT * FROM copied ORDER BY k');
    expect(rows).to.have.length(awkward.length + 2);
    awkward.forEach((text, k) => {
      expect(rows[k]).to.deep.include({
        k,
        t: text,
        j: { text },
        a: [text, 'x'],
        b: k % 2 === 0,
        n: String(2n ** 62n),
      });
      expect((rows[k]!.at as Date).toISOString()).to.equal('2026-12-07T10:00:00.123Z');
    });
    expect(rows[awkward.length]).to.deep.equal({
      k: 99,
      t: null,
      j: null,
      a: null,
      b: null,
      n: null,
      at: null,
      u: null,
    });
    expect(rows[awkward.length + 1]).to.deep.include({ k: 100, a: [] });
  });

  it('takes no JavaScript number (String(1e21) is 1e+21, which an integer column refuses; NaN): bigints', () => {
    // @ts-expect-error A number is not a CopyValue (checked by tsc --noEmit: unused, this directive fails it).
    const numbers: CopyValue[] = [1e21, NaN];
    expect(numbers.filter((n) => typeof n === 'number')).to.have.length(2);
  });

  it("fails with PostgreSQL's error on a value it refuses, and copies none of the rows", async () => {
    const client = await pool.connect();
    try {
      const copying = copyRows(
        client,
        'copied',
        ['k', 't'],
        [
          [200n, 'fine'],
          [201n, 'nul \u0000 here'],
        ],
      );
      const error = await copying.then(
        () => undefined,
        (e: unknown) => e as { code?: string },
      );
      expect(error?.code).to.equal('22021');
    } finally {
      client.release();
    }
    const { rows } = await pool.query('SELECT k FROM copied WHERE k >= 200');
    expect(rows).to.deep.equal([]);
  });
});
