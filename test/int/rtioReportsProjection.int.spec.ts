import { expect } from 'chai';
import type { Pool } from 'pg';
import { RtioReportEvent } from '../../domain/rtio/rtio';
import { rtioProjection, rtioReportQueries } from '../../projections/rtioReports';
import { UndecodableEventError } from '../../src/projection/eventDecoder';
import { projectionSpecification } from '../support/projectionSpecification';

/**
 * The RTIO reports read model: the report forwarder's outbox (which reports are due, when the next one
 * is) and a report's status. Given a device's reports and the forwarder's outcomes, what its query
 * interface answers. An outcome only moves a report forward, whatever the batching.
 */
describe('rtio reports projection: what is due, and how far each report got', () => {
  const spec = projectionSpecification(
    rtioProjection,
    RtioReportEvent,
    (event) => `rtio-report-${event.data.reportId}`,
  );
  const at = (second: number) => new Date(Date.UTC(2026, 0, 1) + second * 1000).toISOString();
  const reportIdOf = (i: number) => `00000000-0000-4000-8000-00000000a00${i}`;
  const [r1, r2, r3] = [1, 2, 3].map(reportIdOf) as [string, string, string];
  const report = { appId: 'camel', deviceId: 'dev-1' };
  const reported = (reportId: string, second: number): RtioReportEvent => ({
    type: 'RtioDeviceReported',
    data: { reportId, ...report, nonce: `nonce-${second}`, message: 'temperature 21', reportedAt: at(second) },
  });
  const forwarded = (reportId: string, attempt: number, second: number): RtioReportEvent => ({
    type: 'RtioReportForwarded',
    data: { reportId, ...report, attempt, forwardedAt: at(second) },
  });
  const failed = (reportId: string, attempt: number, second: number, retryAt: number | null): RtioReportEvent => ({
    type: 'RtioReportForwardFailed',
    data: {
      reportId,
      ...report,
      attempt,
      error: `refused ${attempt}`,
      final: retryAt === null,
      failedAt: at(second),
      retryAt: retryAt === null ? null : at(retryAt),
    },
  });
  const statusOf = (reportId: string) => (pool: Pool) => rtioReportQueries(pool).byId(reportId);
  const dueAt = (second: number) => (pool: Pool) => rtioReportQueries(pool).due(new Date(at(second)), 10);
  const pending = (reportId: string, attempts: number, next: number, lastError: string | null) => ({
    reportId,
    ...report,
    status: 'pending' as const,
    attempts,
    nextAttemptAt: new Date(at(next)),
    lastError,
  });

  it('a report is pending and due from when it was reported', async () => {
    const given = spec.given([reported(r1, 10)]);
    await given.expectAnswer(statusOf(r1), pending(r1, 0, 10, null));
    await given.expectAnswer(dueAt(9), []);
    await given.expectAnswer(dueAt(10), [{ reportId: r1, deviceId: 'dev-1' }]);
    await given.expectAnswer((pool) => rtioReportQueries(pool).nextAttemptAt(), new Date(at(10)));
  });

  it('a failed try makes it due again at its retry time, with the error; a final failure ends it', async () => {
    const retried = spec.given([reported(r1, 10), failed(r1, 1, 11, 13)]);
    await retried.expectAnswer(statusOf(r1), pending(r1, 1, 13, 'refused 1'));
    await retried.expectAnswer(dueAt(12), []);
    await retried.expectAnswer(dueAt(13), [{ reportId: r1, deviceId: 'dev-1' }]);
    const ended = spec.given([reported(r1, 10), failed(r1, 1, 11, 13), failed(r1, 2, 13, null)]);
    await ended.expectAnswer(statusOf(r1), {
      ...pending(r1, 2, 0, 'refused 2'),
      status: 'failed' as const,
      nextAttemptAt: null,
    });
    await ended.expectAnswer(dueAt(100), []);
    await ended.expectAnswer((pool) => rtioReportQueries(pool).nextAttemptAt(), undefined);
  });

  it('forwarded: no longer due, the last error kept', async () => {
    const given = spec.given([reported(r1, 10), failed(r1, 1, 11, 13), forwarded(r1, 2, 13)]);
    await given.expectAnswer(statusOf(r1), {
      ...pending(r1, 2, 0, 'refused 1'),
      status: 'forwarded' as const,
      nextAttemptAt: null,
    });
    await given.expectAnswer(dueAt(100), []);
  });

  it('due lists the earliest first, and only pending reports; an unknown or malformed id has no status', async () => {
    const given = spec.given([
      reported(r1, 30),
      reported(r2, 10),
      reported(r3, 20),
      forwarded(r3, 1, 21),
      failed(r2, 1, 11, 40),
    ]);
    await given.expectAnswer(dueAt(100), [
      { reportId: r1, deviceId: 'dev-1' },
      { reportId: r2, deviceId: 'dev-1' },
    ]);
    await given.expectAnswer(dueAt(35), [{ reportId: r1, deviceId: 'dev-1' }]);
    await given.expectAnswer(statusOf(reportIdOf(9)), undefined);
    await given.expectAnswer(statusOf('not-a-uuid'), undefined);
  });

  it('an outcome of a report never reported, or one redelivered after a later one, changes nothing', async () => {
    const history = [reported(r1, 10), failed(r1, 1, 11, 13), forwarded(r1, 2, 13)];
    const given = spec.given([failed(r2, 1, 1, 5), ...history], { batchSizes: [1] });
    await given.expectRows('SELECT report_id FROM rtio_reports', [{ report_id: r1 }]);
    const settled = await given.answer(statusOf(r1));
    // The runner redelivers the failure (a batch committed, its checkpoint not): the row stays forwarded.
    await spec.handle([given.recorded[2]!]);
    expect(await rtioReportQueries(spec.pool).byId(r1)).to.deep.equal(settled);
    expect(settled?.status).to.equal('forwarded');
  });

  it('leaves the same table however the events are batched (one batch of all = a rebuild)', async () => {
    const history = [
      reported(r1, 10),
      reported(r2, 11),
      failed(r1, 1, 12, 14),
      failed(r2, 1, 12, 16),
      failed(r1, 2, 14, 18),
      reported(r3, 15),
      forwarded(r2, 2, 16),
      failed(r1, 3, 18, null),
      failed(r3, 1, 19, 23),
    ];
    const table = 'SELECT * FROM rtio_reports ORDER BY report_id';
    const oneByOne = await spec.given(history, { batchSizes: [1] }).rows(table);
    expect(oneByOne.map((row) => [row.status, row.attempts])).to.deep.equal([
      ['failed', 3],
      ['forwarded', 2],
      ['pending', 1],
    ]);
    for (const batchSizes of [[history.length], [2, 3], [4]])
      await spec.given(history, { batchSizes }).expectRows(table, oneByOne);
  });

  it('refuses a report whose id is not a UUID, for the runner to park', async () => {
    const error = await spec
      .given([reported('not-a-uuid', 1)])
      .publications()
      .catch((e: unknown) => e);
    expect(error).to.be.instanceOf(UndecodableEventError);
    expect((error as Error).message).to.include('reportId is not a UUID');
  });
});
