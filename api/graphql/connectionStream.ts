import type { GraphQLError } from 'graphql';

/**
 * A subscription's source fed by a connection herald writes to (a device's pushes, an RTIO device's
 * calls): items are buffered up to `max`; the stream ends when the client unsubscribes (`signal`), when
 * the connection is closed (what was written before still goes out, then `endingOf` says how it ends),
 * or when the buffer overflows (the subscriber is not reading).
 */
export class ConnectionStream<T> {
  private readonly buffered: T[] = [];
  private overflow = false;
  private ended: { readonly code: number; readonly reason: string } | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly signal: AbortSignal,
    private readonly max: number,
    /** Told once when the buffer overflows (e.g. to take the connection offline at once). */
    private readonly onOverflow: () => void = () => undefined,
  ) {
    signal.addEventListener('abort', () => this.wake?.(), { once: true });
  }

  /** Takes an item; false when the stream takes no more (ended, or full). */
  offer(item: T): boolean {
    if (this.signal.aborted || this.ended || this.overflow) return false;
    if (this.buffered.length >= this.max) {
      this.overflow = true;
      this.onOverflow();
      this.wake?.();
      return false;
    }
    this.buffered.push(item);
    this.wake?.();
    return true;
  }

  close(code: number, reason: string): void {
    this.ended ??= { code, reason };
    this.wake?.();
  }

  /** The items, in order; throws `overflowError()` on overflow, `endingOf(close)` (if any) at the end. */
  async *items(
    overflowError: () => GraphQLError,
    endingOf: (ended: { readonly code: number; readonly reason: string }) => GraphQLError | undefined,
  ): AsyncGenerator<T> {
    for (;;) {
      while (this.buffered.length === 0 && !this.overflow && !this.ended && !this.signal.aborted) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
      if (this.signal.aborted) return;
      if (this.overflow) throw overflowError();
      if (this.buffered.length > 0) {
        yield this.buffered.shift()!;
        continue;
      }
      if (this.ended) {
        const error = endingOf(this.ended);
        if (error) throw error;
        return;
      }
    }
  }
}
