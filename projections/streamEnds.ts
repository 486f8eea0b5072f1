import * as t from 'io-ts';
import type { Pool } from 'pg';
import type { RetentionCategory } from '../domain/retention';
import { RtioDeviceCalled, RtioNonceUsed, RTIO_LIMITS } from '../domain/rtio/rtio';
import { TicketIssued } from '../domain/ticket/ticket';
import { Columns } from '../src/projection/columns';
import { eventDecoder, eventTypesOf } from '../src/projection/eventDecoder';
import type { Projection } from '../src/projection/projection';
import type { Prunable } from '../src/storage/retention';
import { keyedPruning } from './pruning';

const StreamEndEvent = t.union([RtioNonceUsed, RtioDeviceCalled, TicketIssued]);
type StreamEndEvent = t.TypeOf<typeof StreamEndEvent>;

const isTime = (text: string) => !Number.isNaN(Date.parse(text));
// An end that is no time would fail the batch's insert: the event is parked with the reason instead.
const streamEndEvents = eventDecoder(StreamEndEvent, (event) =>
  isTime(event.type === 'RtioNonceUsed' ? event.data.usedAt : event.data.expiresAt)
    ? undefined
    : 'its time is not a timestamp',
);

/**
 * How long after a call's expiry its outcome may still be appended (the timer starts after the appends
 * that took the expiry's `now`; a slow store, a busy event loop), with a wide margin.
 */
export const CALL_OUTCOME_GRACE_MS = 60_000;

const plus = (time: string, ms: number) => new Date(Date.parse(time) + ms).toISOString();

/** The stream prefix each event's end is recorded for: anything else carrying the type is not retired. */
const PREFIX: Record<StreamEndEvent['type'], string> = {
  RtioNonceUsed: 'rtio-nonce-',
  RtioDeviceCalled: 'rtio-call-',
  TicketIssued: 'ticket-',
};

/**
 * When a stream that no other read model holds ends (issue 26; domain/retention.ts): one row per stream,
 * written once, at its first event — its end is known then, bounded by the seed or by herald — and
 * removed by retention, which retires the stream with it (keyedPruning). So the event store's retention
 * learns the end of these streams as it learns every other's: from a read model's pruning.
 *  - `rtio-call-…`: at its expiry (`time_live`, at most 30 s: 004_…) plus CALL_OUTCOME_GRACE_MS: the
 *    expiry is taken before the call is appended and its timer started, so its outcome (the reply, or
 *    RtioCallFailed) lands a little after it; never removed before that could be written.
 *  - `rtio-nonce-…` of a `call/send`: its use plus the longest `time_live` plus the same grace; the call
 *    it took it for has ended by then (its expiry counts from before the nonce's use). Removed, the nonce is
 *    forgotten: a request may use it again (docs/api/rtio.md, "Nonces"). A `create_device`'s nonce is
 *    kept, as its device is.
 *  - `ticket-…`: at the ticket's expiry; verifying a ticket never reads its stream (the token is signed).
 */
export const streamEndsProjection: Projection = {
  name: 'stream-ends',
  version: 1,
  tables: ['stream_ends'],
  eventTypes: eventTypesOf(streamEndEvents),
  migrations: [
    {
      id: 'projection/stream-ends/001',
      sql: `
        CREATE TABLE stream_ends (
          stream text PRIMARY KEY,
          category text NOT NULL,
          ends_at timestamptz NOT NULL
        );
        CREATE INDEX stream_ends_by_end ON stream_ends (category, ends_at);
      `,
    },
  ],

  async handle(events, tx) {
    const rows = new Columns<{ stream: string; category: RetentionCategory; end: string }>([
      'stream',
      'category',
      'end',
    ]);
    for (const recorded of events) {
      const event = streamEndEvents.decode(recorded);
      if (!event || !recorded.streamName.startsWith(PREFIX[event.type])) continue;
      const stream = recorded.streamName;
      switch (event.type) {
        case 'RtioNonceUsed':
          if (event.data.request !== 'call/send') break;
          rows.push({
            stream,
            category: 'rtioCalls',
            end: plus(event.data.usedAt, RTIO_LIMITS.timeLiveMaxSeconds * 1000 + CALL_OUTCOME_GRACE_MS),
          });
          break;
        case 'RtioDeviceCalled':
          rows.push({ stream, category: 'rtioCalls', end: plus(event.data.expiresAt, CALL_OUTCOME_GRACE_MS) });
          break;
        case 'TicketIssued':
          rows.push({ stream, category: 'tickets', end: event.data.expiresAt });
          break;
      }
    }
    if (rows.length > 0)
      // A stream's first event only: a replayed or repeated one changes nothing.
      await tx.query({
        name: 'stream-ends-insert',
        text: `INSERT INTO stream_ends (stream, category, ends_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) ON CONFLICT (stream) DO NOTHING`,
        values: rows.values(),
      });
    return [];
  },
};

/**
 * Retention of RTIO calls and tickets (domain/retention.ts, streamEndRemovable): a row
 * whose end is before the cutoff goes, and its stream is retired for the event store.
 */
export function streamEndPruning(pool: Pool): readonly Prunable[] {
  const byEnd = (category: RetentionCategory) =>
    keyedPruning(pool, {
      table: 'stream_ends',
      category,
      key: 'stream',
      removable: `category = '${category}' AND ends_at < $1`,
      orderBy: 'ends_at',
      stream: 'stream',
    });
  return [byEnd('rtioCalls'), byEnd('tickets')];
}
