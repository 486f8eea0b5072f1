import { isConnectionError } from '../../postgres/errors';
import { EventStoreUnavailableError } from '../eventStore';

/** A lost or refused connection as the port's EventStoreUnavailableError (callers may retry); anything else as it is. */
export function toStoreError(error: unknown): unknown {
  if (isConnectionError(error))
    return new EventStoreUnavailableError(`PostgreSQL event store unavailable: ${(error as Error).message}`, {
      cause: error,
    });
  return error;
}
