import { EventEmitter } from 'node:events';
import type pg from 'pg';

/**
 * herald's wake-ups (new events appended, a projection's checkpoint moved), told without a NOTIFY inside
 * a commit when no other process listens for them.
 *
 * A transaction that notifies takes PostgreSQL's one notification-queue lock at commit and holds it until
 * its commit ends, through the append's WAL flush: every notifying commit of the cluster queues behind
 * it, and each NOTIFY wakes every listening session (docs/performance.md, "NOTIFY serializes commits").
 * Inside one process the writer tells its listeners directly after its commit (`tell`); a NOTIFY is sent
 * only while a session of another process LISTENs on the channel (another node, an older herald during a
 * rolling upgrade, a CLI following the stream), as seen in pg_stat_activity every OTHERS_POLL_MS. Both
 * are only wake-ups: a listener that starts unseen is woken by its own poll meanwhile (subscriptions every
 * 1 s, read-your-writes waiters every 200 ms), and a session whose query text this role may not read
 * (another role without pg_read_all_stats, or the server's track_activities off) is not seen — it polls.
 */

const OTHERS_POLL_MS = 1000;

/** This process's listeners, per database (its connection string) and channel. */
const local = new Map<string, { readonly told: EventEmitter; readonly pids: Set<number> }>();

export class Notices {
  private readonly told: EventEmitter;
  private readonly pids: Set<number>;
  private othersListening: ReadonlySet<string> | undefined;
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    database: string,
  ) {
    let shared = local.get(database);
    if (!shared) {
      const told = new EventEmitter();
      told.setMaxListeners(0);
      shared = { told, pids: new Set() };
      local.set(database, shared);
    }
    this.told = shared.told;
    this.pids = shared.pids;
  }

  /** Wakes this process's listeners of `channel` at once (call it after the commit that the payload reports). */
  tell(channel: string, payload: string): void {
    this.told.emit(channel, payload);
  }

  on(channel: string, listener: (payload: string) => void): void {
    this.told.on(channel, listener);
  }

  off(channel: string, listener: (payload: string) => void): void {
    this.told.off(channel, listener);
  }

  /** A session of this process that LISTENs: not another process, so told directly. */
  listening(client: pg.Client): void {
    const pid = backendPid(client);
    if (pid !== undefined) this.pids.add(pid);
  }

  stoppedListening(client: pg.Client): void {
    const pid = backendPid(client);
    if (pid !== undefined) this.pids.delete(pid);
  }

  /** Whether a commit must NOTIFY `channel`: another process listens on it, or it is not known yet that none does. */
  othersListen(channel: string): boolean {
    this.poll();
    return this.othersListening?.has(channel) ?? true;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.poller);
    this.poller = undefined;
  }

  private poll(): void {
    if (this.poller || this.closed) return;
    this.poller = setInterval(() => void this.look(), OTHERS_POLL_MS).unref();
    void this.look();
  }

  private async look(): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      // A listener's session runs nothing after its LISTEN, so its query text stays the LISTEN.
      const { rows } = await this.pool.query<{ channel: string }>({
        name: 'herald-other-listeners',
        text: `SELECT DISTINCT substr(query, 8) AS channel FROM pg_stat_activity
                WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> ALL ($1::int[])`,
        values: [[...this.pids]],
      });
      this.othersListening = new Set(rows.map((row) => row.channel));
    } catch {
      this.othersListening = undefined; // not known: notify
    } finally {
      this.polling = false;
    }
  }
}

/** The server process of a connected client (pg keeps it from BackendKeyData; its types do not show it). */
function backendPid(client: pg.Client): number | undefined {
  const pid = (client as unknown as { processID?: unknown }).processID;
  return typeof pid === 'number' ? pid : undefined;
}
