import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import type { Config } from '../../src/config';
import type { Herald } from '../../src/herald';
import { eventually } from '../support/eventually';
import { startHeraldOn, TestClock } from '../support/herald';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { createRtioDevice, RtioDevice } from '../support/rtioDevice';
import { RTIO_APP, rtioAdminTicket, rtioReportHistory } from '../support/rtioReportHistory';

// RTIO reports (shared/seeds/004_e2f5c37d54658cec.txt, 消息通知): a device's report goes to $notifyurl
// as {nonce, device_id, device_message}; only {nonce, code: 1000} acknowledges it; anything else is
// tried again after 2, 4, 8 … s, 10 tries in all — durably, across a restart of herald.
describe('RTIO: device reports forwarded to the notify URL', function () {
  this.timeout(60_000);
  const clock = new TestClock();
  let testDatabase: TestDatabase;
  let config: Partial<Config>;
  let running: Herald | undefined;
  /** A ticket of the RTIO app's admin, per running herald. */
  const admins = new Map<Herald, Promise<string>>();
  const devices: RtioDevice[] = [];
  // The app's notify endpoint: records each request; answers the next queued answer (an ack when none).
  const received: Array<{ nonce: string; device_id: string; device_message: string; at: number }> = [];
  const answers: Array<'ack' | 'ackText' | 'http500' | 'code500' | 'junk'> = [];
  let notifyServer: http.Server;

  before(async () => {
    notifyServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const request = JSON.parse(body) as { nonce: string; device_id: string; device_message: string };
        received.push({ ...request, at: clock.now().getTime() });
        const answer = answers.shift() ?? 'ack';
        if (answer === 'http500') res.statusCode = 500;
        res.setHeader('content-type', 'application/json');
        res.end(
          answer === 'junk'
            ? 'not json'
            : JSON.stringify({
                nonce: request.nonce,
                code: answer === 'ack' ? 1000 : answer === 'ackText' ? '1000' : 500,
              }),
        );
      });
    });
    await new Promise<void>((resolve) => notifyServer.listen(0, '127.0.0.1', resolve));
    testDatabase = await createTestDatabase();
    config = {
      apps: [RTIO_APP],
      rtioNotifyUrl: `http://127.0.0.1:${(notifyServer.address() as AddressInfo).port}/notify`,
    };
  });
  after(async () => {
    for (const device of devices) device.socket.close();
    await running?.close();
    await testDatabase.drop();
    await new Promise((resolve) => notifyServer.close(resolve));
  });

  const start = async () => (running = await startHeraldOn(testDatabase.connectionString, config, clock.now));
  /** The report's forwarding as its recorded events tell it (GraphQL `events`). */
  const history = async (herald: Herald, reportId: string) => {
    if (!admins.has(herald)) admins.set(herald, rtioAdminTicket(herald.url));
    return rtioReportHistory(herald.url, await admins.get(herald)!, reportId);
  };
  const device = async (herald: Herald, nonce: string) => {
    const created = await createRtioDevice(herald.url, nonce);
    const connected = await RtioDevice.connect(herald.url, created);
    devices.push(connected);
    return { ...created, socket: connected };
  };
  const reportFrom = async (d: { socket: RtioDevice }, message: string) => {
    const before = d.socket.frames.length;
    d.socket.report(message);
    await d.socket.until(
      (s) => s.frames.slice(before).some((f) => typeof f.reported === 'string'),
      'the report recorded',
    );
    return d.socket.frames.slice(before).find((f) => typeof f.reported === 'string')!.reported as string;
  };
  /**
   * Once the last try's outcome is recorded (its retry time counts from herald's clock then), advances
   * the clock and wakes the forwarder, then waits until `count` requests reached the endpoint.
   */
  const advanceUntil = async (herald: Herald, reportId: string, seconds: number, count: number) => {
    await eventually(async () => expect((await history(herald, reportId)).attempts).to.equal(received.length));
    clock.advance(seconds * 1000);
    // herald's timers run on its own clock: the test wakes the forwarder after advancing it (no public way),
    // again while waiting, as the forwarder reads what is due from a read model that may trail the event.
    await eventually(() => {
      herald.reportForwarder!.wake();
      expect(received.length).to.equal(count);
    });
  };

  it('forwards a report; retries after 2 and 4 s until acknowledged', async () => {
    const herald = await start();
    const d = await device(herald, 'report-device-1');
    answers.push('http500', 'code500');
    const reportId = await reportFrom(d, 'this a device message');
    await eventually(() => expect(received.length).to.equal(1));
    expect(received[0]).to.deep.include({ device_id: d.device_id, device_message: 'this a device message' });
    expect(received[0]!.nonce).to.match(/^\d{1,19}$/);
    await advanceUntil(herald, reportId, 2, 2);
    await advanceUntil(herald, reportId, 4, 3);
    await eventually(async () =>
      expect(await history(herald, reportId)).to.deep.include({ status: 'forwarded', attempts: 3 }),
    );
    // The same nonce on every try.
    expect(new Set(received.map((r) => r.nonce)).size).to.equal(1);
    expect(received[1]!.at - received[0]!.at).to.be.at.least(2000);
  });

  it('takes code "1000" as text (a PHP app-service) as the acknowledgement', async () => {
    const herald = running ?? (await start());
    const d = await device(herald, 'report-device-text-ack');
    answers.push('ackText');
    const before = received.length;
    const reportId = await reportFrom(d, 'acknowledged as text');
    await eventually(() => expect(received.length).to.equal(before + 1));
    await eventually(async () =>
      expect(await history(herald, reportId)).to.deep.include({ status: 'forwarded', attempts: 1 }),
    );
  });

  it('gives up after 10 tries (2, 4, … 512 s apart), and a restart mid-schedule continues it', async () => {
    const herald = running!;
    const d = await device(herald, 'report-device-2');
    received.length = 0;
    answers.push(...Array.from({ length: 12 }, () => 'junk' as const));
    const reportId = await reportFrom(d, 'nobody listens');
    await eventually(() => expect(received.length).to.equal(1));
    await advanceUntil(herald, reportId, 2, 2);
    await advanceUntil(herald, reportId, 4, 3);
    // herald stops with the 4th try due in 8 s; the next one picks the schedule up from the read model.
    await herald.close();
    running = undefined;
    const next = await start();
    await advanceUntil(next, reportId, 8, 4);
    for (let attempt = 4; attempt < 10; attempt++) await advanceUntil(next, reportId, 2 ** attempt, attempt + 1);
    await eventually(async () =>
      expect(await history(next, reportId)).to.deep.include({
        status: 'failed',
        attempts: 10,
        lastError: 'the answer is not JSON',
        nextAttemptAt: null,
      }),
    );
    // No 11th try, however long.
    clock.advance(3600_000);
    next.reportForwarder!.wake();
    const { events } = await history(next, reportId);
    expect(events.map((e) => e.type)).to.deep.equal([
      'RtioDeviceReported',
      ...Array.from({ length: 10 }, () => 'RtioReportForwardFailed'),
    ]);
    expect(received).to.have.length(10);
  });
});
