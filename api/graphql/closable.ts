/**
 * A subscription's source stream whose `return()` — the client unsubscribed, or its socket closed —
 * takes effect at once. An async generator's own `return()` queues behind a pending `next()`: for a
 * quiet user, until their next message, and the generator's `finally` (its bus unsubscribe) with it, so
 * each closed subscription would keep its bus listeners until then. Here `return()` first aborts the
 * generator's signal, which ends its wait; the generator sees the signal and returns.
 */
export function closable<T>(generator: (signal: AbortSignal) => AsyncGenerator<T>): AsyncIterableIterator<T> {
  const controller = new AbortController();
  const source = generator(controller.signal);
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    next: () => source.next(),
    return: (value?: unknown) => {
      controller.abort();
      return source.return(value as T);
    },
    throw: (error?: unknown) => {
      controller.abort();
      return source.throw(error);
    },
  };
}
