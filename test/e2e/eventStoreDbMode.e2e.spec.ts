import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { EventStoreDbStandIn } from '../support/eventStoreDbStandIn';
import { eventually } from '../support/eventually';
import { graphql } from '../support/graphqlClient';
import { issueTicket, postForm, startTestHerald } from '../support/herald';

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
    const ticket = async (userId: string) =>
      (
        await postForm(`${test.url}/koala/api/mas/tickets`, {
          app_key: 'camel',
          secret_key: 'EERWERRRRE',
          user_id: userId,
        })
      ).body;
    const sender = await ticket('zhangbin');
    expect(sender.status).to.equal(0);
    const receiver = (await ticket('jiangxiaoyu')).result as string;
    const sent = await postForm(`${test.url}/koala/api/mas/messages`, {
      ticket: sender.result as string,
      users: 'jiangxiaoyu',
      title: 'via esdb',
      content: 'c',
    });
    expect(sent.body.status).to.equal(0);

    const inbox = await eventually(async () => {
      const page = await graphql<{ notifications: { nodes: Array<{ id: string; seq: string; title: string }> } }>(
        test.url,
        receiver,
        '{ notifications { nodes { id seq title } } }',
      );
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
    const ticket = (
      await postForm(`${test.url}/koala/api/mas/tickets`, {
        app_key: 'camel',
        secret_key: 'EERWERRRRE',
        user_id: 'nul-sender',
      })
    ).body.result as string;
    const receiver = (
      await postForm(`${test.url}/koala/api/mas/tickets`, {
        app_key: 'camel',
        secret_key: 'EERWERRRRE',
        user_id: 'nul-receiver',
      })
    ).body.result as string;
    const head = await test.herald.infrastructure.store.headPosition();
    const refused = await postForm(`${test.url}/koala/api/mas/messages`, {
      ticket,
      users: 'nul-receiver',
      title: 'a\u0000b',
      content: 'c',
    });
    expect(refused.body).to.include({ status: 1001 });
    const viaGraphql = await graphql(
      test.url,
      ticket,
      'mutation { sendMessage(input: { to: ["nul-receiver"], title: "t", content: "c\\u0000" }) { id } }',
    );
    expect(viaGraphql.errors?.[0]?.extensions?.code).to.equal('BAD_USER_INPUT');
    expect(await test.herald.infrastructure.store.headPosition(), 'nothing stored').to.equal(head);
    // The next message is listed (the projection did not stall).
    await postForm(`${test.url}/koala/api/mas/messages`, {
      ticket,
      users: 'nul-receiver',
      title: 'after',
      content: 'c',
    });
    const page = await graphql<{ notifications: { nodes: Array<{ title: string }> } }>(
      test.url,
      receiver,
      '{ notifications { nodes { title } } }',
    );
    expect(page.data!.notifications.nodes.map((n) => n.title)).to.deep.equal(['after']);
  });

  /** Every event of the store, in position order. */
  async function allEvents(): Promise<RecordedEvent[]> {
    const all: RecordedEvent[] = [];
    for (let after: bigint | undefined; ;) {
      const page = await test.herald.infrastructure.store.readAll({
        ...(after !== undefined && { after }),
        maxCount: 500,
      });
      all.push(...page);
      if (page.length < 500) return all;
      after = page[page.length - 1]!.position;
    }
  }

  it('herald replay reads EventStoreDB: every event, in order, its data as appended', async () => {
    const events = await allEvents();
    expect(events.length).to.be.at.least(5);
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', 'replay', '--app', 'camel'],
      {
        cwd: path.resolve(__dirname, '../..'),
        env: {
          ...process.env,
          DATABASE_URL: test.testDatabase.connectionString,
          EVENTSTORE_URL: standIn.connectionString,
          LOG_LEVEL: 'warn',
        },
      },
    );
    const camel = events.filter((e) => e.metadata.appId === 'camel');
    // EventStoreDB keeps the JSON herald appended: a line's data is its JSON.stringify, keys as written.
    const expected = camel.map(
      (e) =>
        `{"position":"${e.position}","stream":${JSON.stringify(e.streamName)},"revision":"${e.revision}","type":${JSON.stringify(e.type)},"time":"${e.createdAt.toISOString()}","data":${JSON.stringify(e.data)},"metadata":${JSON.stringify(e.metadata)}}\n`,
    );
    expect(stdout).to.equal(expected.join(''));
  });

  it('the events query pages by EventStoreDB positions', async () => {
    const admin = await issueTicket(test.url, 'esdb-analyst', 'admin');
    const expected = (await allEvents()).filter((e) => e.metadata.appId === 'camel').map((e) => e.position.toString());
    const seen: string[] = [];
    for (let after: string | null = null, pages = 0; pages < 50; pages++) {
      type Page = {
        events: { nodes: Array<{ position: string }>; pageInfo: { endCursor: string | null; hasNextPage: boolean } };
      };
      const response: { data?: Page | null } = await graphql<Page>(
        test.url,
        admin,
        'query($after: String) { events(after: $after, first: 2) { nodes { position } pageInfo { endCursor hasNextPage } } }',
        { ...(after !== null && { after }) },
      );
      seen.push(...response.data!.events.nodes.map((n) => n.position));
      if (!response.data!.events.pageInfo.hasNextPage) break;
      after = response.data!.events.pageInfo.endCursor;
    }
    expect(seen).to.deep.equal(expected);
  });
});
