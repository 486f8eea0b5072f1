import { rtioReportStreamName } from '../../domain/rtio/rtio';
import { issueTicket } from './herald';
import { streamEvents, type StoredEvent } from './storedEvents';

/** The RTIO app (`RTIO_APP_ID`'s default) as `HERALD_APPS` names it, so that its admin can read its events. */
export const RTIO_APP = { appId: 'rtio', secret: 'rtio-app-secret' } as const;

/** A ticket with role admin of `RTIO_APP`. */
export const rtioAdminTicket = (baseUrl: string): Promise<string> =>
  issueTicket(baseUrl, 'rtio-auditor', 'admin', RTIO_APP.appId, RTIO_APP.secret);

/** Where an RTIO report's forwarding stands, as its recorded events tell it (docs/rtio.md). */
export interface RtioReportHistory {
  readonly status: 'pending' | 'forwarded' | 'failed';
  /** Tries made and recorded. */
  readonly attempts: number;
  readonly lastError: string | null;
  /** When the next try is due: the last failed try's `retryAt`, null once forwarded or given up. */
  readonly nextAttemptAt: string | null;
  readonly events: readonly StoredEvent[];
}

/**
 * An RTIO report's forwarding, read from its stream through GraphQL `events` by an admin of the RTIO app
 * (`adminTicket`: a ticket of `RTIO_APP_ID` with role admin; that app must be in `HERALD_APPS`).
 */
export async function rtioReportHistory(
  baseUrl: string,
  adminTicket: string,
  reportId: string,
): Promise<RtioReportHistory> {
  const events = await streamEvents(baseUrl, adminTicket, rtioReportStreamName(reportId));
  const tries = events.filter((event) => event.type !== 'RtioDeviceReported');
  const last = tries.at(-1);
  const failures = tries.filter((event) => event.type === 'RtioReportForwardFailed');
  return {
    status: last?.type === 'RtioReportForwarded' ? 'forwarded' : last?.data.final === true ? 'failed' : 'pending',
    attempts: tries.length,
    lastError: (failures.at(-1)?.data.error as string | undefined) ?? null,
    nextAttemptAt: last?.type === 'RtioReportForwardFailed' ? (last.data.retryAt as string | null) : null,
    events,
  };
}
