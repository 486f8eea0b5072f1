import { Redis } from 'ioredis';
import type { Logger } from '../logger';
import type { Publication } from '../projection/projection';
import { InProcessBus, type Bus } from './bus';

/**
 * The bus between herald nodes (REDIS_URL): a projection's publications reach the subscribers of every
 * node. One Redis channel carries them all, and each node subscribes to it once — not once per
 * connection or per topic — and hands what arrives to its local listeners (an InProcessBus).
 *
 * A projection batch goes out as one message, each distinct payload serialized once however many topics
 * it is for (a push to 1,000 devices is one payload and 1,000 topics). The receiving node parses it once,
 * so every local listener of that payload gets the same object, as on a single node: a GraphQL
 * subscription then executes once per payload, not once per subscriber (api/graphql/sharedSubscription.ts).
 *
 * The publishing node receives its own messages back through Redis like any other node: one path, one
 * order. While Redis cannot be reached, publish does not wait (a projection must not stall behind the
 * bus): it hands the publications to this node's listeners and logs the gap; subscribers on other nodes
 * recover what they missed through their position-based catch-up (a reconnect with `since`).
 */
export class RedisBus implements Bus {
  private readonly local: InProcessBus;

  private constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly channel: string,
    private readonly log: Logger,
  ) {
    this.local = new InProcessBus((error, topic) => log.error({ err: error, topic }, 'bus subscriber failed'));
    subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => this.receive(message));
  }

  /** Connects and subscribes; rejects when Redis cannot be reached at start-up (a misconfiguration, not an outage). */
  static async connect(url: string, log: Logger, channel = DEFAULT_CHANNEL): Promise<RedisBus> {
    const options = {
      // A dropped connection is retried for ever, with a capped back-off; the subscriber resubscribes.
      retryStrategy: (attempt: number) => Math.min(attempt * 100, 2000),
      maxRetriesPerRequest: null,
      lazyConnect: true,
    };
    // Publishing fails at once while disconnected rather than queueing behind the outage.
    const publisher = new Redis(url, { ...options, enableOfflineQueue: false, connectionName: 'herald-bus-publisher' });
    const subscriber = new Redis(url, { ...options, connectionName: 'herald-bus-subscriber' });
    for (const [role, client] of [['publisher', publisher], ['subscriber', subscriber]] as const) {
      // ioredis reconnects by itself; an error event without a listener would crash the process.
      client.on('error', (error: Error) => log.warn({ err: error, role }, 'Redis bus connection error'));
      client.on('reconnecting', () => log.warn({ role }, 'Redis bus reconnecting'));
    }
    try {
      await Promise.all([publisher.connect(), subscriber.connect()]);
      await subscriber.subscribe(channel);
    } catch (error) {
      publisher.disconnect();
      subscriber.disconnect();
      throw error;
    }
    return new RedisBus(publisher, subscriber, channel, log);
  }

  async publish(publications: readonly Publication[]): Promise<void> {
    if (publications.length === 0) return;
    try {
      await this.publisher.publish(this.channel, encodePublications(publications));
    } catch (error) {
      this.log.warn({ err: error, publications: publications.length }, 'Redis bus unavailable: delivered on this node only; other nodes catch up from positions');
      await this.local.publish(publications);
    }
  }

  subscribe(topic: string, listener: (payload: unknown) => void): () => void {
    return this.local.subscribe(topic, listener);
  }

  async close(): Promise<void> {
    await this.local.close();
    await Promise.allSettled([this.subscriber.quit(), this.publisher.quit()]);
    this.subscriber.disconnect();
    this.publisher.disconnect();
  }

  private receive(message: Buffer): void {
    let publications: Publication[];
    try {
      publications = decodePublications(message.toString('utf8'));
    } catch (error) {
      this.log.error({ err: error }, 'Redis bus: a message that is not a publication batch; dropped');
      return;
    }
    void this.local.publish(publications);
  }
}

const DEFAULT_CHANNEL = 'herald:publications';

interface Batch {
  /** The distinct payloads, each once. */
  readonly payloads: unknown[];
  /** Each publication: its topic and the index of its payload. */
  readonly topics: Array<[string, number]>;
}

/** One message for a batch: payloads shared between topics (the same object) are written once. */
export function encodePublications(publications: readonly Publication[]): string {
  const payloads: unknown[] = [];
  const indexOf = new Map<unknown, number>();
  const topics = publications.map(({ topic, payload }): [string, number] => {
    let index = indexOf.get(payload);
    if (index === undefined) {
      index = payloads.push(payload) - 1;
      indexOf.set(payload, index);
    }
    return [topic, index];
  });
  return JSON.stringify({ payloads, topics } satisfies Batch);
}

export function decodePublications(message: string): Publication[] {
  const batch = JSON.parse(message) as Batch;
  if (!Array.isArray(batch.payloads) || !Array.isArray(batch.topics)) throw new Error('not a publication batch');
  return batch.topics.map(([topic, index]) => ({ topic, payload: batch.payloads[index] }));
}
