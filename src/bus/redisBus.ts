import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '../runtime/logger';
import { InProcessBus, publication, topic, type Bus, type Publication, type Topic } from './bus';

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
 * order. Redis pub/sub keeps nothing: what is published while a node's subscription is down never reaches
 * it, and a publish that fails (Redis down) reaches nobody, though its commit is done and acknowledged.
 * Neither is silent here. Each node numbers what it publishes (`from`, `seq`), a failed publish too:
 * - a node whose subscription dropped subscribes again on reconnecting, then reports a gap;
 * - a node that sees a publisher's `seq` skip (or a publisher's first message after others it missed)
 *   reports a gap;
 * - a node whose publish failed publishes an empty message with its next `seq` once it is connected
 *   again, so every node sees the skip even if it publishes nothing more;
 * - a node that takes over a projection publishes a `resync` message first (Bus.resync): the node before
 *   it may have died between a commit and its publish, which no `seq` shows; every node reports a gap.
 * A gap's listeners catch up from the store (Bus.onGap), so publish never waits for Redis (a projection
 * must not stall behind the bus) and never delivers around it.
 */
export class RedisBus implements Bus {
  private readonly local: InProcessBus;
  /** This node as a publisher: a fresh id each start, so a restarted node's `seq` 1 is no skip. */
  private readonly from = randomUUID();
  private sent = 0;
  /** A publish failed: the next message (an empty one once reconnected) shows the skip to every node. */
  private owesMarker = false;
  private subscribed = true;
  private closed = false;
  /**
   * The last `seq` received from each publisher, the longest unheard first. Every start of a node adds
   * one, so it keeps the MAX_PUBLISHERS heard most recently: one forgotten but alive is heard again at
   * a later `seq` than 1, which costs a catch-up, nothing more.
   */
  private readonly received = new Map<string, number>();

  private constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly channel: string,
    private readonly log: Logger,
  ) {
    this.local = new InProcessBus((error, topic) => log.error({ err: error, topic }, 'bus subscriber failed'));
    subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => this.receive(message));
    subscriber.on('close', () => (this.subscribed = false));
    // ioredis would resubscribe by itself (autoResubscribe), but tells nobody when that is done; the gap
    // is reported only once this node hears the channel again, so nothing published after the catch-up's
    // read can slip by unheard.
    subscriber.on('ready', () => void this.resubscribe());
    publisher.on('ready', () => {
      if (this.owesMarker) void this.publish([]);
    });
  }

  /** Connects and subscribes; rejects when Redis cannot be reached at start-up (a misconfiguration, not an outage). */
  static async connect(url: string, log: Logger, channel = DEFAULT_CHANNEL): Promise<RedisBus> {
    const options = {
      // A dropped connection is retried for ever, with a capped back-off.
      retryStrategy: (attempt: number) => Math.min(attempt * 100, 2000),
      maxRetriesPerRequest: null,
      lazyConnect: true,
    };
    // Publishing fails at once while disconnected rather than queueing behind the outage, after 2 s on a
    // connection that hangs (a projection waits for it), and when the connection drops under it (not
    // sent again after the outage: a failure is counted, and healed, as one).
    const publisher = new Redis(url, {
      ...options,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      commandTimeout: PUBLISH_TIMEOUT_MS,
      connectionName: 'herald-bus-publisher',
    });
    const subscriber = new Redis(url, { ...options, autoResubscribe: false, connectionName: 'herald-bus-subscriber' });
    for (const [role, client] of [
      ['publisher', publisher],
      ['subscriber', subscriber],
    ] as const) {
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
    if (publications.length === 0 && !this.owesMarker) return;
    await this.send(publications, false);
  }

  /** One message that every node, this one too, turns into a gap; if it fails, its skipped `seq` does. */
  resync(): Promise<void> {
    return this.send([], true);
  }

  private async send(publications: readonly Publication[], resync: boolean): Promise<void> {
    const seq = ++this.sent;
    try {
      await this.publisher.publish(this.channel, encodePublications(publications, { from: this.from, seq, resync }));
      if (seq === this.sent) this.owesMarker = false;
    } catch (error) {
      if (this.closed) return;
      this.owesMarker = true;
      this.log.warn(
        { err: error, publications: publications.length },
        'Redis bus unavailable: publications not sent; every node catches up from the store once it is back',
      );
      // Timed out on a connection that stays up: no 'ready' will come to send the marker.
      if (this.publisher.status === 'ready') setTimeout(() => void this.publish([]), MARKER_RETRY_MS).unref();
    }
  }

  subscribe<T>(topic: Topic<T>, listener: (payload: T) => void): () => void {
    return this.local.subscribe(topic, listener);
  }

  onGap(listener: () => void): () => void {
    return this.local.onGap(listener);
  }

  healthy(): boolean {
    return this.subscribed && this.publisher.status === 'ready';
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.local.close();
    await Promise.allSettled([this.subscriber.quit(), this.publisher.quit()]);
    this.subscriber.disconnect();
    this.publisher.disconnect();
  }

  private async resubscribe(): Promise<void> {
    if (this.subscribed) return;
    try {
      await this.subscriber.subscribe(this.channel);
    } catch (error) {
      // The connection went again; its next 'ready' tries again.
      this.log.warn({ err: error }, 'Redis bus: subscribing again failed');
      return;
    }
    this.hearsAgain();
  }

  /**
   * The channel is heard again after a drop: the gap is reported before the first message delivered,
   * which may come in the same read as SUBSCRIBE's reply, before `resubscribe` resumes. Delivered first,
   * it would move the subscribers past the messages they missed.
   */
  private hearsAgain(): void {
    if (this.subscribed) return;
    this.subscribed = true;
    this.log.warn('Redis bus subscribed again: catching up from the store what was published meanwhile');
    this.local.gap();
  }

  private receive(message: Buffer): void {
    this.hearsAgain();
    let batch: ReceivedBatch;
    try {
      batch = decodePublications(message.toString('utf8'));
    } catch (error) {
      this.log.error({ err: error }, 'Redis bus: a message that is not a publication batch; dropped');
      return;
    }
    const last = this.received.get(batch.from);
    // Deleted first, so the map stays in the order publishers were last heard.
    this.received.delete(batch.from);
    this.received.set(batch.from, batch.seq);
    if (this.received.size > MAX_PUBLISHERS) this.received.delete(this.received.keys().next().value!);
    // A publisher first heard at `seq` 1 started after this node subscribed; at a later `seq`, what it
    // sent before may have been lost to this node (or not: it started first). A catch-up tells apart.
    if (batch.seq > (last ?? 0) + 1) {
      // A node starting hears every running publisher first past seq 1: not worth a warning.
      const level = last === undefined ? 'debug' : 'warn';
      this.log[level](
        { publisher: batch.from, after: last ?? 0, seq: batch.seq },
        "Redis bus: a publisher's messages may have been missed; catching up from the store",
      );
      this.local.gap();
    } else if (batch.resync) {
      this.log.debug({ publisher: batch.from }, 'Redis bus: a projection changed hands; catching up from the store');
      this.local.gap();
    }
    void this.local.publish(batch.publications);
  }
}

