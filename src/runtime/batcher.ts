/**
 * Answers the requests made in one turn of the event loop with one call of `load` (per `max` of them):
 * a gap on the bus makes every subscriber of a node ask the store at once, and that is one query, not
 * one per subscriber.
 */
export class Batcher<Request, Result> {
  private pending: Array<{ readonly request: Request; resolve(result: Result): void; reject(error: unknown): void }> =
    [];

  constructor(
    /** The results in the order of the requests. */
    private readonly load: (requests: readonly Request[]) => Promise<readonly Result[]>,
    private readonly max = 500,
  ) {}

  get(request: Request): Promise<Result> {
    return new Promise((resolve, reject) => {
      if (this.pending.push({ request, resolve, reject }) === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    for (let start = 0; start < batch.length; start += this.max) {
      const chunk = batch.slice(start, start + this.max);
      this.load(chunk.map((p) => p.request)).then(
        (results) => chunk.forEach((p, i) => p.resolve(results[i]!)),
        (error: unknown) => chunk.forEach((p) => p.reject(error)),
      );
    }
  }
}
