/**
 * Where herald's "now" comes from. One clock is made in the composition root and handed to everything
 * that reads the time (shims, GraphQL, tickets, the scheduler), so tests of expiry, schedules and
 * retries advance time instead of waiting for it. Deciders get the time inside their commands.
 */
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();
