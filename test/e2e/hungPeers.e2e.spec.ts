import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import type { Herald } from '../../src/herald';
import { NOTIFY_TIMEOUT_MS } from '../../src/rtio/reportForwarder';
import { eventually } from '../support/eventually';
import { startHeraldOn, TestClock } from '../support/herald';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { createRtioDevice, RtioDevice } from '../support/rtioDevice';
import { RTIO_APP, rtioAdminTicket, rtioReportHistory } from '../support/rtioReportHistory';

// Issue 21, item 9: one hung peer must not stall a whole worker. RTIO reports (seed 004,
// shared/seeds/004_e2f5c37d54658cec.txt: forwarded to $notifyurl, retried 2, 4, 8 … s, 10 tries) to a
// notify URL that never answers for one device: each try of that device's reports ends at the
// per-attempt timeout (5 s), side by side, while another device's reports are forwarded at once.
describe('RTIO: a notify URL that never answers for one device (issue 21, item 9)', function () {
  this.timeout(120_000);
  const clock = new TestClock();
  let testDatabase: TestDatabase;
  let herald: Herald | undefined;
  let admin: string;
  const devices: RtioDevice[] = [];
  let hungDeviceId = '';
  /** Requests of the hung device: when each came (herald's clock and real time) and when herald gave up on it. */
  const hung: Array<{ nonce: string; at: number; openedAt: number; closedAt?: number; response: http.ServerResponse }> =
    [];
  const answered: Array<{ device_id: string; nonce: string }> = [];
  let notifyServer: http.Server;
  const openHung = () => hung.filter((r) => r.closedAt === undefined).length;
  /** The most hung requests open at one time. */
  let mostOpen = 0;

  before(async () => {
    notifyServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const request = JSON.parse(body) as { nonce: string; device_id: string; device_message: string };
        if (request.device_id === hungDeviceId) {
          // Never answered: herald has to give up on its own.
          const entry: (typeof hung)[number] = {
            nonce: request.nonce,
            at: clock.now().getTime(),
            openedAt: Date.now(),
            response: res,
          };
          hung.push(entry);
          mostOpen = Math.max(mostOpen, openHung());
          res.on('close', () => (entry.closedAt = Date.now()));
          return;
        }
        answered.push(request);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ nonce: request.nonce, code: 1000 }));
      });
    });
    await new Promise<void>((resolve) => notifyServer.listen(0, '127.0.0.1', resolve));
    testDatabase = await createTestDatabase();
    herald = await startHeraldOn(
      testDatabase.connectionString,
      { apps: [RTIO_APP], rtioNotifyUrl: `http://127.0.0.1:${(notifyServer.address() as AddressInfo).port}/notify` },
      clock.now,
    );
    admin = await rtioAdminTicket(herald.url);
  });
  after(async () => {
    for (const device of devices) device.socket.close();
    for (const request of hung) request.response.destroy();
    await herald?.close();
    await testDatabase.drop();
    notifyServer.closeAllConnections();
    await new Promise((resolve) => notifyServer.close(resolve));
  });

  const device = async (nonce: string) => {
    const created = await createRtioDevice(herald!.url, nonce);
    const connected = await RtioDevice.connect(herald!.url, created);
    devices.push(connected);
    return { ...created, socket: connected };
  };
  /** Sends `messages` as reports at once; answers their report ids once all are recorded. */
  const report = async (d: { socket: RtioDevice }, messages: readonly string[]) => {
    const before = d.socket.frames.length;
    for (const message of messages) d.socket.report(message);
    const reported = () => d.socket.frames.slice(before).filter((f) => typeof f.reported === 'string');
    await d.socket.until(() => reported().length === messages.length, 'the reports recorded');
    return reported().map((f) => f.reported as string);
  };

  it("20 reports to the hung URL are tried side by side, each ending at the timeout; another device's report goes at once", async () => {
    const history = (reportId: string) => rtioReportHistory(herald!.url, admin, reportId);
    const stuck = await device('hung-device');
    hungDeviceId = stuck.device_id;
    const working = await device('working-device');

    const stuckReports = await report(
      stuck,
      Array.from({ length: 20 }, (_, i) => `stuck ${i}`),
    );
    // Every first try is made without waiting for another's answer (one after the other, the 20th
    // would start 95 s after the first): all 20 arrive well within the time one of them hangs.
    await eventually(() => expect(hung).to.have.length(20), { timeoutMs: 3 * NOTIFY_TIMEOUT_MS });
    expect(mostOpen, 'hung tries open at once').to.be.greaterThan(1);

    // The other device's report is forwarded while those hang.
    const [workingReport] = await report(working, ['fine']);
    await eventually(async () =>
      expect(await history(workingReport!)).to.deep.include({ status: 'forwarded', attempts: 1 }),
    );
    expect(answered.map((r) => r.device_id)).to.deep.equal([working.device_id]);

    // Each hung try is given up at the per-attempt timeout and recorded as a failed try, retried in 2 s.
    for (const reportId of stuckReports) {
      await eventually(
        async () =>
          expect(await history(reportId)).to.deep.include({
            status: 'pending',
            attempts: 1,
            lastError: `no answer within ${NOTIFY_TIMEOUT_MS} ms`,
          }),
        { timeoutMs: 30_000 },
      );
    }
    for (const request of hung) {
      expect(request.closedAt, 'herald closed the hung request').to.be.a('number');
      // Measured here from when the request had arrived, a little after herald's clock for it started.
      expect(request.closedAt! - request.openedAt).to.be.within(NOTIFY_TIMEOUT_MS - 1000, NOTIFY_TIMEOUT_MS + 5000);
    }

    // The second tries: due 2 s after each failure, all made then, again side by side.
    clock.advance(2000);
    // herald's timers run on its own clock: the test wakes the forwarder after advancing it (no public way),
    // again while waiting, as the forwarder reads what is due from a read model that may trail the events.
    await eventually(
      () => {
        herald!.reportForwarder!.wake();
        expect(hung).to.have.length(40);
      },
      { timeoutMs: 3 * NOTIFY_TIMEOUT_MS, intervalMs: 200 },
    );
    for (const reportId of stuckReports) {
      const { events } = await history(reportId);
      const failed = events.find((e) => e.type === 'RtioReportForwardFailed')!.data as {
        failedAt: string;
        retryAt: string;
      };
      expect(Date.parse(failed.retryAt) - Date.parse(failed.failedAt)).to.equal(2000);
    }
    const nonces = new Set(hung.slice(20).map((r) => r.nonce));
    expect(nonces.size).to.equal(20);
  });
});
