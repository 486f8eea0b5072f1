import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Database } from '../../postgres/database';
import { Wakeup } from '../../runtime/wakeup';
import {
  DEFAULT_READ_COUNT,
  type AllSubscription,
  type EventFilter,
  type RecordedEvent,
  type SubscribeToAllOptions,
  type SubscriptionBatch,
} from '../eventStore';
import { checkPosition, matchesFilter, readGlobal } from './reads';
import { NOTIFY_CHANNEL } from './schema/appendFunctions';
import { toStoreError } from './storeError';

/**
 * Catch-up subscriptions: read the events page by page (reads.ts: positions commit in order, so a plain
 * read by position never skips a late commit), then wait at the live edge until an append says there is
 * more (this process's group commit directly, another process's by NOTIFY), or a poll comes due. At the live edge they read through the store's LiveTail:
 * one read of the stream for every subscription of the node, not one each.
 */

const LIVE_POLL_MS = 1000;
const MAX_SUBSCRIPTION_PAGE = 8000;

export function subscribeToAll(
  pool: pg.Pool,
  notifications: AppendNotifications,
  tail: LiveTail,
  options: SubscribeToAllOptions,
): AllSubscription {
  const wakeup = new Wakeup();
  const onNotify = () => wakeup.signal();
  notifications.on(onNotify);
  let open = true;
  const close = async () => {
    open = false;
    notifications.off(onNotify);
    wakeup.signal();
  };

  async function* batches(): AsyncGenerator<SubscriptionBatch> {
    let after = options.after !== undefined && options.after >= 0n ? options.after : -1n;
    // Pages grow while they come back full (a consumer far behind applies bigger batches), and shrink
    // back at the live edge.
    let pageSize = DEFAULT_READ_COUNT;
    try {
      await checkPosition(pool, options.after);
      await notifications.listen();
      while (open) {
        const page = await tail.read(after, pageSize, options.filter);
        after = page.through;
        const { events } = page;
        const caughtUp = events.length < pageSize;
        pageSize = caughtUp ? DEFAULT_READ_COUNT : Math.min(pageSize * 2, MAX_SUBSCRIPTION_PAGE);
        if (events.length > 0 || caughtUp) yield { events, caughtUp };
        if (!caughtUp || !open) continue;
        await wakeup.wait(LIVE_POLL_MS);
      }
    } finally {
      await close();
    }
  }

  const iterator = batches();
  return {
    [Symbol.asyncIterator]: () => iterator,
    close,
  };
}

/** What a subscription's read gives: the events that pass its filter, and how far it looked (their positions and more). */
interface Page {
  readonly events: RecordedEvent[];
  readonly through: bigint;
}

// At most this many of the newest events in memory (about 2 s at the design rate; a few MB of typical
// events, and bounded even when each is a large message): a subscription further behind reads on its own.
const TAIL_WINDOW = 2048;

/**
 * The newest events of the store, read once for every subscription of this node at the live edge (the
 * projection runners, the GraphQL event feed): each read here is one query and one parse for all of them.
 * It holds every event with a position in (start, end]: it starts empty at the position of the first
 * subscription to catch up, and each read takes what follows `end`. A subscription behind `start` reads
 * on its own until it reaches it.
 *
 * A read a subscription asks for begins after it asks (it joins the next read, not one already under
 * way), so a subscription woken by a NOTIFY sees the notified events, as a read of its own would; and
 * `read` reads on until the tail holds the newest notified position. Subscriptions share the event
 * objects: consumers only read them (the upcasting decorator copies what it changes).
 */
export class LiveTail {
  private events: RecordedEvent[] = [];
  private start: bigint | undefined;
  private end = -1n;
  /** The read under way, and the next one, which callers join until it begins. */
  private reading: Promise<void> | undefined;
  private nextRead: Promise<void> | undefined;
  private notifiedUpTo = -1n;

  constructor(
    private readonly pool: pg.Pool,
    notifications: AppendNotifications,
  ) {
    notifications.on((position) => {
      if (position > this.notifiedUpTo) this.notifiedUpTo = position;
    });
  }

  /** The events after `after` (at most `max` of those passing `filter`): from memory where it holds them. */
  async read(after: bigint, max: number, filter: EventFilter | undefined): Promise<Page> {
    // Read on while nothing here follows `after`, or a notified position is not here yet; until a read
    // that began after this call brings nothing new: then there is nothing more to see.
    // The target is what was notified when this call began: NOTIFYs arriving meanwhile are the next
    // call's (the subscription's Wakeup keeps them), so a read under load does not chase a moving end.
    const notified = this.notifiedUpTo;
    for (let nothingNew = false; ;) {
      if (this.start === undefined || after < this.start) return this.readOwn(after, max, filter);
      if (after < this.end && (nothingNew || this.end >= notified)) return this.take(after, max, filter);
      if (nothingNew) return { events: [], through: after };
      const end = this.end;
      await this.readOn();
      nothingNew = this.end === end;
    }
  }

