import { expect } from 'chai';
import { DeviceSocket } from '../support/deviceSocket';
import { eventually } from '../support/eventually';
import { HeraldProcess } from '../support/heraldProcess';
import { heraldProcessSetup, type HeraldProcessSetup } from '../support/heraldProcessSetup';
import { describeTarget } from '../support/postgres';

/**
 * Issue 21, item 12, with a real crash: herald killed -9 while an app sends on ONE-PUSH
 * (shared/seeds/003_834cb051d61fc48e.txt) with `needConfirm` and its device confirms every message.
 * The app sends again what it saw no answer to, with the same Idempotency-Key; the device, connected
 * again, confirms again what it saw no answer to. Every send is one push (one messageId), and every
 * confirmation is answered {"confirmed"} in the end.
 */
describe(`ONE-PUSH across kill -9 (${process.env.DATABASE_URL ? describeTarget() : 'embedded defaults'})`, function () {
  this.timeout(180_000);
  let setup: HeraldProcessSetup | undefined;
  let env: Record<string, string>;
  let base: string;

  before(async () => {
    setup = await heraldProcessSetup('herald-onepush-crash-');
    ({ env, base } = setup);
  });
  after(() => setup?.remove());

  /** A device that confirms every message it receives, and remembers which confirmations were answered. */
  const confirmingDevice = async (deviceId: string, seen: Set<string>, answered: Set<string>) => {
    const device = await DeviceSocket.connect(base, deviceId);
    device.socket.on('error', () => undefined); // the server vanishing is what this test is about
    device.socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { messageId?: string; confirmed?: string };
      if (frame.confirmed) answered.add(frame.confirmed);
      if (frame.messageId) {
        seen.add(frame.messageId);
        device.confirm(frame.messageId);
      }
    });
    return device;
  };

  it('sends retried with their key land once; confirmations sent again are answered', async () => {
    const first = HeraldProcess.start(env);
    await first.waitForHttp(`${base}/readyz`);
    const register = await fetch(`${base}/msgpush/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ appId: 'camel', alias: 'crash-phone', platform: 'ANDROID', nativeToken: 'crash-phone' }),
    });
    const deviceId = ((await register.json()) as { id: string }).id;
    const seen = new Set<string>();
    const confirmedAnswers = new Set<string>();
    const before = await confirmingDevice(deviceId, seen, confirmedAnswers);

    const send = async (i: number): Promise<string> => {
      const response = await fetch(`${base}/msgpush/send`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': `crash-${i}` },
        body: JSON.stringify({
          appId: 'camel',
          appKey: 'EERWERRRRE',
          platform: 'ALL',
          audienceType: 'ALIAS',
          audiences: ['crash-phone'],
          alert: `crash ${i}`,
          needConfirm: true,
          duration: 3600,
        }),
        signal: AbortSignal.timeout(15_000),
      });
      const body = (await response.json()) as { requestId?: string };
      if (response.status !== 200 || !body.requestId)
        throw new Error(`send ${i}: ${response.status} ${JSON.stringify(body)}`);
      return body.requestId;
    };

    // 8 senders until 60 sends are answered, then kill -9 with sends and confirmations in flight.
    const answered = new Map<number, string>();
    const unanswered = new Set<number>();
    let next = 0;
    let killed = false;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (!killed) {
          const i = next++;
          await send(i).then(
            (id) => answered.set(i, id),
            () => unanswered.add(i),
          );
          if (answered.size >= 60 && !killed) {
            killed = true;
            first.kill('SIGKILL');
          }
        }
      }),
    );
    await first.exitCode();
    await before.until((s) => s.closeCode !== undefined, 'the socket closing with herald');
    expect(unanswered.size, 'sends were in flight when herald was killed').to.be.greaterThan(0);

    const second = HeraldProcess.start(env);
    await second.waitForHttp(`${base}/readyz`);
    try {
      // The app sends again what it saw no answer to, with the same key.
      for (const i of unanswered) answered.set(i, await send(i));
      // The device connects again: it gets what is still open, and confirms again what was not answered.
      const after = await confirmingDevice(deviceId, seen, confirmedAnswers);
      try {
        for (const messageId of seen) if (!confirmedAnswers.has(messageId)) after.confirm(messageId);
        const sent = new Set(answered.values());
        expect(answered.size).to.equal(next);
        expect(sent.size, 'one push per send').to.equal(next);
        await eventually(
          () => {
            expect(
              [...seen].filter((id) => !sent.has(id)),
              'messages of no send (a second push)',
            ).to.deep.equal([]);
            expect(
              [...sent].filter((id) => !seen.has(id)),
              'sends the device never received',
            ).to.deep.equal([]);
            expect(
              [...seen].filter((id) => !confirmedAnswers.has(id)),
              'confirmations never answered',
            ).to.deep.equal([]);
          },
          { timeoutMs: 30_000 },
        );
        expect(
          after.frames.filter((f) => f.error !== undefined),
          'no confirmation refused',
        ).to.deep.equal([]);
      } finally {
        after.close();
      }
    } finally {
      second.kill('SIGTERM');
      expect(await second.exitCode()).to.equal(0);
    }
  });
});
