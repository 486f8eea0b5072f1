import { expect } from 'chai';
import { appendedEvents, appendedSince, TEST_METRICS_TOKEN } from '../support/appendedEvents';
import { DeviceSocket } from '../support/deviceSocket';
import { eventually } from '../support/eventually';
import { graphql, GraphqlSocket } from '../support/graphqlClient';
import { issueTicket, startTestHerald } from '../support/herald';
import { RtioDevice } from '../support/rtioDevice';

/**
 * Issue 21 item 5: text that is not Unicode — a lone UTF-16 surrogate, which a JSON `\ud800` escape
 * makes — is refused at every boundary as that API's bad input, and appends nothing. Before, RTIO's
 * `"nonce": "a\ud800b"` answered HTTP 500 and GraphQL's `requestId: "a\ud800b"` INTERNAL_SERVER_ERROR
 * (deriving an id with uuid v5 threw URIError).
 */
const LONE = 'a\ud800b';

describe('text with a lone surrogate is bad input on every API (issue 21 item 5)', function () {
  this.timeout(120_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;
  let ticket: string;
  let admin: string;

  before(async () => {
    test = await startTestHerald({ sendRatePerMinute: 1_000_000, metricsToken: TEST_METRICS_TOKEN });
    ticket = await issueTicket(test.url, 'surrogate-user');
    admin = await issueTicket(test.url, 'surrogate-admin', 'admin');
  });
  after(() => test?.stop());

  /** Runs `request` and checks that nothing was appended meanwhile (no herald work runs in the background here). */
  async function appendsNothing<T>(request: () => Promise<T>): Promise<T> {
    const before = await appendedEvents(test.url);
    const answer = await request();
    expect(await appendedSince(test.url, before), 'appended').to.deep.equal({});
    return answer;
  }

  const postJson = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${test.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  it('RTIO REST: a nonce with a lone surrogate is code 1604 (invalid JSON field), not HTTP 500; the nonce is not echoed', async () => {
    for (const path of ['/manage/create_device', '/call/send']) {
      const { status, body } = await appendsNothing(() =>
        postJson(path, { nonce: LONE, device_id: '0123456789abcdef0123456789abcdef', message: 'hi' }),
      );
      expect(status, path).to.equal(200);
      expect(body, path).to.include({ code: 1604, nonce: '' });
      expect(body.desc, path).to.match(/^nonce: .*Unicode/);
    }
  });

  it('RTIO device socket: a frame with a lone surrogate is answered bad_frame, and the socket kept', async () => {
    const before = await appendedEvents(test.url);
    const created = (await postJson('/manage/create_device', { nonce: 'surrogate-device' })).body as {
      device_id: string;
      device_key: string;
    };
    // The counts see an append when one happens: the well-formed request's.
    expect(await appendedSince(test.url, before)).to.deep.equal({ RtioNonceUsed: 1, RtioDeviceCreated: 1 });
    const device = await RtioDevice.connect(test.url, created, () => undefined);
    try {
      for (const frame of [
        { call_id: LONE, code: 1000, message: 'm' },
        { call_id: 'c', code: 1000, message: LONE },
        { report: LONE },
        { report: 'r', [LONE]: 1 },
      ]) {
        const answered = device.frames.length;
        await appendsNothing(async () => {
          device.socket.send(JSON.stringify(frame));
          await device.until((d) => d.frames.length > answered || d.closeCode !== undefined, 'an answer');
        });
        expect(device.closeCode, JSON.stringify(frame)).to.equal(undefined);
        expect(device.frames[answered], JSON.stringify(frame)).to.have.nested.property('error.code', 'bad_frame');
        expect(device.frames[answered], JSON.stringify(frame))
          .to.have.nested.property('error.message')
          .that.matches(/Unicode/);
      }
    } finally {
      device.socket.close();
    }
  });

  it('GraphQL over HTTP: a variable with a lone surrogate is BAD_USER_INPUT, not INTERNAL_SERVER_ERROR', async () => {
    const sent = await appendsNothing(() =>
      graphql(test.url, ticket, 'mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }', {
        i: { to: ['surrogate-user'], title: 't', content: 'c', requestId: LONE },
      }),
    );
    expect(sent.errors?.map((e) => e.extensions?.code)).to.deep.equal(['BAD_USER_INPUT']);
    expect(sent.errors?.[0]?.message).to.match(/i\.requestId: .*Unicode/);
    expect(sent.status).to.be.below(500);
  });

  it('GraphQL over graphql-ws: the same operation is BAD_USER_INPUT, the socket kept', async () => {
    const socket = GraphqlSocket.connect(test.url, { ticket });
    try {
      const answer = await appendsNothing(() =>
        socket.request('mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }', {
          i: { to: ['surrogate-user'], title: 't', content: 'c', requestId: LONE },
        }),
      );
      expect(answer.errors?.map((e) => e.extensions?.code)).to.deep.equal(['BAD_USER_INPUT']);
      const me = await socket.request<{ me: { userId: string } }>('{ me { userId } }');
      expect(me.data?.me.userId).to.equal('surrogate-user');
    } finally {
      await socket.close();
    }
  });

  it('datahub: a lone surrogate anywhere in a JSON body (a value or a key) is 400 {code: bad_request}', async () => {
    const bodies: Array<[string, unknown]> = [
      ['/notifications', { type: 'admin_message', receiver: 'surrogate-user', data: { content: LONE } }],
      ['/notifications', { type: 'admin_message', receiver: 'surrogate-user', data: { content: 'c', [LONE]: 'x' } }],
      ['/notifications', { type: 'private_message', receiver: LONE, data: { content: 'c' } }],
      [
        '/topics/to_notifications.json',
        {
          type: 'comment_reply',
          receiver: 'surrogate-user',
          sender: 's',
          data: { content: 'c', nested: [{ deep: LONE }] },
        },
      ],
    ];
    for (const [path, body] of bodies) {
      const headers: Record<string, string> = path.startsWith('/topics')
        ? { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' }
        : { authorization: `Token ${admin}` };
      const answer = await appendsNothing(() => postJson(path, body, headers));
      expect(answer.status, JSON.stringify(body)).to.equal(400);
      expect(answer.body.code).to.equal('bad_request');
      expect(answer.body.message).to.match(/Unicode/);
    }
  });

  it('ONE-PUSH: register and send with a lone surrogate are 400 in its Spring envelope', async () => {
    for (const [path, body] of [
      ['/msgpush/register', { alias: 'a', appId: 'camel', platform: 'ANDROID', nativeToken: LONE }],
      [
        '/msgpush/send',
        {
          appId: 'camel',
          appKey: 'EERWERRRRE',
          platform: 'ALL',
          pushMsgType: 'MSG',
          audienceType: 'ALL',
          audiences: ['ALL'],
          alert: 'a',
          extra: LONE,
        },
      ],
    ] as const) {
      const answer = await appendsNothing(() => postJson(path, body));
      expect(answer.status, path).to.equal(400);
      expect(answer.body).to.include({ status: 400, error: 'Bad Request', path });
      expect(answer.body.message).to.match(/Unicode/);
    }
  });

  it('ONE-PUSH device socket: a confirmation with a lone surrogate is answered bad_frame, the socket kept', async () => {
    const registered = await postJson('/msgpush/register', {
      alias: 'surrogate-device',
      appId: 'camel',
      platform: 'ANDROID',
      nativeToken: 'surrogate-device',
    });
    const device = await DeviceSocket.connect(test.url, registered.body.id as string);
    try {
      await appendsNothing(async () => {
        device.socket.send(JSON.stringify({ confirm: LONE }));
        await device.until((d) => d.frames.length > 0 || d.closeCode !== undefined, 'an answer');
      });
      expect(device.closeCode).to.equal(undefined);
      expect(device.frames[0]).to.have.nested.property('error.code', 'bad_frame');
    } finally {
      device.close();
    }
  });

  it('topvdn: a server push with a lone surrogate is 400 {code, message}', async () => {
    const answer = await appendsNothing(() =>
      postJson(
        '/v2/message/server/push',
        { proxy: 0, payload: { msg: 'aGVsbG8=', clients: [1000001], [LONE]: 1 } },
        { 'x-app-id': 'camel', 'x-app-key': 'EERWERRRRE' },
      ),
    );
    expect(answer.status).to.equal(400);
    expect(answer.body.code).to.equal('bad_request');
    expect(answer.body.message).to.match(/Unicode/);
  });

  it("Koala: its encodings (query, urlencoded, multipart) cannot carry a lone surrogate — a surrogate's UTF-8 bytes arrive as U+FFFD, well-formed", async () => {
    const surrogateBytes = Buffer.from([0xed, 0xa0, 0x80]);
    const multipart = Buffer.concat([
      Buffer.from(
        `--b\r\nContent-Disposition: form-data; name="ticket"\r\n\r\n${admin}\r\n--b\r\nContent-Disposition: form-data; name="users"\r\n\r\nsurrogate-user\r\n`,
      ),
      Buffer.from('--b\r\nContent-Disposition: form-data; name="content"\r\n\r\nm'),
      surrogateBytes,
      Buffer.from('\r\n--b--\r\n'),
    ]);
    const requests: RequestInit[] = [
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `ticket=${encodeURIComponent(admin)}&users=surrogate-user&content=u%ED%A0%80`,
      },
      { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=b' }, body: multipart },
    ];
    for (const [i, init] of requests.entries()) {
      const sent = await fetch(`${test.url}/koala/api/mas/messages?title=%ED%A0%80`, init);
      const body = (await sent.json()) as { status: number };
      expect(body.status, JSON.stringify(body)).to.equal(0);
      const listed = await eventually(async () => {
        const answer = await graphql<{ notifications: { nodes: Array<{ title: string; content: string }> } }>(
          test.url,
          ticket,
          '{ notifications(first: 1) { nodes { title content } } }',
        );
        expect(answer.data?.notifications.nodes[0]?.content).to.match(i === 0 ? /^u/ : /^m/);
        return answer.data!.notifications.nodes[0]!;
      });
      expect(`${listed.title}${listed.content}`).not.to.match(/\p{Cs}/u);
      expect(listed.content).to.contain('\uFFFD');
    }
  });
});
