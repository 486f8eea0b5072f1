import type { Pool } from 'pg';
import { isConnectionError } from '../../postgres/errors';
import type { Notices } from '../../postgres/notices';
import { WrongExpectedRevisionError, type AppendResult, type ExpectedRevision, type NewEvent } from '../eventStore';
import { NOTIFY_CHANNEL } from './schema/appendFunctions';
import { toStoreError } from './storeError';

/**
 * Appends by group commit: concurrent `append` calls are queued and committed together, many per
 * transaction. On this hardware a durable append is bound by the fsync of its commit, so sharing one
 * commit among many appends is what buys throughput. A group is one statement, `herald_append_batch`
 * (schema/003-leanGroupAppend.ts), which for each append checks idempotency and the expected revision and inserts
 * the events. After the commit it tells this process's subscriptions the newest position; the commit
 * itself notifies only while another process listens (schema/006, src/postgres/notices.ts).
 */

const MAX_APPENDS_PER_COMMIT = 256;
/**
 * A bounded linger (as a Kafka producer's linger.ms): right after a small group that was not alone (2 to
 * LINGER_UNTIL - 1 appends, committed less than LINGER_RECENT_MS ago: others are sending, but each commit
 * carries few), the next group waits up to LINGER_MS for LINGER_UNTIL appends before it commits. At the
 * design rate (1,000 sends/s) groups were ~3.7 appends, and each group costs PostgreSQL a statement, a
 * commit and a WAL flush, and every stage after it (the live tail's read, the projections' batches) one
 * more round each. A lone client's appends (groups of one), an append after a pause and a busy store's
 * (large groups) never wait.
 */
const LINGER_MS = 2;
const LINGER_UNTIL = 16;
const LINGER_RECENT_MS = 5;

/** Whether the next group waits for more appends (see LINGER_MS). */
export function shouldLinger(previousGroup: number, sincePreviousCommitMs: number, waiting: number): boolean {
  return (
    previousGroup >= 2 &&
    previousGroup < LINGER_UNTIL &&
    sincePreviousCommitMs < LINGER_RECENT_MS &&
    waiting < LINGER_UNTIL
  );
}

interface PendingAppend {
  readonly streamName: string;
  readonly events: readonly NewEvent[];
  readonly expectedRevision: ExpectedRevision;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: unknown) => void;
}

interface AppendOutcomeRow {
  outcome: string;
  revision: string | null;
  last_position: string | null;
}

export class GroupCommit {
  private readonly queue: PendingAppend[] = [];
  private committing = false;
  private lastGroupSize = 0;
  private lastCommitEnd = -Infinity;
  /** Ends the linger early, once LINGER_UNTIL appends wait. */
  private lingering: (() => void) | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly notices: Notices,
  ) {}

  append(streamName: string, events: readonly NewEvent[], expectedRevision: ExpectedRevision): Promise<AppendResult> {
    if (events.length === 0) return Promise.reject(new TypeError('append needs at least one event'));
    return new Promise((resolve, reject) => {
      this.queue.push({ streamName, events, expectedRevision, resolve, reject });
      if (this.queue.length >= LINGER_UNTIL) this.lingering?.();
      void this.commitQueued();
    });
  }

  /** Drains the queue, one transaction per group of appends; appends arriving meanwhile form the next group. */
  private async commitQueued(): Promise<void> {
    if (this.committing) return;
    this.committing = true;
    try {
      while (this.queue.length > 0) {
        if (shouldLinger(this.lastGroupSize, performance.now() - this.lastCommitEnd, this.queue.length))
          await this.linger();
        const group = this.queue.splice(0, MAX_APPENDS_PER_COMMIT);
        this.lastGroupSize = group.length;
        try {
          await this.commitGroup(group);
        } catch (error) {
          if (group.length === 1 || isConnectionError(error)) {
            for (const append of group) append.reject(toStoreError(error));
          } else {
            // One bad append (say, data PostgreSQL rejects) must not fail the others: retry them alone.
            for (const append of group)
              await this.commitGroup([append]).catch((e: unknown) => append.reject(toStoreError(e)));
          }
        }
        this.lastCommitEnd = performance.now();
      }
    } finally {
      this.committing = false;
    }
  }

  private linger(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, LINGER_MS);
      this.lingering = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.lingering = undefined;
    });
  }

  /** One statement, so one round trip and one commit, for the whole group. */
  private async commitGroup(group: readonly PendingAppend[]): Promise<void> {
    const events = group.flatMap((append) => append.events);
    // The events' data and metadata go as one JSON array each, split into jsonb[] by PostgreSQL: one
    // JSON.stringify per group, rather than one per event and then an array literal escaping every quote.
    const { rows } = await this.pool.query<AppendOutcomeRow>({
      name: 'herald-append-group',
      text: `SELECT * FROM herald_append_batch($1::text[], $2::text[], $3::int[], $4::uuid[], $5::text[],
        ARRAY(SELECT x.value FROM jsonb_array_elements($6::jsonb) WITH ORDINALITY AS x(value, n) ORDER BY x.n),
        ARRAY(SELECT x.value FROM jsonb_array_elements($7::jsonb) WITH ORDINALITY AS x(value, n) ORDER BY x.n),
        $8::boolean)`,
      values: [
        group.map((append) => append.streamName),
        group.map((append) => append.expectedRevision.toString()),
        group.map((append) => append.events.length),
        events.map((e) => e.id),
        events.map((e) => e.type),
        JSON.stringify(events.map((e) => e.data ?? null)),
        JSON.stringify(events.map((e) => e.metadata ?? {})),
        this.notices.othersListen(NOTIFY_CHANNEL),
      ],
    });
    if (rows.length !== group.length)
      throw new Error(`herald_append_batch answered ${rows.length} of ${group.length} appends`);
    let newest: bigint | undefined;
    group.forEach((append, i) => {
      const outcome = toAppendOutcome(append, rows[i]!);
      if (outcome instanceof Error) append.reject(outcome);
      else {
        if (rows[i]!.outcome === 'ok' && (newest === undefined || outcome.position > newest)) newest = outcome.position;
        append.resolve(outcome);
      }
    });
    // Committed and visible: wake this process's subscriptions (after the answers, which are more urgent).
    if (newest !== undefined) this.notices.tell(NOTIFY_CHANNEL, newest.toString());
  }
}

function toAppendOutcome(append: PendingAppend, row: AppendOutcomeRow): AppendResult | Error {
  switch (row.outcome) {
    case 'ok':
    case 'idempotent':
      return { nextExpectedRevision: BigInt(row.revision!), position: BigInt(row.last_position!) };
    case 'conflict':
      return new WrongExpectedRevisionError(
        append.streamName,
        append.expectedRevision,
        row.revision === null ? 'no_stream' : BigInt(row.revision),
      );
    case 'duplicate_ids':
      // Some of these event ids are stored already, but not as this append: a reused id, not a retry.
      return new WrongExpectedRevisionError(append.streamName, append.expectedRevision, BigInt(row.revision ?? -1));
    default:
      return new Error(`herald_append: unknown outcome ${row.outcome}`);
  }
}
