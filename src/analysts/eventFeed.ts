import type { EventSelection, EventStore, RecordedEvent } from '../eventStore/eventStore';
import { appIdOf, selector, storeFilterOf } from './eventSelection';

/**
 * The event stream for analysts over the API (GraphQL `events`, docs/analysts.md): pages by global
 * position, and a live tail that starts from a position. Always of one app: `appId` is required here
 * (the caller's tenant), unlike `herald replay`, which an operator runs against the whole store.
 */

export const EVENT_FEED_LIMITS = {
  /** Events in one page (`first`): 1 to this, as every list of the API (bulk reads: `herald replay`). */
  maxFirst: 100,
  defaultFirst: 100,
  /**
   * Events one page request reads from the store at most, matching or not: an app with few events
   * in a long history gets short (even empty) pages with `hasNextPage` and a cursor to go on from,
   * instead of one request that reads the whole store.
   */
  scan: 10_000,
  /** Live tails open at once per app, and in all; each holds a store subscription. */
  tailsPerApp: 8,
  tails: 64,
} as const;

const READ_COUNT = 1000;

export type AppEventSelection = EventSelection & { readonly appId: string };

export interface EventPage {
  readonly events: readonly RecordedEvent[];
  /** The last position read (matching or not): the next page starts after it. Undefined when nothing was read and no cursor given. */
  readonly endPosition: bigint | undefined;
  /** False when the page reached the newest event (at the time it was read). */
  readonly hasNextPage: boolean;
}

export class TooManyTailsError extends Error {
  override readonly name = 'TooManyTailsError';
  constructor(message: string) {
    super(message);
  }
}

export class EventFeed {
  private readonly openTails = new Map<string, number>();
  private openTailsInAll = 0;

  constructor(private readonly deps: { readonly store: EventStore }) {}

  /**
   * Up to `first` selected events after `after`, oldest first. A cursor that is not an event's position
   * throws InvalidPositionError (from the store).
   */
  async page(selection: AppEventSelection, after: bigint | undefined, first: number): Promise<EventPage> {
    const filter = storeFilterOf(selection);
    const selected = selector(selection, appIdOf);
    const events: RecordedEvent[] = [];
    let endPosition = after;
    let scanned = 0;
    while (scanned < EVENT_FEED_LIMITS.scan) {
      const maxCount = Math.min(READ_COUNT, EVENT_FEED_LIMITS.scan - scanned);
      const read = await this.deps.store.readAll({
        ...(endPosition !== undefined && { after: endPosition }),
        maxCount,
        ...(filter && { filter }),
      });
      for (const [index, event] of read.entries()) {
        scanned++;
        endPosition = event.position;
        if (!selected(event)) continue;
        events.push(event);
        if (events.length === first) {
          const atNewest = read.length < maxCount && index === read.length - 1;
          return { events, endPosition, hasNextPage: !atNewest };
        }
      }
      if (read.length < maxCount) return { events, endPosition, hasNextPage: false };
    }
    return { events, endPosition, hasNextPage: true };
  }

  /**
   * The selected events after `after` (from the newest event when undefined), then live ones as they are
   * appended: each once, in position order (the store's catch-up subscription). Pulled: a subscriber
   * that reads slowly is fed at its pace, nothing piles up here. Ends when `signal` aborts.
   */
  async *tail(
    selection: AppEventSelection,
    after: bigint | undefined,
    signal: AbortSignal,
  ): AsyncGenerator<RecordedEvent> {
    const { appId } = selection;
    const open = this.openTails.get(appId) ?? 0;
    if (open >= EVENT_FEED_LIMITS.tailsPerApp)
      throw new TooManyTailsError(`at most ${EVENT_FEED_LIMITS.tailsPerApp} event subscriptions per app at once`);
    if (this.openTailsInAll >= EVENT_FEED_LIMITS.tails)
      throw new TooManyTailsError(`this node serves at most ${EVENT_FEED_LIMITS.tails} event subscriptions at once`);
    this.openTails.set(appId, open + 1);
    this.openTailsInAll++;
    try {
      const start = after ?? (await this.deps.store.headPosition());
      const filter = storeFilterOf(selection);
      const selected = selector(selection, appIdOf);
      const subscription = this.deps.store.subscribeToAll({ after: start, ...(filter && { filter }) });
      const stop = () => void subscription.close();
      signal.addEventListener('abort', stop, { once: true });
      try {
        for await (const batch of subscription) {
          for (const event of batch.events) {
            if (signal.aborted) return;
            if (selected(event)) yield event;
          }
        }
      } finally {
        signal.removeEventListener('abort', stop);
        await subscription.close();
      }
    } finally {
      this.openTailsInAll--;
      const left = (this.openTails.get(appId) ?? 1) - 1;
      if (left > 0) this.openTails.set(appId, left);
      else this.openTails.delete(appId);
    }
  }

  /** Throws InvalidPositionError unless `position` is an event's (checked before a tail starts, so a bad cursor is refused up front). */
  async checkCursor(position: bigint): Promise<void> {
    await this.deps.store.readAll({ after: position, maxCount: 1 });
  }
}
