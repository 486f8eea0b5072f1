import type { Pool, PoolClient } from 'pg';
import { RtioReportEvent } from '../domain/rtio/rtio';
import { UUID } from '../domain/text';
import { prepared } from '../src/postgres/database';
import { Columns } from '../src/projection/columns';
import { eventDecoder, eventTypesOf } from '../src/projection/eventDecoder';
import type { Projection } from '../src/projection/projection';
import type { PendingReports, ReportStatus } from '../src/rtio/reportForwarder';
import type { Prunable } from '../src/storage/retention';
import { keyedPruning } from './pruning';

/** Report events; one whose data is refused is parked by the runner, not skipped. */
const reportEvents = eventDecoder(RtioReportEvent, (event) =>
  UUID.test(event.data.reportId) ? undefined : 'reportId is not a UUID',
);

/** A report's forwarding outcome as the batch leaves it: one row per report. */
type Outcome = {
  id: string;
  status: string;
  attempts: number;
  next: string | null;
  error: string | null;
  at: string;
  first: string;
  position: string;
};

/**
 * RTIO devices' reports and how far their forwarding got: the outbox the report forwarder reads (what is
 * due), and a report's status. The message itself is not copied: the forwarder reads it from the
 * report's stream, where it also decides.
 *
 * A batch is two statements: one inserts the batch's reports, one applies each report's outcomes,
 * folded per report in position order first; an outcome only moves a row forward (guarded by position).
 */
export const rtioProjection: Projection = {
  name: 'rtio',
  version: 1,
  tables: ['rtio_reports'],
  eventTypes: eventTypesOf(reportEvents),
  migrations: [
    {
      id: 'projection/rtio/001',
      sql: `
        CREATE TABLE rtio_reports (
          report_id uuid PRIMARY KEY,
          app_id text NOT NULL,
          device_id text NOT NULL,
          status text NOT NULL CHECK (status IN ('pending', 'forwarded', 'failed')),
          attempts integer NOT NULL,
          next_attempt_at timestamptz,
          last_error text,
          reported_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL,
          position bigint NOT NULL
        );
        CREATE INDEX rtio_reports_due ON rtio_reports (next_attempt_at, report_id) WHERE status = 'pending';
      `,
    },
    {
      // Retention (reportPruning): forwarded reports by when they were forwarded.
      id: 'projection/rtio/002-retention',
      sql: `CREATE INDEX rtio_reports_forwarded ON rtio_reports (updated_at) WHERE status = 'forwarded'`,
    },
  ],

  async handle(events, tx) {
    const reported = new Columns<{ id: string; app: string; device: string; at: string; position: string }>([
      'id',
      'app',
      'device',
      'at',
      'position',
    ]);
    const outcomes = new Map<string, Outcome>();
    for (const recorded of events) {
      const event = reportEvents.decode(recorded);
      if (!event) continue;
      const position = recorded.position.toString();
      const id = event.data.reportId;
      if (event.type === 'RtioDeviceReported') {
        reported.push({ id, app: event.data.appId, device: event.data.deviceId, at: event.data.reportedAt, position });
        continue;
      }
      const before = outcomes.get(id);
      const common = {
        id,
        attempts: Math.max(before?.attempts ?? 0, event.data.attempt),
        first: before?.first ?? position,
        position,
      };
      outcomes.set(
        id,
        event.type === 'RtioReportForwarded'
          ? { ...common, status: 'forwarded', next: null, error: before?.error ?? null, at: event.data.forwardedAt }
          : {
              ...common,
              status: event.data.final ? 'failed' : 'pending',
              next: event.data.retryAt,
              error: event.data.error,
              at: event.data.failedAt,
            },
      );
    }
    if (reported.length > 0) await tx.query({ name: 'rtio-reported', text: REPORTED, values: reported.values() });
    if (outcomes.size > 0) {
      const rows = new Columns<Outcome>(['id', 'status', 'attempts', 'next', 'error', 'at', 'first', 'position']);
      for (const outcome of outcomes.values()) rows.push(outcome);
      await tx.query({ name: 'rtio-report-outcome', text: OUTCOME, values: rows.values() });
    }
    return [];
  },
};

// Reports first: an outcome in the same batch as its report updates the row the first statement made.
const REPORTED = `
  INSERT INTO rtio_reports (report_id, app_id, device_id, status, attempts, next_attempt_at, reported_at, updated_at, position)
  SELECT u.id, u.app, u.device, 'pending', 0, u.at, u.at, u.at, u.position
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[]) AS u(id, app, device, at, position)
  ON CONFLICT (report_id) DO NOTHING`;

const OUTCOME = `
  UPDATE rtio_reports r
     SET status = u.status, attempts = greatest(r.attempts, u.attempts), next_attempt_at = u.next,
         last_error = coalesce(u.error, r.last_error), updated_at = u.at, position = u.position
    FROM unnest($1::uuid[], $2::text[], $3::integer[], $4::timestamptz[], $5::text[], $6::timestamptz[], $7::bigint[], $8::bigint[])
         AS u(id, status, attempts, next, error, at, first, position)
   WHERE r.report_id = u.id AND r.position < u.first`;

/** The read side of this projection, behind the interface src/rtio declares. */
export function rtioReportQueries(pool: Pool | PoolClient): PendingReports {
  return {
    async due(now, limit) {
      const { rows } = await pool.query<{ report_id: string; device_id: string }>(
        prepared(
          `SELECT report_id, device_id FROM rtio_reports WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, report_id LIMIT $2`,
          [now, limit],
        ),
      );
      return rows.map((row) => ({ reportId: row.report_id, deviceId: row.device_id }));
    },
    async nextAttemptAt() {
      const { rows } = await pool.query<{ next: Date | null }>(
        prepared(`SELECT min(next_attempt_at) AS next FROM rtio_reports WHERE status = 'pending'`, []),
      );
      return rows[0]?.next ?? undefined;
    },
    async byId(reportId) {
      if (!UUID.test(reportId)) return undefined;
      const { rows } = await pool.query<{
        report_id: string;
        app_id: string;
        device_id: string;
        status: ReportStatus['status'];
        attempts: number;
        next_attempt_at: Date | null;
        last_error: string | null;
      }>(
        prepared(
          `SELECT report_id, app_id, device_id, status, attempts, next_attempt_at, last_error FROM rtio_reports WHERE report_id = $1`,
          [reportId],
        ),
      );
      const row = rows[0];
      return (
        row && {
          reportId: row.report_id,
          appId: row.app_id,
          deviceId: row.device_id,
          status: row.status,
          attempts: row.attempts,
          nextAttemptAt: row.next_attempt_at,
          lastError: row.last_error,
        }
      );
    },
  };
}

/** Retention of RTIO reports (domain/retention.ts): a forwarded one, forwarded before the cutoff; pending and failed ones are kept. */
export function reportPruning(pool: Pool): Prunable {
  return keyedPruning(pool, {
    table: 'rtio_reports',
    category: 'rtioReports',
    key: 'report_id',
    removable: `status = 'forwarded' AND updated_at < $1`,
    orderBy: 'updated_at',
    stream: `'rtio-report-' || report_id`,
  });
}
