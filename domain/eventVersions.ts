/**
 * Event versioning. Stored events are never edited, so when the shape of an event's data changes, its
 * schema version goes up by one and an upcaster beside its codecs turns data of the old version into the
 * new. Reads run the chain (src/eventStore/upcastingEventStore.ts), so codecs, deciders and projections
 * only ever see the current shape. An event's version is in its metadata (`schemaVersion`); events
 * stored before versioning have none and are version 1.
 */

/** The first version of every event type; a type without upcasters is still at it. */
export const FIRST_VERSION = 1;

/** One step of an event type's chain: data of version `from` as version `to` (= from + 1). */
export interface Upcaster {
  readonly type: string;
  readonly from: number;
  readonly to: number;
  /** What changed, in a sentence (Markdown): docs/events.md lists it under the event. */
  readonly change: string;
  /**
   * Pure and total: data it cannot read (not the old shape after all) comes back as it is, so the codec
   * refuses it and the event is parked with its error instead of stopping the reader.
   */
  upcast(data: unknown): unknown;
}

/** Why a chain cannot be built: its steps do not go 1 → 2 → … one at a time. */
export class UpcasterChainError extends Error {
  override readonly name = 'UpcasterChainError';
}

/** Every event type's current version and its chain of upcasters, checked whole when it is built. */
export class EventVersions {
  private readonly chains = new Map<string, readonly Upcaster[]>();

  /** Throws UpcasterChainError for a missing or repeated step, or one that skips a version. */
  constructor(upcasters: readonly Upcaster[]) {
    for (const type of new Set(upcasters.map((upcaster) => upcaster.type))) {
      const chain = upcasters.filter((upcaster) => upcaster.type === type).sort((a, b) => a.from - b.from);
      chain.forEach((step, index) => {
        const from = FIRST_VERSION + index;
        if (step.from !== from)
          throw new UpcasterChainError(
            step.from < from
              ? `${type}: two upcasters from version ${step.from}`
              : `${type}: no upcaster from version ${from} (the next goes from ${step.from})`,
          );
        if (step.to !== from + 1)
          throw new UpcasterChainError(
            `${type}: the upcaster from version ${from} goes to ${step.to}, not ${from + 1}`,
          );
      });
      this.chains.set(type, chain);
    }
  }

  /** The version this code writes and reads: 1 plus the number of upcasters of the type. */
  current(type: string): number {
    return FIRST_VERSION + (this.chains.get(type)?.length ?? 0);
  }

  /** The types that have changed shape (have upcasters). */
  changedTypes(): readonly string[] {
    return [...this.chains.keys()];
  }

  /** The steps that have changed the type, oldest first. */
  changes(type: string): readonly Upcaster[] {
    return this.chains.get(type) ?? [];
  }

  /** Data of `version` in the shape of the current version. Throws RangeError for a version outside 1 to current. */
  upcast(type: string, version: number, data: unknown): unknown {
    const current = this.current(type);
    if (!Number.isInteger(version) || version < FIRST_VERSION || version > current)
      throw new RangeError(`${type}: cannot upcast version ${version} (this code reads versions 1 to ${current})`);
    return this.changes(type)
      .slice(version - FIRST_VERSION)
      .reduce((upcast, step) => step.upcast(upcast), data);
  }

  /**
   * Why data stored as `version` (undefined: not a version) must not be decoded, or undefined when it may
   * be: a version newer than the type's current one was written by a newer herald, whose upcasters this
   * code does not have, so it is refused rather than read as the older shape it may resemble. (An older
   * version is upcast by the store on read; one that was not, meets the current codec like any data.)
   */
  refusal(type: string, version: number | undefined): string | undefined {
    const current = this.current(type);
    if (version === undefined) return 'its schemaVersion is not a version (a positive integer)';
    if (version > current)
      return `it is schema version ${version}, newer than this herald's ${current}: upgrade herald, then retry it`;
    return undefined;
  }
}
