import { expect } from 'chai';
import fc from 'fast-check';
import {
  EmailEvent,
  emailDecider,
  emailStreamName,
  type EmailCommand,
  type EmailState,
} from '../../domain/email/email';
import { emailQueries, emailsProjection } from '../../projections/emails';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { projectionSpecification, type Given } from '../support/projectionSpecification';

/**
 * The projection applies a batch in two set-based statements. Whatever the batching (a rebuild's one
 * batch of everything, the live runner's small ones) it must leave the table the obvious one-event-at-
 * a-time fold leaves. Histories come from the decider, driven by generated commands over a few emails.
 */
describe('emails projection: set-based batches equal the one-by-one fold', () => {
  const spec = projectionSpecification(emailsProjection, EmailEvent, (event) => emailStreamName(event.data.emailId));

  const ids = [1, 2, 3].map((i) => `00000000-0000-4000-8000-00000000e00${i}`);
  const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();
  type Step = { email: number; kind: 'request' | 'sent' | 'failed'; attempt: number };
  // Mostly failures of the next attempt, so histories reach retries, successes after them and final failures.
  const step: fc.Arbitrary<Step> = fc.record({
    email: fc.nat(ids.length - 1),
    kind: fc.oneof(
      { arbitrary: fc.constant('request' as const), weight: 1 },
      { arbitrary: fc.constant('failed' as const), weight: 4 },
      { arbitrary: fc.constant('sent' as const), weight: 1 },
    ),
    attempt: fc.oneof(
      { arbitrary: fc.constant(0), weight: 4 },
      { arbitrary: fc.integer({ min: 1, max: 2 }), weight: 1 },
    ),
  });

  /** Commands through the decider: what it refuses or decides to nothing leaves no event. */
  function toEvents(steps: readonly Step[]): EmailEvent[] {
    const states = new Map<number, EmailState>();
    const events: EmailEvent[] = [];
    steps.forEach((s, i) => {
      const state = states.get(s.email) ?? emailDecider.initialState();
      const attempts = state.status === 'none' ? 0 : state.attempts;
      // attempt 0: the next one; 1, 2: one already recorded or just recorded (a racing mailer's).
      const attempt = Math.max(1, attempts + 1 - s.attempt);
      const command: EmailCommand =
        s.kind === 'request'
          ? {
              type: 'RequestEmail',
              emailId: ids[s.email]!,
              appId: 'camel',
              to: `u${s.email}@example.com`,
              subject: `s${i}`,
              content: 'c',
              isHtml: i % 2 === 0,
              now: at(i),
            }
          : s.kind === 'sent'
            ? { type: 'RecordEmailSent', attempt, ...(i % 3 > 0 && { messageId: `<m${i}@x>` }), now: at(i) }
            : { type: 'RecordEmailFailed', attempt, error: `e${i}`, now: at(i) };
      let decided: readonly EmailEvent[] = [];
      try {
        decided = emailDecider.decide(command, state);
      } catch {
        // refused: no event
      }
      states.set(s.email, decided.reduce(emailDecider.evolve, state));
      events.push(...decided);
    });
    return events;
  }

  /** One event at a time, in memory: the rows as `emailQueries` would show them. */
  function foldOneByOne(events: readonly RecordedEvent[]) {
    const rows = new Map<string, Record<string, unknown>>();
    for (const { type, data, position } of events) {
      const event = { type, data } as EmailEvent;
      const row = rows.get(event.data.emailId);
      if (event.type === 'EmailRequested') {
        const d = event.data;
        if (!row)
          rows.set(d.emailId, {
            emailId: d.emailId,
            appId: d.appId,
            to: d.to,
            subject: d.subject,
            isHtml: d.isHtml,
            status: 'pending',
            attempts: 0,
            nextAttemptAt: d.requestedAt,
            requestedAt: d.requestedAt,
            updatedAt: d.requestedAt,
            position,
          });
      } else if (row && (row.position as bigint) < position) {
        row.attempts = Math.max(row.attempts as number, event.data.attempt);
        row.position = position;
        if (event.type === 'EmailSent') {
          Object.assign(row, { status: 'sent', sentAt: event.data.sentAt, updatedAt: event.data.sentAt });
          delete row.nextAttemptAt;
          if (event.data.messageId !== null) row.messageId = event.data.messageId;
        } else {
          Object.assign(row, {
            status: event.data.final ? 'failed' : 'pending',
            lastError: event.data.error,
            updatedAt: event.data.failedAt,
          });
          if (event.data.retryAt === null) delete row.nextAttemptAt;
          else row.nextAttemptAt = event.data.retryAt;
        }
      }
    }
    return ids.map((id) => {
      const row = rows.get(id);
      if (!row) return null;
      const { position: _position, ...shown } = row;
      return shown;
    });
  }

  /** What `emailQueries` shows of each email, as JSON: dates become the ISO strings the events hold. */
  async function shown(given: Given) {
    const emails = await given.answer((pool) => Promise.all(ids.map((id) => emailQueries(pool).byId(id))));
    return emails.map((s) => (s ? (JSON.parse(JSON.stringify(s)) as Record<string, unknown>) : null));
  }

  it('for generated histories and batchings (one batch of all = a rebuild)', async function () {
    this.timeout(120_000);
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 5, maxLength: 40, size: 'max' }),
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 5 }),
        async (steps, batchSizes) => {
          const events = toEvents(steps);
          const expected = JSON.parse(JSON.stringify(foldOneByOne(spec.record(events)))) as unknown;
          const given = spec.given(events, { batchSizes });
          expect(await shown(given)).to.deep.equal(expected);
          // A batch applied again (as a runner without exactly-once would) changes nothing, even after later ones.
          await spec.handle(given.recorded.slice(0, batchSizes[0]));
          expect(await shown(given)).to.deep.equal(expected);
          expect(await shown(spec.given(events))).to.deep.equal(expected);
        },
      ),
      { numRuns: 60, seed: 20261124 },
    );
  });

  it('due lists pending emails whose time has come, earliest first (the comparison above can fail)', async () => {
    const [a, b, c] = ids as [string, string, string];
    const request = (emailId: string, minute: number): EmailEvent => ({
      type: 'EmailRequested',
      data: {
        emailId,
        appId: 'camel',
        to: ['x@example.com'],
        subject: 's',
        content: 'c',
        isHtml: false,
        requestedAt: at(minute),
      },
    });
    const given = spec.given(
      [
        request(a, 5),
        request(b, 1),
        request(c, 2),
        {
          type: 'EmailFailed',
          data: { emailId: b, appId: 'camel', attempt: 1, error: 'e', final: false, failedAt: at(3), retryAt: at(4) },
        },
        { type: 'EmailSent', data: { emailId: c, appId: 'camel', attempt: 1, messageId: null, sentAt: at(3) } },
      ],
      { batchSizes: [2] },
    );
    const emails = await shown(given);
    expect(emails.map((s) => s?.status)).to.deep.equal(['pending', 'pending', 'sent']);
    const queries = emailQueries(spec.pool);
    expect(await queries.due(new Date(at(10)), 10)).to.deep.equal(
      [b, a].map((emailId) => ({ emailId, appId: 'camel' })),
    );
    expect(await queries.due(new Date(at(4)), 10)).to.deep.equal([{ emailId: b, appId: 'camel' }]);
    expect(await queries.due(new Date(at(3)), 10)).to.deep.equal([]);
    expect((await queries.nextAttemptAt())?.toISOString()).to.equal(at(4));
    // A fold that missed the failure would still show b due at minute 1.
    expect(JSON.parse(JSON.stringify(foldOneByOne(given.recorded.slice(0, 3))))).to.not.deep.equal(emails);
  });
});
