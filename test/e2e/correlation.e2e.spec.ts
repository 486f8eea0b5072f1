import { expect } from 'chai';
import { graphql } from '../support/graphqlClient';
import { issueTicket, startTestHerald } from '../support/herald';
import { storedEvents } from '../support/storedEvents';

// One request's correlation id is on its response and in the metadata of the events it appended
// (src/runtime/correlation.ts), whatever route and body parser served it.
describe('correlation ids', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let admin: string;

  before(async () => {
    test = await startTestHerald();
    admin = await issueTicket(test.url, 'correlation-auditor', 'admin');
  });
  after(() => test?.stop());

  /** The messages titled `title`, as the app's admin reads their events (GraphQL `events`). */
  async function eventsOf(title: string) {
    const messages = await storedEvents(test.url, admin, { stream: 'message-' });
    return messages.filter((e) => e.data.title === title);
  }

  it("takes the caller's X-Correlation-Id into the events it appends, and answers with it", async () => {
    const ticket = await issueTicket(test.url, 'correlated');
    const sends = ['one', 'two', 'three'].map(async (title, i) => {
      const response = await fetch(`${test.url}/koala/api/mas/messages`, {
        method: 'POST',
        headers: { 'x-correlation-id': `trace-${i}` },
        body: new URLSearchParams({ ticket, users: 'someone', title: `correlated ${title}`, content: 'c' }),
      });
      expect(response.headers.get('x-correlation-id')).to.equal(`trace-${i}`);
      expect(((await response.json()) as { status: number }).status).to.equal(0);
    });
    await Promise.all(sends);
    for (const [i, title] of ['one', 'two', 'three'].entries()) {
      const [event] = await eventsOf(`correlated ${title}`);
      expect(event?.metadata.correlationId, title).to.equal(`trace-${i}`);
    }
  });

  it('makes one when the caller sends none or an unusable one; GraphQL requests too', async () => {
    const ticket = await issueTicket(test.url, 'correlated-gql');
    const response = await fetch(`${test.url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${ticket}`,
        'x-correlation-id': 'bad id with spaces',
      },
      body: JSON.stringify({
        query: 'mutation { sendMessage(input: { to: ["someone"], title: "correlated gql", content: "c" }) { id } }',
      }),
    });
    const id = response.headers.get('x-correlation-id');
    expect(id).to.match(/^[0-9a-f-]{36}$/);
    const [event] = await eventsOf('correlated gql');
    expect(event?.metadata.correlationId).to.equal(id);
    const again = await graphql(test.url, ticket, '{ me { userId } }');
    expect(again.errors).to.equal(undefined);
  });
});
