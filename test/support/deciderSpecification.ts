import { expect } from 'chai';
import type { Decider } from '../../domain/decider';

/**
 * given(events).when(command).then(events) for deciders: a domain test is a table of facts, no database.
 */
export function deciderSpecification<Command, Event, State>(decider: Decider<Command, Event, State>) {
  return {
    given(events: readonly Event[]) {
      const state = events.reduce(decider.evolve, decider.initialState());
      return {
        when(command: Command) {
          const decide = () => decider.decide(command, state);
          return {
            then(expected: readonly Event[]) {
              expect(decide()).to.deep.equal(expected);
            },
            thenThrows<E extends Error>(type: new (...args: never[]) => E, check?: (error: E) => void) {
              let thrown: unknown;
              try {
                decide();
              } catch (error) {
                thrown = error;
              }
              expect(thrown, `expected ${type.name}`).to.be.instanceOf(type);
              check?.(thrown as E);
            },
          };
        },
      };
    },
  };
}
