import { isLeft } from 'fp-ts/lib/Either';
import type * as t from 'io-ts';
import { codecEvent, membersOf } from '../../domain/eventCatalogue';
import type { RecordedEvent } from '../eventStore/eventStore';
import { schemaRefusal } from '../eventStore/upcastingEventStore';

/**
 * An event of a type the projection reads whose data its codec refuses (or a check beside the codec,
 * such as an id's form). The event's own fault: the runner parks it with this message, never skips it
 * (docs/operations.md, "Parked events").
 */
export class UndecodableEventError extends Error {
  override readonly name = 'UndecodableEventError';
}

/** How a projection reads the recorded events of one event union. */
export interface EventDecoder<E> {
  /** The types of the union's events: what `decode` reads, every other type it passes over. */
  readonly types: ReadonlySet<string>;
  /**
   * The event, or undefined when its type is none of the union's (another projection's event).
   * Throws UndecodableEventError when the type is the union's but the data is refused.
   */
  decode(recorded: RecordedEvent): E | undefined;
}

/**
 * A decoder for an event union (`t.union` of `{ type: literal, data }` codecs, as in domain/): each
 * event is decoded by its own type's codec, so a refusal names the fields of that event only.
 * `refuse`: what the codec cannot say (an id's form), as the reason to refuse a decoded event.
 */
export function eventDecoder<E>(
  union: t.Type<E, unknown, unknown>,
  refuse?: (event: E) => string | undefined,
): EventDecoder<E> {
  const byType = new Map<string, t.Mixed>();
  for (const member of membersOf(union)) {
    const type = codecEvent(member)?.type;
    if (type === undefined)
      throw new Error(`eventDecoder: ${member.name} is not an event codec ({ type: literal, data: object })`);
    byType.set(type, member);
  }
  return {
    types: new Set(byType.keys()),
    decode(recorded) {
      const codec = byType.get(recorded.type);
      if (!codec) return undefined;
      const refusal = schemaRefusal(recorded);
      if (refusal !== undefined)
        throw new UndecodableEventError(`${recorded.type} at position ${recorded.position} cannot be read: ${refusal}`);
      const decoded = codec.decode({ type: recorded.type, data: recorded.data });
      if (isLeft(decoded))
        throw new UndecodableEventError(
          `${recorded.type} at position ${recorded.position} does not match its codec: ${describe(decoded.left)}`,
        );
      const event = decoded.right as E;
      const reason = refuse?.(event);
      if (reason !== undefined)
        throw new UndecodableEventError(`${recorded.type} at position ${recorded.position} is refused: ${reason}`);
      return event;
    },
  };
}

/**
 * The event types a projection reads: those its decoders decode, so the set cannot drift from the codecs
 * (a test on names would also take another feature's event of a similar name).
 */
export function eventTypesOf(...decoders: readonly EventDecoder<unknown>[]): ReadonlySet<string> {
  return new Set(decoders.flatMap((decoder) => [...decoder.types]));
}

/** The first few refused fields, as `data.title: expected string`: short enough for a log line and the parked row. */
function describe(errors: t.Errors): string {
  const fields = errors.slice(0, 3).map((error) => {
    const path = error.context
      .map((entry) => entry.key)
      .filter((key) => key !== '')
      .join('.');
    const expected = error.context[error.context.length - 1]?.type.name ?? 'a value';
    return `${path || '(the event)'}: expected ${expected.slice(0, 80)}`;
  });
  return fields.join('; ') + (errors.length > 3 ? `; and ${errors.length - 3} more` : '');
}
