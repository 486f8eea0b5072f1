import { GraphQLError } from 'graphql';
import type { Bus } from '../../src/bus/bus';
import type { Clock } from '../../src/clock';
import type { Viewer } from '../../src/identity/tickets';
import { inboxTopic, parseSeq, type DeliveredMessage } from '../../src/messaging/inbox';
import type { Messaging } from '../../src/messaging/messaging';

/** A reconnecting subscriber gets at most this many missed messages; beyond, it must re-query. */
export const MAX_REPLAY = 500;
/** Live messages buffered for a slow subscriber before it is cut off. */
export const MAX_BUFFERED = 1000;

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * The user's deliveries, the source of a `messages` subscription: subscribed to the bus first, then what
 * was missed since `since` is replayed from the read model, then the live ones, skipping any seq already
 * handed over (the two can overlap).
 *
 * Its state is this one object, not an async generator behind an AbortController: an idle subscriber
 * costs the object, its listener on the bus and, while it waits, one promise. `return()` (the client
 * unsubscribed, or its socket closed) takes effect at once, also while a `next()` waits: the bus listener
 * goes with it. `since` is read, and the missed messages loaded, at the first `next()`, so a bad `since`
 * or too many missed messages fail the operation (graphql-ws's `error`), as every later failure does.
 */
export class DeliveryFeed implements AsyncIterableIterator<DeliveredMessage> {
  private readonly live: DeliveredMessage[] = [];
  private missed: DeliveredMessage[] | undefined;
  private lastSeq = -1n;
  private overflow = false;
  private ended = false;
  private waiting: { resolve(result: IteratorResult<DeliveredMessage>): void; reject(error: unknown): void } | undefined;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly deps: { readonly bus: Bus; readonly messaging: Pick<Messaging, 'deliveredSince'>; readonly clock: Clock },
    private readonly viewer: Viewer,
    private readonly since: unknown,
  ) {
    this.unsubscribe = deps.bus.subscribe(inboxTopic(viewer.appId, viewer.userId), (payload) => this.arrived(payload as DeliveredMessage));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<DeliveredMessage>> {
    if (this.missed === undefined) return this.catchUp().then(() => this.next());
    try {
      const ready = this.take();
      if (ready) return Promise.resolve(ready);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
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

  /** The next message to hand over, DONE once ended, or nothing yet; throws when the subscriber fell too far behind. */
  private take(): IteratorResult<DeliveredMessage> | undefined {
    if (this.ended) return DONE;
    const replayed = this.missed?.shift();
    if (replayed) {
      this.lastSeq = BigInt(replayed.seq);
      return { done: false, value: replayed };
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

  private async catchUp(): Promise<void> {
    try {
      const sinceSeq = parseSince(this.since);
      if (sinceSeq === undefined) {
        this.missed = [];
        return;
      }
      this.lastSeq = sinceSeq;
      const missed = await this.deps.messaging.deliveredSince(this.viewer, sinceSeq, MAX_REPLAY + 1, this.deps.clock());
      if (missed.length > MAX_REPLAY) {
        throw new GraphQLError(`more than ${MAX_REPLAY} messages were missed since ${sinceSeq}; query notifications, then subscribe without since`, {
          extensions: { code: 'REPLAY_LIMIT_EXCEEDED' },
        });
      }
      this.missed = missed;
    } catch (error) {
      this.end();
      throw error;
    }
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.unsubscribe();
    this.live.length = 0;
    this.missed = [];
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resolve(DONE);
  }
}

function parseSince(since: unknown): bigint | undefined {
  if (since === undefined || since === null || since === '') return undefined;
  const seq = typeof since === 'string' ? parseSeq(since) : typeof since === 'number' && Number.isSafeInteger(since) && since >= 0 ? BigInt(since) : undefined;
  if (seq !== undefined) return seq;
  throw new GraphQLError('connectionParams.since must be a seq (a non-negative integer)', { extensions: { code: 'BAD_USER_INPUT' } });
}
