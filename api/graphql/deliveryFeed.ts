import { GraphQLError } from 'graphql';
import type { Bus } from '../../src/bus/bus';
import { inboxTopic } from '../../src/bus/topics';
import type { TerminalPresence } from '../../src/devices/presence';
import type { Viewer } from '../../src/identity/tickets';
import { parseSeq, type DeliveredMessage } from '../../src/messaging/inboxQueries';
import type { Messaging } from '../../src/messaging/messaging';
import type { Clock } from '../../src/runtime/clock';

/**
 * A reconnecting subscriber gets at most this many missed messages; beyond, it must re-query. A first
 * connect with `pending` gets at most this many pending ones: the newest.
 */
export const MAX_REPLAY = 500;
/** Live messages buffered for a slow subscriber before it is cut off. */
export const MAX_BUFFERED = 1000;

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * The user's deliveries, the source of a `messages` subscription: subscribed to the bus first, then what
 * was missed since `since` is replayed from the read model, then the live ones, skipping any seq already
 * handed over (the two can overlap).
 *
 * `pending` (a terminal's first connect, no `since`: Koala's pages know no seq) replays instead the user's
 * pending messages — unacknowledged, unexpired — the newest MAX_REPLAY of them, oldest first; older ones
 * stay in the inbox. Until that replay is handed over, a gap reads the pending ones after the last seq
 * handed over again; a live message the inbox already showed when the feed subscribed (at or below the
 * floor) is skipped, as the read covered it. Then it goes on as any feed.
 *
 * A gap on the bus (Bus.onGap: Redis was down, a publisher's message was lost) takes the same path as
 * `since`: the feed reads what was delivered after the last seq it handed over — or, if none yet, after
 * where the inbox stood when it subscribed — and holds the live messages until that read is back, so the
 * subscriber gets every message once, in seq order, with no client action. Every feed of a node asks in
 * the same turn, so their reads are one query (Messaging.deliveredSince).
 *
 * Its state is this one object, not an async generator behind an AbortController: an idle subscriber
 * costs the object, its listeners on the bus and, while it waits, one promise. `return()` (the client
 * unsubscribed, or its socket closed) takes effect at once, also while a `next()` waits: the bus listeners
 * go with it. `since` is read, and the missed messages loaded, at the first `next()`, so a bad `since`
 * or too many missed messages fail the operation (graphql-ws's `error`), as every later failure does.
 */
export class DeliveryFeed implements AsyncIterableIterator<DeliveredMessage> {
  private readonly live: DeliveredMessage[] = [];
  /** Read from the store and not yet handed over, oldest first. */
  private replayed: DeliveredMessage[] = [];
  /** A read from the store is owed (`since` at the start, a gap on the bus); live messages wait for it. */
  private catchUpDue: boolean;
  private catchingUp = false;
  private lastSeq = -1n;
  /** No message at or below it is owed to this subscriber: `since`, or the inbox's position when it subscribed. */
  private floor: bigint;
  /** The first replay is the pending messages (connectionParams.pending, no since); cleared once it is handed over. */
  private pendingFirst: boolean;
  private overflow = false;
  private ended = false;
  private failure: unknown;
  private waiting:
    { resolve(result: IteratorResult<DeliveredMessage>): void; reject(error: unknown): void } | undefined;
  private readonly unsubscribe: Array<() => void>;

  constructor(
    private readonly deps: {
      readonly bus: Bus;
      readonly messaging: Pick<Messaging, 'deliveredSince' | 'pendingSince' | 'deliveredPosition'>;
      readonly clock: Clock;
      /** Who has a live terminal (a Koala message to a user with none goes through Web Push). */
      readonly terminals?: Pick<TerminalPresence, 'add' | 'remove'>;
    },
    private readonly viewer: Viewer,
    private readonly since: unknown,
    pending: unknown = undefined,
  ) {
    this.unsubscribe = [
      deps.bus.subscribe(inboxTopic(viewer.appId, viewer.userId), (message) => this.arrived(message)),
      deps.bus.onGap(() => this.gap()),
    ];
    // Read after subscribing: what the inbox shows after this position reaches the feed live or by a catch-up.
    this.floor = deps.messaging.deliveredPosition();
    const hasSince = since !== undefined && since !== null && since !== '';
    this.pendingFirst = !hasSince && pending === true;
    if (!hasSince && pending !== undefined && pending !== null && typeof pending !== 'boolean') {
      this.failure = new GraphQLError('connectionParams.pending must be true or false', {
        extensions: { code: 'BAD_USER_INPUT' },
      });
    }
    this.catchUpDue = hasSince || this.pendingFirst;
    // Online from now until the feed ends (unsubscribed, its socket closed, or failed: end() runs every one),
    // only when it replays (`since` or `pending`): a feed of what arrives from now on would never get a
    // message delivered just before it opened, so it must not hold that message's Web Push back.
    const { terminals } = deps;
    if (terminals && this.catchUpDue && !this.failure) {
      terminals.add(viewer.appId, viewer.userId);
      this.unsubscribe.push(() => terminals.remove(viewer.appId, viewer.userId));
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<DeliveredMessage>> {
    try {
      const ready = this.take();
      if (ready) return Promise.resolve(ready);
    } catch (error) {
      return Promise.reject(error);
    }
    const waited = new Promise<IteratorResult<DeliveredMessage>>(
      (resolve, reject) => (this.waiting = { resolve, reject }),
    );
    if (this.catchUpDue) void this.catchUp();
    return waited;
  }

  return(): Promise<IteratorResult<DeliveredMessage>> {
    this.end();
    return Promise.resolve(DONE);
  }

  throw(error: unknown): Promise<IteratorResult<DeliveredMessage>> {
    this.end();
    return Promise.reject(error);
  }

  private arrived(message: DeliveredMessage): void {
    if (this.ended) return;
    if (this.live.length >= MAX_BUFFERED) this.overflow = true;
    else this.live.push(message);
    this.handOver();
  }

  /** The bus may have lost messages: read them from the store now, not when the subscriber next asks. */
  private gap(): void {
    if (this.ended) return;
    this.catchUpDue = true;
    void this.catchUp();
  }

  /** Resolves a waiting `next()` with what is ready, if anything. */
  private handOver(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    this.waiting = undefined;
    try {
      const ready = this.take();
      if (ready) waiting.resolve(ready);
      else this.waiting = waiting;
    } catch (error) {
      waiting.reject(error);
    }
  }

  /** The next message to hand over, DONE once ended, or nothing yet; throws when the feed failed. */
  private take(): IteratorResult<DeliveredMessage> | undefined {
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      this.end();
      throw failure;
    }
    if (this.ended) return DONE;
    if (this.catchUpDue || this.catchingUp) return undefined;
    const replayed = this.replayed.shift();
    if (replayed) {
      this.lastSeq = BigInt(replayed.seq);
      return { done: false, value: replayed };
    }
    if (this.pendingFirst) {
      // The pending replay is handed over: what the inbox showed at the floor was in it, or acknowledged.
      this.pendingFirst = false;
      if (this.lastSeq < this.floor) this.lastSeq = this.floor;
    }
    if (this.overflow) {
      this.end();
      throw new GraphQLError('the subscriber fell too far behind', { extensions: { code: 'SUBSCRIBER_TOO_SLOW' } });
    }
    for (let message = this.live.shift(); message; message = this.live.shift()) {
      const seq = BigInt(message.seq);
      if (seq <= this.lastSeq) continue;
      this.lastSeq = seq;
      return { done: false, value: message };
    }
    return undefined;
  }

  /**
   * Reads what was delivered after the last seq handed over (or the floor) into `replayed`, again while
   * another gap came during the read. It replaces what `replayed` held: the read covers all of it.
   */
  private async catchUp(): Promise<void> {
    if (this.catchingUp) return;
    this.catchingUp = true;
    try {
      while (this.catchUpDue && !this.ended) {
        this.catchUpDue = false;
        if (this.pendingFirst) {
          this.replayed = await this.deps.messaging.pendingSince(
            this.viewer,
            this.lastSeq,
            MAX_REPLAY,
            this.deps.clock(),
          );
          continue;
        }
        if (this.lastSeq < 0n && this.since !== undefined) this.floor = parseSince(this.since) ?? this.floor;
        const after = this.lastSeq > this.floor ? this.lastSeq : this.floor;
        const missed = await this.deps.messaging.deliveredSince(this.viewer, after, MAX_REPLAY + 1, this.deps.clock());
        if (missed.length > MAX_REPLAY) {
          throw new GraphQLError(
            `more than ${MAX_REPLAY} messages were missed since ${after}; query notifications, then subscribe without since`,
            {
              extensions: { code: 'REPLAY_LIMIT_EXCEEDED' },
            },
          );
        }
        this.replayed = missed;
        if (this.lastSeq < after) this.lastSeq = after;
      }
    } catch (error) {
      // Handed to the subscriber at its next `next()` (graphql-ws's `error`): it resubscribes with `since`.
      if (!this.ended) this.failure = error;
    } finally {
      this.catchingUp = false;
    }
    this.handOver();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const off of this.unsubscribe) off();
    this.live.length = 0;
    this.replayed = [];
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resolve(DONE);
  }
}

function parseSince(since: unknown): bigint | undefined {
  if (since === undefined || since === null || since === '') return undefined;
  const seq =
    typeof since === 'string'
      ? parseSeq(since)
      : typeof since === 'number' && Number.isSafeInteger(since) && since >= 0
        ? BigInt(since)
        : undefined;
  if (seq !== undefined) return seq;
  throw new GraphQLError('connectionParams.since must be a seq (a non-negative integer)', {
    extensions: { code: 'BAD_USER_INPUT' },
  });
}
