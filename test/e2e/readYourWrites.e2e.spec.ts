import { expect } from 'chai';
import { graphql } from '../support/graphqlClient';
import { postForm, startTestHerald } from '../support/herald';

/**
 * Read your writes: once a send or an ack has answered success, over Koala REST or GraphQL, the same
 * caller's very next query shows it — no polling, no waiting. 100 of 100 each way.
 */

const ROUNDS = 100;
const INBOX = `{ notifications(first: 1) { total nodes { id seq title acknowledged } } }`;
type Inbox = {
  notifications: { total: number; nodes: Array<{ id: string; seq: string; title: string; acknowledged: boolean }> };
};

describe('read your writes (Koala REST and GraphQL)', function () {
  this.timeout(120_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;

  before(async () => {
    test = await startTestHerald({ sendRatePerMinute: 100_000 });
  });
  after(() => test?.stop());

  async function ticketFor(userId: string): Promise<string> {
    return (
      await postForm(`${test.url}/koala/api/mas/tickets`, {
        app_key: 'camel',
        secret_key: 'EERWERRRRE',
        user_id: userId,
      })
    ).body.result as string;
  }

  async function newest(ticket: string) {
    const { data, errors } = await graphql<Inbox>(test.url, ticket, INBOX);
    expect(errors).to.equal(undefined);
    return { total: data!.notifications.total, node: data!.notifications.nodes[0] };
  }

  it(`Koala send, then ack by seq: each shows in the next query, ${ROUNDS} of ${ROUNDS}`, async () => {
    const ticket = await ticketFor('ryw-rest');
    let sendsSeen = 0;
    let acksSeen = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const sent = await postForm(`${test.url}/koala/api/mas/messages`, {
        ticket,
        users: 'ryw-rest',
        title: `rest ${i}`,
        content: 'c',
      });
      expect(sent.body.status).to.equal(0);
      const afterSend = await newest(ticket);
      if (afterSend.node?.id === sent.body.result && afterSend.total === i + 1) sendsSeen++;

      const acked = await postForm(`${test.url}/koala/api/mas/messages/ack`, { ticket, sids: afterSend.node!.seq });
      expect(acked.body).to.deep.include({ status: 0, result: 1 });
      if ((await newest(ticket)).node?.acknowledged === true) acksSeen++;
    }
    expect({ sendsSeen, acksSeen }).to.deep.equal({ sendsSeen: ROUNDS, acksSeen: ROUNDS });
  });

  it(`GraphQL sendMessage, then acknowledge: each shows in the next query, ${ROUNDS} of ${ROUNDS}`, async () => {
    const ticket = await ticketFor('ryw-graphql');
    let sendsSeen = 0;
    let acksSeen = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const sent = await graphql<{ sendMessage: { id: string } }>(
        test.url,
        ticket,
        `mutation { sendMessage(input: { to: ["ryw-graphql"], title: "graphql ${i}", content: "c" }) { id } }`,
      );
      expect(sent.errors).to.equal(undefined);
      const afterSend = await newest(ticket);
      if (afterSend.node?.id === sent.data!.sendMessage.id && afterSend.total === i + 1) sendsSeen++;

      const acked = await graphql<{ acknowledge: number }>(
        test.url,
        ticket,
        `mutation { acknowledge(ids: ["${sent.data!.sendMessage.id}"]) }`,
      );
      expect(acked.data?.acknowledge).to.equal(1);
      if ((await newest(ticket)).node?.acknowledged === true) acksSeen++;
    }
    expect({ sendsSeen, acksSeen }).to.deep.equal({ sendsSeen: ROUNDS, acksSeen: ROUNDS });
  });
});
