import { expect } from 'chai';
import { EventStoreDbStandIn } from '../support/eventStoreDbStandIn';
import { eventually } from '../support/eventually';
import { graphql } from '../support/graphqlClient';
import { postForm, startTestHerald } from '../support/herald';

// herald with EVENTSTORE_URL set: events in EventStoreDB (here the gRPC stand-in, a test double), read
// models in PostgreSQL. The Koala flow works the same; seqs are EventStoreDB commit positions.
describe('herald on the EventStoreDB adapter (gRPC stand-in)', function () {
  this.timeout(60_000);
  let standIn: EventStoreDbStandIn;
  let test: Awaited<ReturnType<typeof startTestHerald>>;

  before(async () => {
    standIn = await EventStoreDbStandIn.start({ batchAppend: true });
    test = await startTestHerald({ eventStoreUrl: standIn.connectionString });
  });
  after(async () => {
    await test?.stop();
    await standIn?.stop();
  });

  it('registers apps, issues tickets, sends, lists and acknowledges', async () => {
    expect(test.herald.infrastructure.store.kind).to.equal('eventstoredb');
    const ticket = async (userId: string) => (await postForm(`${test.url}/koala/api/mas/tickets`, { app_key: 'camel', secret_key: 'EERWERRRRE', user_id: userId })).body;
    const sender = await ticket('zhangbin');
    expect(sender.status).to.equal(0);
    const receiver = (await ticket('jiangxiaoyu')).result as string;
    const sent = await postForm(`${test.url}/koala/api/mas/messages`, { ticket: sender.result as string, users: 'jiangxiaoyu', title: 'via esdb', content: 'c' });
    expect(sent.body.status).to.equal(0);

    const inbox = await eventually(async () => {
      const page = await graphql<{ notifications: { nodes: Array<{ id: string; seq: string; title: string }> } }>(test.url, receiver, '{ notifications { nodes { id seq title } } }');
      expect(page.data!.notifications.nodes).to.have.length(1);
      return page.data!.notifications.nodes;
    });
    expect(inbox[0]!.title).to.equal('via esdb');
    const acked = await postForm(`${test.url}/koala/api/mas/messages/ack`, { ticket: receiver, sids: inbox[0]!.seq });
    expect(acked.body).to.include({ status: 0, result: 1 });
    const ready = await test.herald.readiness();
    expect(ready.ready).to.equal(true);
  });

  it('refuses a NUL title before EventStoreDB stores anything, and the read side keeps going', async () => {
    const ticket = (await postForm(`${test.url}/koala/api/mas/tickets`, { app_key: 'camel', secret_key: 'EERWERRRRE', user_id: 'nul-sender' })).body.result as string;
    const receiver = (await postForm(`${test.url}/koala/api/mas/tickets`, { app_key: 'camel', secret_key: 'EERWERRRRE', user_id: 'nul-receiver' })).body.result as string;
    const head = await test.herald.infrastructure.store.headPosition();
    const refused = await postForm(`${test.url}/koala/api/mas/messages`, { ticket, users: 'nul-receiver', title: 'a\u0000b', content: 'c' });
    expect(refused.body).to.include({ status: 1001 });
    const viaGraphql = await graphql(test.url, ticket, 'mutation { sendMessage(input: { to: ["nul-receiver"], title: "t", content: "c\\u0000" }) { id } }');
    expect(viaGraphql.errors?.[0]?.extensions?.code).to.equal('BAD_USER_INPUT');
    expect(await test.herald.infrastructure.store.headPosition(), 'nothing stored').to.equal(head);
    // The next message is listed (the projection did not stall).
    await postForm(`${test.url}/koala/api/mas/messages`, { ticket, users: 'nul-receiver', title: 'after', content: 'c' });
    const page = await graphql<{ notifications: { nodes: Array<{ title: string }> } }>(test.url, receiver, '{ notifications { nodes { title } } }');
    expect(page.data!.notifications.nodes.map((n) => n.title)).to.deep.equal(['after']);
  });
});
