import { EventEmitter } from 'node:events';
import type { Publication } from '../projection/projection';

/**
 * Carries publications from projection commits to live subscribers. In-process here; a Redis
 * implementation of the same interface carries them between nodes.
 */
export interface Bus {
  publish(publications: readonly Publication[]): Promise<void>;
  /** Returns the unsubscribe function. */
  subscribe(topic: string, listener: (payload: unknown) => void): () => void;
  close(): Promise<void>;
}

export class InProcessBus implements Bus {
  private readonly emitter = new EventEmitter();

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

  subscribe(topic: string, listener: (payload: unknown) => void): () => void {
    this.emitter.on(topic, listener);
    return () => this.emitter.off(topic, listener);
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}
