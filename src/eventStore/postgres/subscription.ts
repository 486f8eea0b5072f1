import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Database } from '../../postgres/database';
import { Wakeup } from '../../runtime/wakeup';
import {
  DEFAULT_READ_COUNT,
  type AllSubscription,
  type SubscribeToAllOptions,
  type SubscriptionBatch,
} from '../eventStore';
import { checkPosition, readSettled } from './reads';
import { NOTIFY_CHANNEL } from './schema/appendFunctions';
import { toStoreError } from './storeError';

/**
 * Catch-up subscriptions: read the settled events page by page (reads.ts: a late commit is waited for,
 * never skipped), then wait at the live edge until herald_append_batch's NOTIFY says there is more, or a
 * poll comes due.
 */

const LIVE_POLL_MS = 1000;
const MAX_SUBSCRIPTION_PAGE = 8000;
/** 2 ms for the first 50 looks (a batch transaction's length), then doubling up to LIVE_POLL_MS. */
const settleRetryMs = (waits: number) => Math.min(LIVE_POLL_MS, waits <= 50 ? 2 : 2 * 2 ** Math.min(10, waits - 50));

export function subscribeToAll(
  pool: pg.Pool,
  notifications: AppendNotifications,
  options: SubscribeToAllOptions,
): AllSubscription {
  const wakeup = new Wakeup();
  let notifiedUpTo = -1n;
  const onNotify = (position: bigint) => {
    if (position > notifiedUpTo) notifiedUpTo = position;
    wakeup.signal();
  };
  notifications.on(onNotify);
  let open = true;
  const close = async () => {
    open = false;
    notifications.off(onNotify);
    wakeup.signal();
  };

  async function* batches(): AsyncGenerator<SubscriptionBatch> {
    let after = options.after !== undefined && options.after >= 0n ? options.after : -1n;
    let settlingWaits = 0;
    // Pages grow while they come back full (a consumer far behind applies bigger batches), and shrink
    // back at the live edge.
    let pageSize = DEFAULT_READ_COUNT;
    try {
      await checkPosition(pool, options.after);
      await notifications.listen();
      while (open) {
        const events = await readSettled(pool, { after, maxCount: pageSize, filter: options.filter });
        const last = events[events.length - 1];
        if (last) after = last.position;
        const caughtUp = events.length < pageSize;
        pageSize = caughtUp ? DEFAULT_READ_COUNT : Math.min(pageSize * 2, MAX_SUBSCRIPTION_PAGE);
        if (events.length > 0 || caughtUp) yield { events, caughtUp };
        if (!caughtUp || !open) continue;
        // A notified position we could not read yet is held back by an older transaction still running
        // (often another projection's batch, a few ms): look again soon, and back off if it lasts.
        const settling = notifiedUpTo > after;
        settlingWaits = settling ? settlingWaits + 1 : 0;
        await wakeup.wait(settling ? settleRetryMs(settlingWaits) : LIVE_POLL_MS);
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

/** The newest appended positions, as NOTIFY reports them: one LISTEN connection per store, shared by its subscriptions. */
export class AppendNotifications {
  private readonly live = new EventEmitter();
  private listener: pg.Client | undefined;
  private listenerStarting: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly database: Database) {
    this.live.setMaxListeners(0);
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
      const client = new pg.Client(this.database.clientConfig);
      client.on('notification', (message) => {
        if (message.payload) this.live.emit('position', BigInt(message.payload));
      });
      client.on('error', () => {
        if (this.listener === client) this.listener = undefined;
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
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
  }
}
