import type * as t from 'io-ts';
import type { Upcaster } from './eventVersions';

/**
 * One stream's part of the event catalogue (docs/events.md): the prose its codecs cannot carry. Each
 * aggregate exports its entry as plain data beside its codecs; domain/eventCatalogue.ts collects them, so
 * the catalogue imports the aggregates and never the other way round.
 */
export interface CatalogueEntry {
  /** The section's name, e.g. `message`. */
  readonly title: string;
  /** The stream name pattern, e.g. `message-<messageId>`. */
  readonly stream: string;
  /** The file that holds the codecs, from the repository's root. */
  readonly module: string;
  /** The events of the stream: its exported union, or its one event codec. */
  readonly union: t.Mixed;
  /** Paragraphs (Markdown) on the aggregate, before its events. */
  readonly description?: readonly string[];
  /** Per event type of the union. */
  readonly events: Readonly<Record<string, EventProse>>;
  /** Paragraphs after the events. */
  readonly notes?: readonly string[];
  /** Each step by which an event of the union changed shape (domain/eventVersions.ts); none: all at version 1. */
  readonly upcasters?: readonly Upcaster[];
}

export interface EventProse {
  /** What the event means: the command, route or process that appends it. */
  readonly when: string;
  /** Per field of the event's data: what its type cannot say (format, bounds, the meaning of null). */
  readonly fields?: Readonly<Record<string, string>>;
}
