import { expect } from 'chai';
import { pushIdOfSentId } from '../../domain/device/push';
import { isDeviceOnline, listedDevice, type ListedDevice } from '../support/deviceQueries';
import { DeviceSocket } from '../support/deviceSocket';
import { eventually } from '../support/eventually';
import { graphql, GraphqlSocket, type GraphqlResponse } from '../support/graphqlClient';
import { issueTicket, startTestHerald, TestClock } from '../support/herald';
import { pushDeliveries } from '../support/pushDeliveries';

// ONE-PUSH's devices (shared/seeds/003_834cb051d61fc48e.txt) through GraphQL: users register, list,
// unregister and push; a device, by its token, subscribes to its messages and confirms them — served
// by the same gateway as the legacy /msgpush.ws socket.

const DEVICE_FIELDS = 'id clientId alias platform mobile tags online registeredAt updatedAt';
const MESSAGE_FIELDS =
  'messageId appId source tenantCode alert extra pushMsgType sound badge msg flag from needConfirm requestedAt expiresAt';
const DEVICE_MESSAGES = `subscription Mine($deviceId: ID!) { deviceMessages(deviceId: $deviceId) { ${MESSAGE_FIELDS} } }`;
const REGISTER = `mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) { device { ${DEVICE_FIELDS} } token } }`;
const DEVICES = `query($alias: String, $tag: String, $platform: DevicePlatform, $first: Int, $after: String) {
  devices(alias: $alias, tag: $tag, platform: $platform, first: $first, after: $after) { nodes { ${DEVICE_FIELDS} } pageInfo { endCursor hasNextPage } }
}`;
const PUSH = `mutation($input: PushToDevicesInput!) { pushToDevices(input: $input) { requestId requestedAt expiresAt deliveries { pending delivered confirmed dropped expired } } }`;
const UNREGISTER = 'mutation($id: ID!) { unregisterDevice(id: $id) }';
const CONFIRM = 'mutation($messageId: ID!) { confirmDelivery(messageId: $messageId) }';

interface Device extends ListedDevice {
  online: boolean;
  registeredAt: string;
  updatedAt: string;
}
interface DeviceMessage {
  messageId: string;
  appId: string;
  source: string;
  alert: string | null;
  needConfirm: boolean;
  [field: string]: unknown;
}
type Page = { devices: { nodes: Device[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } } };
type Pushed = {
  pushToDevices: { requestId: string; requestedAt: string; expiresAt: string; deliveries: Record<string, number> };
};

