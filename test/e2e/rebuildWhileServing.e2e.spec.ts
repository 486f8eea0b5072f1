import { expect } from 'chai';
import { graphql, Terminal } from '../support/graphqlClient';
import { postForm, startTestHerald } from '../support/herald';
import { HeraldProcess } from '../support/heraldProcess';

/**
 * `herald projections rebuild` while `herald serve` runs on the same database, with no traffic: the
 * rebuild completes by itself, readers keep reading the inbox throughout, subscribers are pushed
 * nothing of the replayed history, and the server goes on projecting and pushing new messages after
 * the rebuilt tables are swapped in.
 */
describe('rebuild while serving', function () {
  this.timeout(120_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let terminal: Terminal | undefined;

  before(async () => {
    test = await startTestHerald({ sendRatePerMinute: 100_000 });
  });
  after(async () => {
    await terminal?.close();
    await test?.stop();
  });

  const ticketFor = async (userId: string) =>
    (
      await postForm(`${test.url}/koala/api/mas/tickets`, {
        app_key: 'camel',
        secret_key: 'EERWERRRRE',
        user_id: userId,
      })
    ).body.result as string;
  const INBOX = '{ notifications(first: 100) { total nodes { id seq title acknowledged } } }';
  type Inbox = {
    notifications: { total: number; nodes: Array<{ id: string; seq: string; title: string; acknowledged: boolean }> };
  };

  it('completes without new traffic, keeps the inbox readable, pushes nothing old, then serves on', async () => {
    const sender = await ticketFor('rebuild-sender');
    const reader = await ticketFor('rebuild-reader');
    for (let i = 0; i < 60; i++) {
      const sent = await postForm(`${test.url}/koala/api/mas/messages`, {
        ticket: sender,
        users: 'rebuild-reader',
        title: `m${i}`,
        content: 'c',
      });
      expect(sent.body.status).to.equal(0);
    }
    const first = (await graphql<Inbox>(test.url, reader, INBOX)).data!.notifications;
    await graphql(test.url, reader, `mutation { acknowledge(ids: ["${first.nodes[0]!.id}"]) }`);
    const before = (await graphql<Inbox>(test.url, reader, INBOX)).data!.notifications;
    expect(before.total).to.equal(60);

    terminal = Terminal.connect(test.url, { ticket: reader });
    const probes = await terminal.subscribed(() =>
      postForm(`${test.url}/koala/api/mas/messages`, {
        ticket: sender,
        users: 'rebuild-reader',
        title: 'probe',
        content: 'c',
      }),
    );
    // Every probe is listed before `expected` is read (the send answers after its projection).
    const expected = (await graphql<Inbox>(test.url, reader, INBOX)).data!.notifications;

    const rebuild = HeraldProcess.start({ DATABASE_URL: test.testDatabase.connectionString }, [
      'projections',
      'rebuild',
    ]);
    let exited: number | null | undefined;
    void rebuild.exitCode().then((code) => (exited = code));
    let reads = 0;
    while (exited === undefined) {
      const during = await graphql<Inbox>(test.url, reader, INBOX);
      expect(during.errors, 'the inbox is readable during the rebuild').to.equal(undefined);
      expect(during.data!.notifications).to.deep.equal(expected);
      reads++;
    }
    expect(exited, rebuild.logs).to.equal(0);
    expect(rebuild.logs).to.match(/"projection":"notifications".*"done":true/);
    expect(reads).to.be.at.least(1);

    expect(
      (await graphql<Inbox>(test.url, reader, INBOX)).data!.notifications,
      'the rebuilt inbox is the same',
    ).to.deep.equal(expected);
    await postForm(`${test.url}/koala/api/mas/messages`, {
      ticket: sender,
      users: 'rebuild-reader',
      title: 'after',
      content: 'c',
    });
    await terminal.until((t) => t.received.some((m) => m.title === 'after'), 'a message sent after the rebuild');
    const titles = terminal.received.map((m) => m.title);
    expect(
      titles.filter((title) => title !== 'probe'),
      'nothing of the history was pushed again',
    ).to.deep.equal(['after']);
    expect(titles.length - 1).to.be.within(1, probes);
    const afterwards = (await graphql<Inbox>(test.url, reader, INBOX)).data!.notifications;
    expect(afterwards.total).to.equal(61 + probes);
    expect(afterwards.nodes[0]!.title).to.equal('after');
  });
});