const DEFAULT_CHANNEL = 'herald:publications';
const PUBLISH_TIMEOUT_MS = 2000;
const MARKER_RETRY_MS = 1000;
/** Publishers whose `seq` a node keeps: far more than the nodes of a deployment. */
export const MAX_PUBLISHERS = 1000;

interface Batch {
  /** The publishing node (a fresh id each start) and its count of messages, failed ones included. */
  readonly from: string;
  readonly seq: number;
  /** Every node reports a gap on it (Bus.resync). */
  readonly resync?: true;
  /** The distinct payloads, each once. */
  readonly payloads: unknown[];
  /** Each publication: its topic and the index of its payload. */
  readonly topics: Array<[string, number]>;
}

interface ReceivedBatch {
  readonly from: string;
  readonly seq: number;
  readonly resync: boolean;
  readonly publications: Publication[];
}

/** One message for a batch: payloads shared between topics (the same object) are written once. */
export function encodePublications(
  publications: readonly Publication[],
  sender: { readonly from: string; readonly seq: number; readonly resync?: boolean },
): string {
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
  return JSON.stringify({
    from: sender.from,
    seq: sender.seq,
    ...(sender.resync && { resync: true as const }),
    payloads,
    topics,
  } satisfies Batch);
}

export function decodePublications(message: string): ReceivedBatch {
  const batch = JSON.parse(message) as Batch;
  if (
    typeof batch.from !== 'string' ||
    !Number.isSafeInteger(batch.seq) ||
    !Array.isArray(batch.payloads) ||
    !Array.isArray(batch.topics)
  )
    throw new Error('not a publication batch');
  return {
    from: batch.from,
    seq: batch.seq,
    resync: batch.resync === true,
    // Each payload once: the topics that share it get the same object (Bus.subscribe). Its type is the one its
    // topic declares; the publishing node's compiler checked it.
    publications: batch.topics.map(([name, index]) => publication(topic(name), batch.payloads[index])),
  };
}
