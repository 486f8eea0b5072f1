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
 * unless every other session of the database that could be listening is known not to, as seen in
 * pg_stat_activity every OTHERS_POLL_MS (`othersListening`). herald names its sessions by
 * application_name, which every role sees whatever track_activities is: `herald:<tag>` for the pool and
 * other sessions, which never LISTEN, and `herald-listen:<tag>:<channel>` for a listener, where <tag>
 * is this process's (its pid and a counter, per database). Another session notifies its channel; so does
 * one whose query text shows a LISTEN (an older herald, a CLI following the stream), and so does, on
 * every channel, one whose identity cannot be told (not named by herald, its query text hidden:
 * another role without pg_read_all_stats, or track_activities off). Both are only wake-ups: a listener
 * that starts unseen, or that ran another statement after its LISTEN, is woken by its own poll
 * meanwhile (subscriptions every 1 s, read-your-writes waiters every 200 ms).
 */

const OTHERS_POLL_MS = 1000;
const SESSION_PREFIX = 'herald:';
const LISTENER_PREFIX = 'herald-listen:';

/** One process's wake-ups for one database (its connection string). */
interface Shared {
  readonly told: EventEmitter;
  readonly pids: Set<number>;
  readonly tag: string;
}
// Never pruned: one entry per database a process opens (a few in a server; many only in test runs).
const local = new Map<string, Shared>();

function sharedFor(database: string): Shared {
  let shared = local.get(database);
  if (!shared) {
    const told = new EventEmitter();
    told.setMaxListeners(0);
    shared = { told, pids: new Set(), tag: `${process.pid}.${local.size}` };
    local.set(database, shared);
  }
  return shared;
}

/** The application_name of this process's sessions of `database` that never LISTEN. */
export function sessionName(database: string): string {
  return `${SESSION_PREFIX}${sharedFor(database).tag}`;
}

/** A session of the database, as pg_stat_activity shows it to this role. */
export interface SessionActivity {
  readonly pid: number;
  readonly applicationName: string | null;
  readonly query: string | null;
}

/** Who else may be listening: the channels other sessions are known to LISTEN on, and whether some session cannot be told. */
export interface OthersListening {
  readonly channels: ReadonlySet<string>;
  /** Sessions that may listen on any channel (their query text hidden and not named by herald), by a description. */
  readonly unknown: ReadonlySet<string>;
  /** Every other listener, by a description (for the log). */
  readonly listeners: ReadonlySet<string>;
}

/** Reads pg_stat_activity's rows (this process's own sessions by `tag` or `pids`). */
export function othersListening(
  sessions: readonly SessionActivity[],
  tag: string,
  pids: ReadonlySet<number>,
): OthersListening {
  const channels = new Set<string>();
  const unknown = new Set<string>();
  const listeners = new Set<string>();
  for (const { pid, applicationName, query } of sessions) {
    const name = applicationName ?? '';
    if (pids.has(pid) || name === SESSION_PREFIX + tag || name.startsWith(`${LISTENER_PREFIX}${tag}:`)) continue;
    const named = /^herald-listen:([^:]+):(\w+)$/.exec(name);
    if (named) {
      channels.add(named[2]!);
      listeners.add(`${name}`);
      continue;
    }
    if (name.startsWith(SESSION_PREFIX)) continue; // herald's other sessions never LISTEN
    const text = query?.trim() ?? '';
    if (text === '' || text === '<insufficient privilege>') {
      unknown.add(`pid ${pid} (${name || 'no application_name'}, query not visible)`);
      continue;
    }
    const listen = /^listen\s+(?:"([^"]+)"|([A-Za-z_][\w$]*))\s*;?$/i.exec(text);
    if (listen) {
      const channel = listen[1] ?? listen[2]!.toLowerCase();
      channels.add(channel);
      listeners.add(`pid ${pid} (${name || 'no application_name'}) ${channel}`);
    }
  }
  for (const description of unknown) listeners.add(description);
  return { channels, unknown, listeners };
}

export class Notices {
  private readonly told: EventEmitter;
  private readonly pids: Set<number>;
  private readonly tag: string;
  private others: OthersListening | undefined;
  private reported: ReadonlySet<string> = new Set();
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    database: string,
    private readonly log?: NoticesLog,
  ) {
    const shared = sharedFor(database);
    this.told = shared.told;
    this.pids = shared.pids;
    this.tag = shared.tag;
  }

  /**
   * Wakes this process's listeners of `channel` at once (call it after the commit that the payload
   * reports). A listener that throws is logged: the commit stands, and its writer must not take it for
   * its own failure.
   */
  tell(channel: string, payload: string): void {
    for (const listener of this.told.listeners(channel) as Array<(payload: string) => void>) {
      try {
        listener(payload);
      } catch (error) {
        this.log?.error({ err: error, channel }, 'a wake-up listener failed');
      }
    }
  }

  /** The settings of a session that LISTENs on `channel`: named so that other processes tell it is this one's. */
  listenerConfig(config: pg.ClientConfig, channel: string): pg.ClientConfig {
    return { ...config, application_name: `${LISTENER_PREFIX}${this.tag}:${channel}` };
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

  /** Whether a commit must NOTIFY `channel`: another session may listen on it, or it is not known yet that none does. */
  othersListen(channel: string): boolean {
    this.poll();
    const others = this.others;
    return others === undefined || others.unknown.size > 0 || others.channels.has(channel);
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

  /** Logs another listener (or a session that cannot be told) when first seen and when gone. */
  private report(now: OthersListening): void {
    for (const listener of now.listeners)
      if (!this.reported.has(listener)) this.log?.info({ listener }, 'another session may listen: commits notify it');
    for (const listener of this.reported)
      if (!now.listeners.has(listener)) this.log?.info({ listener }, 'another listening session is gone');
    this.reported = new Set(now.listeners);
  }

  private async look(): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      const { rows } = await this.pool.query<SessionActivity>({
        name: 'herald-other-sessions',
        text: `SELECT pid, application_name AS "applicationName", query FROM pg_stat_activity
                WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
      });
      const others = othersListening(rows, this.tag, this.pids);
      this.report(others);
      this.others = others;
    } catch {
      this.others = undefined; // not known: notify
    } finally {
      this.polling = false;
    }
  }
}

export interface NoticesLog {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** The server process of a connected client (pg keeps it from BackendKeyData; its types do not show it). */
function backendPid(client: pg.Client): number | undefined {
  const pid = (client as unknown as { processID?: unknown }).processID;
  return typeof pid === 'number' ? pid : undefined;
}
