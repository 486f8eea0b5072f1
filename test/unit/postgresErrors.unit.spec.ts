import { expect } from 'chai';
import { GraphQLError } from 'graphql';
import { EventStoreUnavailableError } from '../../src/eventStore/eventStore';
import { classifyFailure, isTemporary, type FailureKind } from '../../src/postgres/errors';
import { UndecodableEventError } from '../../src/projection/eventDecoder';
import { isEventsFault } from '../../src/projection/projectionRunner';

/** An error as node-postgres raises it: a message and the server's SQLSTATE (or Node's socket code). */
const failure = (code: string | undefined, message = 'failed') =>
  Object.assign(new Error(message), code === undefined ? {} : { code });

// Issue 21, item 8: a transient database error must not park an event; only the event's own data does.
describe('database failures are classified by SQLSTATE class', () => {
  const table: ReadonlyArray<[string, string | undefined, string, FailureKind]> = [
    ['connection exception', '08006', 'connection failure', 'unavailable'],
    ['connection refused by the server', '08004', 'rejected', 'unavailable'],
    ['too many connections', '53300', 'sorry, too many clients already', 'unavailable'],
    ['out of memory', '53200', 'out of memory', 'unavailable'],
    ['disk full', '53100', 'could not extend file', 'unavailable'],
    ['admin shutdown', '57P01', 'terminating connection due to administrator command', 'unavailable'],
    ['crash shutdown', '57P02', 'terminating connection because of crash of another server process', 'unavailable'],
    ['cannot connect now', '57P03', 'the database system is starting up', 'unavailable'],
    ['Node: connection refused', 'ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432', 'unavailable'],
    ['Node: connection reset', 'ECONNRESET', 'read ECONNRESET', 'unavailable'],
    ['Node: timed out', 'ETIMEDOUT', 'connect ETIMEDOUT', 'unavailable'],
    ['node-postgres: socket died mid-query', undefined, 'Connection terminated unexpectedly', 'unavailable'],
    [
      'node-postgres: pool found no connection in time',
      undefined,
      'timeout exceeded when trying to connect',
      'unavailable',
    ],
    ['statement_timeout', '57014', 'canceling statement due to statement timeout', 'transient'],
    ['lock_timeout', '55P03', 'canceling statement due to lock timeout', 'transient'],
    ['serialization failure', '40001', 'could not serialize access', 'transient'],
    ['deadlock', '40P01', 'deadlock detected', 'transient'],
    ['idle in transaction timeout', '25P03', 'terminating connection due to idle-in-transaction timeout', 'transient'],
    ['invalid text representation', '22P02', 'invalid input syntax for type integer', 'data'],
    ['untranslatable character', '22P05', 'unsupported Unicode escape sequence', 'data'],
    ['numeric out of range', '22003', 'value out of range', 'data'],
    ['unique violation', '23505', 'duplicate key value violates unique constraint', 'data'],
    ['check violation', '23514', 'new row violates check constraint', 'data'],
    ['undefined table (a bug)', '42P01', 'relation "x" does not exist', 'other'],
    ['internal error', 'XX000', 'cache lookup failed', 'other'],
    ['a JavaScript error', undefined, "Cannot read properties of undefined (reading 'x')", 'other'],
  ];
  for (const [what, code, message, kind] of table) {
    it(`${what} (${code ?? 'no code'}) is ${kind}`, () => {
      expect(classifyFailure(failure(code, message))).to.equal(kind);
      expect(isTemporary(failure(code, message))).to.equal(kind === 'unavailable' || kind === 'transient');
    });
  }

  it('an error is what it wraps: the event store unavailable, a GraphQL error, a cause', () => {
    expect(classifyFailure(new EventStoreUnavailableError('down'))).to.equal('unavailable');
    expect(classifyFailure(new GraphQLError('x', { originalError: failure('57P01') }))).to.equal('unavailable');
    expect(classifyFailure(new Error('wrapped', { cause: failure('40P01') }))).to.equal('transient');
    expect(classifyFailure('not an error')).to.equal('other');
  });

  it("only the event's own data parks it: a codec refusal or classes 22 and 23", () => {
    expect(isEventsFault(new UndecodableEventError('MessageSent at position 1 does not match its codec'))).to.equal(
      true,
    );
    expect(isEventsFault(failure('22P02'))).to.equal(true);
    expect(isEventsFault(failure('23505'))).to.equal(true);
    for (const code of ['57014', '40P01', '40001', '57P01', '53300', '08006', 'ECONNREFUSED', '42P01', undefined]) {
      expect(isEventsFault(failure(code)), String(code)).to.equal(false);
    }
  });
});