describe('GraphQL: devices, pushes and deviceMessages (seed 003)', function () {
  this.timeout(60_000);
  const clock = new TestClock();
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  const sockets: GraphqlSocket[] = [];
  const legacy: DeviceSocket[] = [];
  let nativeTokens = 0;

  let admin: string;

  before(async () => {
    test = await startTestHerald({}, clock.now);
    admin = await issueTicket(test.url, 'device-auditor', 'admin');
  });
  afterEach(async () => {
    for (const socket of legacy.splice(0)) socket.close();
    await Promise.all(sockets.splice(0).map((s) => s.close()));
  });
  after(() => test?.stop());

  const ticketFor = (userId: string, roles = '', app = 'camel') =>
    issueTicket(test.url, userId, roles, app, app === 'camel' ? 'EERWERRRRE' : 'other-secret');
  const gql = <T = Record<string, unknown>>(
    credential: string | undefined,
    query: string,
    variables?: Record<string, unknown>,
  ) => graphql<T>(test.url, credential, query, variables);
  const codeOf = (response: { errors?: GraphqlResponse['errors'] }) => response.errors?.[0]?.extensions?.code;

  async function register(
    ticket: string,
    input: Record<string, unknown> = {},
  ): Promise<{ device: Device; token: string }> {
    const result = await gql<{ registerDevice: { device: Device; token: string } }>(ticket, REGISTER, {
      input: { platform: 'ANDROID', nativeToken: `native-${++nativeTokens}-${Date.now()}`, ...input },
    });
    expect(result.errors, JSON.stringify(result.errors)).to.equal(undefined);
    return result.data!.registerDevice;
  }

  function socket(connectionParams: Record<string, unknown>): GraphqlSocket {
    const opened = GraphqlSocket.connect(test.url, connectionParams);
    sockets.push(opened);
    return opened;
  }

  /** A device's GraphQL subscription, once the gateway counts it as the device's connection. */
  async function subscribeDevice(registered: { device: Device; token: string }) {
    const connection = socket({ deviceToken: registered.token });
    const messages = connection.subscribe<{ deviceMessages: DeviceMessage }>(DEVICE_MESSAGES, {
      deviceId: registered.device.id,
    });
    await eventually(async () =>
      expect(
        await online(registered),
        `the subscription is connected: ${JSON.stringify(messages)} ${connection.closedWith}`,
      ).to.equal(true),
    );
    return { connection, messages };
  }

  async function connectLegacy(registered: { device: Device }): Promise<DeviceSocket> {
    const device = await DeviceSocket.connect(test.url, registered.device.id);
    legacy.push(device);
    await eventually(async () => expect(await online(registered)).to.equal(true));
    return device;
  }

  /** Whether the device is connected, as GraphQL `devices` shows it to the app's admin. */
  const online = (registered: { device: Device }) =>
    isDeviceOnline(test.url, admin, registered.device.alias, registered.device.id);

  async function push(ticket: string, input: Record<string, unknown>) {
    return gql<Pushed>(ticket, PUSH, { input: { platform: 'ALL', audienceType: 'ALIAS', alert: 'hello', ...input } });
  }

  it('registerDevice: the alias defaults to the caller; another alias is for admins only; the same native token is the same device', async () => {
    const user = await ticketFor('reg-user');
    const registered = await register(user, {
      platform: 'IOS',
      nativeToken: 'apns-reg-user-1',
      mobile: '+86 137-0000-1111',
      tags: ['beta', ' beta ', 'sz'],
    });
    expect(registered.device).to.include({
      alias: 'reg-user',
      platform: 'IOS',
      mobile: '+86 137-0000-1111',
      online: false,
    });
    expect(registered.device.id).to.match(/^[0-9a-f]{32}$/);
    expect(registered.device.clientId).to.be.a('number');
    expect(registered.device.tags).to.deep.equal(['beta', 'sz']);
    expect(Date.parse(registered.device.registeredAt)).to.not.be.NaN;
    expect(registered.token).to.match(new RegExp(`^${registered.device.clientId}_\\d+_\\d+_[0-9a-f]{32}$`));
    const again = await register(user, { platform: 'IOS', nativeToken: 'apns-reg-user-1', tags: ['gamma'] });
    expect(again.device).to.include({ id: registered.device.id, clientId: registered.device.clientId });
    expect(again.device.tags).to.deep.equal(['gamma']);

    const mine = await gql(user, REGISTER, {
      input: { platform: 'ANDROID', nativeToken: 'own-alias', alias: 'reg-user' },
    });
    expect(mine.errors).to.equal(undefined);
    const someoneElse = await gql(user, REGISTER, {
      input: { platform: 'ANDROID', nativeToken: 'for-someone', alias: 'reg-other' },
    });
    expect(codeOf(someoneElse)).to.equal('FORBIDDEN');
    expect(someoneElse.data).to.deep.equal({ registerDevice: null }); // a mutation field that fails is null by itself (issue 21 item 3)
    const admin = await ticketFor('reg-admin', 'admin');
    expect((await gql<Page>(admin, DEVICES, { alias: 'reg-other' })).data!.devices.nodes).to.deep.equal([]);
    const forOther = await register(admin, { nativeToken: 'for-someone', alias: 'reg-other' });
    expect(forOther.device.alias).to.equal('reg-other');
    // A user who knows another user's native token cannot take that device over.
    const takeover = await gql(user, REGISTER, { input: { platform: 'ANDROID', nativeToken: 'for-someone' } });
    expect(codeOf(takeover)).to.equal('FORBIDDEN');
    expect((await listedDevice(test.url, admin, forOther.device.id))?.alias).to.equal('reg-other');

    for (const input of [
      { platform: 'ANDROID', nativeToken: '' },
      { platform: 'ANDROID', nativeToken: 'x', mobile: 'call me' },
      { platform: 'ANDROID', nativeToken: 'x', tags: ['t'.repeat(65)] },
      { platform: 'ANDROID', nativeToken: 'x', alias: 'with space' },
    ]) {
      const refused = await gql(admin, REGISTER, { input });
      expect(codeOf(refused), JSON.stringify(input)).to.equal('BAD_USER_INPUT');
    }
    expect(codeOf(await gql(admin, REGISTER, { input: { platform: 'PHONE', nativeToken: 'x' } }))).to.equal(
      'BAD_USER_INPUT',
    );
  });

  it("devices: a user sees their own, an admin the app's, another app nothing; filters by alias, tag and platform; pages with a cursor", async () => {
    const anna = await ticketFor('list-anna');
    const ben = await ticketFor('list-ben');
    const admin = await ticketFor('list-admin', 'admin');
    const annas = [
      await register(anna, { platform: 'ANDROID', tags: ['list-vip'] }),
      await register(anna, { platform: 'WEB', tags: ['list-vip', 'list-sz'] }),
      await register(anna, { platform: 'IOS' }),
    ];
    const bens = await register(ben, { platform: 'WEB', tags: ['list-vip'] });
    const ids = (page: GraphqlResponse<Page>) => page.data!.devices.nodes.map((d) => d.id);
    const sorted = (list: string[]) => [...list].sort();

    const own = await gql<Page>(anna, DEVICES);
    expect(own.errors).to.equal(undefined);
    expect(ids(own)).to.deep.equal(sorted(annas.map((r) => r.device.id)));
    expect(own.data!.devices.pageInfo.hasNextPage).to.equal(false);
    expect(
      ids(await gql<Page>(anna, DEVICES, { alias: 'list-ben' })),
      "another user's alias: an empty page",
    ).to.deep.equal([]);
    expect(ids(await gql<Page>(ben, DEVICES))).to.deep.equal([bens.device.id]);

    // The admin sees the app's devices: by tag, anna's two and ben's one.
    expect(ids(await gql<Page>(admin, DEVICES, { tag: 'list-vip' }))).to.deep.equal(
      sorted([annas[0]!.device.id, annas[1]!.device.id, bens.device.id]),
    );
    expect(ids(await gql<Page>(admin, DEVICES, { tag: 'list-vip', platform: 'WEB' }))).to.deep.equal(
      sorted([annas[1]!.device.id, bens.device.id]),
    );
    expect(ids(await gql<Page>(admin, DEVICES, { alias: 'list-ben' }))).to.deep.equal([bens.device.id]);
    expect(ids(await gql<Page>(anna, DEVICES, { tag: 'list-sz' }))).to.deep.equal([annas[1]!.device.id]);
    expect(ids(await gql<Page>(anna, DEVICES, { platform: 'IOS' }))).to.deep.equal([annas[2]!.device.id]);

    // Nothing of another app: neither its users nor its admin see camel's devices.
    const otherAdmin = await ticketFor('list-admin', 'admin', 'other');
    expect(ids(await gql<Page>(otherAdmin, DEVICES, { tag: 'list-vip' }))).to.deep.equal([]);
    expect(ids(await gql<Page>(await ticketFor('list-anna', '', 'other'), DEVICES))).to.deep.equal([]);

    // Pages of one, following endCursor.
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page: GraphqlResponse<Page> = await gql<Page>(anna, DEVICES, { first: 1, ...(after && { after }) });
      seen.push(...ids(page));
      if (!page.data!.devices.pageInfo.hasNextPage) break;
      after = page.data!.devices.pageInfo.endCursor;
      expect(seen.length).to.be.below(4);
    }
    expect(seen).to.deep.equal(sorted(annas.map((r) => r.device.id)));

    for (const variables of [
      { first: 0 },
      { first: 101 },
      { after: 'bm90IGEgY3Vyc29y' },
      { alias: 'x'.repeat(129) },
      { tag: 'a\u0000b' },
    ]) {
      expect(codeOf(await gql(anna, DEVICES, variables)), JSON.stringify(variables)).to.equal('BAD_USER_INPUT');
    }
  });

  it("unregisterDevice: the caller's own devices, or an admin's app; anything else is NOT_FOUND", async () => {
    const cleo = await ticketFor('unreg-cleo');
    const dan = await ticketFor('unreg-dan');
    const cleos = await register(cleo);
    const dans = await register(dan);

    expect(codeOf(await gql(dan, UNREGISTER, { id: cleos.device.id })), "another user's device").to.equal('NOT_FOUND');
    expect(
      codeOf(await gql(await ticketFor('unreg-admin', 'admin', 'other'), UNREGISTER, { id: cleos.device.id })),
      "another app's admin",
    ).to.equal('NOT_FOUND');
    expect(codeOf(await gql(cleo, UNREGISTER, { id: '0123456789abcdef0123456789abcdef' }))).to.equal('NOT_FOUND');
    expect(codeOf(await gql(cleo, UNREGISTER, { id: 'not an id' }))).to.equal('NOT_FOUND');
    expect(await listedDevice(test.url, admin, cleos.device.id), 'still registered').to.not.equal(undefined);

    const gone = await gql<{ unregisterDevice: boolean }>(cleo, UNREGISTER, { id: cleos.device.id });
    expect(gone.data).to.deep.equal({ unregisterDevice: true });
    expect((await gql<Page>(cleo, DEVICES)).data!.devices.nodes).to.deep.equal([]);
    // Its token stops working.
    expect((await gql(cleos.token, CONFIRM, { messageId: '00000000-0000-4000-8000-000000000000' })).status).to.equal(
      401,
    );

    const byAdmin = await gql<{ unregisterDevice: boolean }>(await ticketFor('unreg-admin', 'admin'), UNREGISTER, {
      id: dans.device.id,
    });
    expect(byAdmin.data).to.deep.equal({ unregisterDevice: true });
    expect(await listedDevice(test.url, admin, dans.device.id), 'unregistered').to.equal(undefined);
  });

  it("pushToDevices by ALIAS reaches the alias's legacy socket and GraphQL subscription; both confirm; the counts show it", async () => {
    const owner = await ticketFor('push-carol');
    const onSocket = await register(owner, { platform: 'ANDROID' });
    const onGraphql = await register(owner, { platform: 'IOS' });
    const elsewhere = await register(await ticketFor('push-someone-else'));
    const socket = await connectLegacy(onSocket);
    const { connection, messages } = await subscribeDevice(onGraphql);
    const bystander = await subscribeDevice(elsewhere);
    const online = await gql<Page>(owner, DEVICES);
    expect(online.data!.devices.nodes.map((d) => d.online)).to.deep.equal([true, true]);

    // Any user of the app may push to an alias.
    const pushed = await push(await ticketFor('push-sender'), {
      audiences: ['push-carol'],
      alert: 'door opened',
      extra: '{"door":1}',
      tenantCode: 't1',
      needConfirm: true,
      duration: 600,
      sound: 'ding',
      badge: 3,
    });
    expect(pushed.errors).to.equal(undefined);
    const { requestId, deliveries, requestedAt, expiresAt } = pushed.data!.pushToDevices;
    expect(
      Object.values(deliveries).reduce((a, b) => a + b, 0),
      'one delivery per device of the alias',
    ).to.equal(2);
    expect(Date.parse(expiresAt) - Date.parse(requestedAt)).to.equal(600_000);

    await socket.until((s) => s.messages.some((m) => m.messageId === requestId), 'the legacy frame');
    await connection.until(() => messages.results.length > 0, 'the GraphQL message');
    expect(messages.errors).to.deep.equal([]);
    expect(messages.results[0]!.deviceMessages).to.deep.equal({
      messageId: requestId,
      appId: 'camel',
      source: 'ONEPUSH',
      tenantCode: 't1',
      alert: 'door opened',
      extra: '{"door":1}',
      pushMsgType: 'MSG',
      sound: 'ding',
      badge: 3,
      msg: null,
      flag: null,
      from: null,
      needConfirm: true,
      requestedAt,
      expiresAt,
    });

    // The device confirms over the socket it subscribes on.
    const confirmed = await connection.request<{ confirmDelivery: boolean }>(CONFIRM, { messageId: requestId });
    expect(confirmed).to.deep.equal({ data: { confirmDelivery: true } });
    await eventually(async () => expect((await pushDeliveries(test.url, admin, requestId)).confirmed).to.equal(1));
    socket.confirm(requestId);
    await socket.until((s) => s.frames.some((f) => f.confirmed === requestId), 'the legacy confirmation');
    await eventually(async () =>
      expect(await pushDeliveries(test.url, admin, requestId)).to.include({ confirmed: 2, delivered: 0 }),
    );
    // Confirming again is no error; over HTTP with the device token too.
    expect((await gql(onGraphql.token, CONFIRM, { messageId: requestId })).data).to.deep.equal({
      confirmDelivery: true,
    });
    expect(codeOf(await gql(onGraphql.token, CONFIRM, { messageId: '00000000-0000-4000-8000-000000000000' }))).to.equal(
      'NOT_FOUND',
    );
    expect(codeOf(await gql(elsewhere.token, CONFIRM, { messageId: requestId })), 'not sent to this device').to.equal(
      'NOT_FOUND',
    );
    expect(bystander.messages.results).to.deep.equal([]);
  });

  it('a device that subscribes later gets the messages it missed, then live ones', async () => {
    const owner = await ticketFor('push-late');
    const device = await register(owner);
    const sender = await ticketFor('push-late-sender');
    const missed = (await push(sender, { audiences: ['push-late'], alert: 'while away' })).data!.pushToDevices
      .requestId;
    const { connection, messages } = await subscribeDevice(device);
    await connection.until(() => messages.results.length === 1, 'the backlog');
    const live = (await push(sender, { audiences: ['push-late'], alert: 'live' })).data!.pushToDevices.requestId;
    await connection.until(() => messages.results.length === 2, 'the live message');
    expect(messages.results.map((r) => [r.deviceMessages.messageId, r.deviceMessages.alert])).to.deep.equal([
      [missed, 'while away'],
      [live, 'live'],
    ]);
    expect(messages.results[0]!.deviceMessages.needConfirm).to.equal(false);
  });

  // Issue 22 (audit): ONE-PUSH takes any JSON in extra; GraphQL's extra is a String, so it is the JSON text.
  it('a ONE-PUSH extra sent as a JSON object is its JSON text in deviceMessages.extra', async () => {
    const device = await register(await ticketFor('json-extra-user'));
    const sent = await fetch(`${test.url}/msgpush/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        appId: 'camel',
        appKey: 'EERWERRRRE',
        platform: 'ALL',
        audiences: ['json-extra-user'],
        alert: 'x',
        extra: { orderId: 7 },
      }),
    });
    expect(sent.status).to.equal(200);
    const { requestId } = (await sent.json()) as { requestId: string };
    const { connection, messages } = await subscribeDevice(device);
    await connection.until(() => messages.results.length === 1, 'the backlog');
    expect(messages.results[0]!.deviceMessages).to.include({ messageId: requestId, extra: '{"orderId":7}' });
  });

  it("TAG and ALL pushes are for admins; an admin's tag push reaches the tagged devices", async () => {
    const user = await ticketFor('tag-user');
    const tagged = await register(user, { tags: ['tag-push-vip'] });
    const untagged = await register(user);
    for (const input of [{ audienceType: 'TAG', audiences: ['tag-push-vip'] }, { audienceType: 'ALL' }]) {
      const refused = await push(user, input);
      expect(codeOf(refused), JSON.stringify(input)).to.equal('FORBIDDEN');
      expect(refused.data).to.deep.equal({ pushToDevices: null });
    }
    const one = await subscribeDevice(tagged);
    const other = await subscribeDevice(untagged);
    const byTag = await push(await ticketFor('tag-admin', 'admin'), {
      audienceType: 'TAG',
      audiences: ['tag-push-vip'],
      alert: 'vips only',
      pushMsgType: 'CMD',
    });
    expect(byTag.errors).to.equal(undefined);
    const { requestId } = byTag.data!.pushToDevices;
    await one.connection.until(() => one.messages.results.length > 0, 'the tag push');
    expect(one.messages.results[0]!.deviceMessages).to.include({
      messageId: requestId,
      alert: 'vips only',
      pushMsgType: 'CMD',
    });
    const all = await push(await ticketFor('tag-admin', 'admin'), { audienceType: 'ALL', alert: 'everyone' });
    expect(all.errors).to.equal(undefined);
    await other.connection.until(() => other.messages.results.length > 0, 'the ALL push');
    expect(other.messages.results.map((r) => r.deviceMessages.messageId)).to.deep.equal([
      all.data!.pushToDevices.requestId,
    ]);

    for (const input of [
      { audiences: [] },
      { alert: '' },
      { needConfirm: true, duration: -1 },
      { badge: -1 },
      { extra: 'x'.repeat(4097) },
    ]) {
      expect(codeOf(await push(user, { audiences: ['tag-user'], ...input })), JSON.stringify(input)).to.equal(
        'BAD_USER_INPUT',
      );
    }
  });

  it('a device token is refused on user fields, a ticket on device fields, without a crash', async () => {
    const user = await ticketFor('auth-user');
    const device = await register(user);
    for (const query of [
      '{ me { userId } }',
      '{ notifications { total } }',
      '{ notificationStats { admin_message } }',
      '{ devices { nodes { id } } }',
      'mutation { sendMessage(input: { to: ["auth-user"], title: "t", content: "c" }) { id } }',
      'mutation { registerDevice(input: { platform: WEB, nativeToken: "by-device" }) { token } }',
      `mutation { unregisterDevice(id: "${device.device.id}") }`,
      'mutation { pushToDevices(input: { platform: ALL, audienceType: ALIAS, audiences: ["auth-user"], alert: "x" }) { requestId } }',
      'mutation { acknowledge(ids: []) }',
    ]) {
      const refused = await gql(device.token, query);
      expect(refused.status, query).to.equal(200);
      expect(codeOf(refused), query).to.equal('FORBIDDEN');
    }
    expect(codeOf(await gql(user, CONFIRM, { messageId: '00000000-0000-4000-8000-000000000000' }))).to.equal(
      'FORBIDDEN',
    );

    // Over graphql-ws: the device may not subscribe to a user's messages, the user not to a device's.
    const asDevice = socket({ deviceToken: device.token });
    const userMessages = asDevice.subscribe('subscription { messages { id } }');
    await asDevice.until(() => userMessages.completed, 'the refusal');
    expect(userMessages.errors.map((e) => e.extensions?.code)).to.deep.equal(['FORBIDDEN']);
    const asUser = socket({ ticket: user });
    const deviceMessages = asUser.subscribe(DEVICE_MESSAGES, { deviceId: device.device.id });
    await asUser.until(() => deviceMessages.completed, 'the refusal');
    expect(deviceMessages.errors.map((e) => e.extensions?.code)).to.deep.equal(['FORBIDDEN']);
    expect((await asUser.request('{ me { userId } }')).data).to.deep.equal({ me: { userId: 'auth-user' } });

    // Another device's messages.
    const other = await register(user);
    const foreign = asDevice.subscribe(DEVICE_MESSAGES, { deviceId: other.device.id });
    await asDevice.until(() => foreign.completed, 'the refusal');
    expect(foreign.errors.map((e) => e.extensions?.code)).to.deep.equal(['FORBIDDEN']);
    expect(asDevice.isConnected, 'refusals leave the socket open').to.equal(true);
    expect(await online(other)).to.equal(false);
  });

  it('devices pages count toward the complexity limit, with their variables, over HTTP and graphql-ws', async () => {
    const user = await ticketFor('complexity');
    await register(user);
    const page = `devices(first: $first) { nodes { ${DEVICE_FIELDS} } pageInfo { endCursor hasNextPage } }`;
    // One full page is about 1,300; four of them are over 5,000.
    const one = `query($first: Int) { ${page} }`;
    const four = `query($first: Int) { a: ${page} b: ${page} c: ${page} d: ${page} }`;
    expect((await gql<Page>(user, one, { first: 100 })).data!.devices.nodes).to.have.length(1);
    expect(codeOf(await gql(user, four, { first: 100 }))).to.equal('QUERY_TOO_COMPLEX');
    expect((await gql(user, four, { first: 10 })).errors).to.equal(undefined);
    const connection = socket({ ticket: user });
    expect((await connection.request<Page>(one, { first: 100 })).data!.devices.nodes).to.have.length(1);
    expect(codeOf(await connection.request(four, { first: 100 }))).to.equal('QUERY_TOO_COMPLEX');
  });

  it('a bad device token: the socket is closed with 4403, HTTP answers 401', async () => {
    const device = await register(await ticketFor('bad-token'));
    const forged = device.token.replace(/[0-9a-f]{32}$/, '0'.repeat(32));
    for (const params of [
      { deviceToken: forged },
      { deviceToken: 'nonsense' },
      { deviceToken: 42 },
      { deviceToken: device.token, ticket: await ticketFor('bad-token') },
    ]) {
      const connection = socket(params);
      await connection.until(() => connection.closedWith !== undefined, 'the close');
      expect(connection.closedWith, JSON.stringify(params)).to.equal(4403);
    }
    const refused = await gql(forged, '{ me { userId } }');
    expect(refused.status).to.equal(401);
    expect(codeOf(refused)).to.equal('UNAUTHENTICATED');
  });

  it('a device unregistered while subscribed: the subscription ends with DEVICE_UNREGISTERED, the socket refuses its next operation', async () => {
    const user = await ticketFor('unreg-live');
    const device = await register(user);
    const { connection, messages } = await subscribeDevice(device);
    expect((await gql(user, UNREGISTER, { id: device.device.id })).data).to.deep.equal({ unregisterDevice: true });
    await connection.until(() => messages.completed, 'the end of the subscription');
    expect(messages.errors.map((e) => e.extensions?.code)).to.deep.equal(['DEVICE_UNREGISTERED']);
    // An unregistered device is in no public list: its presence is read from the gateway.
    await eventually(async () => expect(await test.herald.gateway.presence.isOnline(device.device.id)).to.equal(false));
    const later = await connection.request(CONFIRM, { messageId: '00000000-0000-4000-8000-000000000000' });
    expect(codeOf(later)).to.equal('UNAUTHENTICATED');
    const again = connection.subscribe(DEVICE_MESSAGES, { deviceId: device.device.id });
    await connection.until(() => again.completed, 'the refusal');
    expect(again.errors.map((e) => e.extensions?.code)).to.deep.equal(['UNAUTHENTICATED']);
  });

  it('a closed subscription lets go of the device at once', async () => {
    const device = await register(await ticketFor('close-sub'));
    const { connection, messages } = await subscribeDevice(device);
    messages.stop();
    await eventually(async () => expect(await online(device)).to.equal(false));
    const again = connection.subscribe<{ deviceMessages: DeviceMessage }>(DEVICE_MESSAGES, {
      deviceId: device.device.id,
    });
    await eventually(async () => expect(await online(device)).to.equal(true));
    await connection.close();
    await eventually(async () => expect(await online(device)).to.equal(false));
    expect(again.errors.map((e) => e.extensions?.code)).to.not.include('INTERNAL_SERVER_ERROR');
  });

  it('two devices subscribed with the same operation get identical payloads', async () => {
    const user = await ticketFor('shared-exec');
    const [a, b] = [await subscribeDevice(await register(user)), await subscribeDevice(await register(user))];
    const { requestId } = (
      await push(await ticketFor('shared-sender'), { audiences: ['shared-exec'], alert: 'both', sound: 'ding' })
    ).data!.pushToDevices;
    for (const s of [a, b]) await s.connection.until(() => s.messages.results.length > 0, 'the push');
    expect(a.messages.results).to.deep.equal(b.messages.results);
    expect(a.messages.results[0]!.deviceMessages).to.include({ messageId: requestId, sound: 'ding' });
  });

  it('a topvdn message carries msg, flag and from; ONE-PUSH fields are null', async () => {
    const device = await register(await ticketFor('topvdn-dev'));
    const { connection, messages } = await subscribeDevice(device);
    // topvdn's batch server push (shared/seeds/002_66d9dfe67c8bed29.txt): from no device, no callback.
    const pushed = await fetch(`${test.url}/v2/message/server/push`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
      body: JSON.stringify({
        proxy: 0,
        payload: { msg: Buffer.from('hi').toString('base64'), flag: 3, clients: [device.device.clientId] },
      }),
    });
    expect(pushed.status).to.equal(200);
    const pushId = pushIdOfSentId(((await pushed.json()) as { request_id: string }).request_id);
    await connection.until(() => messages.results.length > 0, 'the topvdn message');
    expect(messages.results[0]!.deviceMessages).to.include({
      messageId: pushId,
      source: 'TOPVDN',
      msg: 'aGk=',
      flag: 3,
      from: null,
      alert: null,
      tenantCode: null,
      sound: null,
      badge: null,
      pushMsgType: null,
      needConfirm: false,
    });
  });

  // Last: it moves herald's clock.
  it('confirmDelivery after the message expired is GONE', async () => {
    const device = await register(await ticketFor('expiring'));
    const { requestId } = (
      await push(await ticketFor('expiring-sender'), { audiences: ['expiring'], needConfirm: true, duration: 60 })
    ).data!.pushToDevices;
    clock.advance(61_000);
    test.herald.gateway.wake(); // herald's timers on a test clock have no public trigger
    await eventually(async () => expect((await pushDeliveries(test.url, admin, requestId)).expired).to.equal(1));
    const late = await gql(device.token, CONFIRM, { messageId: requestId });
    expect(codeOf(late)).to.equal('GONE');
  });
});
