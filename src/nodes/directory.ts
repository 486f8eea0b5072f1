import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '../runtime/logger';

/**
 * Which node holds a connection (an RTIO device's, a ONE-PUSH device's), for the other nodes to find:
 * what is called on one node reaches a device connected to another. Each node counts its own
 * connections per key; the directory knows only which node holds a key.
 */
export interface Directory {
  /** This node, as other nodes address it (a fresh id each start). */
  readonly nodeId: string;
  /** This node holds one more connection for `key`; answers the node that held it before, if another. */
  add(key: string): Promise<string | undefined>;
  /** This node holds one connection fewer for `key`. */
  remove(key: string): void;
  /** The node holding a connection for `key`, if any. */
  holder(key: string): Promise<string | undefined>;
  /** The keys of `keys` some node holds a connection for (one round trip). */
  held(keys: readonly string[]): Promise<ReadonlySet<string>>;
  /** Whether this node holds a connection for `key` (no round trip). */
  holdsHere(key: string): boolean;
  /** The keys this node holds connections for. */
  keysHere(): string[];
  close(): Promise<void>;
}

/** One node: the directory is its own connections. */
export class LocalDirectory implements Directory {
  readonly nodeId = randomUUID();
  private readonly counts = new Map<string, number>();

  async add(key: string): Promise<string | undefined> {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    return undefined;
  }

  remove(key: string): void {
    const left = (this.counts.get(key) ?? 0) - 1;
    if (left > 0) this.counts.set(key, left);
    else this.counts.delete(key);
  }

  async holder(key: string): Promise<string | undefined> {
    return this.counts.has(key) ? this.nodeId : undefined;
  }

  async held(keys: readonly string[]): Promise<ReadonlySet<string>> {
    return new Set(keys.filter((key) => this.counts.has(key)));
  }

  holdsHere(key: string): boolean {
    return this.counts.has(key);
  }

  async close(): Promise<void> {
    this.counts.clear();
  }

  keysHere(): string[] {
    return [...this.counts.keys()];
  }
}

// A holder renews its keys well within their lease: a node that dies leaves them for at most LEASE_MS.
const LEASE_MS = 30_000;
const RENEW_MS = 10_000;
const PREFIX = 'herald:holder:';
// Deletes, or renews, the key only if this node still holds it (another node may have taken the device since).
const RELEASE_IF_MINE =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
const RENEW_IF_MINE =
  "local v = redis.call('GET', KEYS[1]) if v == false or v == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) else return 0 end";

/**
 * Several nodes (REDIS_URL): each key this node holds is a Redis key naming it, with a lease it renews,
 * so a crashed node's entries vanish within 30 s. A device that connects to another node takes the key
 * over (the newest connection wins, as on one node); this node's release then leaves it alone.
 */
export class RedisDirectory implements Directory {
  private readonly local = new LocalDirectory();
  private readonly renewal: NodeJS.Timeout;

  private constructor(
    private readonly redis: Redis,
    private readonly log: Logger,
  ) {
    this.renewal = setInterval(() => this.renew(), RENEW_MS);
    this.renewal.unref();
    // Redis back after an outage may have lost every entry (a restart without persistence): write this
    // node's back at once, not at the next renewal, so its devices are not offline to the others meanwhile.
    redis.on('ready', () => this.renew());
  }

  static async connect(url: string, log: Logger): Promise<RedisDirectory> {
    const redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
      connectionName: 'herald-directory',
    });
    redis.on('error', (error: Error) => log.warn({ err: error }, 'Redis directory connection error'));
    await redis.connect();
    return new RedisDirectory(redis, log);
  }

  get nodeId(): string {
    return this.local.nodeId;
  }

  async add(key: string): Promise<string | undefined> {
    await this.local.add(key);
    try {
      const before = await this.redis.set(PREFIX + key, this.nodeId, 'PX', LEASE_MS, 'GET');
      return before !== null && before !== this.nodeId ? before : undefined;
    } catch (error) {
      this.log.warn({ err: error, key }, 'directory: could not record a connection (renewed later)');
      return undefined;
    }
  }

  remove(key: string): void {
    this.local.remove(key);
    if (this.local.holdsHere(key)) return;
    this.redis
      .eval(RELEASE_IF_MINE, 1, PREFIX + key, this.nodeId)
      .catch((error: unknown) =>
        this.log.warn({ err: error, key }, 'directory: could not release a connection (its lease runs out)'),
      );
  }

  async holder(key: string): Promise<string | undefined> {
    if (this.local.holdsHere(key)) return this.nodeId;
    try {
      return (await this.redis.get(PREFIX + key)) ?? undefined;
    } catch (error) {
      return this.unreachable(error, this.local.holder(key));
    }
  }

  async held(keys: readonly string[]): Promise<ReadonlySet<string>> {
    if (keys.length === 0) return new Set();
    try {
      const holders = await this.redis.mget(keys.map((key) => PREFIX + key));
      return new Set(keys.filter((key, index) => holders[index] !== null || this.local.holdsHere(key)));
    } catch (error) {
      return this.unreachable(error, this.local.held(keys));
    }
  }

  /**
   * While Redis is unreachable this node knows only its own connections, and answers from them (the
   * offline queue is off, so that is at once): a device held by another node counts as offline — an RTIO
   * call to it answers offline, a ONE-PUSH send with `smsMessage` requests its SMS as well — rather than
   * failing a request whose push is already recorded (docs/operations.md, "When Redis is down").
   */
  private unreachable<T>(error: unknown, local: Promise<T>): Promise<T> {
    this.log.warn({ err: error }, "directory: Redis unreachable; answering from this node's own connections");
    return local;
  }

  holdsHere(key: string): boolean {
    return this.local.holdsHere(key);
  }

  keysHere(): string[] {
    return this.local.keysHere();
  }

  async close(): Promise<void> {
    clearInterval(this.renewal);
    const keys = this.local.keysHere();
    await Promise.allSettled(keys.map((key) => this.redis.eval(RELEASE_IF_MINE, 1, PREFIX + key, this.nodeId)));
    await this.local.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private renew(): void {
    const keys = this.local.keysHere();
    if (keys.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const key of keys) pipeline.eval(RENEW_IF_MINE, 1, PREFIX + key, this.nodeId, LEASE_MS);
    pipeline
      .exec()
      .catch((error: unknown) =>
        this.log.warn({ err: error, keys: keys.length }, 'directory: renewing leases failed; trying again'),
      );
  }
}
