import { rtioReportStreamName, type RtioReportCommand } from '../../domain/rtio/rtio';
import { rtioReportAggregate } from '../command/aggregates';
import type { EventStore } from '../eventStore/eventStore';
import type { Clock } from '../runtime/clock';
import { DueWork } from '../runtime/dueWork';
import type { Logger } from '../runtime/logger';
import { outboxWork } from '../runtime/outbox';

/** A report as the read model shows it (implemented by projections/rtioReports.ts). */
export interface ReportStatus {
  readonly reportId: string;
  readonly appId: string;
  readonly deviceId: string;
  readonly status: 'pending' | 'forwarded' | 'failed';
  readonly attempts: number;
  readonly nextAttemptAt: Date | null;
  readonly lastError: string | null;
}

/** What the forwarder reads of the reports read model. */
export interface PendingReports {
  /** Pending reports whose next attempt is due at `now`, earliest first. */
  due(now: Date, limit: number): Promise<Array<{ reportId: string; deviceId: string }>>;
  nextAttemptAt(): Promise<Date | undefined>;
  byId(reportId: string): Promise<ReportStatus | undefined>;
}

/** POSTs a JSON body, answering the status and the body, until `signal` aborts (tests may pass their own). */
export type PostForJson = (url: string, body: string, signal: AbortSignal) => Promise<{ status: number; body: string }>;

/** One try's bound (docs/api/rtio.md): a notify URL that does not answer within it fails that try. */
export const NOTIFY_TIMEOUT_MS = 5000;
const MAX_ANSWER_BYTES = 4096;

export const postForJson: PostForJson = async (url, body, signal) => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    redirect: 'manual',
    signal,
  });
  const text = await response.text();
  return { status: response.status, body: text.slice(0, MAX_ANSWER_BYTES) };
};

/**
 * Forwards RTIO devices' reports to RTIO_NOTIFY_URL (shared/seeds/004_e2f5c37d54658cec.txt, 消息通知):
 * `{nonce, device_id, device_message}`, acknowledged by `{nonce, code: 1000}`; anything else, or no
 * answer within NOTIFY_TIMEOUT_MS, is a failure, tried again after 2, 4, 8 … s, 10 tries in all
 * (domain/rtio/rtio.ts). An outbox (src/runtime/outbox.ts) like the mailer: what is due lives in the read model,
 * each attempt is decided on the report's stream, and reports are forwarded side by side, so one that
 * hangs delays no other.
 */
export class ReportForwarder extends DueWork<{ readonly reportId: string; readonly deviceId: string }> {
  override readonly name = 'rtio report forwarder';

  constructor(deps: {
    readonly store: EventStore;
    readonly pending: PendingReports;
    readonly clock: Clock;
    readonly log: Logger;
    readonly notifyUrl: string;
    readonly post?: PostForJson;
    readonly readYourWrites?: (position: bigint | undefined) => Promise<void>;
  }) {
    super(
      outboxWork(deps, {
        doing: 'forwarding a device report',
        actor: 'herald:rtio-reports',
        aggregate: rtioReportAggregate,
        streamOf: (report) => rtioReportStreamName(report.reportId),
        idOf: (report) => report.reportId,
        // Every report goes to the one RTIO_NOTIFY_URL: the key is the device, so one device's reports (a
        // flood, or ones the notify URL is slow to take) take at most half the attempts in flight. A URL
        // that hangs for every report delays all alike (each try still ends at its timeout).
        keyOf: (report) => report.deviceId,
        attemptTimeoutMs: NOTIFY_TIMEOUT_MS,
        // Retries are 2 s apart at first: looked for at least twice a second while others are in flight.
        maxWaitMs: 500,
        attempt: async (report, signal) => {
          const answer = await (deps.post ?? postForJson)(
            deps.notifyUrl,
            JSON.stringify({ nonce: report.nonce, device_id: report.deviceId, device_message: report.message }),
            signal,
          );
          const problem = acknowledgementProblem(answer, report.nonce);
          return problem === undefined ? { ok: true } : { ok: false, error: problem };
        },
        record: (outcome, attempt, now): RtioReportCommand =>
          outcome.ok
            ? { type: 'RecordForwarded', attempt, now }
            : { type: 'RecordForwardFailed', attempt, error: outcome.error, now },
        describe: (error) => (error instanceof Error ? error.message : String(error)),
        logOutcome: (report, attempt, outcome) => {
          if (!outcome.ok)
            deps.log.warn(
              { reportId: report.reportId, attempt, error: outcome.error },
              'rtio: forwarding a report failed',
            );
        },
      }),
    );
  }
}

/** Why an answer is not the seed's acknowledgement `{nonce, code: 1000}`; undefined when it is. */
function acknowledgementProblem(answer: { status: number; body: string }, nonce: string): string | undefined {
  if (answer.status < 200 || answer.status >= 300) return `HTTP ${answer.status}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body);
  } catch {
    return 'the answer is not JSON';
  }
  const reply = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  // The seed's code is an int; `"1000"` (an app-service in PHP, answering what it read as text) is the same code.
  const code = typeof reply.code === 'string' && reply.code.trim() === '1000' ? 1000 : reply.code;
  if (code !== 1000) return `code ${JSON.stringify(reply.code ?? null)}, not 1000`;
  if (reply.nonce !== undefined && reply.nonce !== nonce) return 'the answer is for another nonce';
  return undefined;
}
