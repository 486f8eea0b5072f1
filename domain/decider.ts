import { HeraldError } from './heraldError';

/**
 * A decider: the whole behaviour of one aggregate as pure functions. `decide` turns a command and the
 * current state into new events (or throws a DomainError); `evolve` folds one event into the state.
 * Time and ids arrive inside the command, so deciders call no clock, no random and no I/O.
 */
export interface Decider<Command, Event, State> {
  readonly initialState: () => State;
  readonly evolve: (state: State, event: Event) => State;
  readonly decide: (command: Command, state: State) => readonly Event[];
}

/** A domain event as the event store keeps it: a PascalCase past-tense type and a JSON payload. */
export interface DomainEvent<Type extends string = string, Data = unknown> {
  readonly type: Type;
  readonly data: Data;
}

/** A refused command: a HeraldError with one of the codes a decider uses. */
export class DomainError extends HeraldError {
  override readonly name = 'DomainError';
  declare readonly code: DomainErrorCode;
  constructor(code: DomainErrorCode, message: string) {
    super(code, message);
  }
}

export type DomainErrorCode = 'invalid' | 'not_found' | 'forbidden' | 'conflict' | 'expired';

/** Makes a forgotten case of a discriminated union a compile error. */
export function unreachable(value: never): never {
  throw new Error(`unhandled case: ${JSON.stringify(value)}`);
}
