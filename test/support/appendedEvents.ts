import { expect } from 'chai';

/** A `HERALD_METRICS_TOKEN` for tests (at least 32 characters): start herald with `{ metricsToken }`. */
export const TEST_METRICS_TOKEN = 'metrics-token-of-the-e2e-tests-0123456789';

/** Events appended, by type. */
export type AppendedEvents = Readonly<Record<string, number>>;

const APPENDED = /^herald_events_appended_total\{type="([^"]+)"\} (\d+)$/gm;

/**
 * The events this herald node has appended so far, by type, as GET /metrics counts them
 * (`herald_events_appended_total`, docs/operations.md): counted once an append has committed, so a test
 * that compares two counts sees every append its requests made in between, whether or not the store's
 * global order shows them yet. herald must run with `metricsToken: token`.
 */
export async function appendedEvents(baseUrl: string, token = TEST_METRICS_TOKEN): Promise<AppendedEvents> {
  const response = await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  expect(response.status, 'GET /metrics').to.equal(200);
  const counts: Record<string, number> = {};
  for (const [, type, count] of (await response.text()).matchAll(APPENDED)) counts[type!] = Number(count);
  return counts;
}

/** The events appended since `before` (an earlier `appendedEvents`), by type: only the types that grew. */
export async function appendedSince(
  baseUrl: string,
  before: AppendedEvents,
  token = TEST_METRICS_TOKEN,
): Promise<AppendedEvents> {
  const since: Record<string, number> = {};
  for (const [type, count] of Object.entries(await appendedEvents(baseUrl, token)))
    if (count > (before[type] ?? 0)) since[type] = count - (before[type] ?? 0);
  return since;
}
