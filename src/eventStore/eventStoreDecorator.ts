import type {
  AllSubscription,
  AppendResult,
  EventStore,
  ExpectedRevision,
  NewEvent,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeToAllOptions,
} from './eventStore';

/** A store that hands every call to another: extend it and override the one call to watch (metrics, a rebuild's progress). */
export class EventStoreDecorator implements EventStore {
  /** Forwarded as it is; a decorator that changes events on read overrides it (UpcastingEventStore). */
  readonly exportJsonLines?: EventStore['exportJsonLines'];
  /** Forwarded as it is: removing events changes nothing a decorator changes on read. */
  readonly removeStreamEvents?: EventStore['removeStreamEvents'];
  readonly reclaimSpace?: EventStore['reclaimSpace'];

  constructor(protected readonly store: EventStore) {
    const exportJsonLines = store.exportJsonLines?.bind(store);
    if (exportJsonLines) this.exportJsonLines = exportJsonLines;
    const remove = store.removeStreamEvents?.bind(store);
    if (remove) this.removeStreamEvents = remove;
    const reclaim = store.reclaimSpace?.bind(store);
    if (reclaim) this.reclaimSpace = reclaim;
  }

  get kind(): EventStore['kind'] {
    return this.store.kind;
  }

  append(streamName: string, events: readonly NewEvent[], expectedRevision?: ExpectedRevision): Promise<AppendResult> {
    return this.store.append(streamName, events, expectedRevision);
  }

  readStream(streamName: string, options?: ReadStreamOptions): Promise<RecordedEvent[]> {
    return this.store.readStream(streamName, options);
  }

  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]> {
    return this.store.readAll(options);
  }

  headPosition(): Promise<bigint> {
    return this.store.headPosition();
  }

  subscribeToAll(options?: SubscribeToAllOptions): AllSubscription {
    return this.store.subscribeToAll(options);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
