import { expect } from 'chai';
import { graphql } from '../support/graphqlClient';
import { issueTicket, startTestHerald, TestClock } from '../support/herald';
import { describeTarget } from '../support/postgres';
import { sendMessage } from '../support/sendMessage';
import { storedEvents } from '../support/storedEvents';

/**
 * Issue 26: a Koala message with `expire` 0 (000: 永久有效) is kept "while the app wants it". The app's
 * admin says how long over GraphQL (`setRetention`); nobody else may, bad input changes nothing, and the
 * leader's pass then removes only that app's messages older than its setting.
 */
describe(`an app sets how long it keeps what never ends (${describeTarget()})`, function () {
  this.timeout(60_000);
  const DAY = 24 * 3600_000;
  const clock = new TestClock();
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let admin: string;
  let user: string;
  let otherAdmin: string;

  const SET = `mutation($input: AppRetentionInput!) {
    setRetention(input: $input) { unexpiringMessages { app effective } datahubNotifications { app effective } }
  }`;
  const SHOW = `{ retention { unexpiringMessages { app effective } datahubNotifications { app effective } } }`;
  const setting = (unexpiring: string | null, datahub: string | null) => ({
    unexpiringMessages: { app: unexpiring, effective: unexpiring ?? 'forever' },
    datahubNotifications: { app: datahub, effective: datahub ?? 'forever' },
  });
  const appEvents = async () =>
    (await storedEvents(test.url, admin, { stream: 'app-camel' }))
      .map((e) => e.type)
      .filter((t) => t !== 'AppRegistered');
  const inbox = async (ticket: string) =>
    (
      await graphql<{ notifications: { total: number; nodes: Array<{ title: string }> } }>(
        test.url,
        ticket,
        '{ notifications(first: 10) { total nodes { title } } }',
      )
    ).data!.notifications;

  before(async () => {
    test = await startTestHerald({ sendRatePerMinute: 100_000, retentionIntervalSeconds: 86_400 }, clock.now);
    admin = await issueTicket(test.url, 'boss', 'admin');
    user = await issueTicket(test.url, 'bob');
    otherAdmin = await issueTicket(test.url, 'boss', 'admin', 'other', 'other-secret');
  });
  after(() => test?.stop());

  it('only the app’s admin sets or sees it; bad input is BAD_USER_INPUT naming the field and changes nothing', async () => {
    expect((await graphql(test.url, admin, SHOW)).data).to.deep.equal({ retention: setting(null, null) });
    expect((await graphql(test.url, user, SHOW)).errors?.[0]?.extensions?.code).to.equal('FORBIDDEN');
    const refused = await graphql(test.url, user, SET, { input: { unexpiringMessages: '1d' } });
    expect(refused.errors?.[0]?.extensions?.code).to.equal('FORBIDDEN');

    for (const [input, field] of [
      [{ unexpiringMessages: '1w' }, 'unexpiringMessages'],
      [{ unexpiringMessages: '0' }, 'unexpiringMessages'],
      [{ unexpiringMessages: '' }, 'unexpiringMessages'],
      [{ datahubNotifications: '36501d' }, 'datahubNotifications'],
      [{ datahubNotifications: 'Forever' }, 'datahubNotifications'],
      [{ unexpiringMessages: '30d', datahubNotifications: '-1d' }, 'datahubNotifications'],
      [{ unexpiringMessages: 'x'.repeat(100_000) }, 'unexpiringMessages'],
      [{ unexpiringMessages: 30 }, 'unexpiringMessages'],
      [{ keepEverything: 'forever' }, 'keepEverything'],
    ] as const) {
      const answer = await graphql(test.url, admin, SET, { input });
      expect(answer.errors?.[0]?.extensions?.code, JSON.stringify(input).slice(0, 80)).to.equal('BAD_USER_INPUT');
      expect(answer.errors?.[0]?.message).to.include(field);
    }
    expect(await appEvents()).to.deep.equal([]);
    expect((await graphql(test.url, admin, SHOW)).data).to.deep.equal({ retention: setting(null, null) });

    const set = await graphql(test.url, admin, SET, {
      input: { unexpiringMessages: '720h', datahubNotifications: null },
    });
    expect(set.data).to.deep.equal({ setRetention: setting('30d', null) });
    // The same again appends nothing; another app's admin sees its own.
    await graphql(test.url, admin, SET, { input: { unexpiringMessages: '30d' } });
    expect(await appEvents()).to.deep.equal(['AppRetentionSet']);
    expect((await graphql(test.url, otherAdmin, SHOW)).data).to.deep.equal({ retention: setting(null, null) });
  });

  it('the next pass removes that app’s messages without expiry older than its setting; another app’s stay', async () => {
    await sendMessage(test.url, admin, { to: ['bob'], title: 'old camel', content: 'c' });
    await sendMessage(test.url, otherAdmin, { to: ['bob'], title: 'old other', content: 'c' });
    // Tickets live a day: fresh ones after each move of the clock.
    clock.advance(20 * DAY);
    await sendMessage(test.url, await issueTicket(test.url, 'boss', 'admin'), {
      to: ['bob'],
      title: 'recent camel',
      content: 'c',
    });
    clock.advance(11 * DAY);
    user = await issueTicket(test.url, 'bob');
    admin = await issueTicket(test.url, 'boss', 'admin');
    const otherUser = await issueTicket(test.url, 'bob', '', 'other', 'other-secret');

    await test.herald.retention.runOnce();
    expect(await inbox(user)).to.deep.equal({ total: 1, nodes: [{ title: 'recent camel' }] });
    expect(await inbox(otherUser)).to.deep.equal({ total: 1, nodes: [{ title: 'old other' }] });

    // Back to the deployment's default (forever): nothing more goes, however old.
    const back = await graphql(test.url, admin, SET, { input: { unexpiringMessages: 'default' } });
    expect(back.data).to.deep.equal({ setRetention: setting(null, null) });
    clock.advance(365 * DAY);
    await test.herald.retention.runOnce();
    expect((await inbox(await issueTicket(test.url, 'bob'))).total).to.equal(1);
  });
});