  private async readOwn(after: bigint, max: number, filter: EventFilter | undefined): Promise<Page> {
    const events = await readGlobal(this.pool, { after, maxCount: max, filter });
    const through = events[events.length - 1]?.position ?? after;
    // Caught up with every event (a filtered read may have stopped at an old match): the tail starts here.
    if (events.length < max && filter === undefined && this.start === undefined) {
      this.start = through;
      this.end = through;
    }
    return { events, through };
  }

  private take(after: bigint, max: number, filter: EventFilter | undefined): Page {
    const events: RecordedEvent[] = [];
    let i = firstAfter(this.events, after);
    for (; i < this.events.length && events.length < max; i++) {
      const event = this.events[i]!;
      if (matchesFilter(event, filter)) events.push(event);
    }
    return { events, through: i < this.events.length ? this.events[i - 1]!.position : this.end };
  }

  /**
   * Joins the next read of what follows `end`, which begins once the one under way (if any) is done and
   * the callers woken with this one (by the same NOTIFY) have joined it.
   */
  private readOn(): Promise<void> {
    this.nextRead ??= (async () => {
      await this.reading?.catch(() => undefined);
      await new Promise(setImmediate);
      this.nextRead = undefined;
      const reading = this.readPage();
      this.reading = reading;
      try {
        await reading;
      } finally {
        if (this.reading === reading) this.reading = undefined;
      }
    })();
    return this.nextRead;
  }

  private async readPage(): Promise<void> {
    // No more than the window at once, so the subscriptions at the old end are still inside it after.
    const events = await readGlobal(this.pool, { after: this.end, maxCount: TAIL_WINDOW });
    const last = events[events.length - 1];
    if (!last) return;
    this.events.push(...events);
    this.end = last.position;
    const over = this.events.length - TAIL_WINDOW;
    if (over > 0) this.start = this.events.splice(0, over)[over - 1]!.position;
  }
}

/** The index of the first event after `position` (events in position order). */
function firstAfter(events: readonly RecordedEvent[], position: bigint): number {
  let low = 0;
  let high = events.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (events[middle]!.position <= position) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * The newest appended positions, as this process's appends tell them (Notices) and NOTIFY reports other
 * processes' appends: one LISTEN connection per store, shared by its subscriptions.
 */
export class AppendNotifications {
  private readonly live = new EventEmitter();
  private listener: pg.Client | undefined;
  private listenerStarting: Promise<void> | undefined;
  private closed = false;
  private readonly told = (payload: string) => this.live.emit('position', BigInt(payload));

  constructor(private readonly database: Database) {
    this.live.setMaxListeners(0);
    database.notices.on(NOTIFY_CHANNEL, this.told);
  }

  on(listener: (position: bigint) => void): void {
    this.live.on('position', listener);
  }

  off(listener: (position: bigint) => void): void {
    this.live.off('position', listener);
  }

  /** Starts listening unless it is already; reconnects with back-off while anyone is listening. */
  listen(): Promise<void> {
    if (this.listener || this.closed) return Promise.resolve();
    this.listenerStarting ??= (async () => {
      const client = new pg.Client(this.database.notices.listenerConfig(this.database.clientConfig, NOTIFY_CHANNEL));
      client.on('notification', (message) => {
        if (message.payload) this.live.emit('position', BigInt(message.payload));
      });
      client.on('error', () => {
        if (this.listener === client) this.listener = undefined;
        this.database.notices.stoppedListening(client);
        client.end().catch(() => undefined);
        // Subscriptions keep polling meanwhile; reconnect (every 0.5 s while the server is away) so they
        // go back to being woken at once.
        const reconnect = () => {
          if (!this.closed && this.live.listenerCount('position') > 0)
            this.listen().catch(() => setTimeout(reconnect, 500).unref());
        };
        setTimeout(reconnect, 500).unref();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
        this.database.notices.listening(client);
        this.listener = client;
      } catch (error) {
        await client.end().catch(() => undefined);
        throw toStoreError(error);
      }
    })().finally(() => {
      this.listenerStarting = undefined;
    });
    return this.listenerStarting;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.database.notices.off(NOTIFY_CHANNEL, this.told);
    const listener = this.listener;
    this.listener = undefined;
    if (listener) this.database.notices.stoppedListening(listener);
    await listener?.end().catch(() => undefined);
  }
}
