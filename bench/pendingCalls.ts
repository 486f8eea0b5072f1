/**
 * Requests sent over a channel that answers by id (the V8 inspector's protocol, the RTIO device
 * simulator's IPC), each awaiting its answer within a timeout.
 */
export class PendingCalls {
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (result: unknown) => void; reject: (error: Error) => void }>();

  /** Sends a request under a fresh id and waits for its answer; `late` is the timeout's error message. */
  call<T>(late: string, timeoutMs: number, send: (id: number) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = ++this.nextId;
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(late));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (result) => {
          clearTimeout(timer);
          resolve(result as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      send(id);
    });
  }

  /** The answer to request `id`: its error message, or else its result. An id no call waits for is ignored. */
  answer(id: number, error: string | undefined, result: unknown): void {
    const waiter = this.waiting.get(id);
    this.waiting.delete(id);
    if (error !== undefined) waiter?.reject(new Error(error));
    else waiter?.resolve(result);
  }

  /** Fails every call still waiting (the channel has closed). */
  rejectAll(error: Error): void {
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
  }
}
