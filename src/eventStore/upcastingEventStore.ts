import { EVENT_VERSIONS } from '../../domain/eventCatalogue';
import { FIRST_VERSION, type EventVersions } from '../../domain/eventVersions';
import type {
  AllSubscription,
  EventMetadata,
  EventStore,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeToAllOptions,
} from './eventStore';
import { EventStoreDecorator } from './eventStoreDecorator';

/**
 * Event versioning on read (domain/eventVersions.ts): every event read through this store comes out in
 * its type's current shape, whichever adapter holds it and however old it is — readStream for commands,
 * readAll for the GraphQL feed and analysts, subscribeToAll for projections and their rebuilds. Stored
 * events are never rewritten; an upcast event says so by its `schemaVersion`, which is then the current one.
 *
 * An event newer than this code (a newer herald wrote it, during a rolling upgrade or after a downgrade)
 * has no upcaster here: it passes unchanged, and every decoder refuses it by its version (`schemaRefusal`)
 * rather than read it as the older shape it may resemble. A projection parks it; after the upgrade,
 * `herald projections retry` applies it.
 */
export class UpcastingEventStore extends EventStoreDecorator {
  constructor(
    store: EventStore,
    private readonly versions: EventVersions = EVENT_VERSIONS,
  ) {
    super(store);
  }

  override async readStream(streamName: string, options?: ReadStreamOptions): Promise<RecordedEvent[]> {
    return (await this.store.readStream(streamName, options)).map(this.upcast);
  }

  override async readAll(options?: ReadAllOptions): Promise<RecordedEvent[]> {
    return (await this.store.readAll(options)).map(this.upcast);
  }

  override subscribeToAll(options?: SubscribeToAllOptions): AllSubscription {
    const subscription = this.store.subscribeToAll(options);
    const upcast = this.upcast;
    return {
      close: () => subscription.close(),
      async *[Symbol.asyncIterator]() {
        for await (const batch of subscription) yield { ...batch, events: batch.events.map(upcast) };
      },
    };
  }

  private readonly upcast = (event: RecordedEvent): RecordedEvent => upcastEvent(event, this.versions);
}

/**
 * The event in its type's current shape, its `schemaVersion` then the current one. Also for events read
 * other than through the store: a parked event's copy, retried after an upgrade.
 */
export function upcastEvent(event: RecordedEvent, versions: EventVersions = EVENT_VERSIONS): RecordedEvent {
  const version = schemaVersionOf(event.metadata);
  const current = versions.current(event.type);
  // Current, newer or no version at all: as it is (decoders refuse the last two).
  if (version === undefined || version >= current) return event;
  let data: unknown;
  try {
    data = versions.upcast(event.type, version, event.data);
  } catch {
    // An upcaster must not throw; if one does, the event stays old for its codec to judge (a projection parks it).
    return event;
  }
  return { ...event, data, metadata: { ...event.metadata, schemaVersion: current } };
}

/**
 * The version of an event's data as its metadata records it (`schemaVersion`, stamped by the command
 * handler): absent → 1, as on every event stored before versioning; undefined when it is no version.
 */
export function schemaVersionOf(metadata: EventMetadata): number | undefined {
  const version = metadata['schemaVersion'];
  if (version === undefined) return FIRST_VERSION;
  return typeof version === 'number' && Number.isInteger(version) && version >= FIRST_VERSION ? version : undefined;
}

/** Why a recorded event cannot be decoded as its type's current shape (its version), or undefined when it can. */
export function schemaRefusal(event: RecordedEvent, versions: EventVersions = EVENT_VERSIONS): string | undefined {
  return versions.refusal(event.type, schemaVersionOf(event.metadata));
}

/** The version the writer stamps on a new event of `type`: the current one. */
export const currentSchemaVersion = (type: string): number => EVENT_VERSIONS.current(type);
