import { expect } from 'chai';
import fc from 'fast-check';
import { deliveryStreamName } from '../../domain/device/delivery';
import { inboxStreamName } from '../../domain/inbox/inbox';
import { streamNameOf } from '../../domain/streamName';

/** Issue 21 item 5: a stream name built from several ids is unambiguous for every app and user id. */
describe('stream names of several ids', () => {
  it('apps camel and camel.x no longer share a stream (user x.bob of one, bob of the other)', () => {
    expect(inboxStreamName('camel', 'x.bob')).to.equal('inbox-camel.x.bob');
    expect(inboxStreamName('camel.x', 'bob')).to.equal('inbox-camel%2Ex.bob');
  });

  it('keeps the name of every stream whose leading ids hold no . or %', () => {
    expect(inboxStreamName('camel', 'bob')).to.equal('inbox-camel.bob');
    expect(inboxStreamName('camel', 'zhang3@example.com')).to.equal('inbox-camel.zhang3@example.com');
    expect(inboxStreamName('camel', '50%.off')).to.equal('inbox-camel.50%.off');
    expect(deliveryStreamName('7d3c2a5e-0f1b-4c8e-9a6d-2b4f8e1c3a70', 'app-callback')).to.equal(
      'delivery-7d3c2a5e-0f1b-4c8e-9a6d-2b4f8e1c3a70.app-callback',
    );
  });

  it('encodes the escape character too, so an encoded id is not another id', () => {
    expect(streamNameOf('inbox', 'a%2Eb', 'c')).to.equal('inbox-a%252Eb.c');
    expect(streamNameOf('inbox', 'a.b', 'c')).to.equal('inbox-a%2Eb.c');
  });

  it('property: distinct (app, user) pairs, and distinct lists of as many ids, give distinct names', () => {
    // Ids from a small alphabet heavy in separators and escapes, so near-collisions are generated often.
    const id = fc.string({ unit: fc.constantFrom('.', '%', '2', 'E', 'e', '5', 'a'), maxLength: 6 });
    const anyId = fc.oneof(id, fc.string({ maxLength: 8 }));
    fc.assert(
      fc.property(fc.tuple(anyId, anyId), fc.tuple(anyId, anyId), ([app1, user1], [app2, user2]) => {
        fc.pre(app1 !== app2 || user1 !== user2);
        expect(inboxStreamName(app1, user1)).not.to.equal(inboxStreamName(app2, user2));
      }),
      { numRuns: 20_000 },
    );
    // An aggregate's streams all have the same number of ids.
    const twoLists = fc
      .integer({ min: 1, max: 4 })
      .chain((n) =>
        fc.tuple(fc.array(id, { minLength: n, maxLength: n }), fc.array(id, { minLength: n, maxLength: n })),
      );
    fc.assert(
      fc.property(twoLists, ([a, b]) => {
        fc.pre(JSON.stringify(a) !== JSON.stringify(b));
        expect(streamNameOf('s', ...(a as [string, ...string[]]))).not.to.equal(
          streamNameOf('s', ...(b as [string, ...string[]])),
        );
      }),
      { numRuns: 20_000 },
    );
  });
});
