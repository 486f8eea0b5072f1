import { EventEmitter } from 'node:events';

// Types only, for the compiler: neither property exists at run time.
declare const payloadType: unique symbol;
declare const checked: unique symbol;

/**
 * A bus topic: its name, typed with what is published on it, so the compiler checks that a topic's
 * publishers and subscribers agree. herald's topics are declared once, in topics.ts (eslint refuses `topic`
 * imported anywhere else in production code).
 */
export type Topic<T> = string & { readonly [payloadType]: T };

/** The topic of this name, carrying payloads of type T. */
export const topic = <T>(name: string): Topic<T> => name as Topic<T>;

interface Unchecked {
  readonly topic: string;
  readonly payload: unknown;
}

/**
 * A payload on its topic, as a projection's commit (or a node) publishes it. Made by `publication` only
 * (a literal lacks `checked`), which type-checks when the payload is what the topic carries.
 */
export interface Publication extends Unchecked {
  readonly [checked]: true;
}

export function publication<T>(topic: Topic<T>, payload: NoInfer<T>): Publication {
  const unchecked: Unchecked = { topic, payload };
  return unchecked as Publication;
}

/**
 * Carries publications from projection commits to live subscribers. In-process here; a Redis
 * implementation of the same interface carries them between nodes.
 *
 * The bus is not durable: a publication can be lost (Redis down, a dropped connection). It never loses
 * one silently: it tells its gap listeners, and whoever listens on it catches up from the store, where
 * everything published was committed first (docs/architecture.md, Bus).
 */
export interface Bus {
  publish(publications: readonly Publication[]): Promise<void>;
  /**
   * Calls `listener` with each payload published on `topic`; returns the unsubscribe function.
   *
   * Every listener of a publication on this node gets the same object (identity, not a copy): an
   * in-process bus hands over the published object, a Redis bus decodes each payload once per message it
   * receives, one object however many topics and listeners share it. What is made of a payload (a
   * serialized frame) can so be made once and kept per object: a pushed message is serialized once, not
   * once per subscriber (api/graphql/sharedSubscription.ts). Listeners must not change a payload.
   */
  subscribe<T>(topic: Topic<T>, listener: (payload: T) => void): () => void;
  /**
   * `listener` is called when this node may have missed publications — its connection to the other
   * nodes dropped, or a publisher's sequence skipped some — once the bus carries publications again: what
   * a listener then reads from the store, with what the bus brings after, leaves nothing out. Returns
   * the function that removes it.
   */
  onGap(listener: () => void): () => void;
  /**
   * Has every node's gap listeners called, once this reaches each node through the bus. A runner that
   * takes over a projection calls it before its first publish: the runner before it may have committed a
   * batch and died before publishing it, which no sequence shows (docs/architecture.md, Bus).
   */
  resync(): Promise<void>;
  /** Whether publications reach every node now (`/readyz`); false while a Redis bus is disconnected. */
  healthy(): boolean;
  close(): Promise<void>;
}

export class InProcessBus implements Bus {
  private readonly emitter = new EventEmitter();
  private readonly gapListeners = new Set<() => void>();

  constructor(private readonly onListenerError: (error: unknown, topic: string) => void = () => undefined) {
    this.emitter.setMaxListeners(0);
  }

  async publish(publications: readonly Publication[]): Promise<void> {
    for (const { topic, payload } of publications) {
      for (const listener of this.emitter.listeners(topic)) {
        // One failing subscriber must not keep the message from the others, nor fail the projection.
        try {
          (listener as (payload: unknown) => void)(payload);
        } catch (error) {
          this.onListenerError(error, topic);
        }
      }
    }
  }

  subscribe<T>(topic: Topic<T>, listener: (payload: T) => void): () => void {
    this.emitter.on(topic, listener);
    return () => this.emitter.off(topic, listener);
  }

  /** Tells the gap listeners (the Redis bus, when it lost publications): each is called, one failing does not stop the rest. */
  gap(): void {
    for (const listener of [...this.gapListeners]) {
      try {
        listener();
      } catch (error) {
        this.onListenerError(error, 'gap');
      }
    }
  }

  /**
   * One process: a runner takes over from another of this process (tests), or from one of a process that
   * died — and took its subscribers with it. A local gap covers the first and costs nothing in the second.
   */
  async resync(): Promise<void> {
    this.gap();
  }

  onGap(listener: () => void): () => void {
    // A Set, not the emitter: every subscriber of the node listens, and each removes itself in O(1).
    const own = () => listener();
    this.gapListeners.add(own);
    return () => this.gapListeners.delete(own);
  }

  /** Nothing between this process's publishers and subscribers can fail. */
  healthy(): boolean {
    return true;
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
    this.gapListeners.clear();
  }
}
