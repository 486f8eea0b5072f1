import pg from 'pg';
import type { Database } from '../postgres/database';
import type { Logger } from '../runtime/logger';

/**
 * Every checkpoint move tells `<projection> <position>` on this channel: this process's listeners directly,
 * other processes by NOTIFY while one listens (ProjectionRunner.applyBatch, src/postgres/notices.ts).
 */
export const CHECKPOINT_CHANNEL = 'herald_checkpoints';
// A fallback for a notification lost while the listener reconnects: waiters re-read the checkpoints.
const POLL_MS = 200;
const RECONNECT_MS = 500;

interface Waiter {
  readonly projections: readonly string[];
  readonly position: bigint;
  readonly resolve: (caughtUp: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * How far each projection has committed, known without a query: the local runner reports its commits
 * at once, and the runners of other nodes sharing the database through NOTIFY. Read-your-writes waits
 * here: a command's answer waits until the projections that serve its caller have passed its position —
 * one shared set of waiters woken by commits, not a poll per request (Commanded's strong consistency).
 */
export class ProjectionProgress {
  private readonly positions = new Map<string, bigint>();
  private waiters: Waiter[] = [];
  private listener: pg.Client | undefined;
  private poller: NodeJS.Timeout | undefined;
  private closed = false;

  private readonly told = (payload: string) => this.notified(payload);

  constructor(private readonly deps: { readonly database: Database; readonly log: Logger }) {}

  /** Loads the committed checkpoints and starts listening for commits. */
  async start(): Promise<void> {
    this.deps.database.notices.on(CHECKPOINT_CHANNEL, this.told);
    await this.listen();
    await this.readCheckpoints();
  }

  private notified(payload: string): void {
    const [name, position] = payload.split(' ');
    if (name && position && /^-?\d+$/.test(position)) this.advance(name, BigInt(position));
  }

  /** A projection committed up to `position` (its runner here, or a notification from another node). */
  advance(projection: string, position: bigint): void {
    if (position <= (this.positions.get(projection) ?? -1n)) return;
    this.positions.set(projection, position);
    if (this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((waiter) => {
      if (!this.hasPassed(waiter.projections, waiter.position)) return true;
      clearTimeout(waiter.timer);
      waiter.resolve(true);
      return false;
    });
    if (this.waiters.length === 0) this.stopPolling();
  }

  /** The furthest position the projection is known to have passed; -1n when none. */
  position(projection: string): bigint {
    return this.positions.get(projection) ?? -1n;
  }

  hasPassed(projections: readonly string[], position: bigint): boolean {
    return projections.every((name) => (this.positions.get(name) ?? -1n) >= position);
  }

  /** Resolves true once every one of `projections` has committed `position`, false after `timeoutMs`. */
  waitFor(projections: readonly string[], position: bigint, timeoutMs: number): Promise<boolean> {
    if (this.hasPassed(projections, position)) return Promise.resolve(true);
    if (timeoutMs <= 0 || this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        projections,
        position,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          if (this.waiters.length === 0) this.stopPolling();
          resolve(false);
        }, timeoutMs),
      };
      this.waiters.push(waiter);
      this.poller ??= setInterval(() => void this.readCheckpoints().catch(() => undefined), POLL_MS);
    });
  }

  /**
   * A function for a command's answer to await: waits for `projections` to pass the command's position,
   * at most `timeoutMs`; past it, logs the lag and lets the answer go (the write did succeed).
   */
  readYourWrites(projections: readonly string[], timeoutMs: number): (position: bigint | undefined) => Promise<void> {
    return async (position) => {
      if (position === undefined) return;
      const started = Date.now();
      if (await this.waitFor(projections, position, timeoutMs)) return;
      if (timeoutMs <= 0) return;
      this.deps.log.warn(
        {
          projections: Object.fromEntries(projections.map((p) => [p, String(this.positions.get(p) ?? -1n)])),
          position: String(position),
          waitedMs: Date.now() - started,
        },
        'read models lag behind a command: answering before its caller can see its effect',
      );
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.deps.database.notices.off(CHECKPOINT_CHANNEL, this.told);
    this.stopPolling();
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(false);
    }
    this.waiters = [];
    const listener = this.listener;
    this.listener = undefined;
    if (listener) this.deps.database.notices.stoppedListening(listener);
    await listener?.end().catch(() => undefined);
  }

  private async readCheckpoints(): Promise<void> {
    const { rows } = await this.deps.database.pool.query<{ name: string; position: string }>(
      'SELECT name, position FROM projection_checkpoints',
    );
    for (const row of rows) this.advance(row.name, BigInt(row.position));
  }

  private stopPolling(): void {
    clearInterval(this.poller);
    this.poller = undefined;
  }

  private async listen(): Promise<void> {
    const client = new pg.Client(
      this.deps.database.notices.listenerConfig(this.deps.database.clientConfig, CHECKPOINT_CHANNEL),
    );
    client.on('notification', (message) => this.notified(message.payload ?? ''));
    client.on('error', (error) => {
      if (this.listener === client) this.listener = undefined;
      this.deps.database.notices.stoppedListening(client);
      client.end().catch(() => undefined);
      if (this.closed) return;
      this.deps.log.warn({ err: error }, 'projection progress listener lost its connection; reconnecting');
      const retry = () => {
        if (this.closed) return;
        this.listen().then(
          () => this.readCheckpoints().catch(() => undefined),
          () => setTimeout(retry, RECONNECT_MS).unref(),
        );
      };
      setTimeout(retry, RECONNECT_MS).unref();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHECKPOINT_CHANNEL}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.deps.database.notices.listening(client);
    this.listener = client;
  }
}
