import type { AppendResult, EventStore, ExpectedRevision, NewEvent } from './eventStore';
import { EventStoreDecorator } from './eventStoreDecorator';

/** The counters an append moves (src/nodes/metrics.ts's Metrics has them, on herald's registry). */
export interface AppendCounters {
  readonly eventsAppended: { inc(labels: { type: string }): void };
  readonly deliveries: { inc(labels: { outcome: string }): void };
}

const DELIVERY_OUTCOMES: Readonly<Record<string, string>> = {
  MessageDelivered: 'delivered',
  DeliveryRetried: 'retried',
  DeliveryConfirmed: 'confirmed',
  DeliveryDropped: 'dropped',
  DeliveryExpired: 'expired',
};

/** The store, counting what is appended through it (events by type, delivery outcomes). */
export class MeteredEventStore extends EventStoreDecorator {
  constructor(
    store: EventStore,
    private readonly metrics: AppendCounters,
  ) {
    super(store);
  }

  override async append(
    streamName: string,
    events: readonly NewEvent[],
    expectedRevision?: ExpectedRevision,
  ): Promise<AppendResult> {
    const result = await this.store.append(streamName, events, expectedRevision);
    for (const event of events) {
      this.metrics.eventsAppended.inc({ type: event.type });
      const outcome = DELIVERY_OUTCOMES[event.type];
      if (outcome) this.metrics.deliveries.inc({ outcome });
    }
    return result;
  }
}
